//! Session tokens and random ids.
//!
//! A token is 32 bytes from the OS's CSPRNG, sent as base64url without padding (43 characters).
//! The database holds only its SHA-256, so a leaked database (or backup) opens no session; a
//! plain hash suffices because the token has 256 bits of entropy (no dictionary to try).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Length of an encoded token.
pub const TOKEN_CHARS: usize = 43;

fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)?;
    Ok(b)
}

/// A new token (what the client keeps) and its hash (what the database keeps).
pub fn new_token() -> Result<(String, String), getrandom::Error> {
    let token = URL_SAFE_NO_PAD.encode(random::<32>()?);
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// Hex SHA-256 of a token's text.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `s` could be a token at all (checked before touching the database).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new public id (users, sessions): 16 random bytes, base64url (22 characters). Random
/// rather than sequential so ids reveal neither counts nor order.
pub fn new_id() -> Result<String, getrandom::Error> {
    Ok(URL_SAFE_NO_PAD.encode(random::<16>()?))
}

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    random::<N>()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_256_bit_and_hashed() {
        let (t1, h1) = new_token().unwrap();
        let (t2, _) = new_token().unwrap();
        assert_ne!(t1, t2);
        assert!(looks_like_token(&t1), "{t1}");
        assert_eq!(URL_SAFE_NO_PAD.decode(&t1).unwrap().len(), 32);
        assert_eq!(h1, hash_token(&t1));
        assert_eq!(h1.len(), 64);
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&format!("{}=", &t1[..42])));
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(new_id().unwrap().len(), 22);
    }
}
