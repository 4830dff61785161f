//! Input latency while a full video stream runs: a host streams a moving 1280x720 scene from a
//! virtual display (x264, 60 fps) to a client session on loopback; the client sends a mouse
//! move every millisecond, stamped with the monotonic clock; the host's input thread records
//! when it injected each one through XTEST. Both ends share the clock (one machine), so the
//! difference is the time from the client handing the event over to the host's desktop
//! having it. (The client window's own share, SDL event → send, is one function call on the
//! window thread and is not included.)
//!
//! `cargo bench -p wavry-client --bench input_latency` (WAVRY_BENCH_SECONDS, default 10).

use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wavry_input::{monotonic_us, InputEvent, Timed, MAX_EVENT_LEN};
use wavry_scene::{Scene, VirtualDisplay};
use wavry_transport::thread::SessionEvent;
use wavry_transport::udp::UdpDriver;

fn main() {
    let secs: u64 = std::env::var("WAVRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if wavry_testenv::bench_is_test() {
            1
        } else {
            10
        });
    let display = match VirtualDisplay::start(1280, 720) {
        Ok(d) => d,
        Err(e) => {
            wavry_testenv::skip(&e.to_string());
            return;
        }
    };
    let _scene = Scene::start(display.name(), 60).expect("scene");
    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr = hd.local_addr().unwrap();
    let log: wavry_host::input::InjectLog = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let (log, stop) = (log.clone(), stop.clone());
        let name = display.name().to_string();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let allow = move || allow_list(vec![client_pub]);
            let t = wavry_host::accept_one(hd, &host_id, allow, deadline).unwrap();
            let cfg = wavry_host::HostConfig {
                display: Some(name),
                hardware: false,
                ..Default::default()
            };
            wavry_host::serve(t, &cfg, &stop, Some(log)).unwrap()
        })
    };
    let bind = "127.0.0.1:0".parse().unwrap();
    let mut client = wavry_client::run::connect(bind, addr, &client_id, pinned(host_pub)).unwrap();
    // Drain the video so the client session behaves as a real one (frames reassembled).
    let events = client.take_events();
    let frames = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut bytes = 0u64;
        for ev in events.iter() {
            if let SessionEvent::Frame(f) = ev {
                n += 1;
                bytes += f.data.len() as u64;
            }
        }
        (n, bytes)
    });
    std::thread::sleep(Duration::from_secs(1));
    let tx = client.sender();
    let mut buf = [0u8; MAX_EVENT_LEN];
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_secs(secs) {
        let ev = InputEvent::MouseAbsolute {
            x: (sent * 37 % 65536) as u16,
            y: (sent * 91 % 65536) as u16,
        };
        let n = Timed {
            t_us: monotonic_us(),
            event: ev,
        }
        .encode(&mut buf);
        tx.send_input(&buf[..n]).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
    drop(tx);
    drop(client);
    stop.store(true, Ordering::Relaxed);
    let summary = host.join().unwrap();
    let (frames, bytes) = frames.join().unwrap();
    let mut lat: Vec<u64> = log
        .lock()
        .unwrap()
        .iter()
        .map(|&(t, at)| at.saturating_sub(t))
        .collect();
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "input latency beside {frames} frames of video ({:.1} Mbit/s, {} sent by the host): \
         {} of {sent} events injected; client send → host injection p50 {:.3} ms, p90 {:.3} ms, \
         p99 {:.3} ms, max {:.3} ms",
        bytes as f64 * 8.0 / secs as f64 / 1e6,
        summary.frames,
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
