//! Control messages arrive from the peer: decoding must never panic, and whatever decodes
//! encodes again within the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavry_proto::ControlMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ControlMessage::decode(data) {
        let again = m.encode().expect("a decoded message encodes");
        assert_eq!(ControlMessage::decode(&again).as_ref(), Ok(&m));
    }
});
