//! TOTP (RFC 6238): SHA1, 6 digits, 30-second steps, a code from the step before or after the
//! current one accepted (clock drift, typing time).
//!
//! Replay: the gateway stores the last step whose code it accepted per account and accepts only
//! later steps, so a code works once (RFC 6238 §5.2), and so does every older code.

use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one.
pub const SKEW_STEPS: i64 = 1;
/// Secret length: 160 bits, as RFC 4226 recommends for HMAC-SHA1.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP secret: {0}")]
    Secret(String),
    #[error("TOTP setup: {0}")]
    Setup(String),
    #[error("random: {0}")]
    Random(#[from] getrandom::Error),
}

/// A new secret, base32 (what the database and the authenticator app hold).
pub fn new_secret() -> Result<String, TotpError> {
    let bytes = crate::token::random_bytes::<SECRET_BYTES>()?;
    Ok(Secret::Raw(bytes.to_vec()).to_encoded().to_string())
}

fn totp(secret_b32: &str, issuer: &str, account: &str) -> Result<TOTP, TotpError> {
    let raw = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| TotpError::Secret(format!("{e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0, // the skew is applied here, step by step, to know which step matched
        STEP_SECS as u64,
        raw,
        Some(issuer.to_string()),
        account.to_string(),
    )
    .map_err(|e| TotpError::Setup(e.to_string()))
}

/// What an authenticator app needs: the `otpauth://` URI and the same as a QR code (PNG,
/// base64).
pub fn provisioning(
    secret_b32: &str,
    issuer: &str,
    account: &str,
) -> Result<(String, String), TotpError> {
    let t = totp(secret_b32, issuer, account)?;
    let url = t.get_url();
    let qr = qr_png_base64(&url)?;
    Ok((url, qr))
}

/// Pixels per QR module, and the quiet zone around the code in modules (readers need one).
const QR_SCALE: usize = 8;
const QR_QUIET: usize = 4;

/// `text` as a QR code (error correction M) in an 8-bit grey PNG, base64: the picture
/// totp-rs's `qr` feature draws, made here with `qrcodegen` and `png` since that feature
/// brings the `image` crate and its colour management (a minute of CPU in a cold build) for
/// this one picture.
fn qr_png_base64(text: &str) -> Result<String, TotpError> {
    use base64::Engine as _;
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| TotpError::Setup(format!("QR code: {e}")))?;
    let modules = qr.size();
    let side = (usize::try_from(modules).unwrap_or(0) + 2 * QR_QUIET) * QR_SCALE;
    let mut pixels = Vec::with_capacity(side * side);
    for y in -(QR_QUIET as i32)..modules + QR_QUIET as i32 {
        let mut row = Vec::with_capacity(side);
        for x in -(QR_QUIET as i32)..modules + QR_QUIET as i32 {
            // get_module is false outside the code: the quiet zone is white.
            let grey = if qr.get_module(x, y) { 0 } else { 255 };
            row.extend([grey; QR_SCALE]);
        }
        for _ in 0..QR_SCALE {
            pixels.extend_from_slice(&row);
        }
    }
    let png_err = |e: png::EncodingError| TotpError::Setup(format!("QR code PNG: {e}"));
    let mut png_bytes = Vec::new();
    let side_px = u32::try_from(side).map_err(|_| TotpError::Setup("QR code too big".into()))?;
    let mut encoder = png::Encoder::new(&mut png_bytes, side_px, side_px);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&pixels).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(png_bytes))
}

/// The step a Unix time falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code for `step` (tests and tools).
pub fn code_at_step(secret_b32: &str, step: i64) -> Result<String, TotpError> {
    let t = totp(secret_b32, "x", "x")?;
    Ok(t.generate(u64::try_from(step * STEP_SECS).unwrap_or(0)))
}

/// Whether `code` could be a code at all: `DIGITS` ASCII digits.
pub fn well_formed(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The step within ±`SKEW_STEPS` of now whose code is `code`, if any. Every candidate is
/// compared (in constant time) so the answer's timing does not tell which step matched.
pub fn matching_step(
    secret_b32: &str,
    code: &str,
    now_secs: i64,
) -> Result<Option<i64>, TotpError> {
    if !well_formed(code) {
        return Ok(None);
    }
    let t = totp(secret_b32, "x", "x")?;
    let now = step_at(now_secs);
    let mut found = None;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        let Ok(time) = u64::try_from(step * STEP_SECS) else {
            continue;
        };
        let expected = t.generate(time);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            // The latest matching step: a code is valid in one step only (barring a
            // 1-in-a-million collision), so this is simply "the" step.
            found = Some(step);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA1, secret "12345678901234567890" (8-digit codes there; the last
    // six digits are the 6-digit code).
    const RFC_SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_vectors() {
        for (time, code8) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            let c = code_at_step(RFC_SECRET_B32, step_at(time)).unwrap();
            assert_eq!(c, code8[2..], "t={time}");
            assert_eq!(
                matching_step(RFC_SECRET_B32, &code8[2..], time).unwrap(),
                Some(step_at(time))
            );
        }
    }

    #[test]
    fn skew_is_one_step_each_way() {
        let s = new_secret().unwrap();
        let now = 1_700_000_015;
        let cur = step_at(now);
        for d in -1..=1 {
            let code = code_at_step(&s, cur + d).unwrap();
            assert_eq!(matching_step(&s, &code, now).unwrap(), Some(cur + d));
        }
        for d in [-3, -2, 2, 3] {
            let code = code_at_step(&s, cur + d).unwrap();
            let m = matching_step(&s, &code, now).unwrap();
            assert_ne!(m, Some(cur + d));
        }
        assert_eq!(matching_step(&s, "12345", now).unwrap(), None);
        assert_eq!(matching_step(&s, "12345a", now).unwrap(), None);
    }

    #[test]
    fn provisioning_uri_and_qr() {
        let s = new_secret().unwrap();
        let (uri, qr) = provisioning(&s, "Wavry", "a@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Wavry:a%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(qr)
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // The picture is the URI's QR code: 8 pixels a module, a 4-module white border.
        let code = qrcodegen::QrCode::encode_text(&uri, qrcodegen::QrCodeEcc::Medium).unwrap();
        let mut reader = png::Decoder::new(&png[..]).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        let side = (code.size() as usize + 2 * QR_QUIET) * QR_SCALE;
        assert_eq!((frame.width as usize, frame.height as usize), (side, side));
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        for y in 0..side {
            for x in 0..side {
                let module = |p: usize| (p / QR_SCALE) as i32 - QR_QUIET as i32;
                let dark = code.get_module(module(x), module(y));
                assert_eq!(
                    pixels[y * side + x],
                    if dark { 0 } else { 255 },
                    "({x}, {y})"
                );
            }
        }
    }
}
