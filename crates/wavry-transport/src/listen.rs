//! The host's side of connection establishment, sans-IO (RIFT.md §6 and §10). Anyone on the
//! internet can send a host packets, so what it does for a stranger is bounded:
//!
//! - **No amplification.** An initiation shorter than [`MIN_HANDSHAKE_INIT`] gets no answer;
//!   every answer (message 2, `Retry`, `VersionNegotiation`) is smaller than the initiation it
//!   answers, and each initiation is answered at most once: a repeated message 1 gets message 2
//!   again, nothing is sent on a timer to an address that has not proved itself. A refusal
//!   `Close` is no longer than the message 3 it answers (which may come from another address).
//! - **Nobody holds the door.** Many handshakes wait for their message 3 at once, bounded in
//!   number overall and per source address; a different initiation with the same address and
//!   connection id (which a forger who saw the first can send) waits beside it, it does not
//!   replace it; when the table is full, the oldest of the address holding the most goes.
//! - **Work is rationed.** Message 2 costs three X25519 operations. Beyond
//!   [`ListenerConfig::handshakes_per_sec`] (or with the table half full) an initiation without
//!   a valid cookie gets a stateless `Retry` instead (one MAC, no state), so a spoofed flood
//!   costs almost nothing. Each address (an IPv6 /64 counts as one) gets at most
//!   [`ListenerConfig::handshakes_per_ip_per_sec`], checked first so that one address cannot
//!   spend everyone's budget, and all handshakes together at most
//!   [`ListenerConfig::max_handshakes_per_sec`], cookie or not.
//! - **Nothing unauthenticated ends a handshake.** A message 3 that does not decrypt is
//!   dropped and its handshake waits on; one that proves a key the allow-list refuses gets one
//!   encrypted Close (code 1). Only a client that proved an allowed key becomes a [`Session`]:
//!   the caller starts capture and encoding for nobody else.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::session::{
    cleartext_packet, handshake_packet, init_cookie, random_cid, refusal_close, ConnectionFactory,
    Session, SessionConfig, SessionError, Transmit,
};

use rift_core::wire::{
    self, Body, Header, Packet, PacketType, Priority, MIN_HANDSHAKE_INIT, RETRY_ECHO_LEN,
};
use rift_crypto::cookie::CookieJar;
use rift_crypto::handshake::{Handshake, HandshakeError, Verifier, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::{Identity, PublicKey};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use thiserror::Error;

/// How a listener rations its work.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The sessions' settings (version, handshake timeout, …).
    pub session: SessionConfig,
    /// Handshakes waiting for message 3, at most (≈ 2 KB each).
    pub max_pending: usize,
    /// Of those, from one IP address (an IPv6 /64 counts as one).
    pub max_pending_per_ip: usize,
    /// Handshakes started per second (burst: one second's worth) for initiations without a
    /// cookie; beyond it they get a `Retry` first.
    pub handshakes_per_sec: u32,
    /// Handshakes started per second per IP address, cookie or not; beyond it initiations from
    /// that address are dropped.
    pub handshakes_per_ip_per_sec: u32,
    /// Handshakes started per second in all, cookie or not (≈ 200 µs of CPU each); beyond it
    /// initiations are dropped.
    pub max_handshakes_per_sec: u32,
    /// Times one pending handshake's message 2 is sent again for a repeated message 1.
    pub max_answers: u32,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            session: SessionConfig::default(),
            max_pending: 256,
            max_pending_per_ip: 8,
            handshakes_per_sec: 200,
            handshakes_per_ip_per_sec: 20,
            max_handshakes_per_sec: 1000,
            max_answers: 16,
        }
    }
}

/// Addresses whose handshake budget is tracked, at most; idle ones are forgotten first.
const MAX_TRACKED_IPS: usize = 4096;
/// Events kept for a caller that does not read them.
const MAX_EVENTS: usize = 64;
/// Answers waiting to be sent, at most (the driver sends them after every batch).
const MAX_OUTBOX: usize = 1024;

/// What happened to a handshake that did not become a session (for the host's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// A client proved a key the allow-list refuses; it was told why (Close, code 1).
    Refused {
        from: SocketAddr,
        key: PublicKey,
        reason: String,
    },
    /// Message 2 went out and message 3 never came within the handshake timeout: most likely
    /// the client refused this host's key (it changed, or the client pinned another one), or
    /// it went away. A client that refuses sends nothing, by design (RIFT.md §6).
    Unfinished { from: SocketAddr },
}

/// Why a datagram was dropped without an answer, or answered with a Retry only.
#[derive(Debug, Error)]
pub enum ListenError {
    #[error("handshake initiation of {0} bytes is shorter than {MIN_HANDSHAKE_INIT}")]
    TooShort(usize),
    #[error("no pending handshake has connection id {0:#010x}")]
    UnknownConnection(u32),
    #[error("{0:?} is not for a listener")]
    Unexpected(PacketType),
    #[error("address {0} is over its handshake rate")]
    RateLimited(IpAddr),
    #[error("answered with a Retry: the address is checked first")]
    Retried,
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<wire::DecodeError> for ListenError {
    fn from(e: wire::DecodeError) -> Self {
        ListenError::Session(e.into())
    }
}

impl From<HandshakeError> for ListenError {
    fn from(e: HandshakeError) -> Self {
        ListenError::Session(e.into())
    }
}

/// Counters of what the listener received, answered and shed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Datagrams handed to the listener, and their bytes.
    pub datagrams: u64,
    pub bytes_received: u64,
    /// Datagrams sent (answers to unauthenticated packets, refusals), and their bytes.
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Handshakes started (message 2 computed).
    pub handshakes: u64,
    /// Message 2 sent again for a repeated message 1.
    pub repeats: u64,
    pub retries_sent: u64,
    pub version_negotiations: u64,
    /// Initiations dropped: too short, over an address's rate, or over the answer limit.
    pub too_short: u64,
    pub rate_limited: u64,
    /// Pending handshakes pushed out by newer ones (table or address full).
    pub evicted: u64,
    /// Message 3s that did not decrypt (forged or corrupt), dropped.
    pub bad_finish: u64,
    pub refused: u64,
    pub unfinished: u64,
    pub admitted: u64,
    /// Anything else dropped (not a handshake, malformed, unknown connection id).
    pub dropped: u64,
}

/// A handshake whose message 2 went out, waiting for message 3.
struct Pending {
    hs: Handshake,
    from: SocketAddr,
    initiator_cid: u32,
    /// The initiation as received, to recognise a repeat, and our answer to it.
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    answers: u32,
    started: Instant,
}

/// A token bucket refilled at `rate` per second, holding at most `rate` (one second's worth).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(rate),
            last: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate)).min(f64::from(rate));
        self.last = now;
    }

    fn take(&mut self, rate: u32, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&mut self, rate: u32, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= f64::from(rate)
    }
}

/// The unit of per-address limits: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network: a host can pick any address in it).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6([a, b, c, d, 0, 0, 0, 0].into())
            }
        },
    }
}

/// Accepts clients on one port: runs the responder's side of every handshake and hands over
/// each authenticated, admitted client as an established [`Session`].
pub struct Listener {
    cfg: ListenerConfig,
    identity: Identity,
    allow: Box<dyn FnMut() -> Verifier + Send>,
    pending: HashMap<u32, Pending>,
    /// (client address, client connection id) → our connection ids: usually one, more when
    /// initiations with the same address and id differ (a client that started over, or a
    /// forger who saw the first: neither may end the other's handshake).
    by_initiator: HashMap<(SocketAddr, u32), Vec<u32>>,
    cookies: CookieJar,
    budget: Bucket,
    all: Bucket,
    per_ip: HashMap<IpAddr, Bucket>,
    outbox: VecDeque<(Vec<u8>, SocketAddr)>,
    admitted: VecDeque<Admitted>,
    events: VecDeque<ListenEvent>,
    pub stats: ListenerStats,
}

/// A client whose message 3 proved a key the allow-list accepts: ready to become a session.
pub struct Admitted {
    cfg: SessionConfig,
    identity: Identity,
    hs: Handshake,
    ours: u32,
    client_cid: u32,
    from: SocketAddr,
    msg3: Vec<u8>,
    at: Instant,
}

impl Admitted {
    pub fn peer(&self) -> SocketAddr {
        self.from
    }

    /// The client's device key, as its message 3 proved it.
    pub fn remote_key(&self) -> Option<PublicKey> {
        self.hs.remote_public()
    }

    /// The established session, its connection made by `factory`, a Ping queued so that the
    /// client hears from us one round trip after its message 3.
    pub fn into_session(self, factory: ConnectionFactory) -> Result<Session, SessionError> {
        Session::admitted(
            self.cfg,
            &self.identity,
            self.hs,
            self.ours,
            self.client_cid,
            self.from,
            factory,
            self.msg3,
            self.at,
        )
    }
}

impl Listener {
    /// `allow` makes the verifier each handshake checks the client's key with (the owner's
    /// allow-list).
    pub fn new(
        cfg: ListenerConfig,
        identity: &Identity,
        allow: impl FnMut() -> Verifier + Send + 'static,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let cookies = CookieJar::new(now).map_err(|e| SessionError::Random(e.to_string()))?;
        Ok(Listener {
            budget: Bucket::full(cfg.handshakes_per_sec, now),
            all: Bucket::full(cfg.max_handshakes_per_sec, now),
            cfg,
            identity: Identity::from_secret(*identity.secret()),
            allow: Box::new(allow),
            pending: HashMap::new(),
            by_initiator: HashMap::new(),
            cookies,
            per_ip: HashMap::new(),
            outbox: VecDeque::new(),
            admitted: VecDeque::new(),
            events: VecDeque::new(),
            stats: ListenerStats::default(),
        })
    }

    /// Handshakes waiting for their message 3.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Handle a datagram from `from` (RIFT's, as the demultiplexer classified it). Errors say
    /// why it was dropped (or only answered with a Retry); none of them is fatal.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), ListenError> {
        self.stats.datagrams += 1;
        self.stats.bytes_received += datagram.len() as u64;
        let r = match Header::decode(datagram).map(|h| h.packet_type) {
            Ok(PacketType::HandshakeInit) => self.on_init(now, from, datagram),
            Ok(PacketType::HandshakeFinish) => self.on_finish(now, from, datagram),
            Ok(t) => Err(ListenError::Unexpected(t)),
            Err(e) => Err(e.into()),
        };
        match &r {
            Err(ListenError::TooShort(_)) => self.stats.too_short += 1,
            Err(ListenError::RateLimited(_)) => self.stats.rate_limited += 1,
            Err(ListenError::Retried) => {}
            Err(ListenError::Session(SessionError::Handshake(HandshakeError::Noise(_)))) => {
                self.stats.bad_finish += 1
            }
            Err(_) => self.stats.dropped += 1,
            Ok(()) => {}
        }
        r
    }

    fn send(&mut self, datagram: Vec<u8>, to: SocketAddr) {
        if self.outbox.len() < MAX_OUTBOX {
            self.outbox.push_back((datagram, to));
        }
    }

    fn event(&mut self, ev: ListenEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    fn on_init(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), ListenError> {
        // Checked before anything else: no answer to a short initiation can be small enough.
        if datagram.len() < MIN_HANDSHAKE_INIT {
            return Err(ListenError::TooShort(datagram.len()));
        }
        let packet = Packet::decode(datagram)?;
        let Body::HandshakeInit(init) = packet.body else {
            return Err(ListenError::Unexpected(PacketType::HandshakeInit));
        };
        let client_cid = init.source_connection_id;
        if init.version != self.cfg.session.version {
            let vn = version_negotiation(client_cid)?;
            self.stats.version_negotiations += 1;
            self.send(vn, from);
            return Ok(());
        }
        let repeat = self
            .by_initiator
            .get(&(from, client_cid))
            .into_iter()
            .flatten()
            .find(|ours| self.pending.get(ours).is_some_and(|p| p.msg1 == datagram))
            .copied();
        if let Some(p) = repeat.and_then(|ours| self.pending.get_mut(&ours)) {
            // Our message 2 was lost: once more per repeat, never on our own timer.
            if p.answers < self.cfg.max_answers {
                p.answers += 1;
                let m = p.msg2.clone();
                self.stats.repeats += 1;
                self.send(m, from);
            }
            return Ok(());
        }
        let cookie_ok =
            init_cookie(init.noise).is_some_and(|c| self.cookies.check(now, from, client_cid, c));
        // An address over its own rate is dropped before it can spend everyone's budget (a
        // look only: addresses are tracked once they get a handshake, so spoofed ones are not).
        if self.ip_exhausted(now, from.ip()) {
            return Err(ListenError::RateLimited(from.ip()));
        }
        if !cookie_ok {
            let busy = self.pending.len() >= self.cfg.max_pending / 2
                || !self.budget.take(self.cfg.handshakes_per_sec, now);
            if busy {
                let echo = init
                    .noise
                    .get(..RETRY_ECHO_LEN)
                    .and_then(|e| <[u8; RETRY_ECHO_LEN]>::try_from(e).ok())
                    .ok_or(wire::DecodeError::Truncated {
                        needed: RETRY_ECHO_LEN,
                        had: init.noise.len(),
                    })?;
                let cookie = self.cookies.mint(now, from, client_cid);
                let retry = retry_packet(client_cid, echo, cookie)?;
                self.stats.retries_sent += 1;
                self.send(retry, from);
                return Err(ListenError::Retried);
            }
        }
        // Addresses that prove themselves still share one ceiling: the CPU a host gives
        // handshakes is bounded even against many real addresses.
        if !self.all.take(self.cfg.max_handshakes_per_sec, now) || !self.ip_budget(now, from.ip()) {
            return Err(ListenError::RateLimited(from.ip()));
        }
        self.make_room(from.ip());
        let mut hs =
            Handshake::responder(&self.identity, self.cfg.session.version, (self.allow)())?;
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        hs.read_message(init.noise, &mut buf)?;
        let n = hs.write_message(b"", &mut buf)?;
        let noise = buf.get(..n).unwrap_or_default();
        let mut ours = random_cid()?;
        while self.pending.contains_key(&ours) {
            ours = random_cid()?;
        }
        let msg2 = handshake_packet(
            PacketType::HandshakeResponse,
            client_cid,
            self.cfg.session.version,
            ours,
            noise,
        )?;
        self.stats.handshakes += 1;
        self.send(msg2.clone(), from);
        self.by_initiator
            .entry((from, client_cid))
            .or_default()
            .push(ours);
        self.pending.insert(
            ours,
            Pending {
                hs,
                from,
                initiator_cid: client_cid,
                msg1: datagram.to_vec(),
                msg2,
                answers: 0,
                started: now,
            },
        );
        Ok(())
    }

    /// Whether `ip` has used up its handshakes for now.
    fn ip_exhausted(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = self.cfg.handshakes_per_ip_per_sec;
        self.per_ip.get_mut(&ip_key(ip)).is_some_and(|b| {
            b.refill(rate, now);
            b.tokens < 1.0
        })
    }

    /// Whether `ip` may start another handshake now (and count it).
    fn ip_budget(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = self.cfg.handshakes_per_ip_per_sec;
        let key = ip_key(ip);
        if !self.per_ip.contains_key(&key) && self.per_ip.len() >= MAX_TRACKED_IPS {
            // Forget addresses that are back to a full budget: they are as good as new.
            self.per_ip.retain(|_, b| !b.is_full(rate, now));
            if self.per_ip.len() >= MAX_TRACKED_IPS {
                return false;
            }
        }
        self.per_ip
            .entry(key)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Free a slot for a handshake from `ip`: its address's oldest when it has its share; when
    /// the table is full, the oldest of the address holding the most (a client with one
    /// handshake pending goes last).
    fn make_room(&mut self, ip: IpAddr) {
        let key = ip_key(ip);
        let oldest = |it: &mut dyn Iterator<Item = (&u32, &Pending)>| {
            it.min_by_key(|(_, p)| p.started).map(|(&cid, _)| cid)
        };
        let same_ip = self
            .pending
            .values()
            .filter(|p| ip_key(p.from.ip()) == key)
            .count();
        let victim = if same_ip >= self.cfg.max_pending_per_ip {
            oldest(
                &mut self
                    .pending
                    .iter()
                    .filter(|(_, p)| ip_key(p.from.ip()) == key),
            )
        } else if self.pending.len() >= self.cfg.max_pending {
            let mut counts: HashMap<IpAddr, usize> = HashMap::new();
            for p in self.pending.values() {
                *counts.entry(ip_key(p.from.ip())).or_default() += 1;
            }
            let most = counts.values().copied().max().unwrap_or(0);
            oldest(
                &mut self
                    .pending
                    .iter()
                    .filter(|(_, p)| counts.get(&ip_key(p.from.ip())) == Some(&most)),
            )
        } else {
            None
        };
        if let Some(cid) = victim {
            self.stats.evicted += 1;
            self.remove(cid);
        }
    }

    fn remove(&mut self, ours: u32) -> Option<Pending> {
        let p = self.pending.remove(&ours)?;
        let key = (p.from, p.initiator_cid);
        if let Some(list) = self.by_initiator.get_mut(&key) {
            list.retain(|&c| c != ours);
            if list.is_empty() {
                self.by_initiator.remove(&key);
            }
        }
        Some(p)
    }

    fn on_finish(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), ListenError> {
        let packet = Packet::decode(datagram)?;
        let Body::HandshakeFinish(fin) = packet.body else {
            return Err(ListenError::Unexpected(PacketType::HandshakeFinish));
        };
        let ours = packet.header.connection_id;
        let p = self
            .pending
            .get_mut(&ours)
            .ok_or(ListenError::UnknownConnection(ours))?;
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        match p.hs.read_message(fin.noise, &mut buf) {
            Ok(_) => {}
            Err(HandshakeError::Rejected(r)) => {
                // Message 3 proved the key: the refusal is authenticated, and final.
                let Some(p) = self.remove(ours) else {
                    return Ok(());
                };
                self.stats.refused += 1;
                let key = p.hs.remote_public();
                match refusal_close(p.hs, p.initiator_cid, &r.to_string(), datagram.len(), now) {
                    Ok(close) => self.send(close, from),
                    Err(e) => tracing::warn!(error = %e, "could not build the refusal Close"),
                }
                if let Some(key) = key {
                    self.event(ListenEvent::Refused {
                        from,
                        key,
                        reason: r.to_string(),
                    });
                }
                return Ok(());
            }
            // Does not decrypt: forged or corrupt. The handshake waits on, unchanged.
            Err(e) => return Err(e.into()),
        }
        let Some(p) = self.remove(ours) else {
            return Ok(());
        };
        self.stats.admitted += 1;
        self.admitted.push_back(Admitted {
            cfg: self.cfg.session.clone(),
            identity: Identity::from_secret(*self.identity.secret()),
            hs: p.hs,
            ours,
            client_cid: p.initiator_cid,
            from,
            msg3: datagram.to_vec(),
            at: now,
        });
        Ok(())
    }

    /// The next admitted client: authenticated, and allowed.
    pub fn poll_admitted(&mut self) -> Option<Admitted> {
        self.admitted.pop_front()
    }

    /// What happened to handshakes that did not become sessions.
    pub fn poll_event(&mut self) -> Option<ListenEvent> {
        self.events.pop_front()
    }

    /// The next datagram to send, written into `out` (at least `MAX_DATAGRAM` bytes).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        let (d, to) = self.outbox.pop_front()?;
        let dst = out.get_mut(..d.len())?;
        dst.copy_from_slice(&d);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += d.len() as u64;
        Some(Transmit {
            len: d.len(),
            to,
            priority: Priority::Control,
        })
    }

    /// Forget handshakes whose message 3 did not come within the handshake timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let limit = self.cfg.session.handshake_timeout;
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.started) >= limit)
            .map(|(&cid, _)| cid)
            .collect();
        for cid in expired {
            if let Some(p) = self.remove(cid) {
                self.stats.unfinished += 1;
                self.event(ListenEvent::Unfinished { from: p.from });
            }
        }
    }

    /// Earliest time `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.started + self.cfg.session.handshake_timeout)
            .min()
    }
}

fn version_negotiation(client_cid: u32) -> Result<Vec<u8>, SessionError> {
    let mut scratch = [0u8; 2 * 255];
    let body = Body::version_negotiation(wire::SUPPORTED_VERSIONS, &mut scratch)?;
    cleartext_packet(client_cid, body)
}

fn retry_packet(
    client_cid: u32,
    echo: [u8; RETRY_ECHO_LEN],
    cookie: [u8; wire::COOKIE_LEN],
) -> Result<Vec<u8>, SessionError> {
    cleartext_packet(client_cid, Body::Retry { echo, cookie })
}
