//! The RIFT handshake: Noise_XX_25519_ChaChaPoly_BLAKE2s through snow, sans-IO.
//!
//! XX: both ends prove their static (device) keys, and each key is encrypted, so a passive
//! observer learns neither. Message 1 (→) carries the initiator's ephemeral key; message 2 (←)
//! the responder's ephemeral and static keys; message 3 (→) the initiator's static key.
//!
//! Authentication happens inside the handshake, before anything is revealed or accepted: the
//! initiator checks the responder's static key when it reads message 2 (pinned key, or
//! trust-on-first-use decided by its caller) and only then sends its own; the responder checks
//! the initiator's static key against its allow-list when it reads message 3.
//!
//! The prologue binds the protocol version, so a version downgrade fails the handshake.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::identity::{Identity, PublicKey};
use crate::protect::SessionKeys;
use thiserror::Error;
use zeroize::Zeroizing;

pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Largest handshake message: what a RIFT handshake body holds (1472 − 14-byte header − 6),
/// so a message 1 padded to the minimum initiation size fits (RIFT.md §5.1).
pub const MAX_HANDSHAKE_MESSAGE: usize = 1452;

/// Whether a peer's static key is acceptable. `Err` carries the reason shown to the user.
pub type Verifier = Box<dyn FnMut(&PublicKey) -> Result<(), Rejection> + Send>;

/// Why a peer's key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    #[error("the host's key changed: expected {expected:?}, got {got:?} (someone may be intercepting the connection)")]
    KeyMismatch { expected: PublicKey, got: PublicKey },
    #[error("key {0:?} is not allowed to connect")]
    NotAllowed(PublicKey),
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("peer rejected: {0}")]
    Rejected(#[from] Rejection),
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    #[error("handshake message out of turn")]
    OutOfTurn,
    #[error("handshake not finished")]
    NotFinished,
    #[error("peer sent no static key")]
    NoRemoteKey,
    #[error("no randomness for an ephemeral key: {0}")]
    Random(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// One side of a handshake in progress.
pub struct Handshake {
    state: snow::HandshakeState,
    role: Role,
    verify: Verifier,
    verified: bool,
    /// Initiator: what rebuilds the state as it was after message 1, so that a message 2 whose
    /// key is refused (possibly forged by someone who saw message 1) is forgotten and the real
    /// responder's answer can still be read (RIFT.md §6).
    rewind: Option<Rewind>,
}

struct Rewind {
    local: Zeroizing<[u8; 32]>,
    ephemeral: Zeroizing<[u8; 32]>,
    version: u16,
    /// Message 1's payload, once written.
    payload: Option<Vec<u8>>,
}

fn prologue(version: u16) -> [u8; 6] {
    let v = version.to_be_bytes();
    [b'R', b'I', b'F', b'T', v[0], v[1]]
}

impl Handshake {
    /// Start as initiator; `verify` judges the responder's static key (pin or trust-on-first-use).
    pub fn initiator(
        identity: &Identity,
        version: u16,
        verify: Verifier,
    ) -> Result<Self, HandshakeError> {
        Self::new(identity, version, verify, Role::Initiator)
    }

    /// Start as responder; `allow` judges the initiator's static key (the owner's allow-list).
    pub fn responder(
        identity: &Identity,
        version: u16,
        allow: Verifier,
    ) -> Result<Self, HandshakeError> {
        Self::new(identity, version, allow, Role::Responder)
    }

    fn new(
        identity: &Identity,
        version: u16,
        verify: Verifier,
        role: Role,
    ) -> Result<Self, HandshakeError> {
        let (state, rewind) = match role {
            Role::Initiator => {
                // The initiator draws its ephemeral key itself (as snow would), so that it can
                // rebuild its state after message 1 (see `Rewind`).
                let mut ephemeral = Zeroizing::new([0u8; 32]);
                getrandom::fill(&mut ephemeral[..])
                    .map_err(|e| HandshakeError::Random(e.to_string()))?;
                let rewind = Rewind {
                    local: Zeroizing::new(*identity.secret()),
                    ephemeral,
                    version,
                    payload: None,
                };
                (rewind.initiator()?, Some(rewind))
            }
            Role::Responder => (
                snow::Builder::new(NOISE_PARAMS.parse()?)
                    .local_private_key(identity.secret())?
                    .prologue(&prologue(version))?
                    .build_responder()?,
                None,
            ),
        };
        Ok(Handshake {
            state,
            role,
            verify,
            verified: false,
            rewind,
        })
    }

    /// Give back the verifier (to start over, e.g. after a `Retry`).
    pub fn into_verifier(self) -> Verifier {
        self.verify
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether it is this side's turn to write.
    pub fn is_my_turn(&self) -> bool {
        !self.state.is_handshake_finished() && self.state.is_my_turn()
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// Write the next handshake message (with an optional payload, sent encrypted from message
    /// 2 on) into `out`; returns its length.
    pub fn write_message(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, HandshakeError> {
        if !self.is_my_turn() {
            return Err(HandshakeError::OutOfTurn);
        }
        // The initiator's third message reveals its identity: only to a verified responder.
        if self.role == Role::Initiator
            && self.state.get_remote_static().is_some()
            && !self.verified
        {
            return Err(HandshakeError::NotFinished);
        }
        let n = self.state.write_message(payload, out)?;
        if let Some(r) = &mut self.rewind {
            r.payload.get_or_insert_with(|| payload.to_vec());
        }
        Ok(n)
    }

    /// Read the peer's next handshake message; the payload goes to `payload_out`. The peer's
    /// static key is verified as soon as it is known.
    pub fn read_message(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
    ) -> Result<usize, HandshakeError> {
        if self.is_my_turn() || self.is_finished() {
            return Err(HandshakeError::OutOfTurn);
        }
        // A message that does not decrypt leaves the state as it was (snow restores it).
        let n = self.state.read_message(message, payload_out)?;
        if let Some(remote) = self.remote_public() {
            if !self.verified {
                if let Err(refused) = (self.verify)(&remote) {
                    // An initiator forgets the refused message 2, so the real responder's
                    // can still be read; a responder's refusal is final (message 3 proved the
                    // key, and the caller ends the handshake).
                    if let Some(r) = &self.rewind {
                        self.state = r.after_message_1()?;
                    }
                    return Err(refused.into());
                }
                self.verified = true;
            }
        }
        Ok(n)
    }

    /// The peer's static key, once a message carrying it has been read.
    pub fn remote_public(&self) -> Option<PublicKey> {
        self.state
            .get_remote_static()
            .and_then(|k| PublicKey::from_slice(k).ok())
    }

    /// The handshake hash: a value both ends share, unique to this handshake (channel binding).
    pub fn handshake_hash(&self) -> Vec<u8> {
        self.state.get_handshake_hash().to_vec()
    }

    /// The keys of a finished handshake whose peer was refused, only to tell it so with one
    /// encrypted Close: the peer proved its key, so it may learn why it is turned away.
    pub fn into_refusal_keys(mut self) -> Result<SessionKeys, HandshakeError> {
        if !self.is_finished() {
            return Err(HandshakeError::NotFinished);
        }
        Ok(self.split())
    }

    fn split(&mut self) -> SessionKeys {
        // Noise's split: the first key encrypts initiator → responder, the second the reverse.
        let (i2r, r2i) = self.state.dangerously_get_raw_split();
        match self.role {
            Role::Initiator => SessionKeys {
                send: i2r,
                recv: r2i,
            },
            Role::Responder => SessionKeys {
                send: r2i,
                recv: i2r,
            },
        }
    }

    /// The session keys, once finished and the peer verified.
    pub fn into_keys(mut self) -> Result<(SessionKeys, PublicKey), HandshakeError> {
        if !self.is_finished() || !self.verified {
            return Err(HandshakeError::NotFinished);
        }
        let remote = self.remote_public().ok_or(HandshakeError::NoRemoteKey)?;
        Ok((self.split(), remote))
    }
}

impl Rewind {
    fn initiator(&self) -> Result<snow::HandshakeState, HandshakeError> {
        Ok(snow::Builder::new(NOISE_PARAMS.parse()?)
            .local_private_key(&self.local[..])?
            // Not a test shortcut here: the key is fresh randomness, drawn once per handshake;
            // fixing it is what makes the state after message 1 reproducible.
            .fixed_ephemeral_key_for_testing_only(&self.ephemeral[..])
            .prologue(&prologue(self.version))?
            .build_initiator()?)
    }

    /// The initiator's state right after it wrote message 1: the same keys and payload give
    /// the same transcript.
    fn after_message_1(&self) -> Result<snow::HandshakeState, HandshakeError> {
        let mut state = self.initiator()?;
        let mut scratch = [0u8; MAX_HANDSHAKE_MESSAGE];
        state.write_message(self.payload.as_deref().unwrap_or_default(), &mut scratch)?;
        Ok(state)
    }
}

/// A verifier that accepts only `expected` (a pinned key).
pub fn pinned(expected: PublicKey) -> Verifier {
    Box::new(move |got: &PublicKey| {
        if *got == expected {
            Ok(())
        } else {
            Err(Rejection::KeyMismatch {
                expected,
                got: *got,
            })
        }
    })
}

/// A verifier that accepts keys in `allowed`.
pub fn allow_list(allowed: Vec<PublicKey>) -> Verifier {
    Box::new(move |got: &PublicKey| {
        if allowed.contains(got) {
            Ok(())
        } else {
            Err(Rejection::NotAllowed(*got))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::{Protection, HEADER_LEN, TAG_LEN};
    use std::time::Instant;

    type Keys = (SessionKeys, PublicKey);

    fn run(mut i: Handshake, mut r: Handshake) -> Result<(Keys, Keys), HandshakeError> {
        let (mut buf, mut payload) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);
        let n = i.write_message(b"", &mut buf)?;
        r.read_message(&buf[..n], &mut payload)?;
        let n = r.write_message(b"", &mut buf)?;
        i.read_message(&buf[..n], &mut payload)?;
        let n = i.write_message(b"", &mut buf)?;
        r.read_message(&buf[..n], &mut payload)?;
        Ok((i.into_keys()?, r.into_keys()?))
    }

    #[test]
    fn pinned_handshake_gives_matching_keys_and_a_working_session() {
        let (host, client) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
        let r = Handshake::responder(&host, 1, allow_list(vec![client.public()])).unwrap();
        let ((ki, host_key), (kr, client_key)) = run(i, r).unwrap();
        assert_eq!(host_key, host.public());
        assert_eq!(client_key, client.public());
        assert_eq!(ki.send, kr.recv);
        assert_eq!(ki.recv, kr.send);
        assert_ne!(ki.send, ki.recv);
        let t0 = Instant::now();
        let (mut a, mut b) = (Protection::new(&ki, t0), Protection::new(&kr, t0));
        let mut pkt = vec![0x90, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        pkt.extend_from_slice(b"input event");
        pkt.extend_from_slice(&[0; TAG_LEN]);
        let n = a.seal(&mut pkt, HEADER_LEN + 11).unwrap();
        let m = b.open(t0, &mut pkt[..n]).unwrap();
        assert_eq!(&pkt[HEADER_LEN..m], b"input event");
    }

    #[test]
    fn wrong_host_key_is_refused_before_the_client_reveals_itself() {
        let (host, client, other) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let i = Handshake::initiator(&client, 1, pinned(other.public())).unwrap();
        let r = Handshake::responder(&host, 1, allow_list(vec![client.public()])).unwrap();
        match run(i, r) {
            Err(HandshakeError::Rejected(Rejection::KeyMismatch { expected, got })) => {
                assert_eq!(expected, other.public());
                assert_eq!(got, host.public());
            }
            other => panic!("expected a key mismatch, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_refused_message_2_is_forgotten_and_the_real_one_still_read() {
        let (host, client, forger) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let (mut buf, mut payload) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);
        let mut i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
        let n = i.write_message(&[0u8; 200], &mut buf).unwrap();
        let msg1 = buf[..n].to_vec();
        // Someone who saw message 1 answers first, with a valid message 2 under its own key.
        let mut f = Handshake::responder(&forger, 1, allow_list(vec![])).unwrap();
        f.read_message(&msg1, &mut payload).unwrap();
        let n = f.write_message(b"", &mut buf).unwrap();
        assert!(matches!(
            i.read_message(&buf[..n], &mut payload),
            Err(HandshakeError::Rejected(Rejection::KeyMismatch { .. }))
        ));
        // Garbage does not decrypt, and changes nothing either.
        assert!(i.read_message(&[7u8; 96], &mut payload).is_err());
        // The host's answer still completes the handshake.
        let mut r = Handshake::responder(&host, 1, allow_list(vec![client.public()])).unwrap();
        r.read_message(&msg1, &mut payload).unwrap();
        let n = r.write_message(b"", &mut buf).unwrap();
        i.read_message(&buf[..n], &mut payload).unwrap();
        let n = i.write_message(b"", &mut buf).unwrap();
        r.read_message(&buf[..n], &mut payload).unwrap();
        let ((ki, _), (kr, _)) = (i.into_keys().unwrap(), r.into_keys().unwrap());
        assert_eq!(ki.send, kr.recv);
    }

    #[test]
    fn garbage_message_3_leaves_the_responder_able_to_finish() {
        let (host, client) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (mut buf, mut payload) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);
        let mut i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
        let mut r = Handshake::responder(&host, 1, allow_list(vec![client.public()])).unwrap();
        let n = i.write_message(b"", &mut buf).unwrap();
        r.read_message(&buf[..n], &mut payload).unwrap();
        let n = r.write_message(b"", &mut buf).unwrap();
        i.read_message(&buf[..n], &mut payload).unwrap();
        let n = i.write_message(b"", &mut buf).unwrap();
        let mut forged = buf[..n].to_vec();
        forged[10] ^= 1;
        assert!(matches!(
            r.read_message(&forged, &mut payload),
            Err(HandshakeError::Noise(_))
        ));
        assert!(r.read_message(&[0u8; 64], &mut payload).is_err());
        r.read_message(&buf[..n], &mut payload).unwrap();
        assert!(r.into_keys().is_ok());
    }

    #[test]
    fn unknown_client_is_refused_by_the_host() {
        let (host, client) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
        let r = Handshake::responder(&host, 1, allow_list(vec![])).unwrap();
        assert!(matches!(
            run(i, r),
            Err(HandshakeError::Rejected(Rejection::NotAllowed(k))) if k == client.public()
        ));
    }

    #[test]
    fn version_mismatch_fails_the_handshake() {
        let (host, client) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
        let r = Handshake::responder(&host, 2, allow_list(vec![client.public()])).unwrap();
        assert!(matches!(run(i, r), Err(HandshakeError::Noise(_))));
    }

    #[test]
    fn garbage_and_out_of_turn_messages_are_errors() {
        let host = Identity::generate().unwrap();
        let mut r = Handshake::responder(&host, 1, allow_list(vec![])).unwrap();
        let mut out = [0u8; MAX_HANDSHAKE_MESSAGE];
        assert!(matches!(
            r.write_message(b"", &mut out),
            Err(HandshakeError::OutOfTurn)
        ));
        assert!(r.read_message(&[1, 2, 3], &mut out).is_err());
        let mut r = Handshake::responder(&host, 1, allow_list(vec![])).unwrap();
        assert!(r.read_message(&[0u8; 5000], &mut out).is_err());
    }
}
