//! RIFT security, sans-IO: the Noise_XX_25519_ChaChaPoly_BLAKE2s handshake (snow), per-packet
//! protection with the RIFT header as associated data, a replay window, rekeying, and the
//! persistent device identities both ends authenticate with, and the Ed25519 signatures the
//! gateway vouches for host records with.

pub mod handshake;
pub mod identity;
pub mod protect;
pub mod replay;
pub mod signing;
