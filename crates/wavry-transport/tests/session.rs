//! Sessions over an in-memory network (deterministic, simulated time): the handshake survives
//! the loss of any one handshake packet, wrong keys fail clearly, forged / replayed / misrouted
//! packets are refused and counted, and a client that changes address keeps its session.

use rift_core::connection::{Connection, ConnectionConfig};
use rift_core::delta::{Delta, DeltaConfig, FixedRate};
use rift_core::media::OutgoingFrame;
use rift_core::wire::{MAX_DATAGRAM, STREAM_VIDEO};
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wavry_transport::session::{
    CloseReason, ConnectionFactory, Session, SessionConfig, SessionError,
};

fn host_factory() -> ConnectionFactory {
    Box::new(|local, remote, now| {
        Connection::new(
            ConnectionConfig::new(local, remote, true),
            Box::new(Delta::new(DeltaConfig::default())),
            now,
        )
    })
}

fn client_factory() -> ConnectionFactory {
    Box::new(|local, remote, now| {
        Connection::new(
            ConnectionConfig::new(local, remote, false),
            Box::new(FixedRate::new(1_000_000, 60.0)),
            now,
        )
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Net {
    t0: Instant,
    now: Instant,
    client: Session,
    host: Option<Session>,
    host_identity: Identity,
    allowed: Vec<rift_crypto::identity::PublicKey>,
    client_addr: SocketAddr,
    /// Datagrams in flight: (arrival, to_host, from, bytes).
    wire: Vec<(Instant, bool, SocketAddr, Vec<u8>)>,
    sent: usize,
    host_errors: Vec<String>,
}

const HOST: &str = "192.0.2.1:4444";
const DELAY: Duration = Duration::from_millis(5);

impl Net {
    fn new(pin_host: bool) -> Self {
        let t0 = Instant::now();
        let host_identity = Identity::generate().unwrap();
        let client_identity = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let pin = if pin_host {
            host_identity.public()
        } else {
            other.public()
        };
        let client = Session::connect(
            SessionConfig::default(),
            &client_identity,
            pinned(pin),
            addr(HOST),
            client_factory(),
            t0,
        )
        .unwrap();
        Net {
            t0,
            now: t0,
            client,
            host: None,
            host_identity,
            allowed: vec![client_identity.public()],
            client_addr: addr("198.51.100.7:50000"),
            wire: vec![],
            sent: 0,
            host_errors: vec![],
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
                            let allow = allow_list(self.allowed.clone());
                            match Session::accept(
                                SessionConfig::default(),
                                &self.host_identity,
                                allow,
                                &bytes,
                                from,
                                host_factory(),
                                self.now,
                            ) {
                                Ok(h) => self.host = Some(h),
                                Err(e) => self.host_errors.push(e.to_string()),
                            }
                        }
                    }
                } else {
                    let _ = self
                        .client
                        .handle_datagram(self.now, addr(HOST), &mut bytes);
                }
            }
            self.client.handle_timeout(self.now);
            if let Some(h) = self.host.as_mut() {
                h.handle_timeout(self.now);
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
                    if !drop(&buf[..tx.len]) {
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
    assert_eq!(host.remote_key(), Some(n.allowed[0]));
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
fn wrong_host_key_fails_the_client_clearly_and_the_host_times_out() {
    let mut n = Net::new(false);
    n.run(Duration::from_secs(11), &|_| false);
    match n.client.close_reason() {
        Some(CloseReason::HandshakeFailed(msg)) => assert!(msg.contains("key changed"), "{msg}"),
        other => panic!("client: {other:?}"),
    }
    assert_eq!(
        n.host.as_ref().unwrap().close_reason(),
        Some(&CloseReason::HandshakeTimeout)
    );
}

#[test]
fn unknown_client_is_refused_by_the_host() {
    let mut n = Net::new(true);
    n.allowed = vec![Identity::generate().unwrap().public()];
    n.run(Duration::from_millis(200), &|_| false);
    match n.host.as_ref().unwrap().close_reason() {
        Some(CloseReason::HandshakeFailed(msg)) => assert!(msg.contains("not allowed"), "{msg}"),
        other => panic!("host: {other:?}"),
    }
    assert!(!n.host.as_ref().unwrap().is_established());
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
