//! X11 capture time at 720p and 1080p under Xvfb: one `next_frame` call with the pacer
//! set to capture at once, i.e. DamageSubtract + ShmGetImage into a pooled segment +
//! QueryPointer, both round trips to the server included (the server does the copy).
//!
//! Prints mean, p50, p95 and p99 over 1000 single captures per size, then runs criterion for
//! the mean with its confidence interval. Skips (prints why) without Xvfb.
//!
//! Run: `cargo bench -p wavry-media --bench capture`

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, PacerConfig};
use wavry_media::testing::TestDisplay;

const SIZES: [(&str, u32, u32); 2] = [("720p", 1280, 720), ("1080p", 1920, 1080)];
const SAMPLES: usize = 1000;

/// A capturer that grabs on every call (no frame-rate cap, a repeat at once when still).
fn capturer(display: &TestDisplay) -> X11Capturer {
    X11Capturer::open(X11Config {
        display: Some(display.name().into()),
        pacer: PacerConfig {
            min_interval: Duration::ZERO,
            repeat_after: Some(Duration::ZERO),
        },
        target: CaptureTarget::WholeScreen,
    })
    .expect("open capture")
}

fn grab(cap: &mut X11Capturer) {
    let frame = cap
        .next_frame(Instant::now() + Duration::from_secs(5))
        .expect("capture")
        .expect("frame");
    std::hint::black_box(frame.view().data[0]);
}

fn percentiles(name: &str, cap: &mut X11Capturer) {
    for _ in 0..50 {
        grab(cap);
    }
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            grab(cap);
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / SAMPLES as u32;
    let at = |q: f64| times[((SAMPLES as f64 * q) as usize).min(SAMPLES - 1)];
    println!(
        "capture/{name}: {SAMPLES} grabs: mean {:.3} ms, p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
        mean.as_secs_f64() * 1e3,
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
}

fn bench(c: &mut Criterion) {
    for (name, width, height) in SIZES {
        let Some(display) = TestDisplay::start(width, height) else {
            return;
        };
        let conn = display.connect();
        // Some content, so the copy is not of a blank page (it costs the same either way).
        for i in 0..8u16 {
            display.paint(
                &conn,
                (i * 150) as i16,
                (i * 80) as i16,
                300,
                200,
                0x203040 * u32::from(i + 1),
            );
        }
        let mut cap = capturer(&display);
        percentiles(name, &mut cap);
        c.bench_function(&format!("capture/{name}"), |b| b.iter(|| grab(&mut cap)));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
