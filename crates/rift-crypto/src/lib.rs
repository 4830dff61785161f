//! RIFT security, sans-IO: the Noise_XX_25519_ChaChaPoly_BLAKE2s handshake (snow), per-packet
//! protection with the RIFT header as associated data, a replay window, rekeying, the device
//! keys both ends authenticate with (stored by wavry-config), and the Ed25519 signatures the
//! gateway vouches for host records with. No file or directory I/O.

#![forbid(unsafe_code)]

pub mod cookie;
pub mod handshake;
pub mod identity;
pub mod protect;
pub mod replay;
pub mod signing;
