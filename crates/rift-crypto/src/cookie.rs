//! Address-validation cookies (RIFT.md §6): a responder under load answers a `HandshakeInit`
//! with a `Retry` carrying a cookie, and does handshake work only for an initiation that
//! returns a valid one. Only a sender that receives at the claimed address can, so a flood
//! from spoofed addresses costs the responder one MAC per packet and no state.
//!
//! The cookie is a keyed BLAKE2s MAC of the initiator's address and connection id under a
//! secret that rotates every [`COOKIE_ROTATION`]; a cookie under the previous secret is still
//! accepted, so one is valid for one to two rotation periods. Time goes in as an argument.

use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac256;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use thiserror::Error;
use zeroize::Zeroizing;

/// Bytes in a cookie (RIFT.md §5.3a).
pub const COOKIE_LEN: usize = 16;
/// How often the cookie secret changes.
pub const COOKIE_ROTATION: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
#[error("no randomness for the cookie secret: {0}")]
pub struct CookieError(String);

/// The responder's cookie secrets: mints and checks cookies.
pub struct CookieJar {
    current: Zeroizing<[u8; 32]>,
    previous: Zeroizing<[u8; 32]>,
    rotated: Instant,
}

fn random_secret() -> Result<Zeroizing<[u8; 32]>, CookieError> {
    let mut s = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut s[..]).map_err(|e| CookieError(e.to_string()))?;
    Ok(s)
}

fn mac(secret: &[u8; 32], addr: SocketAddr, initiator_cid: u32) -> [u8; COOKIE_LEN] {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut m = <Blake2sMac256 as KeyInit>::new(secret.into());
    m.update(b"RIFT cookie v2");
    m.update(&ip.octets());
    m.update(&addr.port().to_be_bytes());
    m.update(&initiator_cid.to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; COOKIE_LEN];
    out.copy_from_slice(&full[..COOKIE_LEN]);
    out
}

/// Equal without an early exit, so a forger learns nothing from timing.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl CookieJar {
    pub fn new(now: Instant) -> Result<Self, CookieError> {
        Ok(CookieJar {
            current: random_secret()?,
            previous: random_secret()?,
            rotated: now,
        })
    }

    fn rotate(&mut self, now: Instant) {
        if now.saturating_duration_since(self.rotated) < COOKIE_ROTATION {
            return;
        }
        // Without fresh randomness the old secret stays: cookies keep working, just longer.
        if let Ok(next) = random_secret() {
            self.previous = std::mem::replace(&mut self.current, next);
            self.rotated = now;
        }
    }

    /// The cookie for an initiator at `addr` that chose connection id `initiator_cid`.
    pub fn mint(&mut self, now: Instant, addr: SocketAddr, initiator_cid: u32) -> [u8; COOKIE_LEN] {
        self.rotate(now);
        mac(&self.current, addr, initiator_cid)
    }

    /// Whether `cookie` was minted here, recently, for this address and connection id.
    pub fn check(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        initiator_cid: u32,
        cookie: &[u8],
    ) -> bool {
        self.rotate(now);
        ct_eq(&mac(&self.current, addr, initiator_cid), cookie)
            | ct_eq(&mac(&self.previous, addr, initiator_cid), cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cookie_is_valid_for_its_address_and_id_only() {
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0).unwrap();
        let c = jar.mint(t0, a("192.0.2.1:5000"), 7);
        assert!(jar.check(t0, a("192.0.2.1:5000"), 7, &c));
        assert!(!jar.check(t0, a("192.0.2.1:5001"), 7, &c));
        assert!(!jar.check(t0, a("192.0.2.2:5000"), 7, &c));
        assert!(!jar.check(t0, a("192.0.2.1:5000"), 8, &c));
        assert!(!jar.check(t0, a("192.0.2.1:5000"), 7, &c[..15]));
        assert!(!jar.check(t0, a("192.0.2.1:5000"), 7, &[0; COOKIE_LEN]));
        // Another responder's secret mints other cookies.
        let mut other = CookieJar::new(t0).unwrap();
        assert!(!other.check(t0, a("192.0.2.1:5000"), 7, &c));
    }

    #[test]
    fn a_cookie_outlives_one_rotation_but_not_two() {
        let t0 = Instant::now();
        let mut jar = CookieJar::new(t0).unwrap();
        let addr = a("[2001:db8::1]:443");
        let c = jar.mint(t0, addr, 1);
        let t1 = t0 + COOKIE_ROTATION;
        assert!(jar.check(t1, addr, 1, &c), "still valid after one rotation");
        let t2 = t1 + COOKIE_ROTATION;
        assert!(!jar.check(t2, addr, 1, &c), "gone after two");
    }
}
