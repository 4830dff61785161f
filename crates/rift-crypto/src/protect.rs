//! Per-packet protection of an established RIFT session.
//!
//! Each packet body is sealed as Noise's `ENCRYPT(k, n, ad, plaintext)` with ChaChaPoly: the
//! key is the sender's direction key from the handshake's split, `n` is the packet number (nonce
//! = 32 zero bits ‖ n as 64-bit little-endian) and `ad` is the 14-byte RIFT header. snow's
//! stateless transport takes no associated data, so the split keys drive ring's ChaCha20-Poly1305
//! directly: the header (type, key phase, connection id, packet number) is then authenticated
//! too, and ring runs several times faster than the pure-Rust cipher.
//!
//! Rekeying is a fresh handshake whose keys arrive here with the key phase flipped. The
//! responder of the rekey switches at once; the initiator keeps sending under the old keys until
//! the first packet under the new ones arrives, so no packet is ever sent under a key the peer
//! does not hold yet. The old receive key stays valid for a grace period, for packets in flight.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::replay::{ReplayError, ReplayWindow};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Bytes of the RIFT header, the associated data of every packet.
pub const HEADER_LEN: usize = 14;
/// Bytes of the authentication tag appended to every body.
pub const TAG_LEN: usize = 16;
/// Bit of the header's flags byte (byte 1) carrying the key phase.
pub const KEY_PHASE_BIT: u8 = 0x01;
/// Bit of the header's flags byte set by the rekey *responder* (the host) while its own sending
/// direction is due for new keys: only the initiator starts a rekey, so the responder asks.
pub const REKEY_REQUEST_BIT: u8 = 0x02;
/// Rekey after this long under one key.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Rekey after this many packets under one key (far below the 2^64 nonce space).
pub const REKEY_AFTER_PACKETS: u64 = 1 << 60;
/// How long the previous receive key still opens packets after a key change.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtectError {
    #[error("packet of {0} bytes is shorter than a header and a tag")]
    TooShort(usize),
    #[error("buffer has no room for the {TAG_LEN}-byte tag")]
    NoRoomForTag,
    #[error("authentication failed: forged, corrupted, or under a key this end does not hold")]
    Authentication,
    #[error("packet under the previous key after its grace period")]
    ExpiredKey,
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("a rekey is already in progress")]
    RekeyInProgress,
}

/// The two direction keys a handshake produces, from this end's point of view.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    pub send: [u8; 32],
    pub recv: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

fn aead_key(k: &[u8; 32]) -> LessSafeKey {
    // CHACHA20_POLY1305 takes exactly 32-byte keys, which is what `k` is: `new` cannot fail.
    #[allow(clippy::expect_used)]
    let key = UnboundKey::new(&CHACHA20_POLY1305, k).expect("32-byte ChaCha20-Poly1305 key");
    LessSafeKey::new(key)
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The packet number, header bytes 6..14.
fn packet_number(header: &[u8; HEADER_LEN]) -> u64 {
    let [_, _, _, _, _, _, pn @ ..] = *header;
    u64::from_be_bytes(pn)
}

struct Keys {
    send: LessSafeKey,
    recv: LessSafeKey,
}

impl Keys {
    fn new(k: &SessionKeys) -> Self {
        Keys {
            send: aead_key(&k.send),
            recv: aead_key(&k.recv),
        }
    }
}

/// Counters for what was refused and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtectStats {
    pub sealed: u64,
    pub opened: u64,
    pub auth_failures: u64,
    pub replays: u64,
    pub expired_key: u64,
    pub rekeys: u64,
}

/// Packet protection for one session.
pub struct Protection {
    phase: bool,
    current: Keys,
    /// Keys of a rekey this end initiated, waiting for the peer's first packet under them.
    next: Option<Keys>,
    previous_recv: Option<(LessSafeKey, Instant)>,
    grace: Duration,
    installed_at: Instant,
    sent_under_key: u64,
    rekey_after: Duration,
    rekey_after_packets: u64,
    replay: ReplayWindow,
    scratch: Vec<u8>,
    pub stats: ProtectStats,
}

impl Protection {
    pub fn new(keys: &SessionKeys, now: Instant) -> Self {
        Protection {
            phase: false,
            current: Keys::new(keys),
            next: None,
            previous_recv: None,
            grace: DEFAULT_GRACE,
            installed_at: now,
            sent_under_key: 0,
            rekey_after: REKEY_AFTER_TIME,
            rekey_after_packets: REKEY_AFTER_PACKETS,
            replay: ReplayWindow::default(),
            scratch: Vec::new(),
            stats: ProtectStats::default(),
        }
    }

    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// When keys are due for a fresh handshake: after `after` under one key or `packets` sent
    /// under it (defaults [`REKEY_AFTER_TIME`], [`REKEY_AFTER_PACKETS`]; lower only for tests, and
    /// never above the defaults: the packet limit keeps far below the 2^64 nonce space).
    pub fn set_rekey_limits(&mut self, after: Duration, packets: u64) {
        self.rekey_after = after.min(REKEY_AFTER_TIME);
        self.rekey_after_packets = packets.min(REKEY_AFTER_PACKETS);
    }

    pub fn key_phase(&self) -> bool {
        self.phase
    }

    /// Whether the keys are due for a fresh handshake, judged by this end's sending direction
    /// (time under the current keys, packets sealed under them).
    pub fn needs_rekey(&self, now: Instant) -> bool {
        self.next.is_none()
            && (now.saturating_duration_since(self.installed_at) >= self.rekey_after
                || self.sent_under_key >= self.rekey_after_packets)
    }

    /// Seal a packet in place: `buf[..HEADER_LEN]` is the header, `buf[HEADER_LEN..body_end]` the
    /// body; the tag is written after it. Sets the header's key phase bit. Returns the length.
    pub fn seal(&mut self, buf: &mut [u8], body_end: usize) -> Result<usize, ProtectError> {
        if body_end < HEADER_LEN || body_end > buf.len() {
            return Err(ProtectError::TooShort(body_end));
        }
        if buf.len() < body_end + TAG_LEN {
            return Err(ProtectError::NoRoomForTag);
        }
        // The same checks again, as the splits make them.
        let too_short = ProtectError::TooShort(body_end);
        let body_len = body_end.checked_sub(HEADER_LEN).ok_or(too_short)?;
        let (header, rest) = buf.split_first_chunk_mut::<HEADER_LEN>().ok_or(too_short)?;
        let (body, tail) = rest.split_at_mut_checked(body_len).ok_or(too_short)?;
        let tag_out = tail
            .first_chunk_mut::<TAG_LEN>()
            .ok_or(ProtectError::NoRoomForTag)?;
        if self.phase {
            header[1] |= KEY_PHASE_BIT;
        } else {
            header[1] &= !KEY_PHASE_BIT;
        }
        let pn = packet_number(header);
        let tag = self
            .current
            .send
            .seal_in_place_separate_tag(nonce(pn), Aad::from(&*header), body)
            .map_err(|_| ProtectError::Authentication)?;
        tag_out.copy_from_slice(tag.as_ref());
        self.sent_under_key += 1;
        self.stats.sealed += 1;
        Ok(body_end + TAG_LEN)
    }

    /// Open a sealed packet in place. On success `buf[..n]` is the header and plaintext body
    /// (the tag removed) and `n` is returned. Replays, forgeries and packets under an expired
    /// key are refused and counted; nothing in `buf` is trusted until this returns `Ok`.
    pub fn open(&mut self, now: Instant, buf: &mut [u8]) -> Result<usize, ProtectError> {
        let len = buf.len();
        if len < HEADER_LEN + TAG_LEN {
            return Err(ProtectError::TooShort(len));
        }
        let (header, body) = buf
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(ProtectError::TooShort(len))?;
        let header: &[u8; HEADER_LEN] = header;
        let pn = packet_number(header);
        if let Err(e) = self.replay.check(pn) {
            self.stats.replays += 1;
            return Err(e.into());
        }
        let phase = header[1] & KEY_PHASE_BIT != 0;
        let open_with = |key: &LessSafeKey, body: &mut [u8]| {
            key.open_in_place(nonce(pn), Aad::from(header), body)
                .map(|p| p.len())
                .map_err(|_| ProtectError::Authentication)
        };
        let result = if phase == self.phase {
            open_with(&self.current.recv, body)
        } else if let Some(next) = self.next.as_ref() {
            // Either the peer switched to the keys of the rekey we started, or this is a late
            // packet under the previous keys. A failed open may scribble over the buffer, so
            // the second try works on a copy (only while a rekey is pending).
            self.scratch.clear();
            self.scratch.extend_from_slice(body);
            match open_with(&next.recv, body) {
                Ok(n) => {
                    self.promote(now);
                    Ok(n)
                }
                Err(e) => match &self.previous_recv {
                    Some((key, until)) if now <= *until => {
                        body.copy_from_slice(&self.scratch);
                        open_with(key, body)
                    }
                    _ => Err(e),
                },
            }
        } else {
            match &self.previous_recv {
                Some((key, until)) if now <= *until => open_with(key, body),
                Some(_) => {
                    self.stats.expired_key += 1;
                    return Err(ProtectError::ExpiredKey);
                }
                None => Err(ProtectError::Authentication),
            }
        };
        match result {
            Ok(n) => {
                // Cannot fail: checked above and nothing accepted in between.
                let _ = self.replay.accept(pn);
                self.stats.opened += 1;
                Ok(HEADER_LEN + n)
            }
            Err(e) => {
                self.stats.auth_failures += 1;
                Err(e)
            }
        }
    }

    fn promote(&mut self, now: Instant) {
        if let Some(next) = self.next.take() {
            let old = std::mem::replace(&mut self.current, next);
            self.previous_recv = Some((old.recv, now + self.grace));
            self.phase = !self.phase;
            self.installed_at = now;
            self.sent_under_key = 0;
            self.stats.rekeys += 1;
        }
    }

    /// Keys from a rekey handshake this end *responded* to: switch now (the initiator already
    /// holds them and accepts them).
    pub fn rekey_now(&mut self, keys: &SessionKeys, now: Instant) {
        self.next = Some(Keys::new(keys));
        self.promote(now);
    }

    /// How long the current keys have been in use.
    pub fn key_age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.installed_at)
    }

    /// When the current keys reach the age `age`.
    pub fn key_age_deadline(&self, age: Duration) -> Instant {
        self.installed_at + age
    }

    /// Forget the keys of a rekey this end initiated that never took effect (the peer never
    /// used them), so that a fresh rekey can start.
    pub fn abandon_rekey(&mut self) {
        self.next = None;
    }

    /// Keys from a rekey handshake this end *initiated*: accept them at once, send under them
    /// from the peer's first packet under them on.
    pub fn rekey_pending(&mut self, keys: &SessionKeys) -> Result<(), ProtectError> {
        if self.next.is_some() {
            return Err(ProtectError::RekeyInProgress);
        }
        self.next = Some(Keys::new(keys));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(a: u8, b: u8) -> (SessionKeys, SessionKeys) {
        let (x, y) = ([a; 32], [b; 32]);
        (
            SessionKeys { send: x, recv: y },
            SessionKeys { send: y, recv: x },
        )
    }

    fn packet(pn: u64, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x90, 0, 0, 0, 0, 7];
        v.extend_from_slice(&pn.to_be_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&[0u8; TAG_LEN]);
        v
    }

    fn seal(p: &mut Protection, pn: u64, body: &[u8]) -> Vec<u8> {
        let mut buf = packet(pn, body);
        let end = HEADER_LEN + body.len();
        let n = p.seal(&mut buf, end).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn round_trip_and_tampering() {
        let t0 = Instant::now();
        let (ka, kb) = keys(1, 2);
        let (mut a, mut b) = (Protection::new(&ka, t0), Protection::new(&kb, t0));
        let sealed = seal(&mut a, 5, b"hello");
        assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + 5], b"hello");
        let mut copy = sealed.clone();
        let n = b.open(t0, &mut copy).unwrap();
        assert_eq!(&copy[HEADER_LEN..n], b"hello");
        // Replay.
        let mut again = sealed.clone();
        assert!(matches!(
            b.open(t0, &mut again),
            Err(ProtectError::Replay(_))
        ));
        // Any flipped bit, in header, body or tag, fails authentication.
        for i in 0..sealed.len() {
            let mut bad = seal(&mut a, 100 + i as u64, b"hello");
            bad[i] ^= 0x04;
            assert!(b.open(t0, &mut bad).is_err(), "byte {i}");
        }
        // Truncated.
        let mut short = seal(&mut a, 1000, b"hello");
        short.truncate(HEADER_LEN + 3);
        assert!(b.open(t0, &mut short).is_err());
        assert!(b.stats.auth_failures >= sealed.len() as u64);
    }

    #[test]
    fn rekey_switches_without_losing_packets_and_retires_old_keys() {
        let t0 = Instant::now();
        let (ka, kb) = keys(1, 2);
        let (na, nb) = keys(3, 4);
        let (mut a, mut b) = (Protection::new(&ka, t0), Protection::new(&kb, t0));
        assert!(!a.needs_rekey(t0));
        assert!(a.needs_rekey(t0 + REKEY_AFTER_TIME));
        let mut c = Protection::new(&ka, t0);
        c.set_rekey_limits(Duration::from_secs(7200), 2);
        assert!(
            c.needs_rekey(t0 + REKEY_AFTER_TIME),
            "capped at the default"
        );
        seal(&mut c, 0, b"one");
        assert!(!c.needs_rekey(t0));
        seal(&mut c, 1, b"two");
        assert!(c.needs_rekey(t0), "two packets sent under the key");
        // `a` initiated the rekey; `b` completes it first and switches.
        a.rekey_pending(&na).unwrap();
        let old_from_a = seal(&mut a, 1, b"old key, still in flight");
        b.rekey_now(&nb, t0);
        let new_from_b = seal(&mut b, 1, b"new key");
        // `a` still sends under the old key until it hears the new one...
        let mut p = seal(&mut a, 2, b"before switch");
        assert!(p[1] & KEY_PHASE_BIT == 0);
        assert!(b.open(t0, &mut p).is_ok(), "old phase within grace");
        let mut q = new_from_b.clone();
        assert!(a.open(t0, &mut q).is_ok());
        assert!(a.key_phase());
        let mut r = seal(&mut a, 3, b"after switch");
        assert!(r[1] & KEY_PHASE_BIT != 0);
        assert!(b.open(t0, &mut r).is_ok());
        // A late old-key packet opens within the grace period, not after it.
        let mut late = old_from_a.clone();
        assert!(b.open(t0 + Duration::from_secs(1), &mut late).is_ok());
        let mut stale = seal_old(&ka, 50);
        assert_eq!(
            b.open(t0 + DEFAULT_GRACE * 2, &mut stale),
            Err(ProtectError::ExpiredKey)
        );
    }

    fn seal_old(k: &SessionKeys, pn: u64) -> Vec<u8> {
        let mut p = Protection::new(k, Instant::now());
        seal(&mut p, pn, b"x")
    }
}
