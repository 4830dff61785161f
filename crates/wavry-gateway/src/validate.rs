//! What the handlers accept: a well-formed email address, a new password, a device's name and
//! key, the admin API's ranges. Shared by the account, registry and admin endpoints, so each
//! refuses the same input the same way, and stated once more as `RULES`, which the OpenAPI
//! document carries (src/openapi.rs) and the tests below hold to these functions.

use axum::http::StatusCode;
use rift_crypto::identity::PublicKey;
use wavry_proto::account::{ErrorCode, EMAIL_MAX_BYTES, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS};
use wavry_proto::registry::DEVICE_NAME_MAX_BYTES;

use crate::error::ApiError;
use crate::totp;

/// Most bytes in an email address's local part (RFC 5321).
pub const EMAIL_LOCAL_MAX_BYTES: usize = 64;
/// The admin API's `limit` (users, audit entries): values outside are clamped into this.
pub const PAGE_LIMIT_MIN: i64 = 1;
pub const PAGE_LIMIT_MAX: i64 = 1000;
/// The admin API's analytics window, days: values outside are clamped into this.
pub const ANALYTICS_DAYS_MIN: i64 = 1;
pub const ANALYTICS_DAYS_MAX: i64 = 366;
/// The shortest ban, seconds (0 is refused: omit it for a permanent ban).
pub const BAN_SECS_MIN: i64 = 1;

// Character classes of the patterns below, in the syntax both ECMA-262 (what OpenAPI's `pattern`
// is) and Rust's regex accept. `trim()` and `is_whitespace()` mean Unicode's White_Space, which
// ECMA's `\s` is not quite (it adds U+FEFF), so the set is spelt out; `is_control()` is the Cc
// category.
macro_rules! ws {
    () => {
        r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}
macro_rules! cc {
    () => {
        r"\x00-\x1F\x7F-\x9F"
    };
}
macro_rules! email_char {
    // Not whitespace, control, '@', or what cannot stand unquoted in an address (':' would also
    // break the otpauth:// label).
    () => {
        concat!(r#"[^"#, ws!(), cc!(), r#"@:<>",;\\"#)
    };
}

/// An email address as `normalize_email` takes it: optional surrounding whitespace, a local part
/// of 1–64 characters, '@', a domain of dot-separated non-empty labels; no whitespace, control
/// characters or `:<>",;\` inside.
pub const EMAIL_PATTERN: &str = concat!(
    "^[",
    ws!(),
    "]*",
    email_char!(),
    "]{1,64}@",
    email_char!(),
    r".]+(\.",
    email_char!(),
    r".]+)*",
    "[",
    ws!(),
    "]*$"
);

/// A device name as `check_device_name` takes it: something besides whitespace, and no control
/// characters once the surrounding whitespace is trimmed.
pub const DEVICE_NAME_PATTERN: &str = concat!(
    "^[",
    ws!(),
    "]*",
    "[^",
    ws!(),
    cc!(),
    "]",
    "([^",
    cc!(),
    "]*[^",
    ws!(),
    cc!(),
    "])?",
    "[",
    ws!(),
    "]*$"
);

/// A device key as `parse_device_key` takes it: standard padded base64 of 32 bytes (the last
/// character before '=' carries two unused bits, which must be zero), surrounding whitespace
/// allowed.
pub const DEVICE_KEY_PATTERN: &str = concat!(
    "^[",
    ws!(),
    "]*",
    "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=",
    "[",
    ws!(),
    "]*$"
);

/// A TOTP code: 6 digits. Anything else is a wrong code (401), never a right one.
pub const TOTP_CODE_PATTERN: &str = "^[0-9]{6}$";

/// Where a rule stands in the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A property of a component schema: (schema, property).
    Field(&'static str, &'static str),
    /// A query parameter of an operation: (path, parameter).
    Query(&'static str, &'static str),
}

/// One validation rule as the OpenAPI document states it. JSON Schema counts characters where
/// some limits here are bytes of UTF-8 (`note` says which): for ASCII values the two agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub place: Place,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub pattern: Option<&'static str>,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
    /// Added to the field's description: what the numbers do not say.
    pub note: &'static str,
}

const fn rule(place: Place, note: &'static str) -> Rule {
    Rule {
        place,
        min_length: None,
        max_length: None,
        pattern: None,
        minimum: None,
        maximum: None,
        note,
    }
}

const EMAIL_NOTE: &str =
    "An email address: at most 254 bytes (UTF-8) as sent and once trimmed and \
                          lower-cased, a local part of at most 64 bytes; refused with 422 \
                          `invalid_email`.";

const fn email(schema: &'static str, field: &'static str) -> Rule {
    Rule {
        max_length: Some(EMAIL_MAX_BYTES),
        pattern: Some(EMAIL_PATTERN),
        ..rule(Place::Field(schema, field), EMAIL_NOTE)
    }
}

/// Every rule the handlers apply to a request field or parameter, as the OpenAPI document
/// states it (src/openapi.rs adds them; the tests hold them to the functions above).
pub const RULES: &[Rule] = &[
    email("RegisterRequest", "email"),
    Rule {
        min_length: Some(PASSWORD_MIN_CHARS),
        max_length: Some(PASSWORD_MAX_BYTES),
        ..rule(
            Place::Field("RegisterRequest", "password"),
            "At least 8 characters (Unicode scalar values) and at most 1024 bytes (UTF-8); \
             refused with 422 `password_too_short` or `password_too_long`.",
        )
    },
    // Login refuses nothing with 422 (a malformed address or an over-long password is a wrong
    // one, 401), but no account has an address or password outside these.
    Rule {
        note: "No account has an address outside these rules: login answers 401 \
               `invalid_credentials` for one.",
        ..email("LoginRequest", "email")
    },
    Rule {
        max_length: Some(PASSWORD_MAX_BYTES),
        ..rule(
            Place::Field("LoginRequest", "password"),
            "At most 1024 bytes (UTF-8): no password is longer (a longer one is a wrong one, 401).",
        )
    },
    Rule {
        min_length: Some(totp::DIGITS),
        max_length: Some(totp::DIGITS),
        pattern: Some(TOTP_CODE_PATTERN),
        ..rule(
            Place::Field("LoginRequest", "totp_code"),
            "6 digits; any other value is a wrong code (401 `invalid_totp_code`).",
        )
    },
    Rule {
        min_length: Some(totp::DIGITS),
        max_length: Some(totp::DIGITS),
        pattern: Some(TOTP_CODE_PATTERN),
        ..rule(
            Place::Field("TotpCodeRequest", "code"),
            "6 digits; any other value is a wrong code (401 `invalid_totp_code`).",
        )
    },
    Rule {
        min_length: Some(1),
        max_length: Some(DEVICE_NAME_MAX_BYTES),
        pattern: Some(DEVICE_NAME_PATTERN),
        ..rule(
            Place::Field("RegisterDeviceRequest", "name"),
            "At most 64 bytes (UTF-8) as sent; trimmed, not empty and without control \
             characters; refused with 422 `invalid_device`.",
        )
    },
    Rule {
        min_length: Some(44),
        pattern: Some(DEVICE_KEY_PATTERN),
        ..rule(
            Place::Field("RegisterDeviceRequest", "public_key"),
            "Refused with 422 `invalid_device` unless it decodes to exactly 32 bytes.",
        )
    },
    email("ShareRequest", "email"),
    email("BanRequest", "email"),
    Rule {
        minimum: Some(BAN_SECS_MIN),
        ..rule(
            Place::Field("BanRequest", "duration_secs"),
            "0 is refused with 422 `invalid_target`: omit it for a permanent ban.",
        )
    },
    Rule {
        minimum: Some(PAGE_LIMIT_MIN),
        maximum: Some(PAGE_LIMIT_MAX),
        ..rule(
            Place::Query("/admin/api/users", "limit"),
            "Default 100; a value outside 1-1000 is clamped into it.",
        )
    },
    Rule {
        minimum: Some(PAGE_LIMIT_MIN),
        maximum: Some(PAGE_LIMIT_MAX),
        ..rule(
            Place::Query("/admin/api/audit", "limit"),
            "Default 100; a value outside 1-1000 is clamped into it.",
        )
    },
    Rule {
        minimum: Some(ANALYTICS_DAYS_MIN),
        maximum: Some(ANALYTICS_DAYS_MAX),
        ..rule(
            Place::Query("/admin/api/analytics", "days"),
            "Default 14; a value outside 1-366 is clamped into it.",
        )
    },
];

/// Trim and lower-case an address, and refuse what cannot be one. Lower-casing the local part
/// is not what RFC 5321 says, but it is what people expect ("Ann@x" and "ann@x" are one
/// person), and no mail provider in use distinguishes them.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidEmail,
            format!("invalid email address: {why}"),
        )
    };
    // The limit holds for the value as sent and as stored: JSON Schema's maxLength can only
    // speak of the first, and lower-casing can lengthen a few characters.
    let email = raw.trim().to_lowercase();
    if raw.len() > EMAIL_MAX_BYTES || email.len() > EMAIL_MAX_BYTES {
        return Err(invalid("too long"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("no '@'"));
    };
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_BYTES || domain.is_empty() {
        return Err(invalid("empty or too long local part or domain"));
    }
    // ':' would break the otpauth:// label; the rest cannot appear unquoted in an address.
    if email.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, ':' | '<' | '>' | '"' | ',' | ';' | '\\')
    }) || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(invalid("unexpected character"));
    }
    Ok(email)
}

pub(crate) fn check_new_password(pw: &str) -> Result<(), ApiError> {
    if pw.len() > PASSWORD_MAX_BYTES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PasswordTooLong,
            format!("password longer than {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    if pw.chars().count() < PASSWORD_MIN_CHARS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PasswordTooShort,
            format!("password shorter than {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    Ok(())
}

fn invalid_device(why: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidDevice,
        why,
    )
}

/// A device's name: at most `DEVICE_NAME_MAX_BYTES` bytes as sent (as the OpenAPI maxLength
/// says), then trimmed: not empty, no control characters.
pub(crate) fn check_device_name(raw: &str) -> Result<&str, ApiError> {
    let name = raw.trim();
    if raw.len() > DEVICE_NAME_MAX_BYTES || name.is_empty() || name.chars().any(char::is_control) {
        return Err(invalid_device(format!(
            "a device name is 1 to {DEVICE_NAME_MAX_BYTES} bytes without control characters"
        )));
    }
    Ok(name)
}

/// A device's static key: standard padded base64 of 32 bytes.
pub(crate) fn parse_device_key(raw: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_base64(raw)
        .map_err(|e| invalid_device(format!("public_key: {e} (`wavry id --public` prints it)")))
}

/// A ban's length: positive, or absent for a permanent ban.
pub(crate) fn check_ban_duration(secs: Option<u64>) -> Result<(), ApiError> {
    if secs.is_some_and(|s| i64::try_from(s).is_ok_and(|s| s < BAN_SECS_MIN)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidTarget,
            "duration_secs must be positive (omit it for a permanent ban)",
        ));
    }
    Ok(())
}

/// An admin API `limit`: absent is 100, others are clamped into 1–1000.
pub(crate) fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(100).clamp(PAGE_LIMIT_MIN, PAGE_LIMIT_MAX)
}

/// The analytics window: absent is 14 days, others are clamped into 1–366.
pub(crate) fn analytics_days(days: Option<i64>) -> i64 {
    days.unwrap_or(14)
        .clamp(ANALYTICS_DAYS_MIN, ANALYTICS_DAYS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM \n").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@x.org",
            "ann@",
            "a b@x.org",
            "a@b@c",
            "ann@x..org",
            "ann@.x",
            "a:b@x.org",
            "a\u{0}@x.org",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@x.org", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn password_bounds() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        // Characters, not bytes: 8 two-byte characters are fine.
        assert!(check_new_password("éééééééé").is_ok());
        assert!(check_new_password(&"x".repeat(1024)).is_ok());
        assert!(check_new_password(&"x".repeat(1025)).is_err());
    }

    /// A value as a JSON Schema validator reads `rule`: lengths in characters, the pattern.
    fn schema_accepts(rule: &Rule, v: &str) -> bool {
        let chars = v.chars().count();
        rule.min_length.is_none_or(|m| chars >= m)
            && rule.max_length.is_none_or(|m| chars <= m)
            && rule
                .pattern
                .is_none_or(|p| regex::Regex::new(p).unwrap().is_match(v))
    }

    fn rule_at(place: Place) -> &'static Rule {
        RULES.iter().find(|r| r.place == place).unwrap()
    }

    /// Every probe gets the same verdict from the documented rule and from the handler's own
    /// check. The probes are the edges: lengths at and past each limit, every refused
    /// character, surrounding whitespace, non-ASCII. (JSON Schema counts characters where some
    /// limits are bytes: past a limit the length probes are ASCII, where the two agree.)
    fn agree(place: Place, server: impl Fn(&str) -> bool, probes: &[String]) {
        let rule = rule_at(place);
        for v in probes {
            assert_eq!(
                schema_accepts(rule, v),
                server(v),
                "{place:?} disagrees on {v:?}: the document says {}, the handler {}",
                schema_accepts(rule, v),
                server(v)
            );
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_documented_email_rule_is_normalize_email() {
        let mut probes = strings(&[
            "a@b",
            "ann@example.org",
            " Ann@Example.ORG \n",
            "\u{85}\u{3000}ann@x\u{2029}",
            "ünïcødé@exämple.org",
            "\u{feff}a@x",
            "",
            " ",
            "ann",
            "@x.org",
            "ann@",
            "a b@x.org",
            "ann@ex ample.org",
            "a\u{a0}b@x",
            "a@b@c",
            "ann@x..org",
            "ann@.x",
            "ann@x.",
            ".ann@x",
            "a..b.@x",
            "a\u{0}@x.org",
            "\u{1}a@x.org",
            "a\u{7f}@x",
            "a\u{9f}@x",
            "a@x\u{85}y",
        ]);
        for c in [':', '<', '>', '"', ',', ';', '\\', '@'] {
            probes.push(format!("a{c}b@x.org"));
            probes.push(format!("ab@x{c}org"));
        }
        for n in [63, 64, 65] {
            probes.push(format!("{}@x.org", "a".repeat(n)));
        }
        for n in [253, 254, 255] {
            probes.push(format!("a@{}", "b".repeat(n - 2)));
            probes.push(format!("a@{}.org", "b".repeat(n - 6)));
        }
        let ok = |v: &str| normalize_email(v).is_ok();
        for (schema, field) in [
            ("RegisterRequest", "email"),
            ("LoginRequest", "email"),
            ("ShareRequest", "email"),
            ("BanRequest", "email"),
        ] {
            agree(Place::Field(schema, field), ok, &probes);
        }
    }

    #[test]
    fn the_documented_password_rules_are_the_handlers() {
        let mut probes = strings(&["", "1234567", "12345678", "éééééééé", "ééééééé"]);
        for n in [1023, 1024, 1025] {
            probes.push("x".repeat(n));
        }
        agree(
            Place::Field("RegisterRequest", "password"),
            |v| check_new_password(v).is_ok(),
            &probes,
        );
        // Login checks nothing but the length: past it, a password is a wrong one.
        agree(
            Place::Field("LoginRequest", "password"),
            |v| v.len() <= PASSWORD_MAX_BYTES,
            &probes,
        );
    }

    #[test]
    fn the_documented_totp_code_is_well_formed() {
        let probes = strings(&[
            "123456",
            "000000",
            "12345",
            "1234567",
            "12345a",
            " 123456",
            "",
            "١٢٣٤٥٦",
        ]);
        for place in [
            Place::Field("LoginRequest", "totp_code"),
            Place::Field("TotpCodeRequest", "code"),
        ] {
            agree(place, totp::well_formed, &probes);
        }
    }

    #[test]
    fn the_documented_device_rules_are_the_handlers() {
        let mut probes = strings(&[
            "den pc",
            "d",
            "é",
            " den pc \n",
            "\u{85}den\u{3000}",
            "",
            " ",
            "\t\n",
            "a\tb",
            "a\u{7f}",
            "\u{9f}a",
            "a\u{85}b",
            "\u{1}",
        ]);
        for n in [63, 64, 65] {
            probes.push("x".repeat(n));
            probes.push(format!(" {} ", "x".repeat(n - 2)));
            probes.push(format!("{}\t", "é".repeat(n / 2 - 1)));
        }
        agree(
            Place::Field("RegisterDeviceRequest", "name"),
            |v| check_device_name(v).is_ok(),
            &probes,
        );

        let key = PublicKey([7; 32]).to_base64();
        let mut probes = vec![
            key.clone(),
            format!(" {key}\n"),
            key.trim_end_matches('=').to_string(),
            key.replace('=', "=="),
            key.replace('/', "_"),
            format!("{key}A"),
            format!("A{key}"),
            format!("{} {}", &key[..20], &key[20..]),
            PublicKey([0xff; 32]).to_base64(),
            PublicKey([0; 32]).to_base64(),
            data_encoding::BASE64.encode(&[1u8; 31]),
            data_encoding::BASE64.encode(&[1u8; 33]),
            String::new(),
        ];
        // The last character before '=' carries two bits past the key's 256: set, they are
        // refused.
        for last in ['B', 'D', 'F', 'f', '1', '9', '/', '+'] {
            let mut k = key.clone();
            k.replace_range(42..43, &last.to_string());
            probes.push(k);
        }
        agree(
            Place::Field("RegisterDeviceRequest", "public_key"),
            |v| parse_device_key(v).is_ok(),
            &probes,
        );
    }

    #[test]
    fn the_documented_ranges_are_the_handlers() {
        let ban = rule_at(Place::Field("BanRequest", "duration_secs"));
        assert_eq!(ban.minimum, Some(1));
        assert!(check_ban_duration(Some(0)).is_err());
        assert!(check_ban_duration(Some(1)).is_ok());
        assert!(check_ban_duration(None).is_ok());
        for (path, clamp) in [
            ("/admin/api/users", page_limit as fn(Option<i64>) -> i64),
            ("/admin/api/audit", page_limit),
            ("/admin/api/analytics", analytics_days),
        ] {
            let name = if path.ends_with("analytics") {
                "days"
            } else {
                "limit"
            };
            let r = rule_at(Place::Query(path, name));
            let (lo, hi) = (r.minimum.unwrap(), r.maximum.unwrap());
            // Inside the documented range a value is taken as it is; outside it is clamped.
            for v in [lo, lo + 1, hi - 1, hi] {
                assert_eq!(clamp(Some(v)), v, "{path} {v}");
            }
            assert_eq!(clamp(Some(lo - 1)), lo);
            assert_eq!(clamp(Some(hi + 1)), hi);
            assert!((lo..=hi).contains(&clamp(None)));
        }
    }
}
