//! Ed25519 signatures for what the gateway vouches for: host records a client pins a host's key
//! from (docs/SIGNALING.md), and later the relay leases a relay checks.
//!
//! Every signature covers a context string before the payload (`context || 0x00 || payload`), so
//! a signature made for one kind of statement can never be passed off as another. ring does the
//! curve work (already used here for the AEAD).

use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

/// Bytes in an Ed25519 seed (the private key) and in a public key.
pub const ED25519_KEY_LEN: usize = 32;
/// Bytes in an Ed25519 signature.
pub const ED25519_SIG_LEN: usize = 64;

/// Why a key could not be made or a signature did not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("invalid Ed25519 key: {0}")]
    BadKey(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// Wrong length, not base64, or not made by this key for this context and payload.
    #[error("signature does not verify")]
    BadSignature,
}

/// An Ed25519 private key. The seed is zeroized on drop and never printed.
pub struct SigningKey {
    seed: Zeroizing<[u8; ED25519_KEY_LEN]>,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, SigningError> {
        let mut seed = Zeroizing::new([0u8; ED25519_KEY_LEN]);
        getrandom::fill(&mut seed[..]).map_err(|e| SigningError::Random(e.to_string()))?;
        Self::from_seed(&seed)
    }

    /// The key whose 32-byte seed is `seed` (RFC 8032's private key).
    pub fn from_seed(seed: &[u8; ED25519_KEY_LEN]) -> Result<Self, SigningError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| SigningError::BadKey(e.to_string()))?;
        Ok(SigningKey {
            seed: Zeroizing::new(*seed),
            pair,
        })
    }

    /// The seed, for storing the key.
    pub fn seed(&self) -> &[u8; ED25519_KEY_LEN] {
        &self.seed
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut k = [0u8; ED25519_KEY_LEN];
        k.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(k)
    }

    /// Sign `payload` as a statement of kind `context`.
    pub fn sign(&self, context: &str, payload: &[u8]) -> [u8; ED25519_SIG_LEN] {
        let msg = framed(context, payload);
        let mut out = [0u8; ED25519_SIG_LEN];
        out.copy_from_slice(self.pair.sign(&msg).as_ref());
        out
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.verifying_key().key_id())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(pub [u8; ED25519_KEY_LEN]);

impl VerifyingKey {
    /// Check that `sig` was made by this key over `payload` for `context`.
    pub fn verify(&self, context: &str, payload: &[u8], sig: &[u8]) -> Result<(), SigningError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(&framed(context, payload), sig)
            .map_err(|_| SigningError::BadSignature)
    }

    /// Unpadded base64url (43 characters), as keys appear in JSON and configuration.
    pub fn to_base64(&self) -> String {
        BASE64URL_NOPAD.encode(&self.0)
    }

    /// Parse unpadded base64url (surrounding whitespace is ignored).
    pub fn from_base64(s: &str) -> Result<Self, SigningError> {
        let bytes = BASE64URL_NOPAD
            .decode(s.trim().as_bytes())
            .map_err(|e| SigningError::BadKey(format!("not unpadded base64url: {e}")))?;
        let k: [u8; ED25519_KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            SigningError::BadKey(format!("{} bytes, expected {ED25519_KEY_LEN}", b.len()))
        })?;
        Ok(VerifyingKey(k))
    }

    /// A short name for the key (its first 8 bytes in hex), to tell keys apart in records and
    /// logs; not a security check: compare whole keys for that.
    pub fn key_id(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

fn framed(context: &str, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + 1 + payload.len());
    msg.extend_from_slice(context.as_bytes());
    msg.push(0);
    msg.extend_from_slice(payload);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_context() {
        let key = SigningKey::generate().unwrap();
        let pk = key.verifying_key();
        let sig = key.sign("wavry test v1", b"payload");
        pk.verify("wavry test v1", b"payload", &sig).unwrap();
        assert_eq!(
            pk.verify("wavry other v1", b"payload", &sig),
            Err(SigningError::BadSignature)
        );
        assert_eq!(
            pk.verify("wavry test v1", b"payloaD", &sig),
            Err(SigningError::BadSignature)
        );
        assert_eq!(
            pk.verify("wavry test v1", b"payload", &sig[..63]),
            Err(SigningError::BadSignature)
        );
        let other = SigningKey::generate().unwrap().verifying_key();
        assert!(other.verify("wavry test v1", b"payload", &sig).is_err());
    }

    #[test]
    fn seed_round_trips_and_base64() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_seed(key.seed()).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        let pk = key.verifying_key();
        assert_eq!(VerifyingKey::from_base64(&pk.to_base64()).unwrap(), pk);
        assert!(VerifyingKey::from_base64("AAAA").is_err());
        assert!(VerifyingKey::from_base64("not base64!").is_err());
        assert_eq!(pk.key_id().len(), 16);
    }

    /// RFC 8032 §7.1, test 2 (one-byte message), through the framing-free path ring exposes:
    /// shows the key derivation is standard Ed25519, so any Ed25519 library can check us.
    #[test]
    fn rfc8032_test_vector_public_key() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let seed: [u8; 32] =
            hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(
            key.verifying_key().0.to_vec(),
            hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        );
        let sig = key.pair.sign(&[0x72]);
        assert_eq!(
            sig.as_ref().to_vec(),
            hex(concat!(
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da",
                "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ))
        );
    }
}
