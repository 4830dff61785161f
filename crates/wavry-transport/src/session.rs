//! One RIFT session, sans-IO: the client's Noise_XX handshake carried in RIFT handshake packets
//! with retransmission, connection ids, then packet protection around a rift-core `Connection`,
//! and rekeying. The host's side of the handshake is the [`crate::listen::Listener`]'s: it hands
//! over a session only once the client is authenticated and admitted. The socket driver feeds a
//! session datagrams with their source address and sends what it returns.
//!
//! Handshake loss is repaired by the client alone (RIFT.md §6): it resends message 1 until
//! message 2 arrives, and message 3 until the host is heard under the session keys; the host
//! answers each repeated message once and never sends on a timer of its own to an address that
//! has not proved itself. Nothing unauthenticated ends a handshake: a message 2 that does not
//! decrypt is dropped, one whose host key the client refuses is remembered while the client
//! keeps listening for the real host's for [`REFUSAL_GRACE`].

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rift_core::connection::{Connection, ConnectionError};
use rift_core::wire::{
    self, Body, DecodeError, Handshake as HandshakeBody, Header, Packet, PacketType, Priority,
    COOKIE_LEN, HEADER_LEN, MAX_DATAGRAM, MIN_HANDSHAKE_INIT, RETRY_ECHO_LEN, TAG_LEN,
};
use rift_crypto::handshake::{pinned, Handshake, HandshakeError, Verifier, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::{Identity, PublicKey};
use rift_crypto::protect::{
    ProtectError, Protection, KEY_PHASE_BIT, REKEY_AFTER_PACKETS, REKEY_AFTER_TIME,
    REKEY_REQUEST_BIT,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Builds the connection once the handshake has fixed both connection ids.
pub type ConnectionFactory = Box<dyn FnOnce(u32, u32, Instant) -> Connection + Send>;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub version: u16,
    /// First handshake retransmission timeout; doubles up to `max_handshake_rto`.
    pub handshake_rto: Duration,
    pub max_handshake_rto: Duration,
    /// Give up a handshake after this long.
    pub handshake_timeout: Duration,
    /// Close after this long without an authenticated packet.
    pub idle_timeout: Duration,
    /// Send a Ping after this long without sending anything.
    pub keepalive: Duration,
    /// Client: ping (at most once per this interval) after hearing nothing from the host for
    /// this long. While both ends live their feedback reports flow every 25–60 ms, so silence
    /// means the path broke, often because the client's address changed unnoticed (a NAT
    /// rebinding, a new interface): the host follows the first packet from the new address,
    /// within this long instead of at the next keepalive.
    pub probe_after: Duration,
    /// New keys after this long under one key, or this many packets sent under it, whichever
    /// comes first, judged per sending direction (RIFT.md §3). Capped at the defaults, 120 s and
    /// 2^60; lower only for tests.
    pub rekey_after: Duration,
    pub rekey_after_packets: u64,
}

/// After refusing a message 2 (the host key is not the expected one), the client keeps
/// listening this long for one it accepts before it reports the refusal: a refused message 2
/// may be forged by someone who saw message 1, and must not end the handshake by itself.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// `Retry`s a client follows per connection attempt (a host rotating its cookie secret may
/// ask twice; more is a forger or a broken host).
pub const MAX_RETRIES: u8 = 3;
/// Keys not replaced this long after they fell due end the session (RIFT.md §3): a rekey that
/// cannot complete must not keep old keys alive for ever.
pub const REKEY_DEADLINE: Duration = Duration::from_secs(30);

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            version: wire::VERSION,
            handshake_rto: Duration::from_millis(100),
            max_handshake_rto: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(1),
            probe_after: Duration::from_millis(200),
            rekey_after: REKEY_AFTER_TIME,
            rekey_after_packets: REKEY_AFTER_PACKETS,
        }
    }
}

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("packet refused: {0}")]
    Protect(#[from] ProtectError),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("{0:?} packet not expected now")]
    Unexpected(PacketType),
    #[error("packet for connection {got:#010x}, this session is {want:#010x}")]
    WrongConnection { got: u32, want: u32 },
    #[error("the peer speaks RIFT versions {0:?}, this end speaks {1}")]
    VersionMismatch(Vec<u16>, u16),
    #[error("cannot encode a handshake packet: {0}")]
    Encode(#[from] wire::EncodeError),
    #[error("no randomness for a connection id: {0}")]
    Random(String),
    #[error("Retry refused: {0}")]
    Retry(&'static str),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Client: the host never answered (nothing listens there, or the path drops UDP).
    HandshakeTimeout,
    IdleTimeout,
    /// The keys fell due and no rekey replaced them within [`REKEY_DEADLINE`].
    KeysExpired,
    /// The handshake failed: a refused key, a version mismatch, a broken message.
    HandshakeFailed(String),
    /// The peer closed, with its code and reason.
    Peer {
        code: u16,
        reason: String,
    },
    /// This end closed.
    Local,
}

/// A datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub len: usize,
    pub to: SocketAddr,
    pub priority: Priority,
}

enum Phase {
    /// Client: message 1 sent, waiting for message 2.
    AwaitResponse(Box<AwaitResponse>),
    Established(Box<Established>),
    Closed(CloseReason),
}

struct AwaitResponse {
    hs: Handshake,
    msg1: Vec<u8>,
    /// `Retry`s followed so far.
    retries: u8,
    /// A refused message 2 (why, and when), reported if no acceptable one follows.
    refused: Option<(String, Instant)>,
}

struct Established {
    conn: Connection,
    prot: Protection,
    /// Client: message 3, repeated until the host is heard under the new keys.
    msg3: Option<Vec<u8>>,
    /// Host: the message 3 that established the session, so that a repeat of it (the client
    /// has not heard us) is answered with a Ping.
    finish: Option<Vec<u8>>,
    rekey: Rekey,
}

/// A rekey handshake in progress on an established session. Its messages travel in encrypted
/// `Rekey` packets (RIFT.md §3), so only the peer can start, answer or stall one; each state
/// still gives up after the handshake timeout.
enum Rekey {
    Idle,
    /// Client: rekey message 1 sent.
    AwaitResponse {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
        next: Instant,
        started: Instant,
    },
    /// Client: message 3 sent and the new keys pending until the host uses them (`phase`).
    AwaitSwitch {
        msg3: Vec<u8>,
        next: Instant,
        phase: bool,
        started: Instant,
    },
    /// Host: message 2 sent, waiting for message 3.
    AwaitFinish {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
        msg2: Vec<u8>,
        started: Instant,
    },
}

/// Counters of what the session refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub handshake_retransmits: u64,
    pub rejected: u64,
    pub roamed: u64,
    /// Client: rekeys started because the host asked (its sending direction was due).
    pub rekeys_requested: u64,
    /// Client: `Retry`s followed (the host checked our address before doing handshake work).
    pub retries: u64,
    /// Client: message 2s refused for their host key (forged, or the host key changed).
    pub refused_responses: u64,
}

pub struct Session {
    cfg: SessionConfig,
    /// This device's identity, for rekey handshakes.
    identity: Identity,
    is_client: bool,
    local_cid: u32,
    remote_cid: u32,
    peer: SocketAddr,
    remote_key: Option<PublicKey>,
    phase: Phase,
    factory: Option<ConnectionFactory>,
    started: Instant,
    rto: Duration,
    next_retransmit: Instant,
    last_rx: Instant,
    last_tx: Instant,
    /// Client: the last Ping sent because the host had gone quiet.
    last_probe: Instant,
    next_ping: u64,
    outbox: VecDeque<Vec<u8>>,
    /// Close packets still to send before the session counts as closed.
    closing: u8,
    pub stats: SessionStats,
}

/// Close is not acknowledged (RIFT.md §5.3): send it this many times.
const CLOSE_REPEATS: u8 = 3;

/// A random non-zero connection id.
pub fn random_cid() -> Result<u32, SessionError> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| SessionError::Random(e.to_string()))?;
        let cid = u32::from_be_bytes(b);
        if cid != 0 {
            return Ok(cid);
        }
    }
}

/// The handshake message `write_message` reported writing: the first `n` bytes of `buf`.
fn written(buf: &[u8], n: usize) -> Result<&[u8], SessionError> {
    buf.get(..n)
        .ok_or(SessionError::Encode(wire::EncodeError::BufferTooSmall {
            needed: n,
            have: buf.len(),
        }))
}

pub(crate) fn handshake_packet(
    t: PacketType,
    cid: u32,
    version: u16,
    source: u32,
    noise: &[u8],
) -> Result<Vec<u8>, SessionError> {
    let hs = HandshakeBody {
        version,
        source_connection_id: source,
        noise,
    };
    let body = match t {
        PacketType::HandshakeInit => Body::HandshakeInit(hs),
        PacketType::HandshakeResponse => Body::HandshakeResponse(hs),
        _ => Body::HandshakeFinish(hs),
    };
    cleartext_packet(cid, body)
}

/// A cleartext packet (handshake, `VersionNegotiation`, `Retry`) to connection `cid`, with
/// packet number 0 (RIFT.md §6).
pub(crate) fn cleartext_packet(cid: u32, body: Body<'_>) -> Result<Vec<u8>, SessionError> {
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = Packet {
        header: Header {
            packet_type: body.packet_type(),
            flags: 0,
            connection_id: cid,
            packet_number: 0,
        },
        body,
    }
    .encode(&mut out)?;
    out.truncate(n);
    Ok(out)
}

/// The payload of message 1 (RIFT.md §5.1): the cookie of a `Retry` (length byte, then the
/// cookie), then zeros, so that the `HandshakeInit` datagram is exactly [`MIN_HANDSHAKE_INIT`]
/// bytes: no answer to it can be larger.
fn init_payload(cookie: Option<&[u8; COOKIE_LEN]>) -> Vec<u8> {
    // Header, version, source id, the 32-byte ephemeral key.
    let mut p = Vec::with_capacity(MIN_HANDSHAKE_INIT);
    if let Some(c) = cookie {
        p.push(COOKIE_LEN as u8);
        p.extend_from_slice(c);
    }
    p.resize(MIN_HANDSHAKE_INIT - HEADER_LEN - 6 - 32, 0);
    p
}

/// The cookie in a `HandshakeInit`'s Noise message (message 1 is the ephemeral key then the
/// payload, in clear), if there is one.
pub(crate) fn init_cookie(noise: &[u8]) -> Option<&[u8]> {
    match noise.get(32..)?.split_first()? {
        (&len, rest) if len as usize == COOKIE_LEN => rest.get(..COOKIE_LEN),
        _ => None,
    }
}

/// Message 1 of a fresh initiator handshake, as a `HandshakeInit` datagram.
fn first_message(
    hs: &mut Handshake,
    version: u16,
    local_cid: u32,
    cookie: Option<&[u8; COOKIE_LEN]>,
) -> Result<Vec<u8>, SessionError> {
    let mut noise = [0u8; MAX_HANDSHAKE_MESSAGE];
    let n = hs.write_message(&init_payload(cookie), &mut noise)?;
    handshake_packet(
        PacketType::HandshakeInit,
        0,
        version,
        local_cid,
        written(&noise, n)?,
    )
}

/// One Close (code 1, refused) for a client whose key the host refuses, under the finished
/// handshake's keys with packet number 0: the client proved its key, so it may learn at once
/// why it is turned away (RIFT.md §6). At most `max_len` bytes, the length of the message 3 it
/// answers: that datagram's source address is not proved (anyone who completed a handshake
/// can send its message 3 from a forged one), so the answer must not amplify (RIFT.md §10).
pub(crate) fn refusal_close(
    hs: Handshake,
    remote_cid: u32,
    why: &str,
    max_len: usize,
    now: Instant,
) -> Result<Vec<u8>, SessionError> {
    let keys = hs.into_refusal_keys()?;
    // Header, code, reason length, tag: what is left is the reason's.
    let fixed = HEADER_LEN + 4 + TAG_LEN;
    let room = max_len.checked_sub(fixed).ok_or(SessionError::Encode(
        wire::EncodeError::BufferTooSmall {
            needed: fixed,
            have: max_len,
        },
    ))?;
    let mut reason = format!("not allowed: {why}");
    let limit = room.min(wire::MAX_CLOSE_REASON);
    if reason.len() > limit {
        // String::truncate panics off a char boundary; and the client shows no half word.
        let mut cut = limit;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = reason.get(..cut).and_then(|r| r.rfind(' ')) {
            cut = space;
        }
        reason.truncate(cut);
    }
    let packet = Packet {
        header: Header {
            packet_type: PacketType::Close,
            flags: 0,
            connection_id: remote_cid,
            packet_number: 0,
        },
        body: Body::Close {
            code: wire::CLOSE_REFUSED,
            reason: &reason,
        },
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = packet.encode(&mut buf)?;
    let len = Protection::new(&keys, now).seal(&mut buf, n)?;
    buf.truncate(len);
    Ok(buf)
}

impl Session {
    /// Start a session as the client: message 1 is queued at once.
    pub fn connect(
        cfg: SessionConfig,
        identity: &Identity,
        verify: Verifier,
        peer: SocketAddr,
        factory: ConnectionFactory,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let local_cid = random_cid()?;
        let mut hs = Handshake::initiator(identity, cfg.version, verify)?;
        let msg1 = first_message(&mut hs, cfg.version, local_cid, None)?;
        let mut s = Session::new(cfg, identity, true, local_cid, 0, peer, factory, now);
        s.outbox.push_back(msg1.clone());
        s.phase = Phase::AwaitResponse(Box::new(AwaitResponse {
            hs,
            msg1,
            retries: 0,
            refused: None,
        }));
        Ok(s)
    }

    /// The host's session for a client whose message 3 the listener has read and admitted:
    /// established at once, with a Ping queued so the client hears from us one round trip
    /// after its message 3.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn admitted(
        cfg: SessionConfig,
        identity: &Identity,
        hs: Handshake,
        local_cid: u32,
        remote_cid: u32,
        peer: SocketAddr,
        factory: ConnectionFactory,
        msg3: Vec<u8>,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let mut s = Session::new(
            cfg, identity, false, local_cid, remote_cid, peer, factory, now,
        );
        s.establish(hs, Some(msg3), now)?;
        s.ping();
        Ok(s)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: SessionConfig,
        identity: &Identity,
        is_client: bool,
        local_cid: u32,
        remote_cid: u32,
        peer: SocketAddr,
        factory: ConnectionFactory,
        now: Instant,
    ) -> Self {
        Session {
            identity: Identity::from_secret(*identity.secret()),
            is_client,
            rto: cfg.handshake_rto,
            next_retransmit: now + cfg.handshake_rto,
            cfg,
            local_cid,
            remote_cid,
            peer,
            remote_key: None,
            phase: Phase::Closed(CloseReason::Local),
            factory: Some(factory),
            started: now,
            last_rx: now,
            last_tx: now,
            last_probe: now,
            next_ping: 0,
            outbox: VecDeque::new(),
            closing: 0,
            stats: SessionStats::default(),
        }
    }

    pub fn local_cid(&self) -> u32 {
        self.local_cid
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The peer's verified device key, once the handshake has checked it.
    pub fn remote_key(&self) -> Option<PublicKey> {
        self.remote_key
    }

    /// Established and the peer heard under the session keys: for a client, the host has sent
    /// an authenticated packet, so it accepted this client (a host that refuses sends an
    /// authenticated Close instead). A host is confirmed as soon as it is established.
    pub fn is_confirmed(&self) -> bool {
        matches!(&self.phase, Phase::Established(e) if e.msg3.is_none())
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established(_))
    }

    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.phase {
            Phase::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// The connection, once established.
    pub fn connection(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Established(e) => Some(&mut e.conn),
            _ => None,
        }
    }

    pub fn protection_stats(&self) -> Option<rift_crypto::protect::ProtectStats> {
        match &self.phase {
            Phase::Established(e) => Some(e.prot.stats),
            _ => None,
        }
    }

    fn fail(&mut self, reason: CloseReason) {
        self.outbox.clear();
        self.closing = 0;
        self.phase = Phase::Closed(reason);
    }

    /// Close the session. An established session tells the peer with a Close carrying `code`
    /// and `reason` (sent [`CLOSE_REPEATS`] times, ahead of media) and counts as closed once
    /// they are out; a handshake in progress just stops.
    pub fn close(&mut self, code: u16, reason: &str) {
        match &mut self.phase {
            Phase::Established(e) if self.closing == 0 => {
                for _ in 0..CLOSE_REPEATS {
                    e.conn.close(code, reason);
                }
                self.closing = CLOSE_REPEATS;
            }
            Phase::Established(_) | Phase::Closed(_) => {}
            Phase::AwaitResponse(_) => self.fail(CloseReason::Local),
        }
    }

    /// `msg3`: the client's message 3 (repeated until the host is heard), or the one the host
    /// was admitted by (answered with a Ping when it comes again).
    fn establish(
        &mut self,
        hs: Handshake,
        msg3: Option<Vec<u8>>,
        now: Instant,
    ) -> Result<(), SessionError> {
        let (keys, remote) = hs.into_keys()?;
        self.remote_key = Some(remote);
        let Some(factory) = self.factory.take() else {
            return Err(SessionError::Unexpected(PacketType::HandshakeFinish));
        };
        let mut prot = Protection::new(&keys, now);
        prot.set_rekey_limits(self.cfg.rekey_after, self.cfg.rekey_after_packets);
        let (msg3, finish) = if self.is_client {
            (msg3, None)
        } else {
            (None, msg3)
        };
        self.phase = Phase::Established(Box::new(Established {
            conn: factory(self.local_cid, self.remote_cid, now),
            prot,
            msg3,
            finish,
            rekey: Rekey::Idle,
        }));
        self.last_rx = now;
        // The client repeats message 3 on the handshake timer until it hears the host.
        self.rto = self.cfg.handshake_rto;
        self.next_retransmit = now + self.rto;
        Ok(())
    }

    /// Handle a datagram from `from`. Errors describe a packet that was dropped; the session
    /// carries on unless `close_reason` says otherwise.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), SessionError> {
        self.handle_datagram_stamped(now, None, from, datagram)
    }

    /// [`Session::handle_datagram`] for a datagram read at `now` that reached the socket at
    /// `arrived` (the kernel's receive stamp, when there is one).
    pub fn handle_datagram_stamped(
        &mut self,
        now: Instant,
        arrived: Option<Instant>,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), SessionError> {
        let r = self.handle(now, arrived, from, datagram);
        if r.is_err() {
            self.stats.rejected += 1;
        }
        r
    }

    fn handle(
        &mut self,
        now: Instant,
        arrived: Option<Instant>,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<(), SessionError> {
        let header = Header::decode(datagram)?;
        let t = header.packet_type;
        if header.connection_id != self.local_cid {
            return Err(SessionError::WrongConnection {
                got: header.connection_id,
                want: self.local_cid,
            });
        }
        match (&mut self.phase, t) {
            (Phase::Closed(_), _) => Err(SessionError::Unexpected(t)),
            (Phase::AwaitResponse(_), PacketType::HandshakeResponse) => {
                self.on_response(now, from, datagram)
            }
            (Phase::AwaitResponse(_), PacketType::Retry) => self.on_retry(now, datagram),
            (Phase::AwaitResponse(_), PacketType::VersionNegotiation) => {
                // Unauthenticated, like a refused message 2: it ends the attempt only if no
                // message 2 comes within the grace period.
                let packet = Packet::decode(datagram)?;
                if let (Body::VersionNegotiation(v), Phase::AwaitResponse(a)) =
                    (packet.body, &mut self.phase)
                {
                    let versions: Vec<u16> = v.versions().collect();
                    if !versions.contains(&self.cfg.version) && a.refused.is_none() {
                        let e = SessionError::VersionMismatch(versions, self.cfg.version);
                        a.refused = Some((e.to_string(), now));
                    }
                }
                Ok(())
            }
            // The host did not hear our message 3 and saw message 1 again: repeat message 3.
            (Phase::Established(e), PacketType::HandshakeResponse) => {
                if let Some(m3) = &e.msg3 {
                    self.outbox.push_back(m3.clone());
                    self.stats.handshake_retransmits += 1;
                }
                Ok(())
            }
            // The client did not hear us since its message 3: one Ping answers each repeat
            // (smaller than the message, sent only to the address the session already has).
            (Phase::Established(e), PacketType::HandshakeFinish) => {
                if e.finish.as_deref() == Some(&*datagram) {
                    e.conn.send_ping(self.next_ping);
                    self.next_ping += 1;
                }
                Ok(())
            }
            (Phase::Established(e), t) if t.is_encrypted() => {
                let n = e.prot.open(now, datagram)?;
                // Header and plaintext body, the tag removed.
                let plain = datagram.get(..n).ok_or(DecodeError::Truncated {
                    needed: n,
                    had: datagram.len(),
                })?;
                e.msg3 = None;
                // The host asks for a rekey when its direction is due. Only a packet under the
                // current keys counts: late packets under the old keys still carry the request
                // the rekey just answered. (Opening leaves the header as decoded.)
                let flags = header.flags;
                let asked = self.is_client
                    && flags & REKEY_REQUEST_BIT != 0
                    && (flags & KEY_PHASE_BIT != 0) == e.prot.key_phase()
                    && matches!(e.rekey, Rekey::Idle);
                if let Rekey::AwaitSwitch { phase, .. } = e.rekey {
                    if e.prot.key_phase() == phase {
                        e.rekey = Rekey::Idle;
                    }
                }
                self.last_rx = now;
                if from != self.peer {
                    // Authenticated from a new address: the peer roamed.
                    self.peer = from;
                    self.stats.roamed += 1;
                }
                // Close and Rekey are the session's; everything goes on to the connection
                // (which counts it in the feedback, or refuses it if malformed).
                if matches!(t, PacketType::Close | PacketType::Rekey) {
                    match Packet::decode(plain).map(|p| p.body) {
                        Ok(Body::Close { code, reason }) => {
                            let reason = reason.to_owned();
                            self.fail(CloseReason::Peer { code, reason });
                            return Ok(());
                        }
                        Ok(Body::Rekey { step, noise }) => {
                            if let Err(err) = self.on_rekey(now, step, noise) {
                                tracing::debug!(error = %err, step, "rekey message refused");
                            }
                        }
                        _ => {}
                    }
                }
                let Phase::Established(e) = &mut self.phase else {
                    return Ok(());
                };
                let handled = e.conn.handle_packet_stamped(now, arrived, plain);
                if asked {
                    self.stats.rekeys_requested += 1;
                    if let Err(err) = self.rekey(now) {
                        tracing::warn!(error = %err, "could not start a rekey the host asked for");
                    }
                }
                Ok(handled?)
            }
            _ => Err(SessionError::Unexpected(t)),
        }
    }

    /// Client: message 2. One that does not decrypt is dropped; one whose host key is refused
    /// is remembered while we listen on (see [`REFUSAL_GRACE`]); an accepted one establishes
    /// the session and sends message 3.
    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), SessionError> {
        let packet = Packet::decode(datagram)?;
        let (Body::HandshakeResponse(resp), Phase::AwaitResponse(a)) =
            (packet.body, &mut self.phase)
        else {
            return Err(SessionError::Unexpected(PacketType::HandshakeResponse));
        };
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        if let Err(e) = a.hs.read_message(resp.noise, &mut buf) {
            if let HandshakeError::Rejected(r) = &e {
                self.stats.refused_responses += 1;
                a.refused.get_or_insert((e.to_string(), now));
                tracing::debug!(reason = %r, %from, "message 2 refused; still listening");
            }
            return Err(e.into());
        }
        let Phase::AwaitResponse(a) =
            std::mem::replace(&mut self.phase, Phase::Closed(CloseReason::Local))
        else {
            return Err(SessionError::Unexpected(PacketType::HandshakeResponse));
        };
        let mut hs = a.hs;
        self.remote_cid = resp.source_connection_id;
        let n = hs.write_message(b"", &mut buf)?;
        let msg3 = handshake_packet(
            PacketType::HandshakeFinish,
            self.remote_cid,
            self.cfg.version,
            self.local_cid,
            written(&buf, n)?,
        )?;
        self.outbox.push_back(msg3.clone());
        self.peer = from;
        self.establish(hs, Some(msg3), now)
    }

    /// Client: the host checks our address before doing handshake work. Start over with its
    /// cookie in a fresh message 1, if the Retry answers our message 1 (it echoes the start of
    /// our ephemeral key, which an off-path forger never saw).
    fn on_retry(&mut self, now: Instant, datagram: &[u8]) -> Result<(), SessionError> {
        let packet = Packet::decode(datagram)?;
        let (Body::Retry { echo, cookie }, Phase::AwaitResponse(a)) =
            (packet.body, &mut self.phase)
        else {
            return Err(SessionError::Unexpected(PacketType::Retry));
        };
        // The ephemeral key starts the Noise message, after header, version and source id.
        let ours = a.msg1.get(HEADER_LEN + 6..HEADER_LEN + 6 + RETRY_ECHO_LEN);
        if ours != Some(&echo[..]) {
            return Err(SessionError::Retry("it does not answer our message 1"));
        }
        if a.retries >= MAX_RETRIES {
            return Err(SessionError::Retry("too many"));
        }
        let Phase::AwaitResponse(a) =
            std::mem::replace(&mut self.phase, Phase::Closed(CloseReason::Local))
        else {
            return Err(SessionError::Unexpected(PacketType::Retry));
        };
        let verify = a.hs.into_verifier();
        let result = Handshake::initiator(&self.identity, self.cfg.version, verify)
            .map_err(SessionError::from)
            .and_then(|mut hs| {
                let msg1 = first_message(&mut hs, self.cfg.version, self.local_cid, Some(&cookie))?;
                Ok((hs, msg1))
            });
        match result {
            Ok((hs, msg1)) => {
                self.outbox.push_back(msg1.clone());
                self.stats.retries += 1;
                self.rto = self.cfg.handshake_rto;
                self.next_retransmit = now + self.rto;
                self.phase = Phase::AwaitResponse(Box::new(AwaitResponse {
                    hs,
                    msg1,
                    retries: a.retries + 1,
                    refused: a.refused,
                }));
                Ok(())
            }
            Err(e) => {
                self.fail(CloseReason::HandshakeFailed(e.to_string()));
                Err(e)
            }
        }
    }

    /// A rekey message (authenticated: it arrived under the session keys). Only the client
    /// starts rekeys; the host answers.
    fn on_rekey(&mut self, now: Instant, step: u8, noise: &[u8]) -> Result<(), SessionError> {
        let Phase::Established(e) = &mut self.phase else {
            return Err(SessionError::Unexpected(PacketType::Rekey));
        };
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        match (step, &mut e.rekey, self.is_client) {
            (2, Rekey::AwaitResponse { hs, .. }, true) => {
                hs.read_message(noise, &mut buf)?;
                let n = hs.write_message(b"", &mut buf)?;
                let msg3 = written(&buf, n)?.to_vec();
                let Rekey::AwaitResponse { hs, .. } = std::mem::replace(&mut e.rekey, Rekey::Idle)
                else {
                    return Ok(());
                };
                let (keys, _) = hs.into_keys()?;
                e.prot.rekey_pending(&keys)?;
                e.conn.send_rekey(3, &msg3);
                e.rekey = Rekey::AwaitSwitch {
                    msg3,
                    next: now + self.cfg.handshake_rto,
                    phase: !e.prot.key_phase(),
                    started: now,
                };
            }
            // Our message 3 was lost: the host repeats message 2.
            (2, Rekey::AwaitSwitch { msg3, .. }, true) => {
                e.conn.send_rekey(3, msg3);
                self.stats.handshake_retransmits += 1;
            }
            // Our message 2 was lost: the client repeats message 1.
            (1, Rekey::AwaitFinish { msg1, msg2, .. }, false) if noise == msg1.as_slice() => {
                e.conn.send_rekey(2, msg2);
                self.stats.handshake_retransmits += 1;
            }
            // A new rekey (the client gave up on the last one, or none is under way).
            (1, Rekey::Idle | Rekey::AwaitFinish { .. }, false) => {
                let Some(client) = self.remote_key else {
                    return Err(SessionError::Unexpected(PacketType::Rekey));
                };
                let mut hs = Box::new(Handshake::responder(
                    &self.identity,
                    self.cfg.version,
                    pinned(client),
                )?);
                hs.read_message(noise, &mut buf)?;
                let n = hs.write_message(b"", &mut buf)?;
                let msg2 = written(&buf, n)?.to_vec();
                e.conn.send_rekey(2, &msg2);
                e.rekey = Rekey::AwaitFinish {
                    hs,
                    msg1: noise.to_vec(),
                    msg2,
                    started: now,
                };
            }
            (3, Rekey::AwaitFinish { hs, .. }, false) => {
                hs.read_message(noise, &mut buf)?;
                let Rekey::AwaitFinish { hs, .. } = std::mem::replace(&mut e.rekey, Rekey::Idle)
                else {
                    return Ok(());
                };
                let (keys, _) = hs.into_keys()?;
                e.prot.rekey_now(&keys, now);
            }
            // Repeats of finished exchanges.
            _ => {}
        }
        Ok(())
    }

    /// Send a Ping now (on an established session). Call it when this end's address has changed
    /// (a new socket or interface): the peer follows the first authenticated packet from the
    /// new address, and a client that hears nothing on the old path may otherwise stay silent
    /// until its silence probe (`SessionConfig::probe_after`).
    pub fn ping(&mut self) {
        if let Phase::Established(e) = &mut self.phase {
            e.conn.send_ping(self.next_ping);
            self.next_ping += 1;
        }
    }

    /// Start a rekey handshake now (the client does this by itself when the keys are due).
    pub fn rekey(&mut self, now: Instant) -> Result<(), SessionError> {
        let Phase::Established(e) = &mut self.phase else {
            return Err(SessionError::Unexpected(PacketType::Rekey));
        };
        if !self.is_client || !matches!(e.rekey, Rekey::Idle) {
            return Ok(());
        }
        let Some(host) = self.remote_key else {
            return Ok(());
        };
        let mut hs = Box::new(Handshake::initiator(
            &self.identity,
            self.cfg.version,
            pinned(host),
        )?);
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        let n = hs.write_message(b"", &mut buf)?;
        let msg1 = written(&buf, n)?.to_vec();
        e.conn.send_rekey(1, &msg1);
        e.rekey = Rekey::AwaitResponse {
            hs,
            msg1,
            next: now + self.cfg.handshake_rto,
            started: now,
        };
        Ok(())
    }

    /// Run timers due at `now`: handshake retransmission and timeout, idle timeout, keepalive,
    /// rekeying, and the connection's own timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::AwaitResponse(a) => {
                let grace_over = a
                    .refused
                    .as_ref()
                    .is_some_and(|(_, at)| now >= *at + REFUSAL_GRACE);
                let timed_out =
                    now.saturating_duration_since(self.started) >= self.cfg.handshake_timeout;
                if grace_over || timed_out {
                    let reason = match a.refused.take() {
                        Some((why, _)) => CloseReason::HandshakeFailed(why),
                        None => CloseReason::HandshakeTimeout,
                    };
                    self.fail(reason);
                } else if now >= self.next_retransmit {
                    self.outbox.push_back(a.msg1.clone());
                    self.backoff(now);
                }
            }
            Phase::Established(e) => {
                if now.saturating_duration_since(self.last_rx) >= self.cfg.idle_timeout {
                    self.fail(CloseReason::IdleTimeout);
                    return;
                }
                if e.prot.key_age(now) >= self.cfg.rekey_after + REKEY_DEADLINE {
                    self.fail(CloseReason::KeysExpired);
                    return;
                }
                if let Some(m3) = &e.msg3 {
                    if now >= self.next_retransmit {
                        self.outbox.push_back(m3.clone());
                        self.backoff(now);
                    }
                }
                let Phase::Established(e) = &mut self.phase else {
                    return;
                };
                let probe = self.is_client
                    && now.saturating_duration_since(self.last_rx.max(self.last_probe))
                        >= self.cfg.probe_after;
                if probe {
                    self.last_probe = now;
                }
                if probe || now.saturating_duration_since(self.last_tx) >= self.cfg.keepalive {
                    e.conn.send_ping(self.next_ping);
                    self.next_ping += 1;
                }
                e.conn.handle_timeout(now);
                let (rto, limit) = (self.cfg.handshake_rto, self.cfg.handshake_timeout);
                let start = match &mut e.rekey {
                    Rekey::AwaitResponse { started, .. }
                    | Rekey::AwaitSwitch { started, .. }
                    | Rekey::AwaitFinish { started, .. }
                        if now.saturating_duration_since(*started) >= limit =>
                    {
                        // Given up: a client starts afresh when the keys are still due (RIFT.md
                        // §3); keys it was waiting to use are dropped.
                        if matches!(e.rekey, Rekey::AwaitSwitch { .. }) {
                            e.prot.abandon_rekey();
                        }
                        e.rekey = Rekey::Idle;
                        false
                    }
                    Rekey::AwaitResponse { msg1, next, .. } => {
                        if now >= *next {
                            e.conn.send_rekey(1, msg1);
                            self.stats.handshake_retransmits += 1;
                            *next = now + rto;
                        }
                        false
                    }
                    Rekey::AwaitSwitch { msg3, next, .. } => {
                        if now >= *next {
                            e.conn.send_rekey(3, msg3);
                            self.stats.handshake_retransmits += 1;
                            *next = now + rto;
                        }
                        false
                    }
                    Rekey::Idle => self.is_client && e.prot.needs_rekey(now),
                    Rekey::AwaitFinish { .. } => false,
                };
                if start {
                    if let Err(err) = self.rekey(now) {
                        tracing::warn!(error = %err, "could not start a rekey");
                    }
                }
            }
            Phase::Closed(_) => {}
        }
    }

    /// The next handshake retransmission, after the one just queued.
    fn backoff(&mut self, now: Instant) {
        self.stats.handshake_retransmits += 1;
        self.rto = (self.rto * 2).min(self.cfg.max_handshake_rto);
        self.next_retransmit = now + self.rto;
    }

    /// Earliest time `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitResponse(a) => {
                let mut t = self
                    .next_retransmit
                    .min(self.started + self.cfg.handshake_timeout);
                if let Some((_, at)) = &a.refused {
                    t = t.min(*at + REFUSAL_GRACE);
                }
                Some(t)
            }
            Phase::Established(e) => {
                let mut own = (self.last_rx + self.cfg.idle_timeout)
                    .min(self.last_tx + self.cfg.keepalive)
                    .min(
                        e.prot
                            .key_age_deadline(self.cfg.rekey_after + REKEY_DEADLINE),
                    );
                if self.is_client {
                    own = own.min(self.last_rx.max(self.last_probe) + self.cfg.probe_after);
                }
                if e.msg3.is_some() {
                    own = own.min(self.next_retransmit);
                }
                match &e.rekey {
                    Rekey::AwaitResponse { next, started, .. }
                    | Rekey::AwaitSwitch { next, started, .. } => {
                        own = own.min(*next).min(*started + self.cfg.handshake_timeout);
                    }
                    Rekey::AwaitFinish { started, .. } => {
                        own = own.min(*started + self.cfg.handshake_timeout);
                    }
                    Rekey::Idle => {}
                }
                Some(e.conn.poll_timeout().map_or(own, |t| t.min(own)))
            }
            Phase::Closed(_) => None,
        }
    }

    /// The next datagram to send, written into `out` (at least `MAX_DATAGRAM` bytes).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, SessionError> {
        if let Some(d) = self.outbox.front() {
            let len = d.len();
            let Some(dst) = out.get_mut(..len) else {
                return Err(SessionError::Encode(wire::EncodeError::BufferTooSmall {
                    needed: len,
                    have: out.len(),
                }));
            };
            dst.copy_from_slice(d);
            self.outbox.pop_front();
            self.last_tx = now;
            return Ok(Some(Transmit {
                len,
                to: self.peer,
                priority: Priority::Control,
            }));
        }
        let Phase::Established(e) = &mut self.phase else {
            return Ok(None);
        };
        let Some(tx) = e.conn.poll_transmit(now, out)? else {
            return Ok(None);
        };
        let is_close = self.closing > 0
            && out
                .get(..tx.len)
                .and_then(|p| Header::decode(p).ok())
                .is_some_and(|h| h.packet_type == PacketType::Close);
        // Only the client starts rekeys; a host whose own sending direction is due asks for one
        // on every packet until the client has started it (RIFT.md §3).
        if !self.is_client && matches!(e.rekey, Rekey::Idle) && e.prot.needs_rekey(now) {
            if let Some(flags) = out.get_mut(1) {
                *flags |= REKEY_REQUEST_BIT;
            }
        }
        let len = e.prot.seal(out, tx.len)?;
        debug_assert!(len > HEADER_LEN);
        self.last_tx = now;
        if is_close {
            self.closing -= 1;
            if self.closing == 0 {
                self.phase = Phase::Closed(CloseReason::Local);
            }
        }
        Ok(Some(Transmit {
            len,
            to: self.peer,
            priority: tx.priority,
        }))
    }
}
