//! Control messages arrive from the peer: decoding must never panic, and whatever decodes
//! encodes again within the size limit. The input is also read as a sequence of messages
//! (each behind a 2-byte little-endian length) whose cursor chunks go through one
//! `CursorAssembler`, as a client's would: a shape it completes has exactly its pixels.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wavry_control::{ControlMessage, CursorAssembler, MAX_CURSOR_SIDE};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ControlMessage::decode(data) {
        let again = m.encode().expect("a decoded message encodes");
        assert_eq!(ControlMessage::decode(&again).as_ref(), Ok(&m));
    }
    let mut cursors = CursorAssembler::default();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (msg, tail) = rest[2..].split_at(len);
        rest = tail;
        if let Ok(ControlMessage::CursorShape(chunk)) = ControlMessage::decode(msg) {
            if let Ok(Some(c)) = cursors.push(chunk) {
                assert!(c.width > 0 && c.width <= MAX_CURSOR_SIDE);
                assert!(c.height > 0 && c.height <= MAX_CURSOR_SIDE);
                assert!(c.hotspot_x < c.width && c.hotspot_y < c.height);
                assert_eq!(
                    c.bgra.len(),
                    usize::from(c.width) * usize::from(c.height) * 4
                );
                assert!(c.chunks().is_ok(), "a shape put together is sent again");
            }
        }
    }
});
