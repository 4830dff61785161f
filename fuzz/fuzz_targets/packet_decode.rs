//! Any datagram: demux, header decode and packet decode must never panic, and every packet that
//! decodes must re-encode to bytes that decode to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_core::wire::{demux, Demux, Header, Packet, MAX_DATAGRAM};

fuzz_target!(|data: &[u8]| {
    let kind = demux(data);
    let header = Header::decode(data);

    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    assert_eq!(kind, Demux::Rift, "a decodable packet must demux as RIFT");
    assert_eq!(
        header,
        Ok(packet.header),
        "packet and header decode disagree"
    );

    let mut buf = [0u8; MAX_DATAGRAM];
    let n = packet
        .encode(&mut buf)
        .unwrap_or_else(|e| panic!("decoded packet does not re-encode: {e}: {packet:?}"));
    let again = Packet::decode(&buf[..n])
        .unwrap_or_else(|e| panic!("re-encoded packet does not decode: {e}: {packet:?}"));
    assert_eq!(packet, again, "decode(encode(p)) != p");
});
