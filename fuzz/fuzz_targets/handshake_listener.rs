//! Hostile datagrams against the handshake's two parsers of unauthenticated packets: the host's
//! `Listener` and a client `Session` waiting for message 2, with real clients' handshakes mixed
//! in (their messages delivered, dropped, repeated, corrupted or sent from another address) so
//! that the fuzzer reaches the deep states: Retries, pending tables at their limits, admission,
//! refusal, the admitted host session.
//!
//! Invariants, whatever arrives:
//! - every answer the listener sends goes to the datagram's source and is no longer than it
//!   (RIFT.md §10: no amplification, no reflection to a third address);
//! - the listener sends nothing on a timer;
//! - `pending()` never exceeds `max_pending`;
//! - only the allowed key is admitted, and a client only establishes with the host it pins;
//! - no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_core::connection::{Connection, ConnectionConfig};
use rift_core::delta::FixedRate;
use rift_core::wire::{
    Body, Handshake, Header, Packet, PacketType, COOKIE_LEN, MAX_DATAGRAM, MIN_HANDSHAKE_INIT,
    VERSION,
};
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wavry_transport::listen::{Listener, ListenerConfig};
use wavry_transport::session::{ConnectionFactory, Session, SessionConfig};

struct Ids {
    host: Identity,
    /// On the host's allow-list.
    allowed: Identity,
    /// Proves its key, and is refused.
    refused: Identity,
}

fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| Ids {
        host: Identity::from_secret([1; 32]),
        allowed: Identity::from_secret([2; 32]),
        refused: Identity::from_secret([3; 32]),
    })
}

const HOST: &str = "192.0.2.1:4444";
/// Sources a byte picks from: the client's address, another port on its IP, a stranger, two
/// IPv6 addresses in one /64 (one unit for the per-address limits), the client's IPv4 mapped.
const SOURCES: [&str; 6] = [
    "198.51.100.7:50000",
    "198.51.100.7:50001",
    "203.0.113.9:40000",
    "[2001:db8::1]:4000",
    "[2001:db8::2]:4000",
    "[::ffff:198.51.100.7]:50002",
];

fn source(b: u8) -> SocketAddr {
    SOURCES[b as usize % SOURCES.len()].parse().unwrap()
}

fn factory(sender: bool) -> ConnectionFactory {
    Box::new(move |l, r, now| {
        Connection::new(
            ConnectionConfig::new(l, r, sender),
            Box::new(FixedRate::new(1_000_000, 60.0)),
            now,
        )
    })
}

/// The fuzz input, consumed from the front; short reads give zeros / what is left.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    /// A datagram: [len: u16 BE][bytes], at most a datagram's size.
    fn datagram(&mut self) -> &'a [u8] {
        let len = u16::from_be_bytes([self.byte(), self.byte()]) as usize;
        self.bytes(len % 1501)
    }
}

struct World {
    now: Instant,
    max_pending: usize,
    listener: Listener,
    /// The real client, its address, and the datagrams it sent that are not delivered yet.
    client: Session,
    client_from: SocketAddr,
    client_out: VecDeque<Vec<u8>>,
    /// The listener's (or host session's) answers to the client's address, not delivered yet.
    to_client: VecDeque<Vec<u8>>,
    /// The session the listener admitted, when it did (it then owns the client's traffic).
    host: Option<Session>,
    /// Cookies of the Retries sent to each (address, connection id): strangers may follow them.
    cookies: HashMap<(SocketAddr, u32), [u8; COOKIE_LEN]>,
    datagrams: u64,
}

impl World {
    fn new(small: bool) -> World {
        let now = Instant::now();
        // Small limits, so that short inputs reach them.
        let cfg = if small {
            ListenerConfig {
                max_pending: 4,
                max_pending_per_ip: 2,
                handshakes_per_sec: 3,
                handshakes_per_ip_per_sec: 2,
                max_answers: 2,
                ..ListenerConfig::default()
            }
        } else {
            ListenerConfig::default()
        };
        let max_pending = cfg.max_pending;
        let allowed = ids().allowed.public();
        let listener =
            Listener::new(cfg, &ids().host, move || allow_list(vec![allowed]), now).unwrap();
        let (client, client_from) = connect(true, source(0), now);
        World {
            now,
            max_pending,
            listener,
            client,
            client_from,
            client_out: VecDeque::new(),
            to_client: VecDeque::new(),
            host: None,
            cookies: HashMap::new(),
            datagrams: 0,
        }
    }

    /// `datagram` from `from` to the listener; its answers are checked and kept.
    fn to_listener(&mut self, from: SocketAddr, datagram: &[u8]) {
        let _ = self.listener.handle_datagram(self.now, from, datagram);
        self.datagrams += 1;
        assert_eq!(self.listener.stats.datagrams, self.datagrams);
        let mut buf = [0u8; MAX_DATAGRAM];
        while let Some(t) = self.listener.poll_transmit(&mut buf) {
            assert_eq!(t.to, from, "an answer to another address than the source");
            assert!(
                t.len <= datagram.len(),
                "{} bytes answer {} bytes",
                t.len,
                datagram.len()
            );
            let answer = &buf[..t.len];
            if let Ok(Packet {
                header,
                body: Body::Retry { cookie, .. },
            }) = Packet::decode(answer)
            {
                self.cookies.insert((t.to, header.connection_id), cookie);
            }
            if t.to == self.client_from {
                self.to_client.push_back(answer.to_vec());
            }
        }
        assert!(self.listener.pending() <= self.max_pending);
        while let Some(a) = self.listener.poll_admitted() {
            assert_eq!(
                a.remote_key(),
                Some(ids().allowed.public()),
                "admitted a stranger"
            );
            if let Ok(s) = a.into_session(factory(true)) {
                self.host = Some(s);
                self.drain_host();
            }
        }
        while self.listener.poll_event().is_some() {}
    }

    fn drain_host(&mut self) {
        let Some(h) = self.host.as_mut() else { return };
        let mut buf = [0u8; MAX_DATAGRAM];
        // Bounded: an established session may have a little more than handshake traffic.
        for _ in 0..32 {
            match h.poll_transmit(self.now, &mut buf) {
                Ok(Some(t)) => {
                    if t.to == self.client_from {
                        self.to_client.push_back(buf[..t.len].to_vec());
                    }
                }
                _ => break,
            }
        }
        if let Some(k) = h.remote_key() {
            assert_eq!(k, ids().allowed.public());
        }
    }

    fn drain_client(&mut self) {
        let mut buf = [0u8; MAX_DATAGRAM];
        for _ in 0..32 {
            match self.client.poll_transmit(self.now, &mut buf) {
                Ok(Some(t)) => self.client_out.push_back(buf[..t.len].to_vec()),
                _ => break,
            }
        }
        if let Some(k) = self.client.remote_key() {
            assert_eq!(k, ids().host.public(), "the client accepted another host");
        }
    }

    /// Corrupt `d` as `how` says: nothing, flip a byte, or cut it short.
    fn mangle(d: &mut Vec<u8>, how: u8, at: u8) {
        if d.is_empty() {
            return;
        }
        let i = at as usize * d.len() / 256;
        match how % 4 {
            1 => d[i] ^= 1 << (how >> 5),
            2 => d.truncate(i),
            _ => {}
        }
    }

    fn advance(&mut self, step: u8) {
        // Up to 65 s: past the handshake timeout (10 s) and into the cookie's next secret.
        self.now += Duration::from_millis(u64::from(step) * u64::from(step));
        self.listener.handle_timeout(self.now);
        let mut buf = [0u8; MAX_DATAGRAM];
        assert!(
            self.listener.poll_transmit(&mut buf).is_none(),
            "the listener sent on a timer"
        );
        assert!(self.listener.pending() <= self.max_pending);
        while self.listener.poll_event().is_some() {}
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        self.drain_client();
        if let Some(h) = self.host.as_mut() {
            if h.poll_timeout().is_some_and(|t| t <= self.now) {
                h.handle_timeout(self.now);
            }
        }
        self.drain_host();
    }
}

/// A real client from `from`, its message 1 queued: with the allowed key or a refused one.
fn connect(allowed: bool, from: SocketAddr, now: Instant) -> (Session, SocketAddr) {
    let id = if allowed {
        &ids().allowed
    } else {
        &ids().refused
    };
    let s = Session::connect(
        SessionConfig::default(),
        id,
        pinned(ids().host.public()),
        HOST.parse().unwrap(),
        factory(false),
        now,
    )
    .unwrap();
    (s, from)
}

/// A stranger's initiation: connection id, version, length, ephemeral key and cookie chosen by
/// the input, so that repeats, collisions and followed Retries are easy to find.
fn stranger_init(w: &World, input: &mut Input<'_>, from: SocketAddr) -> Vec<u8> {
    let cid = u32::from(input.byte() % 8) + 1;
    let flags = input.byte();
    let key = input.byte();
    let version = if flags & 1 == 1 { VERSION + 1 } else { VERSION };
    let len = if flags & 2 == 2 {
        MIN_HANDSHAKE_INIT - 1 - usize::from(input.byte())
    } else {
        MIN_HANDSHAKE_INIT + usize::from(flags >> 6)
    };
    let mut noise = vec![key; 32];
    noise.resize(len - 20, 0);
    if flags & 4 == 4 {
        if let Some(c) = w.cookies.get(&(from, cid)) {
            noise[32] = COOKIE_LEN as u8;
            noise[33..33 + COOKIE_LEN].copy_from_slice(c);
        }
    }
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = Packet {
        header: Header {
            packet_type: PacketType::HandshakeInit,
            flags: 0,
            connection_id: if flags & 8 == 8 { cid } else { 0 },
            packet_number: 0,
        },
        body: Body::HandshakeInit(Handshake {
            version,
            source_connection_id: cid,
            noise: &noise,
        }),
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut w = World::new(input.byte() & 1 == 1);
    w.drain_client();
    let mut ops = 0;
    while !input.0.is_empty() && ops < 256 {
        ops += 1;
        match input.byte() % 8 {
            // Raw bytes to the listener.
            0 => {
                let from = source(input.byte());
                let d = input.datagram();
                w.to_listener(from, d);
            }
            // A stranger's initiation, well formed or nearly.
            1 => {
                let from = source(input.byte());
                let d = stranger_init(&w, &mut input, from);
                w.to_listener(from, &d);
            }
            // The client's next datagram to the host: delivered (perhaps corrupted, perhaps
            // from another address), or lost.
            2 => {
                let (how, at, src) = (input.byte(), input.byte(), input.byte());
                w.drain_client();
                // how % 8 == 7: lost.
                if let Some(mut d) = w.client_out.pop_front().filter(|_| how % 8 != 7) {
                    World::mangle(&mut d, how, at);
                    let from = if src & 1 == 1 {
                        source(src >> 1)
                    } else {
                        w.client_from
                    };
                    match w.host.as_mut() {
                        Some(h) => {
                            let _ = h.handle_datagram(w.now, from, &mut d);
                            w.drain_host();
                        }
                        None => w.to_listener(from, &d),
                    }
                }
            }
            // The host's next answer to the client: delivered (perhaps corrupted), or lost.
            3 => {
                let (how, at) = (input.byte(), input.byte());
                if let Some(mut d) = w.to_client.pop_front().filter(|_| how % 8 != 7) {
                    World::mangle(&mut d, how, at);
                    let _ = w
                        .client
                        .handle_datagram(w.now, HOST.parse().unwrap(), &mut d);
                    w.drain_client();
                }
            }
            // Raw bytes to the client, from the host's address or another.
            4 => {
                let src = input.byte();
                let mut d = input.datagram().to_vec();
                let from = if src & 1 == 1 {
                    source(src >> 1)
                } else {
                    HOST.parse().unwrap()
                };
                let _ = w.client.handle_datagram(w.now, from, &mut d);
                w.drain_client();
            }
            // Time passes.
            5 => {
                let step = input.byte();
                w.advance(step);
            }
            // A new client (allowed or not) from a chosen address; the old one is gone.
            6 => {
                let b = input.byte();
                let (s, from) = connect(b & 1 == 0, source(b >> 1), w.now);
                w.client = s;
                w.client_from = from;
                w.client_out.clear();
                w.to_client.clear();
                w.host = None;
                w.drain_client();
            }
            // Raw bytes to the admitted session, if there is one.
            _ => {
                let from = source(input.byte());
                let mut d = input.datagram().to_vec();
                if let Some(h) = w.host.as_mut() {
                    let _ = h.handle_datagram(w.now, from, &mut d);
                    w.drain_host();
                }
            }
        }
    }
});
