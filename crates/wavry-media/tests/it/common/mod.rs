//! Helpers shared by the codec tests: tight planes, PSNR, stream files, skipping.
#![allow(dead_code)] // each test binary uses its own subset

use wavry_media::{YuvFrame, YuvLayout};

/// The Y, U and V planes of `f` without row padding (NV12 chroma de-interleaved).
pub fn planes(f: &YuvFrame) -> [Vec<u8>; 3] {
    let (w, h) = (f.size().width as usize, f.size().height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let tight = |i: usize, width: usize, rows: usize| {
        let (data, stride) = f.plane(i);
        let mut out = Vec::with_capacity(width * rows);
        for r in 0..rows {
            out.extend_from_slice(&data[r * stride..r * stride + width]);
        }
        out
    };
    let y = tight(0, w, h);
    match f.layout() {
        YuvLayout::I420 => [y, tight(1, cw, ch), tight(2, cw, ch)],
        YuvLayout::Nv12 => {
            let uv = tight(1, cw * 2, ch);
            let u = uv.iter().step_by(2).copied().collect();
            let v = uv.iter().skip(1).step_by(2).copied().collect();
            [y, u, v]
        }
    }
}

/// PSNR in dB over all samples of the three planes (8-bit).
pub fn psnr(a: &[Vec<u8>; 3], b: &[Vec<u8>; 3]) -> f64 {
    let (mut se, mut n) = (0f64, 0usize);
    for (pa, pb) in a.iter().zip(b) {
        assert_eq!(pa.len(), pb.len(), "plane sizes differ");
        for (x, y) in pa.iter().zip(pb) {
            let d = *x as f64 - *y as f64;
            se += d * d;
        }
        n += pa.len();
    }
    let mse = se / n as f64;
    if mse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Split a tight I420 buffer of `w`×`h` frames (as `ffmpeg -f rawvideo -pix_fmt yuv420p`
/// writes) into frames of planes.
pub fn split_i420(raw: &[u8], w: usize, h: usize) -> Vec<[Vec<u8>; 3]> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let frame = w * h + 2 * cw * ch;
    raw.chunks_exact(frame)
        .map(|f| {
            [
                f[..w * h].to_vec(),
                f[w * h..w * h + cw * ch].to_vec(),
                f[w * h + cw * ch..].to_vec(),
            ]
        })
        .collect()
}

/// Whether this FFmpeg build has the encoder `name`; reports the skip when not (under CI the
/// test fails: Debian's FFmpeg has every software encoder these tests use).
pub fn have_encoder(name: &str) -> bool {
    ffmpeg_next::init().ok();
    let ok = ffmpeg_next::encoder::find_by_name(name).is_some();
    if !ok {
        wavry_testenv::skip(&format!("this FFmpeg has no {name} encoder"));
    }
    ok
}

/// An IVF file (the container AV1 streams are commonly stored in) of `packets`.
pub fn ivf(width: u16, height: u16, fps: u32, packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"DKIF");
    out.extend_from_slice(&0u16.to_le_bytes()); // version
    out.extend_from_slice(&32u16.to_le_bytes()); // header length
    out.extend_from_slice(b"AV01");
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&fps.to_le_bytes()); // time base denominator
    out.extend_from_slice(&1u32.to_le_bytes()); // numerator
    out.extend_from_slice(&(packets.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(i as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Log lines captured from `tracing` while `f` runs.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // One capture at a time: two scoped subscribers on parallel test threads race in
    // tracing's callsite-interest rebuild (one ending its scope can leave the other's events
    // filtered out); seen once in CI as an empty capture.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let buf = Buf::default();
    let writer = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let r = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (r, text)
}
