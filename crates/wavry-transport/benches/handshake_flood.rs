//! A handshake flood against a host on real loopback sockets (issue 14: "CPU and memory stay
//! bounded under a 100 k-packet handshake flood").
//!
//! A host thread runs `UdpDriver::accept` with a default `Listener` on 127.0.0.1, admitting
//! whoever proves the allowed key. Each phase, one flood thread sends `WAVRY_BENCH_FLOOD`
//! (default 100,000) datagrams to it as fast as it can, from 127.0.0.2 or from 256 addresses
//! 127.0.2.x (what a spoofed flood's random sources, or a botnet, look like to the per-address
//! limits):
//!
//! - `spoofed`: padded initiations with a fresh connection id and ephemeral key each, answers
//!   ignored (a spoofer never sees them);
//! - `cookie`: the same, but every `Retry` that comes back is followed with its cookie, as an
//!   attacker that owns its addresses can;
//! - `garbage`: short initiations, `HandshakeFinish`es for unknown ids, data packet types and
//!   random bytes.
//!
//! Meanwhile the allowed client (127.0.0.1) connects again and again (a fresh socket and
//! session each time, 50 ms apart so that its own address stays under the per-address rate)
//! until the flood ends; its connect time runs from `Session::connect` to `is_confirmed()`. The
//! `baseline` phase connects the same way with no flood.
//!
//! Per phase it prints what the host's thread spent (`getrusage(RUSAGE_THREAD)`, from the
//! flood's start until the host has drained its socket), what the listener did with the
//! datagrams (`ListenerStats`), the datagrams the kernel dropped before the host read them
//! (sent − received, and the socket's drop counter in /proc/net/udp), the process's peak RSS
//! growth (VmHWM, reset through /proc/self/clear_refs before each phase), and the client's
//! connect times against the baseline's.
//!
//! `cargo bench -p wavry-transport --bench handshake_flood` (`WAVRY_BENCH_FLOOD`: datagrams
//! per phase; `WAVRY_BENCH_PHASE=text`: only the phases whose name contains it). Under `cargo test --bench` it
//! floods 2,000 datagrams per phase. Benchmarks report; the limits are asserted by the tests in
//! tests/it/handshake_attacks.rs.

use rift_core::wire::{
    Body, Handshake, Header, Packet, PacketType, COOKIE_LEN, MAX_DATAGRAM, MIN_HANDSHAKE_INIT,
    VERSION,
};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::listen::ListenerStats;
use wavry_transport::socket::SocketStats;
use wavry_transport::testing::{self, ClientEnd, HostEnd};
use wavry_transport::udp::UdpDriver;

/// One client connect gives up after this long (it counts as failed).
const CONNECT_WITHIN: Duration = Duration::from_secs(3);
/// Between the starts of two connects: 20/s, the listener's default per-address rate, so the
/// client's own address never runs out of handshakes.
const CONNECT_GAP: Duration = Duration::from_millis(50);
/// Where the source connection id and the Noise message (ephemeral key first) sit in a
/// `HandshakeInit`: after the 14-byte header and the 2-byte version.
const CID_AT: usize = 16;
const NOISE_AT: usize = 20;
/// The cookie in message 1's payload, after the 32-byte ephemeral key: length byte, cookie.
const COOKIE_AT: usize = NOISE_AT + 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spoofed,
    Cookie,
    Garbage,
}

struct Phase {
    name: &'static str,
    /// None: the baseline, no flood.
    kind: Option<Kind>,
    /// Flood source addresses: 1 is 127.0.0.2, more are 127.0.2.1, 127.0.2.2, … (consecutive)
    sources: usize,
}

const PHASES: &[Phase] = &[
    Phase {
        name: "baseline (no flood)",
        kind: None,
        sources: 0,
    },
    Phase {
        name: "spoofed, 1 address",
        kind: Some(Kind::Spoofed),
        sources: 1,
    },
    Phase {
        name: "spoofed, 256 addresses",
        kind: Some(Kind::Spoofed),
        sources: 256,
    },
    Phase {
        name: "cookie, 1 address",
        kind: Some(Kind::Cookie),
        sources: 1,
    },
    Phase {
        name: "cookie, 256 addresses",
        kind: Some(Kind::Cookie),
        sources: 256,
    },
    Phase {
        name: "garbage, 1 address",
        kind: Some(Kind::Garbage),
        sources: 1,
    },
];

/// xorshift64*: random enough for connection ids and keys, without a syscall per packet.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        Rng(u64::from_le_bytes(b) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// A padded `HandshakeInit` (any 32 bytes are an X25519 public key): the template every
/// stranger's initiation is stamped from.
fn init_template() -> Vec<u8> {
    let noise = vec![0u8; MIN_HANDSHAKE_INIT - NOISE_AT];
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = Packet {
        header: Header {
            packet_type: PacketType::HandshakeInit,
            flags: 0,
            connection_id: 0,
            packet_number: 0,
        },
        body: Body::HandshakeInit(Handshake {
            version: VERSION,
            source_connection_id: 1,
            noise: &noise,
        }),
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    assert_eq!(out.len(), MIN_HANDSHAKE_INIT);
    out
}

/// A fresh stranger: new connection id and ephemeral key; with `cookie`, for `cid`.
fn stamp(d: &mut [u8], rng: &mut Rng, cid: Option<u32>, cookie: Option<&[u8; COOKIE_LEN]>) {
    let cid = cid.unwrap_or_else(|| rng.next() as u32 | 1);
    d[CID_AT..CID_AT + 4].copy_from_slice(&cid.to_be_bytes());
    rng.fill(&mut d[NOISE_AT..COOKIE_AT]);
    match cookie {
        Some(c) => {
            d[COOKIE_AT] = COOKIE_LEN as u8;
            d[COOKIE_AT + 1..COOKIE_AT + 1 + COOKIE_LEN].copy_from_slice(c);
        }
        None => d[COOKIE_AT..COOKIE_AT + 1 + COOKIE_LEN].fill(0),
    }
}

/// A RIFT header of type `t` with a random connection id and packet number.
fn header(t: PacketType, rng: &mut Rng, buf: &mut [u8]) {
    buf[0] = 0x80 | t as u8;
    buf[1] = 0;
    rng.fill(&mut buf[2..14]);
}

/// The `i`th garbage datagram, into `buf`; its length.
fn garbage(i: u64, rng: &mut Rng, buf: &mut [u8]) -> usize {
    match i % 4 {
        // A short initiation: below the size any answer could be.
        0 => {
            header(PacketType::HandshakeInit, rng, buf);
            buf[14..16].copy_from_slice(&VERSION.to_be_bytes());
            rng.fill(&mut buf[16..100]);
            100
        }
        // A message 3 for a connection id that is not pending.
        1 => {
            header(PacketType::HandshakeFinish, rng, buf);
            rng.fill(&mut buf[14..110]);
            110
        }
        // A data packet: not for a listener.
        2 => {
            header(PacketType::MediaData, rng, buf);
            rng.fill(&mut buf[14..300]);
            300
        }
        // Random bytes, 1 to 64 of them (RIFT's marker or not).
        _ => {
            let n = 1 + (rng.next() % 64) as usize;
            rng.fill(&mut buf[..n]);
            n
        }
    }
}

fn sources(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|i| {
            let ip = if n == 1 {
                Ipv4Addr::new(127, 0, 0, 2)
            } else {
                Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 2, 1)) + i as u32)
            };
            let s = UdpSocket::bind((ip, 0)).expect("127/8 is on loopback");
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

struct Flood {
    sent: u64,
    /// Of `sent`: initiations carrying a cookie from a `Retry`.
    followed: u64,
    /// Answers the flood's sockets read (cookie phases only).
    answers: u64,
    took: Duration,
}

/// Send `total` datagrams of `kind` to `to` as fast as the sockets take them, in turn from
/// each of `socks`; `sent` counts them for the client thread.
fn flood(
    kind: Kind,
    socks: Vec<UdpSocket>,
    to: SocketAddr,
    total: u64,
    sent: Arc<AtomicU64>,
    give_up: Duration,
) -> Flood {
    let mut rng = Rng::new();
    let mut init = init_template();
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut rx = [0u8; 2048];
    let start = Instant::now();
    let (mut n, mut followed, mut answers) = (0u64, 0u64, 0u64);
    let mut i = 0usize;
    // A cookie to follow, with its connection id, from the last socket drained.
    let mut follow: Vec<(u32, [u8; COOKIE_LEN])> = Vec::new();
    'out: while n < total && start.elapsed() < give_up {
        let sock = &socks[i % socks.len()];
        i += 1;
        if kind == Kind::Cookie {
            // Take in what came back since this socket last sent (bounded: the socket buffer
            // may hold thousands of answers).
            for _ in 0..64 {
                let Ok((len, _)) = sock.recv_from(&mut rx) else {
                    break;
                };
                answers += 1;
                if let Ok(Packet {
                    header,
                    body: Body::Retry { cookie, .. },
                }) = Packet::decode(&rx[..len])
                {
                    follow.push((header.connection_id, cookie));
                }
            }
        }
        let mut datagrams = 1 + follow.len();
        while datagrams > 0 {
            datagrams -= 1;
            let d: &[u8] = match kind {
                Kind::Spoofed => {
                    stamp(&mut init, &mut rng, None, None);
                    &init
                }
                Kind::Cookie => {
                    match follow.pop() {
                        Some((cid, cookie)) => {
                            stamp(&mut init, &mut rng, Some(cid), Some(&cookie));
                            followed += 1;
                        }
                        None => stamp(&mut init, &mut rng, None, None),
                    }
                    &init
                }
                Kind::Garbage => {
                    let len = garbage(n, &mut rng, &mut buf);
                    &buf[..len]
                }
            };
            // A full send buffer: wait for loopback to drain it, this datagram is not lost.
            loop {
                match sock.send_to(d, to) {
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if start.elapsed() >= give_up {
                            break 'out;
                        }
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("flood send: {e}"),
                }
            }
            n += 1;
            sent.store(n, Ordering::Relaxed);
            if n >= total {
                break;
            }
        }
    }
    Flood {
        sent: n,
        followed,
        answers,
        took: start.elapsed(),
    }
}

/// The calling thread's user and system CPU time.
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes only into the zeroed struct we own; RUSAGE_THREAD asks about
    // the calling thread.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Restart VmHWM from the current RSS (Linux ≥ 4.0), so each phase's peak is its own.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The kernel's drop counter of the IPv4 UDP socket bound to `addr` (/proc/net/udp).
fn udp_drops(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V4(a) = addr else { return None };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(a.ip().octets()),
        a.port()
    );
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let line = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(local.as_str()))?;
    line.split_whitespace().last()?.parse().ok()
}

struct Host {
    stats: ListenerStats,
    socket: SocketStats,
    cpu_user: Duration,
    cpu_sys: Duration,
    admitted: u64,
    /// Largest `pending()` seen between `accept` calls (every ≤ 20 ms), and at the end.
    max_pending: usize,
    pending_end: usize,
    kernel_drops: Option<u64>,
}

/// Accept until `stop`, in 20 ms slices; admitted sessions are dropped at once (their first
/// Ping, which confirms the client, is already sent).
fn host(h: HostEnd, mut hd: UdpDriver, stop: Arc<AtomicBool>) -> Host {
    let (u0, s0) = thread_cpu();
    let drops0 = udp_drops(hd.local_addr().unwrap());
    let mut l = h.listener();
    let mut admitted = 0;
    let mut max_pending = 0;
    while !stop.load(Ordering::Relaxed) {
        let s = hd
            .accept(&mut l, Instant::now() + Duration::from_millis(20), || {
                testing::fixed_rate(true, 1_000_000)
            })
            .unwrap();
        admitted += u64::from(s.is_some());
        max_pending = max_pending.max(l.pending());
    }
    let (u1, s1) = thread_cpu();
    let drops1 = udp_drops(hd.local_addr().unwrap());
    Host {
        stats: l.stats,
        socket: hd.socket_stats(),
        cpu_user: u1 - u0,
        cpu_sys: s1 - s0,
        admitted,
        max_pending,
        pending_end: l.pending(),
        kernel_drops: drops0.zip(drops1).map(|(a, b)| b - a),
    }
}

struct Connect {
    /// Until confirmed; None: not within CONNECT_WITHIN.
    took: Option<Duration>,
    /// When message 2 was read (the session established).
    established: Option<Duration>,
    retries: u64,
    retransmits: u64,
    sent: u64,
}

fn connect(c: &ClientEnd, to: SocketAddr) -> Connect {
    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    let mut s = c.connect(&mut cd, to, testing::fixed_rate(false, 1_000_000));
    let mut established = None;
    while !s.is_confirmed() && s.close_reason().is_none() && start.elapsed() < CONNECT_WITHIN {
        cd.drive(&mut s, Instant::now() + Duration::from_millis(2))
            .unwrap();
        if established.is_none() && s.is_established() {
            established = Some(start.elapsed());
        }
    }
    Connect {
        took: s.is_confirmed().then(|| start.elapsed()),
        established,
        retries: s.stats.retries,
        retransmits: s.stats.handshake_retransmits,
        sent: cd.socket_stats().datagrams_sent,
    }
}

struct PhaseResult {
    name: &'static str,
    flood: Option<Flood>,
    host: Host,
    connects: Vec<Connect>,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    peak: Option<u64>,
}

fn run(phase: &Phase, total: u64, baseline_connects: usize, drain: Duration) -> PhaseResult {
    let (h, c) = testing::ends();
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let to = hd.local_addr().unwrap();
    let peak_resettable = reset_peak_rss();
    let rss_before = status_kib("VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let host_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || host(h, hd, stop))
    };
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let flood_thread = phase.kind.map(|kind| {
        let socks = sources(phase.sources);
        let (sent, done) = (sent.clone(), done.clone());
        let give_up = Duration::from_secs(60);
        std::thread::spawn(move || {
            let f = flood(kind, socks, to, total, sent, give_up);
            done.store(true, Ordering::Relaxed);
            f
        })
    });
    let mut connects = vec![];
    if flood_thread.is_some() {
        // Connect once the flood is under way, then again and again until it ends.
        let start = Instant::now();
        while sent.load(Ordering::Relaxed) < total / 20
            && !done.load(Ordering::Relaxed)
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        while !done.load(Ordering::Relaxed) || connects.is_empty() {
            let next = Instant::now() + CONNECT_GAP;
            connects.push(connect(&c, to));
            if done.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    } else {
        for _ in 0..baseline_connects {
            let next = Instant::now() + CONNECT_GAP;
            connects.push(connect(&c, to));
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    let flood = flood_thread.map(|t| t.join().unwrap());
    // Let the host read what is still in its socket before its CPU time is taken.
    std::thread::sleep(drain);
    stop.store(true, Ordering::Relaxed);
    let host = host_thread.join().unwrap();
    PhaseResult {
        name: phase.name,
        flood,
        host,
        connects,
        rss_before,
        rss_after: status_kib("VmRSS:"),
        peak: if peak_resettable {
            status_kib("VmHWM:")
        } else {
            None
        },
    }
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn main() {
    let test = wavry_testenv::bench_is_test();
    let total: u64 = std::env::var("WAVRY_BENCH_FLOOD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if test { 2_000 } else { 100_000 });
    let (baseline_connects, drain) = if test {
        (3, Duration::from_millis(50))
    } else {
        (20, Duration::from_millis(300))
    };
    println!(
        "handshake flood: {total} datagrams per phase against a default Listener on 127.0.0.1"
    );
    // WAVRY_BENCH_PHASE=text: the baseline and the phases whose name contains it.
    let only = std::env::var("WAVRY_BENCH_PHASE").ok();
    let results: Vec<PhaseResult> = PHASES
        .iter()
        .filter(|p| p.kind.is_none() || only.as_ref().is_none_or(|o| p.name.contains(o.as_str())))
        .map(|p| run(p, total, baseline_connects, drain))
        .collect();

    println!();
    println!("The flood and the host's thread (CPU from the flood's start until drained):");
    println!(
        "{:<24} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>11} {:>8} {:>7}",
        "phase",
        "sent",
        "sent/s",
        "received",
        "k.drops",
        "hs",
        "retries",
        "r.limit",
        "evicted",
        "other",
        "CPU u+s",
        "sys%",
        "shed/CPU-s",
        "out/in B",
        "pending"
    );
    for r in &results {
        let h = &r.host;
        let s = &h.stats;
        let cpu = h.cpu_user + h.cpu_sys;
        let received = h.socket.datagrams_received;
        let client_sent: u64 = r.connects.iter().map(|c| c.sent).sum();
        let (sent, rate) = match &r.flood {
            Some(f) => (
                f.sent.to_string(),
                format!("{:.0}", f.sent as f64 / f.took.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        let flood_sent = r.flood.as_ref().map_or(0, |f| f.sent);
        let lost = (flood_sent + client_sent).saturating_sub(received);
        let kdrops = match h.kernel_drops {
            Some(k) => format!("{lost}/{k}"),
            None => lost.to_string(),
        };
        // Everything the listener did not turn into a handshake or a Retry: too short, not
        // for a listener, unknown id, not RIFT at all (the driver's count).
        let other = received.saturating_sub(s.handshakes + s.retries_sent + s.rate_limited);
        println!(
            "{:<24} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>8} {:>7} {:>7} {:>8} {:>5.0}% {:>11.0} {:>8.3} {:>3}/{:<3}",
            r.name,
            sent,
            rate,
            received,
            kdrops,
            s.handshakes,
            s.retries_sent,
            s.rate_limited,
            s.evicted,
            other,
            format!("{:.3}s", cpu.as_secs_f64()),
            100.0 * h.cpu_sys.as_secs_f64() / cpu.as_secs_f64().max(1e-9),
            received as f64 / cpu.as_secs_f64().max(1e-9),
            s.bytes_sent as f64 / (s.bytes_received as f64).max(1.0),
            h.max_pending,
            h.pending_end,
        );
    }
    println!(
        "(k.drops: sent − received / the socket's drop counter in /proc/net/udp; hs: message 2s \
         computed; shed/CPU-s: datagrams received per second of the host thread's CPU, i.e. per \
         core; out/in B: the listener's bytes sent over bytes received; pending: most seen / at \
         the end)"
    );

    println!();
    println!("The allowed client's connects (Session::connect → is_confirmed) and memory:");
    let base = results
        .first()
        .and_then(|r| median(r.connects.iter().filter_map(|c| c.took).collect()));
    println!(
        "{:<24} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "phase",
        "ok/n",
        "msg2 ms",
        "p50 ms",
        "max ms",
        "×base",
        "retries",
        "resends",
        "admitted",
        "RSS Δ KiB",
        "peak Δ KiB"
    );
    for r in &results {
        let ok: Vec<Duration> = r.connects.iter().filter_map(|c| c.took).collect();
        let p50 = median(ok.clone());
        let max = ok.iter().max().copied();
        let ratio = p50
            .zip(base)
            .map(|(a, b)| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()));
        let retries: u64 = r.connects.iter().map(|c| c.retries).sum();
        let resends: u64 = r.connects.iter().map(|c| c.retransmits).sum();
        let delta = |a: Option<u64>| {
            a.zip(r.rss_before)
                .map(|(a, b)| a as i64 - b as i64)
                .map_or("-".into(), |d| d.to_string())
        };
        println!(
            "{:<24} {:>3}/{:<3} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10}",
            r.name,
            ok.len(),
            r.connects.len(),
            opt(median(r.connects.iter().filter_map(|c| c.established).collect()).map(ms)),
            opt(p50.map(ms)),
            opt(max.map(ms)),
            opt(ratio),
            retries,
            resends,
            r.host.admitted,
            delta(r.rss_after),
            delta(r.peak),
        );
    }
    println!(
        "(msg2 ms: p50 of the time until message 2 was read, the rest is message 3's way; \
         retries: Retries the client followed, over all its connects; resends: its handshake \
         retransmissions; RSS Δ: after − before the phase; peak Δ: VmHWM during the phase − RSS \
         before, the whole process, flood and client included)"
    );
    for r in &results {
        if let Some(f) = &r.flood {
            if f.followed > 0 || f.answers > 0 {
                println!(
                    "{}: the flood read {} answers and followed {} Retries with their cookie; \
                     host {:?}",
                    r.name, f.answers, f.followed, r.host.stats
                );
            }
        }
    }
}
