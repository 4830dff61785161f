//! Glass-to-glass latency of Wavry on one machine: the host's virtual display shows a moving
//! scene with the latency probe (the monotonic clock as a barcode, repainted at 240 Hz) in the
//! top-left corner; the client shows the stream in its window on a second virtual display,
//! where a reader grabs the corner every millisecond and decodes the barcode.
//!
//! - event latency: for every painted time, until it or a later one first shows on the client
//!   display (what a person feels, including the wait for the next capture);
//! - frame latency: for each time that shows, from its painting to its first showing;
//! - corrupt readings (CRC fails) and freezes (> 100 ms without a new value).
//!
//! `cargo bench -p wavry-client --bench glass_to_glass` (WAVRY_BENCH_SECONDS, default 10;
//! WAVRY_BENCH_SIZE, default 1920x1080). Baselines (ffmpeg, GStreamer) are not run yet.

use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_client::run::{connect, run, RunOptions};
use wavry_scene::probe::{analyse, now_us, Probe, Reader};
use wavry_scene::{Scene, VirtualDisplay};
use wavry_transport::udp::UdpDriver;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let secs: u64 = std::env::var("WAVRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let size = std::env::var("WAVRY_BENCH_SIZE").unwrap_or_else(|_| "1920x1080".into());
    let (w, h) = size
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .expect("WAVRY_BENCH_SIZE as WIDTHxHEIGHT");
    let (host_disp, client_disp) = match (VirtualDisplay::start(w, h), VirtualDisplay::start(w, h))
    {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("SKIP: {e}");
            return;
        }
    };
    let _scene = Scene::start(host_disp.name(), 60).expect("scene");
    let probe = Probe::start(host_disp.name(), 0, 0, 240).expect("probe");

    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr = hd.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let (name, stop) = (host_disp.name().to_string(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let t = wavry_host::accept_one(hd, &host_id, || allow_list(vec![client_pub]), deadline)
                .unwrap();
            let cfg = wavry_host::HostConfig {
                display: Some(name),
                hardware: false,
                ..Default::default()
            };
            wavry_host::serve(t, &cfg, &stop, None).unwrap()
        })
    };
    let client = connect(
        "127.0.0.1:0".parse().unwrap(),
        addr,
        &client_id,
        pinned(host_pub),
    )
    .unwrap();

    // The reader: every millisecond after a 2 s warm-up, until the client stops.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (name, done) = (client_disp.name().to_string(), done.clone());
        std::thread::spawn(move || {
            let r = Reader::open(&name, 0, 0).expect("reader");
            std::thread::sleep(Duration::from_secs(2));
            let mut readings = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Ok(reading) = r.read() {
                    readings.push((now_us(), reading));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            readings
        })
    };
    std::env::set_var("DISPLAY", client_disp.name());
    let summary = run(
        client,
        RunOptions {
            title: "wavry glass to glass".into(),
            width: w,
            height: h,
            overlay: false,
            report: None,
            duration: Some(Duration::from_secs(secs + 2)),
            hardware_decode: false,
            client_name: "bench".into(),
            stop: Arc::new(AtomicBool::new(false)),
        },
    )
    .unwrap();
    done.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let readings = reader.join().unwrap();
    let _ = host.join();
    let painted = probe.painted();
    let mut l = analyse(&painted, &readings);
    println!(
        "wavry {w}x{h} at 60 fps, x264, loopback: {} frames shown; {} readings, {} painted",
        summary.frames_shown,
        l.readings,
        painted.len()
    );
    println!(
        "  event latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms ({} events)",
        pct(&mut l.event_ms, 0.5),
        pct(&mut l.event_ms, 0.95),
        pct(&mut l.event_ms, 0.99),
        l.event_ms.len()
    );
    println!(
        "  frame latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms ({} values shown)",
        pct(&mut l.frame_ms, 0.5),
        pct(&mut l.frame_ms, 0.95),
        pct(&mut l.frame_ms, 0.99),
        l.frame_ms.len()
    );
    println!(
        "  corrupt readings {}, freezes > 100 ms {}",
        l.corrupt, l.freezes
    );
}
