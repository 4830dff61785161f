//! Pacing precision.
//!
//! 1. How late a wait ends: `RiftSocket::wait` (ppoll with 1 ns timer slack, then a short
//!    spin) against `std::thread::sleep`, for deadlines 50 µs – 2 ms ahead.
//! 2. Gaps on the wire: a host session thread sends 20 Mbit/s of synthetic 60 fps video
//!    (FixedRate, so the pacer runs at 1.5 × 20 Mbit/s) to a client through a relay that
//!    takes kernel receive timestamps (SO_TIMESTAMPNS). Within each frame, the gap between
//!    consecutive media packets is compared with the pacer's gap for their size; gaps shorter
//!    than half of it are the token bucket's permitted burst and are counted apart.
//!
//! `cargo bench -p wavry-transport --bench pacing` (WAVRY_BENCH_SECONDS, default 5).

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use rift_core::wire::{Header, PacketType, STREAM_VIDEO};
use rift_sim::encoder::{frame_payload, EncoderConfig, SyntheticEncoder};
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::socket::{precise_timers, RiftSocket};
use wavry_transport::testing;
use wavry_transport::thread::SessionThread;
use wavry_transport::udp::UdpDriver;

const VIDEO_BPS: u64 = 20_000_000;

fn quantiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs (n = {})",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        v.len()
    )
}

fn wait_lateness() {
    precise_timers();
    let s = RiftSocket::bind("127.0.0.1:0").unwrap();
    let aheads: Vec<Duration> = (0..2000)
        .map(|i| Duration::from_micros(50 + (i * 7919 % 1950) as u64))
        .collect();
    let mut ours = vec![];
    let mut sleep = vec![];
    for &a in &aheads {
        let deadline = Instant::now() + a;
        s.wait(Some(deadline), None).unwrap();
        ours.push(Instant::now().duration_since(deadline).as_secs_f64() * 1e6);
        let deadline = Instant::now() + a;
        std::thread::sleep(a);
        sleep.push(Instant::now().duration_since(deadline).as_secs_f64() * 1e6);
    }
    println!("wait lateness, RiftSocket::wait:  {}", quantiles(ours));
    println!("wait lateness, thread::sleep:     {}", quantiles(sleep));
}

/// Host → client datagrams as the relay saw them: kernel receive time (µs), length, media?
type Stamps = Vec<(f64, usize, bool)>;

/// Relays host → client datagrams, stamping each with the kernel's receive time.
fn relay(host: SocketAddr, stop: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<Stamps>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    setsockopt(&sock, sockopt::ReceiveTimestampns, &true).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let join = std::thread::spawn(move || {
        let mut client = None;
        let mut out = vec![];
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let Ok(m) = recvmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let n = m.bytes;
            let stamp = m.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(t) => {
                        Some(t.tv_sec() as f64 * 1e6 + t.tv_nsec() as f64 / 1e3)
                    }
                    _ => None,
                })
            });
            let from = m.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|s| SocketAddr::from(std::net::SocketAddrV4::from(*s)))
            });
            let Some(from) = from else { continue };
            if from == host {
                let media = Header::decode(&buf[..n]).is_ok_and(|h| {
                    h.packet_type == PacketType::MediaData
                        || h.packet_type == PacketType::MediaParity
                });
                if let (Some(t), Some(c)) = (stamp, client) {
                    out.push((t, n, media));
                    let _ = sock.send_to(&buf[..n], c);
                }
            } else {
                client = Some(from);
                let _ = sock.send_to(&buf[..n], host);
            }
        }
        out
    });
    (addr, join)
}

fn wire_gaps(secs: u64) {
    let (host_end, client_end) = testing::ends();
    let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (relay_addr, relay_join) = relay(host_addr, stop.clone());
    let host = std::thread::spawn(move || {
        let s = host_end.accept(&mut hd, || testing::fixed_rate(true, VIDEO_BPS));
        SessionThread::spawn(hd, s).unwrap()
    });
    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let c = client_end.connect(&mut cd, relay_addr, testing::fixed_rate(false, 1_000_000));
    let client = SessionThread::spawn(cd, c).unwrap();
    let host = host.join().unwrap();
    let tx = host.sender();
    let mut enc = SyntheticEncoder::new(EncoderConfig::default(), VIDEO_BPS, Instant::now());
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        std::thread::sleep(
            enc.next_frame_time()
                .saturating_duration_since(Instant::now()),
        );
        if let Some(f) = enc.poll(Instant::now()) {
            let mut data = Vec::new();
            frame_payload(f.frame_id, f.size, &mut data);
            tx.send_frame(STREAM_VIDEO, data, f.keyframe, false, 0)
                .unwrap();
        }
        while client.events.try_recv().is_ok() {}
    }
    let pacer_bps = host.stats().rate.map_or(0, |r| r.pacer_bps) as f64;
    drop(tx);
    drop(host);
    drop(client);
    stop.store(true, Ordering::Relaxed);
    let stamps = relay_join.join().unwrap();
    let mut errors = vec![];
    let mut bursts = 0;
    for w in stamps.windows(2) {
        let ((t0, _, m0), (t1, n1, m1)) = (w[0], w[1]);
        let expected = n1 as f64 * 8.0 / pacer_bps * 1e6;
        let gap = t1 - t0;
        // Only consecutive media packets of one burst (a gap of several pacer gaps is the
        // wait for the next frame).
        if !(m0 && m1) || gap > 4.0 * expected {
            continue;
        }
        if gap < 0.5 * expected {
            bursts += 1;
        } else {
            errors.push(gap - expected);
        }
    }
    println!(
        "paced media gaps at {:.1} Mbit/s (pacer gap ~{:.0} µs for 1.2 KB): deviation from the pacer's gap {}; {} gaps within the permitted burst",
        pacer_bps / 1e6,
        1200.0 * 8.0 / pacer_bps * 1e6,
        quantiles(errors),
        bursts
    );
}

fn main() {
    let secs: u64 = std::env::var("WAVRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if wavry_testenv::bench_is_test() { 1 } else { 5 });
    wait_lateness();
    wire_gaps(secs);
}
