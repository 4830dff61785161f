//! Whole-transport throughput on loopback: a host session pushes 100 KB frames as fast as the
//! sender drains them (DELTA sets the rate, up to 20 Gbit/s; 5 % XOR FEC), a client session
//! receives, decrypts, reassembles and counts them. Each side runs on its own thread.
//!
//! `cargo bench -p wavry-transport --bench loopback_throughput` (WAVRY_BENCH_SECONDS, default 10).
//! `WAVRY_BENCH_CPU=N` pins both threads to CPU `N` (sched_setaffinity), so the whole transport,
//! sender and receiver together, shares one core. `WAVRY_BENCH_FIXED_BPS=R` paces at a fixed
//! `R` bit/s instead of DELTA: what the transport carries when no controller reads the
//! scheduler's delays as a queue. `WAVRY_BENCH_MAX_BPS=R` lowers DELTA's ceiling (default
//! 20 Gbit/s; the library's default is 200 Mbit/s). `WAVRY_BENCH_DIAG=1` prints the host's latest feedback report
//! every 100 ms and the receiver's counters at the end (stderr).

use rift_core::delta::{Delta, DeltaConfig};
use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use std::time::{Duration, Instant};
use wavry_transport::testing;
use wavry_transport::udp::UdpDriver;

/// Pin the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write the set we own, for the calling thread (pid 0).
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        panic!(
            "cannot pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() {
    let cpu: Option<usize> = std::env::var("WAVRY_BENCH_CPU")
        .ok()
        .map(|s| s.parse().expect("WAVRY_BENCH_CPU is a CPU number"));
    if let Some(cpu) = cpu {
        pin(cpu);
    }
    let fixed: Option<u64> = std::env::var("WAVRY_BENCH_FIXED_BPS")
        .ok()
        .map(|s| s.parse().expect("WAVRY_BENCH_FIXED_BPS is a rate in bit/s"));
    let max_bps: u64 = std::env::var("WAVRY_BENCH_MAX_BPS")
        .ok()
        .map(|s| s.parse().expect("WAVRY_BENCH_MAX_BPS is a rate in bit/s"))
        .unwrap_or(20_000_000_000);
    let secs: u64 = std::env::var("WAVRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if wavry_testenv::bench_is_test() {
            1
        } else {
            10
        });
    let (host_end, client_end) = testing::ends();
    let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let host = std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin(cpu);
        }
        let mut s = host_end.accept(&mut hd, || match fixed {
            Some(bps) => testing::fixed_rate(true, bps),
            // DELTA finds what loopback and the two threads sustain.
            None => testing::with_controller(true, move || {
                Box::new(Delta::new(DeltaConfig {
                    initial_bps: 100_000_000,
                    max_bps,
                    ..DeltaConfig::default()
                }))
            }),
        });
        let frame = vec![0x5Au8; 100_000];
        let end = Instant::now() + Duration::from_secs(secs) + Duration::from_millis(300);
        let mut frames = 0u64;
        let mut next_diag = Instant::now();
        while Instant::now() < end {
            hd.drive(&mut s, Instant::now() + Duration::from_micros(200))
                .unwrap();
            let Some(c) = s.connection() else { continue };
            if std::env::var_os("WAVRY_BENCH_DIAG").is_some() && Instant::now() >= next_diag {
                next_diag = Instant::now() + Duration::from_millis(100);
                let d = c.rate();
                if let Some(r) = c.last_report() {
                    eprintln!(
                        "DIAG {:?} target {} pacer {} recv {:?} q {:?} qm {:?} grad {:.1} cap {:?} floor {:?} pk {} lost {} loss {:.5}",
                        d.state, d.target_bps / 1_000_000, d.pacer_bps / 1_000_000,
                        r.recv_rate_bps.map(|b| b / 1_000_000), r.queue_delay, r.queue_delay_mean,
                        r.delay_gradient, r.capacity_bps.map(|b| b / 1_000_000),
                        r.capacity_floor_bps.map(|b| b / 1_000_000), r.packets, r.lost, r.loss_rate
                    );
                }
            }
            let mut key = frames == 0;
            while let Some(ev) = c.poll_event() {
                key |= matches!(ev, rift_core::connection::Event::KeyframeRequested { .. });
            }
            while c
                .sender(STREAM_VIDEO)
                .is_some_and(|x| x.queued_bytes() < 300_000)
            {
                // Keyframes only when needed: a keyframe drops the unsent packets before it.
                let out = OutgoingFrame {
                    data: &frame,
                    keyframe: std::mem::take(&mut key),
                    recovery_point: false,
                    capture_us: 0,
                };
                c.send_frame(Instant::now(), STREAM_VIDEO, out).unwrap();
                frames += 1;
            }
        }
        (frames, hd.socket_stats())
    });
    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let mut s = client_end.connect(&mut cd, host_addr, testing::fixed_rate(false, 1_000_000));
    // Warm up for 300 ms, then measure.
    let warm = Instant::now() + Duration::from_millis(300);
    let end = warm + Duration::from_secs(secs);
    let (mut bytes, mut frames) = (0u64, 0u64);
    while Instant::now() < end {
        cd.drive(&mut s, Instant::now() + Duration::from_micros(500))
            .unwrap();
        let measuring = Instant::now() >= warm;
        if let Some(c) = s.connection() {
            while let Some(f) = c.poll_frame(STREAM_VIDEO) {
                if measuring {
                    bytes += f.data.len() as u64;
                    frames += 1;
                }
            }
            while c.poll_event().is_some() {}
        }
    }
    let (sent, sock) = host.join().unwrap();
    let lost = s
        .connection()
        .and_then(|c| c.receiver(STREAM_VIDEO).map(|r| r.stats.frames_lost))
        .unwrap_or(0);
    if std::env::var_os("WAVRY_BENCH_DIAG").is_some() {
        if let Some(r) = s.connection().and_then(|c| c.receiver(STREAM_VIDEO)) {
            eprintln!("DIAG receiver {:?}", r.stats);
        }
        eprintln!("DIAG session {:?} dropped {}", s.stats, cd.dropped);
    }
    let rx = cd.socket_stats();
    println!(
        "client socket: {} datagrams in {} recvmmsg calls, {} with a kernel receive stamp",
        rx.datagrams_received, rx.recv_calls, rx.datagrams_stamped
    );
    match cpu {
        Some(cpu) => println!("both threads pinned to CPU {cpu}"),
        None => println!("threads not pinned"),
    }
    match fixed {
        Some(bps) => println!("fixed pacing rate {} Mbit/s", bps / 1_000_000),
        None => println!(
            "DELTA sets the rate (ceiling {} Mbit/s)",
            max_bps / 1_000_000
        ),
    }
    println!(
        "loopback throughput: {:.0} Mbit/s of frame payload ({frames} frames of 100 KB in {secs} s; host pushed {sent}, receiver reported {lost} lost)",
        bytes as f64 * 8.0 / secs as f64 / 1e6
    );
    println!(
        "host socket: {} datagrams in {} send calls ({} of them GSO), {} dropped by a full buffer",
        sock.datagrams_sent, sock.send_calls, sock.gso_sends, sock.send_dropped
    );
}
