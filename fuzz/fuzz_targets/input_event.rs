//! Input events arrive from the network inside RIFT Input packets: decoding must never panic,
//! and whatever decodes must encode back to the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavry_input::{Timed, MAX_EVENT_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Timed::decode(data) {
        let mut buf = [0u8; MAX_EVENT_LEN];
        let n = t.encode(&mut buf);
        assert_eq!(&buf[..n], data);
    }
});
