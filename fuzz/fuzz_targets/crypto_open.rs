//! Hostile bytes against the receiving side of rift-crypto: packet opening (replay window,
//! key phases, authentication) and both handshake roles reading arbitrary messages must return
//! errors, never panic, and never accept a forged packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_crypto::handshake::{allow_list, Handshake, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::Identity;
use rift_crypto::protect::{Protection, SessionKeys};
use std::sync::OnceLock;
use std::time::Instant;

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::from_secret([7; 32]))
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let keys = SessionKeys {
        send: [1; 32],
        recv: [2; 32],
    };
    let mut p = Protection::new(&keys, now);
    // Records of [len: u8][bytes]: each one is offered as a sealed packet.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let mut pkt = tail[..len].to_vec();
        rest = &tail[len..];
        assert!(
            p.open(now, &mut pkt).is_err(),
            "a forged packet authenticated"
        );
    }
    let mut out = [0u8; MAX_HANDSHAKE_MESSAGE];
    if let Ok(mut r) = Handshake::responder(identity(), 1, allow_list(vec![])) {
        let _ = r.read_message(data, &mut out);
    }
});
