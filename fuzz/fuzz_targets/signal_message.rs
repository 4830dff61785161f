//! Signaling messages arrive from the network at the gateway (peer messages) and at peers
//! (gateway messages, signed host records): parsing must never panic, and whatever parses
//! serialises and parses again to the same value. A signed record opens only if its signature
//! checks, so fuzzed bytes never yield a record under the test key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_crypto::signing::SigningKey;
use wavry_proto::signal::{HostRecord, PeerMessage, ServerEnvelope, Signed, HOST_RECORD_CONTEXT};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = PeerMessage::from_json(text) {
        let again = serde_json::to_string(&m).expect("a parsed message serialises");
        assert_eq!(PeerMessage::from_json(&again).ok(), Some(m));
    }
    if let Ok(env) = ServerEnvelope::from_json(text) {
        let again = serde_json::to_string(&env).expect("a parsed message serialises");
        assert!(ServerEnvelope::from_json(&again).is_ok());
    }
    if let Ok(signed) = serde_json::from_str::<Signed>(text) {
        let key = SigningKey::from_seed(&[7; 32]).expect("a fixed seed is a key");
        assert!(signed
            .open::<HostRecord>(&key.verifying_key(), HOST_RECORD_CONTEXT)
            .is_err());
    }
});
