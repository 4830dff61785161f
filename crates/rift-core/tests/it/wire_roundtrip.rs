//! Every packet type round-trips through the codec, and arbitrary bytes never panic the decoder.

use proptest::prelude::*;
use rift_core::wire::*;

fn header(t: PacketType, cid: u32, pn: u64, flags: u8) -> Header {
    Header {
        packet_type: t,
        flags,
        connection_id: if t == PacketType::HandshakeInit {
            cid
        } else {
            cid.max(1)
        },
        packet_number: pn,
    }
}

fn roundtrip(h: Header, body: Body<'_>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let p = Packet { header: h, body };
    let n = p.encode(&mut buf).expect("encode");
    let d = Packet::decode(&buf[..n]).expect("decode");
    assert_eq!(d, p);
    assert_eq!(demux(&buf[..n]), Demux::Rift);
}

proptest! {
    #[test]
    fn handshake_roundtrips(cid in 1u32.., pn: u64, v: u16, src in 1u32.., noise in prop::collection::vec(any::<u8>(), 0..200)) {
        let hs = Handshake { version: v, source_connection_id: src, noise: &noise };
        roundtrip(header(PacketType::HandshakeInit, 0, pn, 0), Body::HandshakeInit(hs));
        roundtrip(header(PacketType::HandshakeResponse, cid, pn, 0), Body::HandshakeResponse(hs));
        roundtrip(header(PacketType::HandshakeFinish, cid, pn, 0), Body::HandshakeFinish(hs));
    }

    #[test]
    fn small_bodies_roundtrip(cid in 1u32.., pn: u64, flags: u8, id: u64, seq: u32, sack: u64,
                              msg in prop::collection::vec(any::<u8>(), 0..MAX_CONTROL_MESSAGE),
                              reason in "[a-zé ]{0,60}", code: u16, stream: u8, a: u32, b: u32) {
        roundtrip(header(PacketType::Ping, cid, pn, flags), Body::Ping { id });
        roundtrip(header(PacketType::Pong, cid, pn, flags), Body::Pong { id });
        roundtrip(header(PacketType::Control, cid, pn, flags), Body::Control { seq, message: &msg });
        roundtrip(header(PacketType::ControlAck, cid, pn, flags), Body::ControlAck { next_expected: seq, sack });
        roundtrip(header(PacketType::Close, cid, pn, flags), Body::Close { code, reason: &reason });
        let (echo, cookie) = ([a as u8; RETRY_ECHO_LEN], [b as u8; COOKIE_LEN]);
        roundtrip(header(PacketType::Retry, cid, pn, flags), Body::Retry { echo, cookie });
        roundtrip(header(PacketType::Rekey, cid, pn, flags), Body::Rekey { step: (stream % 3) + 1, noise: &msg });
        for kind in [RecoveryKind::Keyframe, RecoveryKind::InvalidateReferences] {
            roundtrip(header(PacketType::KeyframeRequest, cid, pn, flags),
                Body::KeyframeRequest { stream, kind, first_lost_frame: a, last_good_frame: b });
        }
        let idx: Vec<u8> = (0..(a % 40 + 1) as u16).flat_map(|i| (i * 3).to_be_bytes()).collect();
        roundtrip(header(PacketType::Nack, cid, pn, flags), Body::Nack { stream, frame_id: b, indices: &idx });
    }

    #[test]
    fn version_negotiation_roundtrips(cid in 1u32.., versions in prop::collection::vec(any::<u16>(), 1..20)) {
        let mut scratch = [0u8; 64];
        let body = Body::version_negotiation(&versions, &mut scratch).unwrap();
        let Body::VersionNegotiation(v) = body else { unreachable!() };
        prop_assert_eq!(v.versions().collect::<Vec<_>>(), versions);
        roundtrip(header(PacketType::VersionNegotiation, cid, 0, 0), body);
    }

    #[test]
    fn input_roundtrips(cid in 1u32.., seq: u32, events in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..MAX_INPUT_EVENT_LEN), 0..MAX_INPUT_EVENTS)) {
        let mut raw = [0u8; MAX_BODY];
        let (count, n) = InputEvents::encode(events.iter().map(|e| e.as_slice()), &mut raw).unwrap();
        let ev = InputEvents::from_encoded(count, &raw[..n]).unwrap();
        prop_assert_eq!(ev.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), events.clone());
        let mut buf = [0u8; 4096];
        let p = Packet { header: header(PacketType::Input, cid, 1, 0), body: Body::Input { first_seq: seq, events: ev } };
        // Large event sets may not fit one datagram: that must be an error, not a panic.
        match p.encode(&mut buf) {
            Ok(n) => prop_assert_eq!(Packet::decode(&buf[..n]).unwrap(), p),
            Err(EncodeError::TooLong(_)) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn media_roundtrips(cid in 1u32.., frame_len in 1u32..200_000, payload in 200usize..1200, key: bool, rp: bool,
                        scheme in 0u8..3, ratio in 0.0f64..0.5, capture: u64, frame_id: u32, pick: u16) {
        let frag_count = (frame_len as usize).div_ceil(payload).min(65535) as u16;
        let scheme = [FecScheme::None, FecScheme::Xor, FecScheme::ReedSolomon][scheme as usize];
        let fec_count = rift_core::fec::parity_count(scheme, frag_count, ratio);
        let scheme = if fec_count == 0 { FecScheme::None } else { scheme };
        let index = pick % frag_count;
        let h = MediaHeader::new(MediaFields { stream: STREAM_VIDEO, keyframe: key, recovery_point: rp, fec: scheme,
            frame_id, frame_len, capture_us: capture, frag_count, fec_count, index }).unwrap();
        let data = vec![7u8; MediaHeader::fragment_len(frame_len, frag_count, index)];
        roundtrip(header(PacketType::MediaData, cid, 9, 0), Body::MediaData { header: h, payload: &data });
        if fec_count > 0 {
            let h = h.with_index(pick % fec_count).unwrap();
            let parity = vec![1u8; h.parity_len()];
            roundtrip(header(PacketType::MediaParity, cid, 9, 0), Body::MediaParity { header: h, payload: &parity });
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1600)) {
        let _ = demux(&data);
        if let Ok(p) = Packet::decode(&data) {
            // Whatever decodes re-encodes to the same bytes.
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = p.encode(&mut buf).unwrap();
            prop_assert_eq!(&buf[..n], &data[..]);
        }
    }

    #[test]
    fn rift_header_with_random_body_never_panics(t in 0u8..0x30, body in prop::collection::vec(any::<u8>(), 0..1400)) {
        let mut data = vec![RIFT_MARKER | t, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        data.extend_from_slice(&body);
        let _ = Packet::decode(&data);
    }
}

#[test]
fn demux_tells_stun_from_rift() {
    // A STUN binding request: type 0x0001, length 0, magic cookie, transaction id.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00];
    stun.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
    stun.extend_from_slice(&[0u8; 12]);
    assert_eq!(demux(&stun), Demux::Stun);
    stun[5] ^= 1;
    assert_eq!(demux(&stun), Demux::Unknown);
    assert_eq!(demux(&[0x40, 0, 0]), Demux::Unknown);
    assert_eq!(demux(&[]), Demux::Unknown);
}

#[test]
fn typed_errors_for_bad_packets() {
    assert_eq!(
        Packet::decode(&[0x90]),
        Err(DecodeError::Truncated { needed: 2, had: 1 })
    );
    assert_eq!(Header::decode(&[0x00; 14]), Err(DecodeError::NotRift(0)));
    assert_eq!(
        Header::decode(&[0xBF; 14]),
        Err(DecodeError::UnknownType(0x3F))
    );
    let zero_cid = [
        RIFT_MARKER | PacketType::Ping as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    assert_eq!(
        Header::decode(&zero_cid),
        Err(DecodeError::ZeroConnectionId)
    );
    assert_eq!(
        Packet::decode(&[0u8; MAX_DATAGRAM + 1]),
        Err(DecodeError::TooLong(MAX_DATAGRAM + 1))
    );
    let mut ping = [0u8; 14 + 9];
    Header {
        packet_type: PacketType::Ping,
        flags: 0,
        connection_id: 5,
        packet_number: 1,
    }
    .encode(&mut ping)
    .unwrap();
    assert_eq!(Packet::decode(&ping), Err(DecodeError::Trailing(1)));
    // A rekey step outside 1..=3, and a Retry one byte short.
    let mut rekey = [0u8; 14 + 2];
    Header {
        packet_type: PacketType::Rekey,
        flags: 0,
        connection_id: 5,
        packet_number: 1,
    }
    .encode(&mut rekey)
    .unwrap();
    assert!(matches!(
        Packet::decode(&rekey),
        Err(DecodeError::Invalid {
            field: "rekey.step",
            ..
        })
    ));
    let mut retry = [0u8; 14 + RETRY_ECHO_LEN + COOKIE_LEN - 1];
    Header {
        packet_type: PacketType::Retry,
        flags: 0,
        connection_id: 5,
        packet_number: 0,
    }
    .encode(&mut retry)
    .unwrap();
    assert!(matches!(
        Packet::decode(&retry),
        Err(DecodeError::Truncated { .. })
    ));
}

/// RIFT.md §11.3: packets 0, 1 and 3 read at 1000, 1250 and 1200 µs, the report sent at 1500.
const FEEDBACK_VECTOR: &str = "a8001a2b3c4d000000000000001e00000000000000000000000000040000000000\
                               0003e80000012c0b00f40363";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn arrivals(p: &Packet<'_>) -> Vec<(u64, Option<ArrivalTimes>)> {
    match p.body {
        Body::Feedback(f) => f.packets().collect(),
        _ => panic!("not feedback: {:?}", p.body),
    }
}

#[test]
fn feedback_without_socket_times_is_the_published_vector() {
    let bytes = hex(FEEDBACK_VECTOR);
    let p = Packet::decode(&bytes).unwrap();
    let read = |t| {
        Some(ArrivalTimes {
            read_us: t,
            socket_us: t,
        })
    };
    assert_eq!(
        arrivals(&p),
        vec![(0, read(1000)), (1, read(1250)), (2, None), (3, read(1200))]
    );
    let Body::Feedback(f) = p.body else {
        unreachable!()
    };
    assert!(!f.has_socket_times());
    let mut out = [0u8; 64];
    let n = p.encode(&mut out).unwrap();
    assert_eq!(&out[..n], &bytes[..]);
}

#[test]
fn feedback_socket_times_follow_the_read_times() {
    // The vector's packets reached the socket at 990, 1010 and 1020 µs: deltas −10, +20, +10
    // from the first read time (zigzag 19, 40, 20).
    let mut bytes = hex(FEEDBACK_VECTOR);
    bytes.extend_from_slice(&[19, 40, 20]);
    let p = Packet::decode(&bytes).unwrap();
    let t = |read_us, socket_us| Some(ArrivalTimes { read_us, socket_us });
    assert_eq!(
        arrivals(&p),
        vec![
            (0, t(1000, 990)),
            (1, t(1250, 1010)),
            (2, None),
            (3, t(1200, 1020))
        ]
    );
    let mut out = [0u8; 64];
    let n = p.encode(&mut out).unwrap();
    assert_eq!(&out[..n], &bytes[..]);
    // The section holds one time per received packet or is absent.
    for bad in [&[19u8, 40][..], &[19, 40, 20, 0]] {
        let mut b = hex(FEEDBACK_VECTOR);
        b.extend_from_slice(bad);
        assert!(Packet::decode(&b).is_err(), "accepted {bad:?}");
    }
}
