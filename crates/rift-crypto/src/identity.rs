//! Device identities: the static X25519 keypair a device authenticates with in the Noise_XX
//! handshake, and the short fingerprint humans compare.
//!
//! Everything here is pure except [`Identity::generate`], which reads OS randomness. Storing
//! identities (the identity file, the trust-on-first-use `known_hosts` store, the configuration
//! directory) is wavry-config's.

use std::fmt;
use std::str::FromStr;

use blake2::{Blake2s256, Digest};
use data_encoding::{BASE32_NOPAD, BASE64};
use zeroize::Zeroizing;

/// Length of an X25519 key (secret or public), in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation for fingerprints.
const FINGERPRINT_CONTEXT: &[u8] = b"wavry fingerprint v1";
/// Bytes of the BLAKE2s digest kept in a fingerprint (80 bits = 16 base32 characters).
const FINGERPRINT_LEN: usize = 10;

/// Errors from keys and fingerprints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A key or fingerprint given as bytes or text is not valid.
    #[error("invalid key: {0}")]
    BadKey(String),
    /// The operating system's random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Random(String),
}

// ---------------------------------------------------------------------------------------------
// Public keys and fingerprints
// ---------------------------------------------------------------------------------------------

/// An X25519 public key (a device's static Noise key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// A public key from exactly [`KEY_LEN`] bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; KEY_LEN] = b.try_into().map_err(|_| {
            IdentityError::BadKey(format!(
                "public key is {} bytes, expected {KEY_LEN}",
                b.len()
            ))
        })?;
        Ok(PublicKey(bytes))
    }

    /// The key's short, human-comparable fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Blake2s256::new();
        h.update(FINGERPRINT_CONTEXT);
        h.update(self.0);
        let digest = h.finalize();
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Fingerprint(fp)
    }

    /// Standard, padded base64 (44 characters).
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Parse standard, padded base64 (surrounding whitespace is ignored).
    pub fn from_base64(s: &str) -> Result<Self, IdentityError> {
        let bytes = BASE64
            .decode(s.trim().as_bytes())
            .map_err(|e| IdentityError::BadKey(format!("public key is not valid base64: {e}")))?;
        Self::from_slice(&bytes)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// Short, human-comparable digest of a public key: the first 10 bytes of
/// BLAKE2s-256("wavry fingerprint v1" || key), shown as 16 base32 characters (RFC 4648 alphabet,
/// no padding) in four groups: `ABCD-EFGH-IJKL-MNOP`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The raw 10 digest bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = BASE32_NOPAD.encode(&self.0);
        debug_assert_eq!(s.len(), 16);
        write!(f, "{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdentityError;

    /// Accepts `ABCD-EFGH-IJKL-MNOP` or `ABCDEFGHIJKLMNOP`, case-insensitive; surrounding
    /// whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s
            .trim()
            .chars()
            .filter(|&c| c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact.len() != 16 {
            return Err(IdentityError::BadKey(format!(
                "fingerprint {s:?} has {} base32 characters, expected 16",
                compact.chars().count()
            )));
        }
        let bytes = BASE32_NOPAD
            .decode(compact.as_bytes())
            .map_err(|e| IdentityError::BadKey(format!("fingerprint {s:?} is not base32: {e}")))?;
        let arr: [u8; FINGERPRINT_LEN] = bytes.try_into().map_err(|_| {
            IdentityError::BadKey(format!("fingerprint {s:?} has the wrong length"))
        })?;
        Ok(Fingerprint(arr))
    }
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// A device's static keypair. The secret is zeroized on drop and never printed by `Debug`.
pub struct Identity {
    secret: Zeroizing<[u8; KEY_LEN]>,
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// A fresh identity from the operating system's random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut secret[..]).map_err(|e| IdentityError::Random(e.to_string()))?;
        Ok(Self::from_secret(*secret))
    }

    /// The identity with this X25519 secret. The bytes are kept as given; clamping is applied
    /// when the key is used (as x25519-dalek and snow do), and public = X25519(secret, 9).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        let secret = Zeroizing::new(secret);
        // StaticSecret zeroizes itself on drop.
        let dalek = x25519_dalek::StaticSecret::from(*secret);
        let public = PublicKey(x25519_dalek::PublicKey::from(&dalek).to_bytes());
        Identity { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret half, for snow's `Builder::local_private_key`.
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// Fingerprint of the public key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v = data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn rfc7748_vector() {
        // RFC 7748 §6.1, Alice.
        let id = Identity::from_secret(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            id.public().0,
            hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        // The secret is kept as given (unclamped), as snow expects.
        assert_eq!(
            id.secret(),
            &hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        );
        // Bob, for good measure.
        let bob = Identity::from_secret(hex32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            bob.public().0,
            hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
    }

    #[test]
    fn snow_agrees_on_public_key() {
        let params: snow::params::NoiseParams =
            "Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let mut ini = snow::Builder::new(params.clone())
            .local_private_key(a.secret())
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut res = snow::Builder::new(params)
            .local_private_key(b.secret())
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut msg, mut out) = ([0u8; 256], [0u8; 256]);
        let n = ini.write_message(&[], &mut msg).unwrap();
        res.read_message(&msg[..n], &mut out).unwrap();
        let n = res.write_message(&[], &mut msg).unwrap();
        ini.read_message(&msg[..n], &mut out).unwrap();
        let n = ini.write_message(&[], &mut msg).unwrap();
        res.read_message(&msg[..n], &mut out).unwrap();
        assert_eq!(res.get_remote_static().unwrap(), &a.public().0[..]);
        assert_eq!(ini.get_remote_static().unwrap(), &b.public().0[..]);
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public(), b.public());
        assert_ne!(a.secret(), b.secret());
        assert_eq!(Identity::from_secret(*a.secret()).public(), a.public());
    }

    #[test]
    fn debug_never_shows_secret() {
        let id = Identity::from_secret([7u8; 32]);
        let dbg = format!("{id:?}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(!dbg.contains(&BASE64.encode(&[7u8; 32])), "{dbg}");
        assert!(!dbg.contains("7, 7"), "{dbg}");
        assert!(dbg.contains(&id.fingerprint().to_string()), "{dbg}");
        let pk = format!("{:?}", id.public());
        assert_eq!(pk, format!("PublicKey({})", id.fingerprint()));
    }

    #[test]
    fn fingerprint_format_and_round_trip() {
        let id = Identity::from_secret([1u8; 32]);
        let fp = id.fingerprint();
        let s = fp.to_string();
        assert_eq!(s.len(), 19);
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 4);
        for g in &groups {
            assert_eq!(g.len(), 4);
            assert!(g
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        }
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s.replace('-', "").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("  {s} \n").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({s})"));
        // Definition: first 10 bytes of BLAKE2s-256("wavry fingerprint v1" || key).
        let digest = Blake2s256::digest([FINGERPRINT_CONTEXT, &id.public().0[..]].concat());
        assert_eq!(fp.as_bytes()[..], digest[..10]);
        // Different keys, different fingerprints.
        assert_ne!(Identity::from_secret([2u8; 32]).fingerprint(), fp);
        // Rejects garbage.
        for bad in [
            "",
            "ABCD-EFGH",
            "ABCD-EFGH-IJKL-MNOP-QRST",
            "ABCD-EFGH-IJKL-MNO1",
            "ÄBCD-EFGH-IJKL-MNO",
        ] {
            assert!(
                matches!(bad.parse::<Fingerprint>(), Err(IdentityError::BadKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn public_key_encodings() {
        let pk = Identity::from_secret([3u8; 32]).public();
        let b64 = pk.to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(PublicKey::from_base64(&b64).unwrap(), pk);
        assert_eq!(PublicKey::from_slice(&pk.0).unwrap(), pk);
        assert!(matches!(
            PublicKey::from_slice(&[0u8; 31]),
            Err(IdentityError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::from_base64("not base64!"),
            Err(IdentityError::BadKey(_))
        ));
        assert!(matches!(
            PublicKey::from_base64(&BASE64.encode(&[0u8; 33])),
            Err(IdentityError::BadKey(_))
        ));
    }
}
