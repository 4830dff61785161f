//! The RIFT handshake and packet protection interoperate with an independent Noise
//! implementation (noise-protocol + noise-rust-crypto, no code shared with snow or ring): both
//! directions of the XX handshake complete with the same prologue, and a packet sealed by
//! `Protection` opens with the other library's CipherState at nonce = packet number and
//! associated data = the RIFT header (and the reverse).

use noise_protocol::patterns::noise_xx;
use noise_protocol::{CipherState, HandshakeState, HandshakeStateBuilder, U8Array, DH};
use noise_rust_crypto::{Blake2s, ChaCha20Poly1305, X25519};
use rift_crypto::handshake::{allow_list, pinned, Handshake, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::{Identity, PublicKey};
use rift_crypto::protect::{Protection, SessionKeys, HEADER_LEN, TAG_LEN};
use std::time::Instant;

type Other = HandshakeState<X25519, ChaCha20Poly1305, Blake2s>;
const PROLOGUE: &[u8] = b"RIFT\x00\x01";

fn other(initiator: bool, s: <X25519 as DH>::Key) -> Other {
    let mut b = HandshakeStateBuilder::<X25519>::new();
    b.set_pattern(noise_xx())
        .set_is_initiator(initiator)
        .set_prologue(PROLOGUE)
        .set_s(s);
    b.build_handshake_state()
}

fn header(pn: u64) -> [u8; HEADER_LEN] {
    let mut h = [0x90, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0];
    h[6..].copy_from_slice(&pn.to_be_bytes());
    h
}

/// Ours seals, theirs opens with `their_recv`; theirs seals with `their_send`, ours opens.
fn check_transport(
    ours: SessionKeys,
    their_send: CipherState<ChaCha20Poly1305>,
    their_recv: CipherState<ChaCha20Poly1305>,
) {
    let t0 = Instant::now();
    let mut p = Protection::new(&ours, t0);
    let (recv_key, _) = their_recv.extract();
    let (send_key, _) = their_send.extract();
    for pn in [0u64, 1, 7, 1 << 40] {
        let body = format!("packet {pn}");
        let mut buf = header(pn).to_vec();
        buf.extend_from_slice(body.as_bytes());
        buf.extend_from_slice(&[0; TAG_LEN]);
        let n = p.seal(&mut buf, HEADER_LEN + body.len()).unwrap();
        let mut out = vec![0u8; body.len()];
        CipherState::<ChaCha20Poly1305>::new(recv_key.as_slice(), pn)
            .decrypt_ad(&buf[..HEADER_LEN], &buf[HEADER_LEN..n], &mut out)
            .expect("the other implementation opens our packet");
        assert_eq!(out, body.as_bytes());

        let pn2 = pn + 3;
        let h = header(pn2);
        let mut sealed = vec![0u8; body.len() + TAG_LEN];
        CipherState::<ChaCha20Poly1305>::new(send_key.as_slice(), pn2).encrypt_ad(
            &h,
            body.as_bytes(),
            &mut sealed,
        );
        let mut pkt = h.to_vec();
        pkt.extend_from_slice(&sealed);
        let m = p
            .open(t0, &mut pkt)
            .expect("we open the other implementation's packet");
        assert_eq!(&pkt[HEADER_LEN..m], body.as_bytes());
    }
}

#[test]
fn rift_initiator_with_independent_responder() {
    let client = Identity::generate().unwrap();
    let their_s = X25519::genkey();
    let their_pub = PublicKey(X25519::pubkey(&their_s));
    let mut ours = Handshake::initiator(&client, 1, pinned(their_pub)).unwrap();
    let mut theirs = other(false, their_s);
    let (mut buf, mut payload) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);

    let n = ours.write_message(b"", &mut buf).unwrap();
    theirs.read_message_vec(&buf[..n]).unwrap();
    let m2 = theirs.write_message_vec(b"").unwrap();
    ours.read_message(&m2, &mut payload).unwrap();
    let n = ours.write_message(b"hello from rift", &mut buf).unwrap();
    assert_eq!(
        theirs.read_message_vec(&buf[..n]).unwrap(),
        b"hello from rift"
    );
    assert!(theirs.completed());
    assert_eq!(theirs.get_rs(), Some(client.public().0));

    assert_eq!(ours.handshake_hash(), theirs.get_hash());
    let (keys, remote) = ours.into_keys().unwrap();
    assert_eq!(remote, their_pub);
    let (i2r, r2i) = theirs.get_ciphers();
    // We are the initiator: we send on i2r, they send on r2i.
    check_transport(keys, r2i, i2r);
}

#[test]
fn independent_initiator_with_rift_responder() {
    let host = Identity::generate().unwrap();
    let their_s = X25519::genkey();
    let their_pub = PublicKey(X25519::pubkey(&their_s));
    let mut ours = Handshake::responder(&host, 1, allow_list(vec![their_pub])).unwrap();
    let mut theirs = other(true, their_s);
    let (mut buf, mut payload) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);

    let m1 = theirs.write_message_vec(b"").unwrap();
    ours.read_message(&m1, &mut payload).unwrap();
    let n = ours
        .write_message(b"hello from the host", &mut buf)
        .unwrap();
    assert_eq!(
        theirs.read_message_vec(&buf[..n]).unwrap(),
        b"hello from the host"
    );
    assert_eq!(theirs.get_rs(), Some(host.public().0));
    let m3 = theirs.write_message_vec(b"").unwrap();
    ours.read_message(&m3, &mut payload).unwrap();
    assert!(theirs.completed());

    assert_eq!(ours.handshake_hash(), theirs.get_hash());
    let (keys, remote) = ours.into_keys().unwrap();
    assert_eq!(remote, their_pub);
    let (i2r, r2i) = theirs.get_ciphers();
    // We are the responder: we send on r2i, they send on i2r.
    check_transport(keys, i2r, r2i);
}
