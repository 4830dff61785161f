//! DELTA in the loop over real sockets and a real kernel bottleneck: host in the root network
//! namespace, client in a namespace of its own behind a veth pair whose host side has a tbf
//! qdisc stepping 20 → 5 → 20 Mbit/s. The sending rate must follow the capacity, and once each
//! step settles the one-way delay (frames carry their send time; both ends share one clock)
//! must stay within 30 ms of the base delay. tc's backlog is sampled and printed too.
//!
//! Needs root (network namespaces, tc); skips with a message otherwise.

use rift_core::connection::{Connection, ConnectionConfig, Event};
use rift_core::delta::{Delta, DeltaConfig, FixedRate};
use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use rift_sim::encoder::{frame_payload, EncoderConfig, SyntheticEncoder};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::session::{Session, SessionConfig};
use wavry_transport::udp::UdpDriver;

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A namespace with a veth pair to the root namespace; removed on drop.
struct Netns {
    ns: String,
    dev: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        let _ = sh(&["ip", "link", "del", &self.dev]);
    }
}

fn setup(id: u32) -> Result<(Netns, String, String), String> {
    let (ns, a, b) = (format!("wvt{id}"), format!("wva{id}"), format!("wvb{id}"));
    let (host_ip, client_ip) = (
        format!("10.213.{}.1", id % 250),
        format!("10.213.{}.2", id % 250),
    );
    let guard = Netns {
        ns: ns.clone(),
        dev: a.clone(),
    };
    sh(&["ip", "netns", "add", &ns])?;
    sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
    sh(&["ip", "link", "set", &b, "netns", &ns])?;
    sh(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &a])?;
    sh(&["ip", "link", "set", &a, "up"])?;
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "ip",
        "addr",
        "add",
        &format!("{client_ip}/24"),
        "dev",
        &b,
    ])?;
    sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", &b, "up"])?;
    sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
    set_rate(&a, 20, true)?;
    Ok((guard, host_ip, client_ip))
}

/// tbf's bucket: two full-size packets. A serial link has no burst; a big bucket (tbf needs
/// only one MTU with high-resolution timers) lets a whole 5 Mbit/s frame through at veth speed,
/// which no access link does, and hides the bottleneck from DELTA's dispersion estimate.
const BURST: &str = "3000";

/// tbf on the host side of the veth: the host → client direction is the bottleneck, with a
/// 300 ms queue at its rate.
fn set_rate(dev: &str, mbit: u32, add: bool) -> Result<(), String> {
    let limit = (mbit as usize * 1_000_000 / 8 * 3 / 10).to_string();
    sh(&[
        "tc",
        "qdisc",
        if add { "add" } else { "change" },
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        &format!("{mbit}mbit"),
        "burst",
        BURST,
        "limit",
        &limit,
    ])
    .map(|_| ())
}

fn backlog_bytes(dev: &str) -> Option<u64> {
    let out = sh(&["tc", "-s", "qdisc", "show", "dev", dev]).ok()?;
    let i = out.find("backlog ")?;
    let rest = &out[i + 8..];
    let end = rest.find('b')?;
    rest[..end].parse().ok()
}

fn enter_netns(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace file we opened; affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn delta_follows_a_tbf_bottleneck_20_5_20() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || sh(&["ip", "-V"]).is_err() {
        println!("SKIPPED: needs root and iproute2 (network namespaces and tc)");
        return;
    }
    let id = std::process::id() % 10_000;
    let (netns, host_ip, client_ip) = setup(id).expect("namespace set-up");
    let dev = netns.dev.clone();
    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let mut hd = UdpDriver::bind((host_ip.as_str(), 0)).unwrap();
    let host_addr = hd.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // One clock for both ends (one process): frames carry their send time in `capture_us`,
    // so the client measures true one-way delays.
    let t0 = Instant::now();
    let (sent_h, done_h) = (sent.clone(), done.clone());
    let host = std::thread::spawn(move || {
        let mut s = hd
            .accept(
                &SessionConfig::default(),
                &host_id,
                || allow_list(vec![client_pub]),
                || {
                    Box::new(|l, r, now| {
                        let cc = Delta::new(DeltaConfig {
                            initial_bps: 5_000_000,
                            ..DeltaConfig::default()
                        });
                        Connection::new(ConnectionConfig::new(l, r, true), Box::new(cc), now)
                    })
                },
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap()
            .expect("client connects");
        let mut enc = SyntheticEncoder::new(
            EncoderConfig {
                keyframe_factor: 3.0,
                ..EncoderConfig::default()
            },
            5_000_000,
            Instant::now(),
        );
        let mut buf = Vec::new();
        while !done_h.load(Ordering::Relaxed) {
            hd.drive(&mut s, enc.next_frame_time()).unwrap();
            let Some(c) = s.connection() else { continue };
            sent_h.store(c.stats.bytes_sent, Ordering::Relaxed);
            while let Some(ev) = c.poll_event() {
                if let Event::KeyframeRequested { .. } = ev {
                    enc.request_keyframe();
                }
            }
            enc.set_bitrate(c.rate().encoder_bps);
            if let Some(f) = enc.poll(Instant::now()) {
                frame_payload(f.frame_id, f.size, &mut buf);
                let out = OutgoingFrame {
                    data: &buf,
                    keyframe: f.keyframe,
                    recovery_point: false,
                    capture_us: t0.elapsed().as_micros() as u64,
                };
                let _ = c.send_frame(Instant::now(), STREAM_VIDEO, out);
            }
        }
        println!(
            "host: established {}, closed {:?}, dropped {}",
            s.is_established(),
            s.close_reason(),
            hd.dropped
        );
    });
    let done_c = done.clone();
    let ns = netns.ns.clone();
    let client = std::thread::spawn(move || {
        enter_netns(&ns).expect("enter the client namespace");
        let mut cd = UdpDriver::bind((client_ip.as_str(), 0)).unwrap();
        let mut s = Session::connect(
            SessionConfig::default(),
            &client_id,
            pinned(host_pub),
            host_addr,
            Box::new(|l, r, now| {
                Connection::new(
                    ConnectionConfig::new(l, r, false),
                    Box::new(FixedRate::new(1_000_000, 60.0)),
                    now,
                )
            }),
            Instant::now(),
        )
        .unwrap();
        // Per frame: when it was handed to the sender, and the one-way delay of its first and
        // of its last packet.
        let mut frames = vec![];
        while !done_c.load(Ordering::Relaxed) {
            cd.drive(&mut s, Instant::now() + Duration::from_millis(5))
                .unwrap();
            if let Some(c) = s.connection() {
                while let Some(f) = c.poll_frame(STREAM_VIDEO) {
                    let sent_at = t0 + Duration::from_micros(f.capture_us);
                    let ms = |t: Instant| t.saturating_duration_since(sent_at).as_secs_f64() * 1e3;
                    frames.push((sent_at, ms(f.first_packet_at), ms(f.completed_at)));
                }
                while c.poll_event().is_some() {}
            }
        }
        println!(
            "client: established {}, closed {:?}, dropped {}",
            s.is_established(),
            s.close_reason(),
            cd.dropped
        );
        frames
    });

    // Capacity schedule and measurements, 10 s per step; the last 5 s of each step are "settled".
    let mut report = vec![];
    let mut windows = vec![];
    for (step, mbit) in [20u32, 5, 20].into_iter().enumerate() {
        if step > 0 {
            set_rate(&dev, mbit, false).unwrap();
        }
        let step_start = t0 + Duration::from_secs(10 * step as u64);
        let settle = step_start + Duration::from_secs(5);
        let step_end = step_start + Duration::from_secs(10);
        let mut delays = vec![];
        let mut first: Option<(Instant, u64)> = None;
        while Instant::now() < step_end {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            if now < settle {
                continue;
            }
            first.get_or_insert((now, sent.load(Ordering::Relaxed)));
            if let Some(b) = backlog_bytes(&dev) {
                delays.push(b as f64 * 8.0 / (mbit as f64 * 1e6) * 1000.0);
            }
        }
        windows.push((settle, step_end));
        let (t1, b1) = first.unwrap();
        let rate =
            (sent.load(Ordering::Relaxed) - b1) as f64 * 8.0 / t1.elapsed().as_secs_f64() / 1e6;
        delays.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: usize| delays.get(delays.len() * p / 100).copied().unwrap_or(0.0);
        report.push((mbit, rate, pct(50), pct(90), pct(95)));
    }
    done.store(true, Ordering::Relaxed);
    host.join().unwrap();
    let frames = client.join().unwrap();
    drop(netns);
    // Base delay: the least one-way delay seen (propagation plus the first packet's own
    // serialization; the veth adds almost nothing).
    let base = frames.iter().map(|f| f.1).fold(f64::INFINITY, f64::min);
    let pct = |v: &mut Vec<f64>, p: usize| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() * p / 100).copied().unwrap_or(f64::NAN)
    };
    let mut owd = vec![];
    for ((mbit, rate, q50, q90, q95), (from, to)) in report.iter().zip(&windows) {
        let settled: Vec<_> = frames
            .iter()
            .filter(|f| f.0 >= *from && f.0 < *to)
            .collect();
        let mut first: Vec<f64> = settled.iter().map(|f| f.1 - base).collect();
        let mut last: Vec<f64> = settled.iter().map(|f| f.2 - base).collect();
        let (f50, f95, f99) = (
            pct(&mut first, 50),
            pct(&mut first, 95),
            pct(&mut first, 99),
        );
        let (l50, l95) = (pct(&mut last, 50), pct(&mut last, 95));
        println!(
            "tbf {mbit:>2} Mbit/s: settled send rate {rate:5.2} Mbit/s; one-way delay above base \
             ({base:.2} ms), {n} frames: first packet p50 {f50:4.1} p95 {f95:4.1} p99 {f99:4.1} ms, \
             last packet p50 {l50:4.1} p95 {l95:4.1} ms; bottleneck queue samples p50 {q50:4.1} \
             p90 {q90:4.1} p95 {q95:4.1} ms",
            n = settled.len()
        );
        owd.push((*mbit, *rate, f95, settled.len()));
    }
    println!("{} frames delivered", frames.len());
    for (mbit, rate, f95, n) in owd {
        let cap = mbit as f64;
        assert!(
            rate >= 0.6 * cap && rate <= 1.05 * cap,
            "at {mbit} Mbit/s DELTA sent {rate:.2} Mbit/s"
        );
        assert!(
            n > 100,
            "at {mbit} Mbit/s only {n} frames arrived while settled"
        );
        // The criterion: once settled, the one-way delay stays within 30 ms of the
        // base delay (no standing queue). The first packet of each frame sees the queue the
        // earlier frames left; the last also carries the frame's own serialization.
        assert!(
            f95 <= 30.0,
            "at {mbit} Mbit/s the first-packet one-way delay p95 was {f95:.1} ms above base"
        );
    }
}
