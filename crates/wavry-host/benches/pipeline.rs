//! The host's whole video path in one run, as `wavry host` runs it: capture (X11 MIT-SHM,
//! damage-driven) → BGRA→I420 (pooled, two bands) → libx264 (ultrafast, zerolatency) at
//! 1080p and 720p, on a virtual display showing the moving scene at 60 fps. Per stage and in
//! total, mean and p95 over the frames captured.
//!
//! `cargo bench -p wavry-host --bench pipeline` (WAVRY_BENCH_FRAMES, default 300 per size).

use std::time::{Duration, Instant};
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, PacerConfig};
use wavry_media::codec::{open_encoder, EncoderConfig};
use wavry_media::convert::FramePool;
use wavry_media::{Codec, EncodedPacket};
use wavry_scene::{Scene, VirtualDisplay};

fn stats(name: &str, v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p95 = v[(v.len() - 1) * 95 / 100];
    format!("{name} mean {mean:.2} ms p95 {p95:.2} ms")
}

fn run(w: u32, h: u32, frames: usize) {
    let display = match VirtualDisplay::start(w, h) {
        Ok(d) => d,
        Err(e) => {
            wavry_testenv::skip(&e.to_string());
            return;
        }
    };
    let _scene = Scene::start(display.name(), 60).expect("scene");
    std::thread::sleep(Duration::from_millis(300));
    let mut cap = X11Capturer::open(X11Config {
        display: Some(display.name().to_string()),
        pacer: PacerConfig::new(60, Some(Duration::from_secs(1))),
        target: CaptureTarget::WholeScreen,
    })
    .expect("capture");
    let size = wavry_media::PixelSize::new(w, h);
    let mut cfg = EncoderConfig::new(Codec::H264, size, 60, 20_000_000);
    cfg.hardware = false;
    let mut enc = open_encoder(&cfg).expect("x264");
    let pool = FramePool::new(enc.input_layout(), size, FramePool::DEFAULT_FRAMES);
    let mut pkt = EncodedPacket::default();
    let (mut grab, mut conv, mut encode, mut total) = (vec![], vec![], vec![], vec![]);
    let mut pts = 0;
    while total.len() < frames {
        let Some(frame) = cap
            .next_frame(Instant::now() + Duration::from_millis(100))
            .expect("capture")
        else {
            continue;
        };
        if frame.repeat {
            continue;
        }
        // `captured_at` is stamped as the grab starts (after any wait for damage), so
        // capture = grab + hand-over, without the wait for the screen to change.
        let grabbed = Instant::now();
        let yuv = pool.convert(&frame.view(), pts).expect("convert");
        let converted = Instant::now();
        let Some(mut yuv) = yuv else { continue };
        pts += 1;
        enc.send(&mut yuv).expect("encode");
        while enc.receive(&mut pkt).expect("packet") {}
        let done = Instant::now();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        grab.push(ms(grabbed.saturating_duration_since(frame.captured_at)));
        conv.push(ms(converted - grabbed));
        encode.push(ms(done - converted));
        total.push(ms(done.saturating_duration_since(frame.captured_at)));
    }
    println!(
        "{w}x{h} ({frames} frames, x264 ultrafast/zerolatency at 20 Mbit/s): {}; {}; {}; {}",
        stats("capture", &mut grab),
        stats("convert", &mut conv),
        stats("encode", &mut encode),
        stats("capture+convert+encode", &mut total)
    );
}

fn main() {
    let frames: usize = std::env::var("WAVRY_BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if wavry_testenv::bench_is_test() {
            10
        } else {
            300
        });
    run(1920, 1080, frames);
    run(1280, 720, frames);
}
