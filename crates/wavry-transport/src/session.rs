//! One RIFT session, sans-IO: the Noise_XX handshake carried in RIFT handshake packets with
//! retransmission, connection ids, then packet protection around a rift-core `Connection`.
//! The socket driver feeds it datagrams with their source address and sends what it returns.
//!
//! Handshake loss is repaired by retransmission in both directions: the client resends message
//! 1 until message 2 arrives; the host resends message 2 until message 3 arrives; a client that
//! sees message 2 again (its message 3 was lost) resends message 3. The client counts as
//! confirmed once any authenticated packet from the host arrives.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rift_core::connection::{Connection, ConnectionError};
use rift_core::wire::{
    self, Body, DecodeError, Handshake as HandshakeBody, Header, Packet, PacketType, Priority,
    HEADER_LEN, MAX_DATAGRAM,
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
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Client: the host never answered (nothing listens there, or the path drops UDP).
    HandshakeTimeout,
    /// Host: the client started a handshake, our message 2 went out, and message 3 never came
    /// within the handshake timeout. Most likely the client refused this host's key (a
    /// changed or wrong host key: the client's pin or known-hosts entry does not match), or
    /// it went away. A client that refuses sends nothing, by design (RIFT.md §6).
    HandshakeUnfinished,
    IdleTimeout,
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
    AwaitResponse {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
    },
    /// Host: message 2 sent, waiting for message 3.
    AwaitFinish {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
        msg2: Vec<u8>,
    },
    Established(Box<Established>),
    Closed(CloseReason),
}

struct Established {
    conn: Connection,
    prot: Protection,
    /// Client: message 3, kept until the host is heard under the new keys.
    msg3: Option<Vec<u8>>,
    rekey: Rekey,
}

/// A rekey handshake in progress on an established session.
enum Rekey {
    Idle,
    /// Client: rekey message 1 sent.
    AwaitResponse {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
        next: Instant,
    },
    /// Client: message 3 sent and the new keys pending until the host uses them (`phase`).
    AwaitSwitch {
        msg3: Vec<u8>,
        next: Instant,
        phase: bool,
    },
    /// Host: message 2 sent, waiting for message 3.
    AwaitFinish {
        hs: Box<Handshake>,
        msg1: Vec<u8>,
        msg2: Vec<u8>,
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

fn handshake_packet(
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
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = Packet {
        header: Header {
            packet_type: t,
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
        let mut hs = Box::new(Handshake::initiator(identity, cfg.version, verify)?);
        let mut noise = [0u8; MAX_HANDSHAKE_MESSAGE];
        let n = hs.write_message(b"", &mut noise)?;
        let msg1 = handshake_packet(
            PacketType::HandshakeInit,
            0,
            cfg.version,
            local_cid,
            written(&noise, n)?,
        )?;
        let mut s = Session::new(cfg, identity, true, local_cid, 0, peer, factory, now);
        s.outbox.push_back(msg1.clone());
        s.phase = Phase::AwaitResponse { hs, msg1 };
        Ok(s)
    }

    /// Start a session as the host from a client's `HandshakeInit`; message 2 is queued.
    pub fn accept(
        cfg: SessionConfig,
        identity: &Identity,
        allow: Verifier,
        datagram: &[u8],
        from: SocketAddr,
        factory: ConnectionFactory,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let packet = Packet::decode(datagram)?;
        let Body::HandshakeInit(init) = packet.body else {
            return Err(SessionError::Unexpected(packet.header.packet_type));
        };
        if init.version != cfg.version {
            return Err(SessionError::VersionMismatch(
                vec![init.version],
                cfg.version,
            ));
        }
        let local_cid = random_cid()?;
        let mut hs = Box::new(Handshake::responder(identity, cfg.version, allow)?);
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        hs.read_message(init.noise, &mut buf)?;
        let n = hs.write_message(b"", &mut buf)?;
        let msg2 = handshake_packet(
            PacketType::HandshakeResponse,
            init.source_connection_id,
            cfg.version,
            local_cid,
            written(&buf, n)?,
        )?;
        let mut s = Session::new(
            cfg,
            identity,
            false,
            local_cid,
            init.source_connection_id,
            from,
            factory,
            now,
        );
        s.outbox.push_back(msg2.clone());
        s.phase = Phase::AwaitFinish {
            hs,
            msg1: datagram.to_vec(),
            msg2,
        };
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
            Phase::AwaitResponse { .. } | Phase::AwaitFinish { .. } => {
                self.fail(CloseReason::Local)
            }
        }
    }

    /// Tell a client whose key was refused why, in one Close under the finished handshake's
    /// keys, instead of leaving it to time out.
    fn send_refusal(&mut self, hs: Box<Handshake>, why: &str, now: Instant) {
        let Ok(keys) = hs.into_refusal_keys() else {
            return;
        };
        let mut reason = format!("not allowed: {why}");
        reason.truncate(wire::MAX_CLOSE_REASON);
        while !reason.is_char_boundary(reason.len()) {
            reason.pop();
        }
        let packet = Packet {
            header: Header {
                packet_type: PacketType::Close,
                flags: 0,
                connection_id: self.remote_cid,
                packet_number: 0,
            },
            body: Body::Close {
                code: wire::CLOSE_REFUSED,
                reason: &reason,
            },
        };
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let sealed = packet
            .encode(&mut buf)
            .map_err(SessionError::from)
            .and_then(|n| Ok(Protection::new(&keys, now).seal(&mut buf, n)?));
        match sealed {
            Ok(len) => {
                buf.truncate(len);
                self.outbox.push_back(buf);
            }
            Err(e) => tracing::warn!(error = %e, "could not build the refusal Close"),
        }
    }

    fn establish(
        &mut self,
        hs: Box<Handshake>,
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
        self.phase = Phase::Established(Box::new(Established {
            conn: factory(self.local_cid, self.remote_cid, now),
            prot,
            msg3,
            rekey: Rekey::Idle,
        }));
        self.last_rx = now;
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
        if t != PacketType::HandshakeInit && header.connection_id != self.local_cid {
            return Err(SessionError::WrongConnection {
                got: header.connection_id,
                want: self.local_cid,
            });
        }
        match (&mut self.phase, t) {
            (Phase::Closed(_), _) => Err(SessionError::Unexpected(t)),
            (Phase::AwaitResponse { .. }, PacketType::HandshakeResponse) => {
                let packet = Packet::decode(datagram)?;
                let Body::HandshakeResponse(resp) = packet.body else {
                    return Err(SessionError::Unexpected(t));
                };
                let Phase::AwaitResponse { mut hs, .. } =
                    std::mem::replace(&mut self.phase, Phase::Closed(CloseReason::Local))
                else {
                    return Err(SessionError::Unexpected(t));
                };
                let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
                if let Err(e) = hs.read_message(resp.noise, &mut buf) {
                    self.fail(CloseReason::HandshakeFailed(e.to_string()));
                    return Err(e.into());
                }
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
            (Phase::AwaitResponse { .. }, PacketType::VersionNegotiation) => {
                let packet = Packet::decode(datagram)?;
                if let Body::VersionNegotiation(v) = packet.body {
                    let versions: Vec<u16> = v.versions().collect();
                    if !versions.contains(&self.cfg.version) {
                        let e = SessionError::VersionMismatch(versions, self.cfg.version);
                        self.fail(CloseReason::HandshakeFailed(e.to_string()));
                        return Err(e);
                    }
                }
                Ok(())
            }
            (Phase::AwaitFinish { msg1, msg2, .. }, PacketType::HandshakeInit) => {
                // Our message 2 was lost: the client repeats message 1.
                if datagram == msg1.as_slice() {
                    self.outbox.push_back(msg2.clone());
                    self.stats.handshake_retransmits += 1;
                }
                Ok(())
            }
            (Phase::AwaitFinish { .. }, PacketType::HandshakeFinish) => {
                let packet = Packet::decode(datagram)?;
                let Body::HandshakeFinish(fin) = packet.body else {
                    return Err(SessionError::Unexpected(t));
                };
                let Phase::AwaitFinish { mut hs, .. } =
                    std::mem::replace(&mut self.phase, Phase::Closed(CloseReason::Local))
                else {
                    return Err(SessionError::Unexpected(t));
                };
                let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
                if let Err(e) = hs.read_message(fin.noise, &mut buf) {
                    self.fail(CloseReason::HandshakeFailed(e.to_string()));
                    if let HandshakeError::Rejected(r) = &e {
                        self.peer = from;
                        self.send_refusal(hs, &r.to_string(), now);
                    }
                    return Err(e.into());
                }
                self.peer = from;
                self.establish(hs, None, now)?;
                // Confirm the client at once (its first authenticated packet from us), rather
                // than when the application or the keepalive first sends something.
                if let Phase::Established(e) = &mut self.phase {
                    e.conn.send_ping(self.next_ping);
                    self.next_ping += 1;
                }
                Ok(())
            }
            (
                Phase::Established(_),
                PacketType::HandshakeInit
                | PacketType::HandshakeResponse
                | PacketType::HandshakeFinish,
            ) => self.handle_rekey(now, datagram),
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
                if t == PacketType::Close {
                    if let Ok(Packet {
                        body: Body::Close { code, reason },
                        ..
                    }) = Packet::decode(plain)
                    {
                        let reason = reason.to_owned();
                        self.fail(CloseReason::Peer { code, reason });
                        return Ok(());
                    }
                }
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

    /// Handshake packets on an established session: the rekey handshake (same identities, the
    /// peer's key pinned to the one it proved first), or repeats of the first handshake.
    fn handle_rekey(&mut self, now: Instant, datagram: &[u8]) -> Result<(), SessionError> {
        let Phase::Established(e) = &mut self.phase else {
            return Err(SessionError::Unexpected(PacketType::HandshakeInit));
        };
        let packet = Packet::decode(datagram)?;
        let version = self.cfg.version;
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
        match (packet.body, &mut e.rekey) {
            // The first handshake's message 3 was lost: the host repeats message 2.
            (Body::HandshakeResponse(_), Rekey::Idle) => {
                if let Some(m3) = &e.msg3 {
                    self.outbox.push_back(m3.clone());
                    self.stats.handshake_retransmits += 1;
                }
            }
            (Body::HandshakeResponse(resp), Rekey::AwaitResponse { hs, .. }) => {
                hs.read_message(resp.noise, &mut buf)?;
                let n = hs.write_message(b"", &mut buf)?;
                let msg3 = handshake_packet(
                    PacketType::HandshakeFinish,
                    self.remote_cid,
                    version,
                    self.local_cid,
                    written(&buf, n)?,
                )?;
                let Rekey::AwaitResponse { hs, .. } = std::mem::replace(&mut e.rekey, Rekey::Idle)
                else {
                    return Ok(());
                };
                let (keys, _) = hs.into_keys()?;
                e.prot.rekey_pending(&keys)?;
                self.outbox.push_back(msg3.clone());
                e.rekey = Rekey::AwaitSwitch {
                    msg3,
                    next: now + self.cfg.handshake_rto,
                    phase: !e.prot.key_phase(),
                };
            }
            (Body::HandshakeResponse(_), Rekey::AwaitSwitch { msg3, .. }) => {
                self.outbox.push_back(msg3.clone());
                self.stats.handshake_retransmits += 1;
            }
            (Body::HandshakeInit(init), Rekey::Idle)
                if !self.is_client && packet.header.connection_id == self.local_cid =>
            {
                let Some(client) = self.remote_key else {
                    return Err(SessionError::Unexpected(PacketType::HandshakeInit));
                };
                let mut hs = Box::new(Handshake::responder(
                    &self.identity,
                    version,
                    pinned(client),
                )?);
                hs.read_message(init.noise, &mut buf)?;
                let n = hs.write_message(b"", &mut buf)?;
                let msg2 = handshake_packet(
                    PacketType::HandshakeResponse,
                    self.remote_cid,
                    version,
                    self.local_cid,
                    written(&buf, n)?,
                )?;
                self.outbox.push_back(msg2.clone());
                e.rekey = Rekey::AwaitFinish {
                    hs,
                    msg1: datagram.to_vec(),
                    msg2,
                };
            }
            // Our rekey message 2 was lost: the client repeats message 1.
            (Body::HandshakeInit(_), Rekey::AwaitFinish { msg1, msg2, .. })
                if datagram == msg1.as_slice() =>
            {
                self.outbox.push_back(msg2.clone());
                self.stats.handshake_retransmits += 1;
            }
            (Body::HandshakeFinish(fin), Rekey::AwaitFinish { hs, .. }) => {
                hs.read_message(fin.noise, &mut buf)?;
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
            return Err(SessionError::Unexpected(PacketType::HandshakeInit));
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
        let msg1 = handshake_packet(
            PacketType::HandshakeInit,
            self.remote_cid,
            self.cfg.version,
            self.local_cid,
            written(&buf, n)?,
        )?;
        self.outbox.push_back(msg1.clone());
        e.rekey = Rekey::AwaitResponse {
            hs,
            msg1,
            next: now + self.cfg.handshake_rto,
        };
        Ok(())
    }

    /// Run timers due at `now`: handshake retransmission and timeout, idle timeout, keepalive,
    /// and the connection's own timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::AwaitResponse { msg1: m, .. } | Phase::AwaitFinish { msg2: m, .. } => {
                if now.saturating_duration_since(self.started) >= self.cfg.handshake_timeout {
                    self.fail(if self.is_client {
                        CloseReason::HandshakeTimeout
                    } else {
                        CloseReason::HandshakeUnfinished
                    });
                } else if now >= self.next_retransmit {
                    self.outbox.push_back(m.clone());
                    self.stats.handshake_retransmits += 1;
                    self.rto = (self.rto * 2).min(self.cfg.max_handshake_rto);
                    self.next_retransmit = now + self.rto;
                }
            }
            Phase::Established(e) => {
                if now.saturating_duration_since(self.last_rx) >= self.cfg.idle_timeout {
                    self.fail(CloseReason::IdleTimeout);
                    return;
                }
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
                let rto = self.cfg.handshake_rto;
                let start = match &mut e.rekey {
                    Rekey::AwaitResponse { msg1: m, next, .. }
                    | Rekey::AwaitSwitch { msg3: m, next, .. } => {
                        if now >= *next {
                            self.outbox.push_back(m.clone());
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

    /// Earliest time `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitResponse { .. } | Phase::AwaitFinish { .. } => Some(
                self.next_retransmit
                    .min(self.started + self.cfg.handshake_timeout),
            ),
            Phase::Established(e) => {
                let mut own =
                    (self.last_rx + self.cfg.idle_timeout).min(self.last_tx + self.cfg.keepalive);
                if self.is_client {
                    own = own.min(self.last_rx.max(self.last_probe) + self.cfg.probe_after);
                }
                if let Rekey::AwaitResponse { next, .. } | Rekey::AwaitSwitch { next, .. } =
                    &e.rekey
                {
                    own = own.min(*next);
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
