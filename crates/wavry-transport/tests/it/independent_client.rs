//! A client written from docs/RIFT.md alone, on an independent Noise implementation
//! (noise-protocol + noise-rust-crypto, nothing shared with snow or ring), is admitted by the
//! host's listener: message 1 padded as §5.1 says, a `Retry` followed with its cookie, and the
//! host's first packet opens under the keys the other library derived.

use noise_protocol::patterns::noise_xx;
use noise_protocol::{CipherState, HandshakeState, HandshakeStateBuilder, U8Array, DH};
use noise_rust_crypto::{Blake2s, ChaCha20Poly1305, X25519};
use rift_core::wire::{
    Body, Handshake, Header, Packet, PacketType, COOKIE_LEN, HEADER_LEN, MAX_DATAGRAM,
    MIN_HANDSHAKE_INIT, VERSION,
};
use rift_crypto::handshake::allow_list;
use rift_crypto::identity::{Identity, PublicKey};
use std::net::SocketAddr;
use std::time::Instant;
use wavry_transport::listen::{Listener, ListenerConfig};
use wavry_transport::testing;

type Other = HandshakeState<X25519, ChaCha20Poly1305, Blake2s>;

/// The independent client: its Noise state, and message 1 as a datagram.
fn initiate(s: &<X25519 as DH>::Key, cid: u32, cookie: Option<&[u8]>) -> (Other, Vec<u8>) {
    let mut prologue = b"RIFT".to_vec();
    prologue.extend_from_slice(&VERSION.to_be_bytes());
    let mut b = HandshakeStateBuilder::<X25519>::new();
    b.set_pattern(noise_xx())
        .set_is_initiator(true)
        .set_prologue(&prologue)
        .set_s(U8Array::from_slice(s.as_slice()));
    let mut hs = b.build_handshake_state();
    // §5.1: payload = cookie length, cookie, zeros, so the datagram is 1200 bytes.
    let mut payload = vec![];
    if let Some(c) = cookie {
        payload.push(COOKIE_LEN as u8);
        payload.extend_from_slice(c);
    } else {
        payload.push(0);
    }
    payload.resize(MIN_HANDSHAKE_INIT - HEADER_LEN - 6 - 32, 0);
    let m1 = hs.write_message_vec(&payload).unwrap();
    let d = encode(PacketType::HandshakeInit, 0, cid, &m1);
    assert_eq!(d.len(), MIN_HANDSHAKE_INIT);
    (hs, d)
}

fn encode(t: PacketType, cid: u32, source: u32, noise: &[u8]) -> Vec<u8> {
    let h = Handshake {
        version: VERSION,
        source_connection_id: source,
        noise,
    };
    let body = match t {
        PacketType::HandshakeInit => Body::HandshakeInit(h),
        _ => Body::HandshakeFinish(h),
    };
    let mut out = vec![0u8; MAX_DATAGRAM];
    let n = Packet {
        header: Header {
            packet_type: t,
            flags: 0,
            connection_id: cid,
            packet_number: 0,
        },
        body,
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

fn answers(l: &mut Listener) -> Vec<Vec<u8>> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut out = vec![];
    while let Some(tx) = l.poll_transmit(&mut buf) {
        out.push(buf[..tx.len].to_vec());
    }
    out
}

fn admitted_through(retry: bool) {
    let t0 = Instant::now();
    let host = Identity::generate().unwrap();
    let s = X25519::genkey();
    let client_key = PublicKey(X25519::pubkey(&s));
    let cfg = ListenerConfig {
        // No budget for handshakes without a cookie: every first initiation gets a Retry.
        handshakes_per_sec: if retry { 0 } else { 200 },
        ..ListenerConfig::default()
    };
    let mut l = Listener::new(cfg, &host, move || allow_list(vec![client_key]), t0).unwrap();
    let from: SocketAddr = "198.51.100.7:50000".parse().unwrap();
    let cid = 0x0BAD_CAFE;
    let (mut hs, mut m1) = initiate(&s, cid, None);
    let _ = l.handle_datagram(t0, from, &m1);
    let mut reply = answers(&mut l).remove(0);
    if retry {
        let p = Packet::decode(&reply).unwrap();
        let Body::Retry { echo, cookie } = p.body else {
            panic!("expected a Retry, got {:?}", p.header.packet_type)
        };
        assert_eq!(p.header.connection_id, cid);
        assert_eq!(echo[..], m1[20..36], "the Retry echoes our ephemeral key");
        (hs, m1) = initiate(&s, cid, Some(&cookie));
        l.handle_datagram(t0, from, &m1).unwrap();
        reply = answers(&mut l).remove(0);
    }
    let p = Packet::decode(&reply).unwrap();
    let Body::HandshakeResponse(resp) = p.body else {
        panic!("expected message 2, got {:?}", p.header.packet_type)
    };
    assert_eq!(p.header.connection_id, cid);
    hs.read_message_vec(resp.noise).unwrap();
    assert_eq!(hs.get_rs(), Some(host.public().0));
    let m3 = hs.write_message_vec(b"").unwrap();
    let host_cid = resp.source_connection_id;
    l.handle_datagram(
        t0,
        from,
        &encode(PacketType::HandshakeFinish, host_cid, cid, &m3),
    )
    .unwrap();
    let admitted = l
        .poll_admitted()
        .expect("the independent client is admitted");
    assert_eq!(admitted.remote_key(), Some(client_key));
    // The host's first packet (its Ping) opens with the other library's r2i key.
    let mut session = admitted
        .into_session(testing::fixed_rate(true, 1_000_000))
        .unwrap();
    let mut buf = [0u8; MAX_DATAGRAM];
    let tx = session.poll_transmit(t0, &mut buf).unwrap().unwrap();
    let d = &buf[..tx.len];
    let header = Header::decode(d).unwrap();
    assert_eq!(header.connection_id, cid);
    let (_, r2i) = hs.get_ciphers();
    let (key, _) = r2i.extract();
    let mut plain = vec![0u8; tx.len - HEADER_LEN - 16];
    CipherState::<ChaCha20Poly1305>::new(key.as_slice(), header.packet_number)
        .decrypt_ad(&d[..HEADER_LEN], &d[HEADER_LEN..], &mut plain)
        .expect("the host's packet opens under the independent keys");
    let mut whole = d[..HEADER_LEN].to_vec();
    whole.extend_from_slice(&plain);
    let ping = Packet::decode(&whole).unwrap();
    assert_eq!(ping.header.packet_type, PacketType::Ping);
}

#[test]
fn an_independent_client_is_admitted() {
    admitted_through(false);
}

#[test]
fn an_independent_client_follows_a_retry_and_is_admitted() {
    admitted_through(true);
}
