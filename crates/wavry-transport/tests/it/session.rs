//! Sessions over an in-memory network (deterministic, simulated time): the handshake survives
//! the loss of any one handshake packet, wrong keys fail clearly, forged / replayed / misrouted
//! packets are refused and counted, a client that changes address keeps its session, quiet
//! sessions live on keepalives and a vanished peer is noticed at the idle timeout, and rekeys
//! (manual, on the 120 s timer, or asked for by the host) never interrupt the stream.

use rift_core::connection::{Connection, ConnectionConfig};
use rift_core::delta::{Delta, DeltaConfig, FixedRate};
use rift_core::media::OutgoingFrame;
use rift_core::wire::{MAX_DATAGRAM, STREAM_VIDEO};
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wavry_transport::listen::{ListenEvent, Listener, ListenerConfig};
use wavry_transport::session::{
    CloseReason, ConnectionFactory, Session, SessionConfig, SessionError, REFUSAL_GRACE,
};
use wavry_transport::testing;

fn host_factory() -> ConnectionFactory {
    testing::with_controller(true, || Box::new(Delta::new(DeltaConfig::default())))
}

fn client_factory() -> ConnectionFactory {
    testing::fixed_rate(false, 1_000_000)
}

/// Connections that send one feedback report and then none for an hour: without the reports
/// (which acknowledge each other and so flow every interval while both ends live), only the
/// session's keepalive pings cross a quiet session.
fn without_feedback(sender: bool) -> ConnectionFactory {
    Box::new(move |local, remote, now| {
        let mut cfg = ConnectionConfig::new(local, remote, sender);
        cfg.feedback_interval = Duration::from_secs(3600);
        Connection::new(cfg, Box::new(FixedRate::new(1_000_000, 60.0)), now)
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Net {
    t0: Instant,
    now: Instant,
    client: Session,
    /// The host's listener, until it admits the client; then the host's session.
    listener: Listener,
    host: Option<Session>,
    host_events: Vec<ListenEvent>,
    host_factory: fn() -> ConnectionFactory,
    host_identity: Identity,
    client_key: rift_crypto::identity::PublicKey,
    /// The keys the host admits (read at each handshake).
    allowed: Arc<Mutex<Vec<rift_crypto::identity::PublicKey>>>,
    client_addr: SocketAddr,
    /// Datagrams in flight: (arrival, to_host, from, bytes).
    wire: Vec<(Instant, bool, SocketAddr, Vec<u8>)>,
    sent: usize,
    host_errors: Vec<String>,
    /// When the client last accepted a datagram from the host.
    client_rx_ok: Option<Instant>,
}

const HOST: &str = "192.0.2.1:4444";

#[derive(Debug, Default)]
struct Streamed {
    sent: Vec<u32>,
    delivered: Vec<u32>,
    lost: Vec<u32>,
}
const DELAY: Duration = Duration::from_millis(5);

impl Net {
    fn new(pin_host: bool) -> Self {
        Self::with_configs(pin_host, SessionConfig::default(), SessionConfig::default())
    }

    fn with_configs(pin_host: bool, client_cfg: SessionConfig, host_cfg: SessionConfig) -> Self {
        Self::with_factories(
            pin_host,
            client_cfg,
            host_cfg,
            client_factory(),
            host_factory,
        )
    }

    fn with_factories(
        pin_host: bool,
        client_cfg: SessionConfig,
        host_cfg: SessionConfig,
        client_factory: ConnectionFactory,
        host_factory: fn() -> ConnectionFactory,
    ) -> Self {
        let t0 = Instant::now();
        let (host_end, client_end) = testing::ends();
        let pin = if pin_host {
            client_end.host
        } else {
            Identity::generate().unwrap().public()
        };
        let client = Session::connect(
            client_cfg,
            &client_end.identity,
            pinned(pin),
            addr(HOST),
            client_factory,
            t0,
        )
        .unwrap();
        let allowed = Arc::new(Mutex::new(vec![host_end.client]));
        let keys = allowed.clone();
        let listener = Listener::new(
            ListenerConfig {
                session: host_cfg,
                ..ListenerConfig::default()
            },
            &host_end.identity,
            move || allow_list(keys.lock().unwrap().clone()),
            t0,
        )
        .unwrap();
        Net {
            t0,
            now: t0,
            client,
            listener,
            host: None,
            host_events: vec![],
            host_factory,
            host_identity: host_end.identity,
            client_key: client_end.identity.public(),
            allowed,
            client_addr: addr("198.51.100.7:50000"),
            wire: vec![],
            sent: 0,
            host_errors: vec![],
            client_rx_ok: None,
        }
    }

    /// Run until `until`, dropping the datagrams whose send index `drop` selects.
    fn run(&mut self, until: Duration, drop: &dyn Fn(usize) -> bool) {
        let sent = std::cell::Cell::new(self.sent);
        self.run_filtered(until, &|_: &[u8]| {
            let i = sent.get();
            sent.set(i + 1);
            drop(i)
        });
    }

    /// Run until `until`, dropping the datagrams `drop` selects by content.
    fn run_filtered(&mut self, until: Duration, drop: &dyn Fn(&[u8]) -> bool) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let end = self.t0 + until;
        while self.now < end {
            // Deliver.
            self.wire.sort_by_key(|w| w.0);
            while self.wire.first().is_some_and(|w| w.0 <= self.now) {
                let (_, to_host, from, mut bytes) = self.wire.remove(0);
                if to_host {
                    match self.host.as_mut() {
                        Some(h) => {
                            if let Err(e) = h.handle_datagram(self.now, from, &mut bytes) {
                                self.host_errors.push(e.to_string());
                            }
                        }
                        None => {
                            if let Err(e) = self.listener.handle_datagram(self.now, from, &bytes) {
                                self.host_errors.push(e.to_string());
                            }
                            if let Some(a) = self.listener.poll_admitted() {
                                self.host = Some(a.into_session((self.host_factory)()).unwrap());
                            }
                        }
                    }
                } else if self
                    .client
                    .handle_datagram(self.now, addr(HOST), &mut bytes)
                    .is_ok()
                {
                    self.client_rx_ok = Some(self.now);
                }
            }
            self.client.handle_timeout(self.now);
            if let Some(h) = self.host.as_mut() {
                h.handle_timeout(self.now);
            }
            self.listener.handle_timeout(self.now);
            while let Some(ev) = self.listener.poll_event() {
                self.host_events.push(ev);
            }
            while let Some(tx) = self.listener.poll_transmit(&mut buf) {
                if !drop(&buf[..tx.len]) && tx.to == self.client_addr {
                    self.wire
                        .push((self.now + DELAY, false, addr(HOST), buf[..tx.len].to_vec()));
                }
                self.sent += 1;
            }
            while let Ok(Some(tx)) = self.client.poll_transmit(self.now, &mut buf) {
                if !drop(&buf[..tx.len]) {
                    self.wire.push((
                        self.now + DELAY,
                        true,
                        self.client_addr,
                        buf[..tx.len].to_vec(),
                    ));
                }
                self.sent += 1;
            }
            if let Some(h) = self.host.as_mut() {
                while let Ok(Some(tx)) = h.poll_transmit(self.now, &mut buf) {
                    // The client's old address reaches nobody once it has moved.
                    if !drop(&buf[..tx.len]) && tx.to == self.client_addr {
                        self.wire.push((
                            self.now + DELAY,
                            false,
                            addr(HOST),
                            buf[..tx.len].to_vec(),
                        ));
                    }
                    self.sent += 1;
                }
            }
            self.now += Duration::from_millis(1);
        }
    }

    /// Stream video from the host until `until`: a 3 KB frame (3 packets) every 33 ms, the
    /// first a keyframe. Returns the ids sent, and the ids the client received intact or was
    /// told were lost.
    fn stream(&mut self, until: Duration) -> Streamed {
        let mut out = Streamed::default();
        let mut next_id = 0u32;
        while self.now < self.t0 + until {
            let mut frame = vec![0u8; 3000];
            frame[..4].copy_from_slice(&next_id.to_be_bytes());
            let now = self.now;
            let h = self.host.as_mut().expect("host");
            let c = h.connection().expect("host established");
            c.send_frame(
                now,
                STREAM_VIDEO,
                OutgoingFrame {
                    data: &frame,
                    keyframe: next_id == 0,
                    recovery_point: false,
                    capture_us: 0,
                },
            )
            .expect("frame accepted");
            out.sent.push(next_id);
            next_id += 1;
            let step = now - self.t0 + Duration::from_millis(33);
            self.run(step, &|_| false);
            let c = self.client.connection().expect("client established");
            while let Some(f) = c.poll_frame(STREAM_VIDEO) {
                let id = u32::from_be_bytes(f.data[..4].try_into().unwrap());
                assert!(f.data[4..].iter().all(|&b| b == 0), "frame {id} corrupt");
                out.delivered.push(id);
            }
            while let Some(ev) = c.poll_event() {
                if let rift_core::connection::Event::FrameLost { frame_id, .. } = ev {
                    out.lost.push(frame_id);
                }
            }
        }
        // Let the last frames land.
        let end = self.now - self.t0 + Duration::from_millis(100);
        self.run(end, &|_| false);
        let c = self.client.connection().expect("client established");
        while let Some(f) = c.poll_frame(STREAM_VIDEO) {
            out.delivered
                .push(u32::from_be_bytes(f.data[..4].try_into().unwrap()));
        }
        out
    }

    fn both_established(&self) -> bool {
        self.client.is_established() && self.host.as_ref().is_some_and(|h| h.is_established())
    }
}

#[test]
fn handshake_completes_and_authenticates_both_ends() {
    let mut n = Net::new(true);
    n.run(Duration::from_millis(100), &|_| false);
    assert!(n.both_established(), "host errors {:?}", n.host_errors);
    let host = n.host.as_ref().unwrap();
    assert_eq!(n.client.remote_key(), Some(n.host_identity.public()));
    assert_eq!(host.remote_key(), Some(n.allowed.lock().unwrap()[0]));
}

#[test]
fn losing_any_one_handshake_packet_still_connects_within_a_second() {
    // The first six datagrams are the handshake and its first retransmissions.
    for lost in 0..6 {
        let mut n = Net::new(true);
        n.run(Duration::from_secs(1), &|i| i == lost);
        assert!(
            n.both_established(),
            "lost datagram {lost}: client {:?}, host errors {:?}",
            n.client.close_reason(),
            n.host_errors
        );
        // And data flows under the new keys.
        let frame = vec![9u8; 30_000];
        let h = n.host.as_mut().unwrap();
        h.connection()
            .unwrap()
            .send_frame(
                n.now,
                STREAM_VIDEO,
                OutgoingFrame {
                    data: &frame,
                    keyframe: true,
                    recovery_point: false,
                    capture_us: 0,
                },
            )
            .unwrap();
        n.run(Duration::from_millis(1300), &|_| false);
        let got = n
            .client
            .connection()
            .unwrap()
            .poll_frame(STREAM_VIDEO)
            .map(|f| f.data.to_vec());
        assert_eq!(got, Some(frame), "lost datagram {lost}");
    }
}

#[test]
fn wrong_host_key_fails_the_client_clearly_and_the_host_sees_an_unfinished_handshake() {
    let mut n = Net::new(false);
    // The client refuses message 2 and says nothing (RIFT.md §6); it listens on for a message
    // 2 it accepts (the refused one may be forged) for the refusal grace, then reports.
    n.run(Duration::from_millis(50), &|_| false);
    assert!(n.client.close_reason().is_none());
    assert_eq!(n.client.stats.refused_responses, 1);
    n.run(REFUSAL_GRACE + Duration::from_millis(50), &|_| false);
    match n.client.close_reason() {
        Some(CloseReason::HandshakeFailed(msg)) => assert!(msg.contains("key changed"), "{msg}"),
        other => panic!("client: {other:?}"),
    }
    assert!(n.host.is_none() && n.host_events.is_empty());
    // The host gives up at its handshake timeout, and says which way the handshake failed:
    // message 3 never came (not: nobody answered).
    let timeout = SessionConfig::default().handshake_timeout;
    n.run(timeout + Duration::from_millis(50), &|_| false);
    assert_eq!(
        n.host_events,
        vec![ListenEvent::Unfinished {
            from: n.client_addr
        }]
    );
    assert!(n.host.is_none());
}

#[test]
fn unknown_client_is_refused_by_the_host() {
    let mut n = Net::new(true);
    *n.allowed.lock().unwrap() = vec![Identity::generate().unwrap().public()];
    n.run(Duration::from_millis(200), &|_| false);
    assert!(n.host.is_none(), "a refused client gets no session");
    match n.host_events.as_slice() {
        [ListenEvent::Refused { key, reason, .. }] => {
            assert_eq!(*key, n.client_key);
            assert!(reason.contains("not allowed"), "{reason}");
        }
        other => panic!("host: {other:?}"),
    }
    // The client is told why at once (an encrypted Close), instead of timing out.
    match n.client.close_reason() {
        Some(CloseReason::Peer { code, reason }) => {
            assert_eq!(*code, rift_core::wire::CLOSE_REFUSED);
            assert!(reason.contains("not allowed"), "{reason}");
        }
        other => panic!("client: {other:?}"),
    }
}

#[test]
fn close_reaches_the_peer_with_its_code_and_reason() {
    let mut n = Net::new(true);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    n.client.close(rift_core::wire::CLOSE_NORMAL, "user quit");
    n.run(Duration::from_millis(400), &|_| false);
    assert_eq!(n.client.close_reason(), Some(&CloseReason::Local));
    assert_eq!(
        n.host.as_ref().unwrap().close_reason(),
        Some(&CloseReason::Peer {
            code: rift_core::wire::CLOSE_NORMAL,
            reason: "user quit".into()
        })
    );
}

#[test]
fn forged_replayed_and_misrouted_packets_are_refused_and_counted() {
    let mut n = Net::new(true);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    let mut buf = [0u8; MAX_DATAGRAM];
    let host = n.host.as_mut().unwrap();
    host.connection().unwrap().send_control(b"hello").unwrap();
    let tx = host.poll_transmit(n.now, &mut buf).unwrap().unwrap();
    let good = buf[..tx.len].to_vec();
    host.connection().unwrap().send_ping(77);
    let tx = host.poll_transmit(n.now, &mut buf).unwrap().unwrap();
    let fresh = buf[..tx.len].to_vec();
    let now = n.now;
    let from = addr(HOST);
    let c = &mut n.client;
    let mut p = good.clone();
    c.handle_datagram(now, from, &mut p).unwrap();
    let mut replay = good.clone();
    assert!(matches!(
        c.handle_datagram(now, from, &mut replay),
        Err(SessionError::Protect(_))
    ));
    let mut tampered = fresh.clone();
    tampered[20] ^= 1;
    assert!(matches!(
        c.handle_datagram(now, from, &mut tampered),
        Err(SessionError::Protect(_))
    ));
    let mut truncated = good[..20].to_vec();
    assert!(c.handle_datagram(now, from, &mut truncated).is_err());
    let mut wrong_cid = good.clone();
    wrong_cid[5] ^= 1;
    assert!(matches!(
        c.handle_datagram(now, from, &mut wrong_cid),
        Err(SessionError::WrongConnection { .. })
    ));
    let mut garbage = vec![0xFFu8; 3];
    assert!(c.handle_datagram(now, from, &mut garbage).is_err());
    assert_eq!(c.stats.rejected, 5);
    let ps = c.protection_stats().unwrap();
    assert_eq!((ps.replays, ps.auth_failures), (1, 1));
    assert_eq!(
        c.connection().unwrap().poll_event(),
        Some(rift_core::connection::Event::Control(b"hello".to_vec()))
    );
}

#[test]
fn client_address_change_keeps_the_session() {
    let mut n = Net::new(true);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    n.client_addr = addr("203.0.113.9:61000");
    n.client
        .connection()
        .unwrap()
        .send_control(b"after roaming")
        .unwrap();
    n.run(Duration::from_millis(600), &|_| false);
    let h = n.host.as_mut().unwrap();
    assert_eq!(h.peer(), addr("203.0.113.9:61000"));
    assert_eq!(h.stats.roamed, 1);
    assert_eq!(
        h.connection().unwrap().poll_event(),
        Some(rift_core::connection::Event::Control(
            b"after roaming".to_vec()
        ))
    );
}

#[test]
fn rekey_switches_both_ends_without_interrupting_traffic_even_when_a_rekey_packet_is_lost() {
    for lost in [None, Some(0), Some(1), Some(2)] {
        let mut n = Net::new(true);
        n.run(Duration::from_millis(300), &|_| false);
        assert!(n.both_established());
        n.client.rekey(n.now).unwrap();
        // Count datagrams from here; drop the `lost`-th handshake datagram of the rekey.
        let handshake_seen = std::cell::Cell::new(0usize);
        let until = n.now - n.t0 + Duration::from_millis(600);
        // Keep traffic flowing through the switch.
        n.host
            .as_mut()
            .unwrap()
            .connection()
            .unwrap()
            .send_control(b"during")
            .unwrap();
        n.run_filtered(until, &|bytes: &[u8]| {
            let is_handshake = bytes[0] & 0x3F <= 0x02;
            if !is_handshake {
                return false;
            }
            let i = handshake_seen.get();
            handshake_seen.set(i + 1);
            Some(i) == lost
        });
        let h = n.host.as_mut().unwrap();
        assert_eq!(
            h.protection_stats().unwrap().rekeys,
            1,
            "host, lost {lost:?}"
        );
        assert_eq!(
            n.client.protection_stats().unwrap().rekeys,
            1,
            "client, lost {lost:?}"
        );
        h.connection().unwrap().send_control(b"after").unwrap();
        let until = n.now - n.t0 + Duration::from_millis(300);
        n.run(until, &|_| false);
        let got: Vec<_> = std::iter::from_fn(|| n.client.connection().unwrap().poll_event())
            .filter_map(|e| match e {
                rift_core::connection::Event::Control(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![b"during".to_vec(), b"after".to_vec()],
            "lost {lost:?}"
        );
    }
}

/// The packet type of a datagram on the wire (cleartext in the header).
fn packet_type(datagram: &[u8]) -> u8 {
    datagram[0] & 0x3F
}

/// Run a quiet session (no application traffic) for three idle timeouts; the datagrams sent,
/// by packet type.
fn run_quiet(n: &mut Net) -> std::collections::BTreeMap<u8, usize> {
    let quiet = 3 * SessionConfig::default().idle_timeout;
    let types = std::cell::RefCell::new(std::collections::BTreeMap::<u8, usize>::new());
    let until = n.now - n.t0 + quiet;
    n.run_filtered(until, &|d: &[u8]| {
        *types.borrow_mut().entry(packet_type(d)).or_default() += 1;
        false
    });
    assert!(
        n.client.close_reason().is_none() && n.host.as_ref().unwrap().close_reason().is_none(),
        "client {:?}, host {:?}",
        n.client.close_reason(),
        n.host.as_ref().unwrap().close_reason()
    );
    types.into_inner()
}

#[test]
fn quiet_session_stays_open_past_the_idle_timeout() {
    // With the default connections, the two ends' feedback reports (each acknowledging the
    // other's) keep flowing while both live, so the keepalive never has to fire.
    let mut n = Net::new(true);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    let types = run_quiet(&mut n);
    println!("quiet, default connections: datagrams by type {types:x?}");
    assert!(types.get(&0x28).is_some_and(|&f| f > 0), "feedback reports");
}

#[test]
fn quiet_session_lives_on_keepalives_and_a_vanished_host_is_noticed_at_the_idle_timeout() {
    let cfg = SessionConfig::default();
    let mut n = Net::with_factories(
        true,
        cfg.clone(),
        cfg.clone(),
        without_feedback(false),
        || without_feedback(true),
    );
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    // Three idle timeouts with nothing but keepalives: each end pings once it has sent
    // nothing for a keepalive interval and answers the other's pings, and the client also pings
    // once it has heard nothing for `probe_after` (the path may have broken), so here, with no
    // feedback at all, the client pings every `probe_after` and the host's answers count as
    // its own traffic.
    let types = run_quiet(&mut n);
    println!("quiet, no feedback: datagrams by type {types:x?}");
    let quiet_s = (3 * cfg.idle_timeout).as_secs_f64();
    let expected = (quiet_s / cfg.keepalive.as_secs_f64()) as usize;
    let probes = (quiet_s / cfg.probe_after.as_secs_f64()) as usize;
    let (pings, pongs) = (
        types.get(&0x09).copied().unwrap_or(0),
        types.get(&0x0A).copied().unwrap_or(0),
    );
    assert!(
        pings + 1 >= expected && pings <= probes + expected + 2,
        "{pings} pings in {quiet_s} s, keepalive {:?}, probe after {:?}",
        cfg.keepalive,
        cfg.probe_after
    );
    assert_eq!(pongs, pings, "every ping answered");
    assert!(
        types.keys().all(|t| [0x09, 0x0A].contains(t)),
        "nothing else was sent: {types:x?}"
    );

    // The host vanishes: nothing reaches it or comes from it any more. The client closes
    // exactly one idle timeout after the last packet it accepted.
    let vanished = n.now;
    let mut closed_at = None;
    while closed_at.is_none() && n.now < vanished + 2 * cfg.idle_timeout {
        // One tick: timers run at `tick`.
        let tick = n.now;
        n.run(tick - n.t0 + Duration::from_millis(1), &|_| true);
        if n.client.close_reason().is_some() {
            closed_at = Some(tick);
        }
    }
    assert_eq!(n.client.close_reason(), Some(&CloseReason::IdleTimeout));
    let last_rx = n.client_rx_ok.expect("the client heard the host");
    assert!(
        last_rx + cfg.keepalive + DELAY >= vanished,
        "pings kept arriving"
    );
    let closed_at = closed_at.expect("the client closed");
    println!(
        "host vanished at {:?}; client last heard it at {:?}, closed at {:?} (idle timeout {:?})",
        vanished - n.t0,
        last_rx - n.t0,
        closed_at - n.t0,
        cfg.idle_timeout
    );
    // Not before the timeout (the idle timer closed it, nothing else), and at the first tick
    // after it (timers run once per simulated millisecond here).
    assert_eq!(closed_at, last_rx + cfg.idle_timeout);
}

#[test]
fn the_rekey_timer_alone_rekeys_with_video_flowing_uninterrupted() {
    let mut n = Net::new(true);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    // Video through two rekey periods (120 s each), no manual rekey.
    let streamed = n.stream(Duration::from_secs(250));
    let (h, c) = (
        n.host.as_ref().unwrap().protection_stats().unwrap(),
        n.client.protection_stats().unwrap(),
    );
    println!(
        "{} frames sent, {} delivered, {} lost; rekeys: host {}, client {}; host packets refused \
         {}, client {}",
        streamed.sent.len(),
        streamed.delivered.len(),
        streamed.lost.len(),
        h.rekeys,
        c.rekeys,
        n.host.as_ref().unwrap().stats.rejected,
        n.client.stats.rejected,
    );
    assert_eq!((h.rekeys, c.rekeys), (2, 2));
    assert_eq!(streamed.delivered, streamed.sent, "every frame, in order");
    assert!(streamed.lost.is_empty());
    assert_eq!(h.auth_failures + c.auth_failures, 0);
    assert_eq!(h.expired_key + c.expired_key, 0);
}

#[test]
fn a_host_whose_direction_is_due_asks_the_client_to_rekey() {
    // The host's limit is low (in packets, its direction only); the client's own limits are the
    // defaults, far away, so every rekey here is one the host asked for.
    let host_cfg = SessionConfig {
        rekey_after_packets: 400,
        ..SessionConfig::default()
    };
    let mut n = Net::with_configs(true, SessionConfig::default(), host_cfg);
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    let streamed = n.stream(Duration::from_secs(12));
    let (h, c) = (
        n.host.as_ref().unwrap().protection_stats().unwrap(),
        n.client.protection_stats().unwrap(),
    );
    println!(
        "host sealed {} packets; rekeys: host {}, client {} ({} asked for); {} frames sent, {} \
         delivered",
        h.sealed,
        h.rekeys,
        c.rekeys,
        n.client.stats.rekeys_requested,
        streamed.sent.len(),
        streamed.delivered.len()
    );
    // One rekey per 400 host packets (give or take the round trip the request takes).
    let expected = h.sealed / 400;
    assert!(
        h.rekeys >= expected.saturating_sub(1) && h.rekeys <= expected,
        "host rekeys"
    );
    assert!(h.rekeys >= 2);
    assert_eq!(c.rekeys, h.rekeys);
    assert_eq!(n.client.stats.rekeys_requested, h.rekeys);
    assert_eq!(streamed.delivered, streamed.sent, "every frame, in order");
    assert!(streamed.lost.is_empty());
}

#[test]
fn an_unnoticed_client_address_change_is_followed_once_the_client_probes() {
    // No feedback reports, so nothing the client sends by itself except pings: after the move
    // (a NAT rebinding: the client does not know), what brings the host along is the ping the
    // client sends when it has heard nothing for `probe_after`.
    let cfg = SessionConfig::default();
    let mut n = Net::with_factories(
        true,
        cfg.clone(),
        cfg.clone(),
        without_feedback(false),
        || without_feedback(true),
    );
    n.run(Duration::from_millis(300), &|_| false);
    assert!(n.both_established());
    let new_addr = addr("203.0.113.9:61000");
    n.client_addr = new_addr;
    let moved = n.now;
    let mut followed = None;
    while followed.is_none() && n.now < moved + 3 * cfg.keepalive {
        let tick = n.now;
        n.run(tick - n.t0 + Duration::from_millis(1), &|_| false);
        if n.host.as_ref().unwrap().peer() == new_addr {
            followed = Some(tick);
        }
    }
    let followed = followed.expect("the host followed");
    let last_rx = n.client_rx_ok.expect("the client heard the host");
    println!(
        "moved at {:?}; client last heard the host at {:?}; host followed at {:?}",
        moved - n.t0,
        last_rx - n.t0,
        followed - n.t0
    );
    // The probe leaves `probe_after` after the last packet the client heard and takes one
    // trip (`DELAY`) to the host: well before the client's keepalive would have.
    assert!(followed <= last_rx.max(moved) + cfg.probe_after + DELAY + Duration::from_millis(2));
    assert!(followed < moved + cfg.keepalive);
    assert!(n.client.close_reason().is_none());
    assert_eq!(n.host.as_ref().unwrap().stats.roamed, 1);
}
