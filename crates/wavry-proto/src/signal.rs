//! The gateway's signaling WebSocket (`GET /v1/signal`, docs/SIGNALING.md): one JSON object
//! per text message, tagged by `type`. Peers (hosts and clients) send [`PeerMessage`]s; the
//! gateway sends [`ServerEnvelope`]s, each a [`ServerMessage`] with a sequence number so a peer
//! that reconnects can resume without losing any.
//!
//! Peer messages refuse unknown fields (a typo is an error, not a silent no-op); gateway
//! messages tolerate them, so an older peer keeps working when the gateway adds one.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::net::SocketAddr;

use data_encoding::BASE64URL_NOPAD;
use rift_crypto::signing::{SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::registry::DeviceKind;

/// The signaling protocol's version, sent in `hello` and `welcome`.
pub const SIGNAL_VERSION: u32 = 1;
/// Largest message either side sends, in bytes; larger ones close the WebSocket (1009).
pub const MAX_SIGNAL_MESSAGE_BYTES: usize = 16 * 1024;
/// Most candidates in one session description.
pub const MAX_CANDIDATES: usize = 32;
/// The context a host record's signature covers (see `rift_crypto::signing`).
pub const HOST_RECORD_CONTEXT: &str = "wavry host record v1";

/// Peer → gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerMessage {
    /// The first message on every WebSocket: who is speaking. Anything else first, or nothing
    /// within 10 s, closes the socket.
    Hello {
        version: u32,
        /// A login session's bearer token (`POST /v1/auth/login`).
        token: String,
        /// One of the account's registered devices; a host device goes online.
        device_id: String,
        /// Continue an earlier signaling session (after a dropped connection).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
    },
    /// Heartbeat: send one at least every `heartbeat_secs` (from `welcome`); the gateway
    /// answers `pong` and closes a socket silent for three intervals.
    Ping {
        #[serde(default)]
        nonce: u64,
    },
    /// A client asks to connect to a host it may use (its own, or one shared with it).
    Connect { host_id: String },
    /// The host takes a `connect_request`.
    Accept { connection_id: String },
    /// The host turns a `connect_request` down.
    Reject {
        connection_id: String,
        #[serde(default)]
        reason: String,
    },
    /// Session descriptions and candidates, passed to the other side of the connection as is.
    Offer {
        connection_id: String,
        description: SessionDescription,
    },
    Answer {
        connection_id: String,
        description: SessionDescription,
    },
    Candidate {
        connection_id: String,
        candidate: Candidate,
    },
    /// Either side ends a connection attempt or session.
    Close {
        connection_id: String,
        #[serde(default)]
        reason: String,
    },
    /// What a session did, for the operator's analytics: send it when the session ends (or
    /// now and then; the last report of each side counts). Allowed after `close` too.
    Report {
        connection_id: String,
        path: SessionPath,
        /// Bytes this side sent over the session, all of RIFT included.
        bytes_sent: u64,
    },
}

/// How a session's packets travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPath {
    /// Peer to peer (on a LAN, or through hole punching).
    Direct,
    /// Through a relay.
    Relayed,
}

impl SessionPath {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionPath::Direct => "direct",
            SessionPath::Relayed => "relayed",
        }
    }
}

impl PeerMessage {
    /// The `type` tag, as sent.
    pub fn type_name(&self) -> &'static str {
        match self {
            PeerMessage::Hello { .. } => "hello",
            PeerMessage::Ping { .. } => "ping",
            PeerMessage::Connect { .. } => "connect",
            PeerMessage::Accept { .. } => "accept",
            PeerMessage::Reject { .. } => "reject",
            PeerMessage::Offer { .. } => "offer",
            PeerMessage::Answer { .. } => "answer",
            PeerMessage::Candidate { .. } => "candidate",
            PeerMessage::Close { .. } => "close",
            PeerMessage::Report { .. } => "report",
        }
    }

    /// Parse one text message.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Which signaling session to continue, and the last message of it the peer received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// `resume_session` from the earlier `welcome`.
    pub session: String,
    /// The highest `seq` received on it.
    pub last_seq: u64,
}

/// How to reach a peer: what the two sides of a connection exchange in `offer` / `answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    /// "rift/1" for a RIFT session over UDP; "webrtc" for a browser (with `sdp`).
    pub protocol: String,
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
}

/// One address a peer may be reached at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub kind: CandidateKind,
    /// `IP:port` (`[IPv6]:port`).
    pub address: SocketAddr,
    /// Higher is tried first.
    #[serde(default)]
    pub priority: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// A local interface address.
    Host,
    /// The address a STUN server saw (server-reflexive).
    Srflx,
    /// An address on a relay.
    Relay,
}

/// Gateway → peer: a message and its sequence number on this signaling session (1, 2, …;
/// continued across a resumption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEnvelope {
    pub seq: u64,
    #[serde(flatten)]
    pub message: ServerMessage,
}

impl ServerEnvelope {
    /// Parse one text message from the gateway.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Gateway → peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `hello`.
    Welcome {
        version: u32,
        user_id: String,
        device_id: String,
        kind: DeviceKind,
        /// Give this back in `hello.resume` to continue after a dropped connection.
        resume_session: String,
        /// Whether an earlier session was continued (its missed messages follow).
        resumed: bool,
        /// Send `ping` at least this often.
        heartbeat_secs: u32,
    },
    Pong {
        nonce: u64,
    },
    /// To a host: a client asks to connect. Admit its key in the RIFT handshake.
    ConnectRequest {
        connection_id: String,
        client: PeerIdentity,
    },
    /// To a client: the host it asked for, signed by the gateway. Pin `host_public_key` from
    /// it for the RIFT handshake.
    HostRecord {
        connection_id: String,
        record: Signed,
    },
    Accepted {
        connection_id: String,
    },
    Rejected {
        connection_id: String,
        reason: String,
    },
    Offer {
        connection_id: String,
        description: SessionDescription,
    },
    Answer {
        connection_id: String,
        description: SessionDescription,
    },
    Candidate {
        connection_id: String,
        candidate: Candidate,
    },
    /// The connection ended: the other side closed it, left, or the gateway ended it.
    Closed {
        connection_id: String,
        reason: String,
    },
    /// To client devices of the accounts that may use a host: it came online or went offline
    /// (`seq` 0: on reconnecting, `GET /v1/hosts` gives the current state).
    HostStatus {
        host_id: String,
        online: bool,
    },
    /// A relay lease for a connection (relays come with their own issue).
    RelayLease {
        connection_id: String,
        lease: Signed,
    },
    /// A message could not be handled; the socket stays open.
    Error {
        code: SignalCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection_id: Option<String>,
    },
    /// The gateway is closing this socket, and why.
    Goodbye {
        code: SignalCode,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(code: SignalCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            connection_id: None,
        }
    }
}

/// Machine-readable reasons in `error` and `goodbye`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalCode {
    /// Not JSON, an unknown type, a missing or unknown field, or a value out of bounds.
    BadMessage,
    /// `hello` with a version this gateway does not speak.
    UnsupportedVersion,
    /// The token is missing, invalid or expired, or the device is not the account's.
    Unauthorized,
    /// No `hello` first, or a second one.
    ExpectedHello,
    /// Messages faster than allowed: this one was dropped.
    RateLimited,
    /// No such host among those this account may use.
    HostNotFound,
    HostOffline,
    /// No such connection, or not one this device is part of.
    UnknownConnection,
    /// A device may not do this (a client accepting, a host connecting).
    Forbidden,
    /// Another socket took over this device.
    Replaced,
    /// The login session behind the socket was revoked or expired.
    SessionEnded,
    Banned,
    DeviceRemoved,
    /// No message for three heartbeat intervals.
    IdleTimeout,
    /// The gateway is stopping; reconnect (with `resume`) to another or later.
    ShuttingDown,
    /// The peer reads too slowly: its queue overflowed.
    TooSlow,
    Internal,
    /// A code this version does not know (a newer gateway).
    #[serde(other)]
    Unknown,
}

impl SignalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalCode::BadMessage => "bad_message",
            SignalCode::UnsupportedVersion => "unsupported_version",
            SignalCode::Unauthorized => "unauthorized",
            SignalCode::ExpectedHello => "expected_hello",
            SignalCode::RateLimited => "rate_limited",
            SignalCode::HostNotFound => "host_not_found",
            SignalCode::HostOffline => "host_offline",
            SignalCode::UnknownConnection => "unknown_connection",
            SignalCode::Forbidden => "forbidden",
            SignalCode::Replaced => "replaced",
            SignalCode::SessionEnded => "session_ended",
            SignalCode::Banned => "banned",
            SignalCode::DeviceRemoved => "device_removed",
            SignalCode::IdleTimeout => "idle_timeout",
            SignalCode::ShuttingDown => "shutting_down",
            SignalCode::TooSlow => "too_slow",
            SignalCode::Internal => "internal",
            SignalCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for SignalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking to connect, as the host is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    pub device_id: String,
    pub device_name: String,
    pub user_id: String,
    pub email: String,
    /// The client's static X25519 RIFT key (standard padded base64).
    pub public_key: String,
    pub fingerprint: String,
}

/// What the gateway vouches for when a client asks for a host: signed, inside a [`Signed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub connection_id: String,
    pub host_id: String,
    pub host_name: String,
    /// The host's static X25519 RIFT key (standard padded base64): pin it.
    pub host_public_key: String,
    pub host_fingerprint: String,
    pub owner_user_id: String,
    /// The record is for this client device only.
    pub client_device_id: String,
    pub client_public_key: String,
    pub issued_at: i64,
    /// Refuse the record after this (Unix seconds).
    pub expires_at: i64,
}

/// A payload the gateway signed: JSON bytes, base64url, and an Ed25519 signature over them
/// (with a context string, so a record cannot pass as another kind of statement). The bytes
/// are signed as sent, so no JSON canonicalisation is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Unpadded base64url of the payload's JSON.
    pub payload: String,
    /// Unpadded base64url of the 64-byte Ed25519 signature.
    pub signature: String,
    /// `key_id` of the signing key (`GET /v1/gateway/signing-key`).
    pub key_id: String,
}

/// Why a signed payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("signed payload is not base64url: {0}")]
    Encoding(String),
    #[error("signature does not verify with the pinned gateway key")]
    BadSignature,
    #[error("signed payload is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Signed {
    /// Serialize `value` and sign it for `context`.
    pub fn seal<T: Serialize>(
        key: &SigningKey,
        context: &str,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        let bytes = serde_json::to_vec(value)?;
        let sig = key.sign(context, &bytes);
        Ok(Signed {
            payload: BASE64URL_NOPAD.encode(&bytes),
            signature: BASE64URL_NOPAD.encode(&sig),
            key_id: key.verifying_key().key_id(),
        })
    }

    /// Check the signature with `key` for `context`, then parse the payload.
    pub fn open<T: DeserializeOwned>(
        &self,
        key: &VerifyingKey,
        context: &str,
    ) -> Result<T, SignedError> {
        let decode = |s: &str| {
            BASE64URL_NOPAD
                .decode(s.as_bytes())
                .map_err(|e| SignedError::Encoding(e.to_string()))
        };
        let bytes = decode(&self.payload)?;
        let sig = decode(&self.signature)?;
        key.verify(context, &bytes, &sig)
            .map_err(|_| SignedError::BadSignature)?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_messages_are_tagged_and_strict() {
        let m =
            PeerMessage::from_json(r#"{"type":"hello","version":1,"token":"t","device_id":"d"}"#)
                .unwrap();
        assert!(matches!(m, PeerMessage::Hello { resume: None, .. }));
        let m = PeerMessage::from_json(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(m, PeerMessage::Ping { nonce: 0 });
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["type"], m.type_name());
        for bad in [
            r#"{"type":"ping","extra":1}"#,
            r#"{"type":"connect"}"#,
            r#"{"type":"teleport"}"#,
            r#"{"host_id":"x"}"#,
            r#"[]"#,
            r#"{"type":"candidate","connection_id":"c","candidate":{"kind":"host","address":"nonsense"}}"#,
        ] {
            assert!(PeerMessage::from_json(bad).is_err(), "{bad}");
        }
        let c = PeerMessage::from_json(
            r#"{"type":"candidate","connection_id":"c","candidate":{"kind":"srflx","address":"[::1]:9"}}"#,
        )
        .unwrap();
        assert!(matches!(c, PeerMessage::Candidate { .. }));
    }

    #[test]
    fn server_envelope_is_flat_and_tolerant() {
        let env = ServerEnvelope {
            seq: 7,
            message: ServerMessage::Pong { nonce: 3 },
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(text, r#"{"seq":7,"type":"pong","nonce":3}"#);
        let back =
            ServerEnvelope::from_json(r#"{"seq":7,"type":"pong","nonce":3,"new":1}"#).unwrap();
        assert_eq!(back, env);
        let unknown_code = ServerEnvelope::from_json(
            r#"{"seq":1,"type":"goodbye","code":"from_the_future","message":"m"}"#,
        )
        .unwrap();
        assert!(matches!(
            unknown_code.message,
            ServerMessage::Goodbye {
                code: SignalCode::Unknown,
                ..
            }
        ));
        let s = serde_json::to_string(&SignalCode::HostOffline).unwrap();
        assert_eq!(s, format!("\"{}\"", SignalCode::HostOffline));
    }

    #[test]
    fn signed_records_open_only_with_the_right_key_and_context() {
        let key = SigningKey::generate().unwrap();
        let rec = HostRecord {
            connection_id: "c".into(),
            host_id: "h".into(),
            host_name: "den".into(),
            host_public_key: "k".into(),
            host_fingerprint: "f".into(),
            owner_user_id: "u".into(),
            client_device_id: "d".into(),
            client_public_key: "ck".into(),
            issued_at: 1,
            expires_at: 2,
        };
        let signed = Signed::seal(&key, HOST_RECORD_CONTEXT, &rec).unwrap();
        let pk = key.verifying_key();
        assert_eq!(
            signed.open::<HostRecord>(&pk, HOST_RECORD_CONTEXT).unwrap(),
            rec
        );
        assert!(matches!(
            signed.open::<HostRecord>(&pk, "wavry relay lease v1"),
            Err(SignedError::BadSignature)
        ));
        let other = SigningKey::generate().unwrap().verifying_key();
        assert!(signed
            .open::<HostRecord>(&other, HOST_RECORD_CONTEXT)
            .is_err());
        // A payload changed after signing.
        let mut forged = signed.clone();
        let mut json = serde_json::to_value(&rec).unwrap();
        json["host_public_key"] = "attacker".into();
        forged.payload = BASE64URL_NOPAD.encode(&serde_json::to_vec(&json).unwrap());
        assert!(matches!(
            forged.open::<HostRecord>(&pk, HOST_RECORD_CONTEXT),
            Err(SignedError::BadSignature)
        ));
        let mut garbled = signed;
        garbled.signature = "!!".into();
        assert!(matches!(
            garbled.open::<HostRecord>(&pk, HOST_RECORD_CONTEXT),
            Err(SignedError::Encoding(_))
        ));
    }
}
