//! The forwarder in a middle namespace, measured from the endpoints: delay from UDP round trips,
//! loss and the rate limit from UDP streams, TCP cross traffic through it.
//!
//! Needs root (network namespaces, TUN devices); skips with a message otherwise.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wavry_impair::netns::{enter, Impairer};
use wavry_impair::{ForwarderConfig, LinkConfig, Topology};

const MS: Duration = Duration::from_millis(1);

/// The forwarder's timing is the thing measured: one test at a time on our two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn topology(k: u8) -> Option<Topology> {
    if !wavry_testenv::require(&[wavry_testenv::Need::NetNs]) {
        return None;
    }
    let name = format!("wvi{}{k}", std::process::id() % 10_000);
    Some(Topology::create(&name, [10, 214, k]).expect("create the namespaces"))
}

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns).expect("enter the namespace");
        f()
    })
}

/// A UDP socket in B that echoes (`echo`) or counts what arrives.
struct Sink {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Instant, usize)>>,
}

impl Sink {
    /// Stop after a last 300 ms for stragglers; the (arrival time, length) of each datagram.
    fn finish(self) -> Vec<(Instant, usize)> {
        std::thread::sleep(300 * MS);
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn udp_sink(topo: &Topology, port: u16, echo: bool) -> Sink {
    let addr = SocketAddr::from((topo.addr_b, port));
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_t = stop.clone();
    let thread = in_ns(&topo.ns_b, move || {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(20 * MS)).unwrap();
        tx.send(()).unwrap();
        let mut got = vec![];
        let mut buf = [0u8; 2048];
        while !stop_t.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                got.push((Instant::now(), n));
                if echo {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        }
        got
    });
    rx.recv().unwrap();
    Sink { stop, thread }
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[test]
fn adds_the_configured_delay() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(topo) = topology(1) else { return };
    let link = LinkConfig {
        delay: 10 * MS,
        ..LinkConfig::default()
    };
    let imp = topo.start(link.clone(), link, 1).unwrap();
    let sink = udp_sink(&topo, 5001, true);
    let b = SocketAddr::from((topo.addr_b, 5001));
    let rtts = in_ns(&topo.ns_a, move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        s.set_read_timeout(Some(200 * MS)).unwrap();
        let mut rtts = vec![];
        let mut buf = [0u8; 64];
        for i in 0u32..200 {
            let t = Instant::now();
            s.send_to(&i.to_be_bytes(), b).unwrap();
            if let Ok(n) = s.recv(&mut buf) {
                if buf[..n] == i.to_be_bytes() {
                    rtts.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            std::thread::sleep(5 * MS);
        }
        rtts
    })
    .join()
    .unwrap();
    sink.finish();
    let lateness = imp.stop().unwrap().lateness;
    let mut r = rtts.clone();
    r.sort_by(f64::total_cmp);
    println!(
        "10 ms each way: {} RTTs, min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms",
        r.len(),
        r[0],
        percentile(&r, 50),
        percentile(&r, 90),
        percentile(&r, 99),
        r[r.len() - 1]
    );
    println!(
        "forwarder lateness: mean {:?}, max {:?}, {} of {} over 100 µs",
        lateness.mean(),
        lateness.max,
        lateness.over_100us,
        lateness.packets
    );
    assert_eq!(r.len(), 200, "every ping answered");
    assert!(r[0] >= 20.0, "an RTT below the configured 20 ms: {}", r[0]);
    assert!(
        percentile(&r, 50) < 20.5,
        "median RTT {}",
        percentile(&r, 50)
    );
    assert!(percentile(&r, 90) < 22.0, "p90 RTT {}", percentile(&r, 90));
}

#[test]
fn loses_the_configured_share() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(topo) = topology(2) else { return };
    let lossy = LinkConfig {
        loss: 0.05,
        ..LinkConfig::default()
    };
    let imp = topo.start(lossy, LinkConfig::default(), 2).unwrap();
    let sink = udp_sink(&topo, 5002, false);
    let b = SocketAddr::from((topo.addr_b, 5002));
    let n = 5000u32;
    in_ns(&topo.ns_a, move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        for i in 0..n {
            s.send_to(&i.to_be_bytes(), b).unwrap();
            if i % 10 == 9 {
                std::thread::sleep(MS);
            }
        }
    })
    .join()
    .unwrap();
    let got = sink.finish().len() as f64;
    let summary = imp.stop().unwrap();
    let loss = 1.0 - got / n as f64;
    let sd = (0.05f64 * 0.95 / n as f64).sqrt();
    println!(
        "5 % loss: {got} of {n} arrived, {:.2} % lost ({:?})",
        loss * 100.0,
        summary.a2b
    );
    assert_eq!(
        summary.a2b.packets_in, n as u64,
        "every packet went through the tool"
    );
    assert!((loss - 0.05).abs() < 4.5 * sd, "measured loss {loss}");
}

#[test]
fn limits_the_rate_with_a_drop_tail_queue() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(topo) = topology(3) else { return };
    let limited = LinkConfig {
        rate_bps: Some(8_000_000),
        queue_time: Some(50 * MS),
        ..LinkConfig::default()
    };
    let log_path = std::env::temp_dir().join(format!("wvi-queue-log-{}.csv", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cfg = ForwarderConfig::new(&topo.m_iface_a, &topo.m_iface_b);
    cfg.tun_a2b = topo.tun_a2b.clone();
    cfg.tun_b2a = topo.tun_b2a.clone();
    cfg.a2b = limited;
    let imp = Impairer::spawn(Some(&topo.ns_m), cfg, Some((Box::new(log), 10 * MS))).unwrap();
    let sink = udp_sink(&topo, 5003, false);
    let b = SocketAddr::from((topo.addr_b, 5003));
    // 1000-byte payloads (1028 IP bytes) at twice the rate for 3 s.
    let payload = 1000;
    in_ns(&topo.ns_a, move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let buf = vec![7u8; payload];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(3) {
            let due = (start.elapsed().as_secs_f64() * 16e6 / (8.0 * 1028.0)) as u64;
            while sent < due {
                s.send_to(&buf, b).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    })
    .join()
    .unwrap();
    let got = sink.finish();
    let summary = imp.stop().unwrap();
    // Rate over the middle of the run, in IP bytes.
    let t0 = got[0].0;
    let window: Vec<_> = got
        .iter()
        .filter(|(t, _)| (*t - t0) >= 500 * MS && (*t - t0) < 2500 * MS)
        .collect();
    let bytes: usize = window.iter().map(|(_, n)| n + 28).sum();
    let span = window.last().unwrap().0 - window[0].0;
    let mbps = bytes as f64 * 8.0 / span.as_secs_f64() / 1e6;
    let csv = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let a2b: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == "a2b").collect();
    let max_q: usize = a2b.iter().map(|r| r[2].parse().unwrap()).max().unwrap();
    let dropped: u64 = a2b.last().unwrap()[4].parse().unwrap();
    println!(
        "8 Mbit/s, 50 ms queue, offered 16: received {mbps:.3} Mbit/s; queue log: {} rows, max {max_q} B, {dropped} dropped; {:?}",
        a2b.len(),
        summary.a2b
    );
    assert!((mbps - 8.0).abs() < 0.08, "received {mbps} Mbit/s");
    assert!(summary.a2b.dropped_queue > 1000);
    assert!(summary.a2b.max_queue_bytes <= 50_000);
    // The log saw the queue full (within a packet) and the drops.
    assert!(
        max_q > 48_000 && max_q <= 50_000,
        "max logged queue {max_q}"
    );
    assert!(dropped > 1000);
    assert!(a2b.len() > 250, "{} rows in 3 s at 10 ms", a2b.len());
}

#[test]
fn tcp_cross_traffic_flows_through() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(topo) = topology(4) else { return };
    let link = LinkConfig {
        delay: 5 * MS,
        jitter: MS,
        loss: 0.005,
        ..LinkConfig::default()
    };
    let imp = topo.start(link.clone(), link, 4).unwrap();
    let len = 4 << 20;
    let pattern = |i: usize| (i % 251) as u8;
    let (tx, rx) = std::sync::mpsc::channel();
    let b = SocketAddr::from((topo.addr_b, 5004));
    let server = in_ns(&topo.ns_b, move || {
        let l = TcpListener::bind(b).unwrap();
        tx.send(()).unwrap();
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut data = Vec::with_capacity(len);
        c.read_to_end(&mut data).unwrap();
        data
    });
    rx.recv().unwrap();
    let start = Instant::now();
    in_ns(&topo.ns_a, move || {
        let mut c = TcpStream::connect_timeout(&b, Duration::from_secs(5)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        let data: Vec<u8> = (0..len).map(pattern).collect();
        c.write_all(&data).unwrap();
    })
    .join()
    .unwrap();
    let data = server.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let summary = imp.stop().unwrap();
    println!("{:?}", summary.a2b);
    println!(
        "TCP, 10 ms RTT, 0.5 % loss each way: {} MiB in {secs:.2} s ({:.1} Mbit/s)",
        len >> 20,
        len as f64 * 8.0 / secs / 1e6
    );
    assert_eq!(data.len(), len);
    assert!(data.iter().enumerate().all(|(i, &b)| b == pattern(i)));
}
