//! How long the client's window takes to show a decoded picture: from the call to
//! `VideoWindow::present` to the picture being on the X server's screen, where any other
//! client (a compositor, a screenshot, the glass-to-glass reader) sees it.
//!
//! A virtual display of the picture's size holds the window alone. Each picture is a fixed
//! desktop-like I420 image with the latency probe's barcode of the current time painted into
//! its luma plane; right after `present` returns, the bench grabs the strip from the screen
//! until it shows that time. Reports p50 / p95 / p99 of the `present` call and of the time to
//! visible, per size.
//!
//! `cargo bench -p wavry-client --bench present` (WAVRY_BENCH_FRAMES, default 300;
//! WAVRY_PRESENT=auto|gpu|cpu measures one presentation path; default both gpu and cpu).

use std::time::{Duration, Instant};
use wavry_client::window::{Plane, PresentMode, VideoWindow, I420};
use wavry_scene::probe::{now_us, paint_luma, Reader, Reading};
use wavry_scene::VirtualDisplay;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn run(w: u32, h: u32, frames: usize, mode: PresentMode) {
    let display = match VirtualDisplay::start(w, h) {
        Ok(d) => d,
        Err(e) => {
            wavry_testenv::skip(&e.to_string());
            return;
        }
    };
    std::env::set_var("DISPLAY", display.name());
    let mut window = VideoWindow::open("wavry present bench", w, h, mode).expect("window");
    let reader = Reader::open(display.name(), 0, 0).expect("reader");
    let (ws, hs) = (w as usize, h as usize);
    let (cw, ch) = (ws / 2, hs / 2);
    // A desktop-like picture: horizontal luma gradient, tinted chroma blocks.
    let mut y: Vec<u8> = (0..ws * hs)
        .map(|i| (16 + (i % ws) * 200 / ws) as u8)
        .collect();
    let u: Vec<u8> = (0..cw * ch).map(|i| (96 + (i / cw) % 64) as u8).collect();
    let v: Vec<u8> = (0..cw * ch).map(|i| (160 - (i % cw) % 64) as u8).collect();
    let (mut call, mut visible) = (Vec::new(), Vec::new());
    let mut missed = 0;
    for i in 0..frames + 20 {
        let t = now_us();
        paint_luma(&mut y, ws, t);
        let pic = I420 {
            width: w,
            height: h,
            y: Plane {
                data: &y,
                stride: ws,
            },
            u: Plane {
                data: &u,
                stride: cw,
            },
            v: Plane {
                data: &v,
                stride: cw,
            },
        };
        let start = Instant::now();
        window.present(&pic).expect("present");
        let returned = start.elapsed();
        let deadline = Instant::now() + Duration::from_millis(500);
        let shown = loop {
            match reader.read() {
                Ok(Reading::Time(s)) if s >= t => break Some(now_us()),
                _ if Instant::now() > deadline => break None,
                _ => {}
            }
        };
        // Let SDL see its events (the window is otherwise never serviced).
        while window.wait_event(Duration::ZERO).is_some() {}
        if i < 20 {
            continue; // warm-up: the first textures and buffers are made here
        }
        match shown {
            Some(s) => {
                call.push(returned.as_secs_f64() * 1000.0);
                visible.push(s.saturating_sub(t) as f64 / 1000.0);
            }
            None => missed += 1,
        }
    }
    println!(
        "{w}x{h} {:<8} present() p50 {:5.2} p95 {:5.2} p99 {:5.2} ms | to visible p50 {:5.2} p95 \
         {:5.2} p99 {:5.2} ms | {} frames, {missed} never seen",
        window.presenter(),
        pct(&mut call, 0.5),
        pct(&mut call, 0.95),
        pct(&mut call, 0.99),
        pct(&mut visible, 0.5),
        pct(&mut visible, 0.95),
        pct(&mut visible, 0.99),
        visible.len(),
    );
}

fn main() {
    let frames = std::env::var("WAVRY_BENCH_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if wavry_testenv::bench_is_test() {
            10
        } else {
            300
        });
    let modes = match std::env::var("WAVRY_PRESENT") {
        Ok(m) => vec![m.parse().expect("WAVRY_PRESENT: auto, gpu or cpu")],
        Err(_) => vec![PresentMode::Gpu, PresentMode::Cpu],
    };
    for (w, h) in [(1280, 720), (1920, 1080)] {
        for &mode in &modes {
            run(w, h, frames, mode);
        }
    }
}
