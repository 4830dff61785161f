//! Per-packet protection cost, each direction on its own, for a full-size media body and a small
//! input/feedback body:
//! - `packet/encrypt_send`: seal a packet and send it with one `send_to` on a loopback UDP
//!   socket (what a sender pays per packet);
//! - `packet/receive_decrypt`: `recv_from` one waiting datagram, then open it with the replay
//!   check (what a receiver pays per packet; the datagrams are queued before the clock runs);
//! - `protect/seal` and `protect/open`: the same without the socket, the crypto alone;
//! - `handshake/xx_complete`: a whole Noise_XX handshake.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rift_crypto::handshake::{allow_list, pinned, Handshake, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::Identity;
use rift_crypto::protect::{Protection, SessionKeys, HEADER_LEN, TAG_LEN};
use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const BODIES: [usize; 2] = [64, 1238];
/// Datagrams queued per round of `receive_decrypt`: well inside the default socket receive
/// buffer (≈ 208 KiB, ≈ 2.3 KiB of it per queued full-size datagram), so none is dropped.
const QUEUED: u64 = 48;

fn keys() -> (SessionKeys, SessionKeys) {
    (
        SessionKeys {
            send: [1; 32],
            recv: [2; 32],
        },
        SessionKeys {
            send: [2; 32],
            recv: [1; 32],
        },
    )
}

/// A media packet with packet number `pn`, sealed by `p`: header ‖ ciphertext ‖ tag.
fn sealed(p: &mut Protection, pn: u64, body: usize, buf: &mut [u8]) -> usize {
    buf[0] = 0xA0;
    buf[1] = 0;
    buf[2..6].copy_from_slice(&1u32.to_be_bytes());
    buf[6..14].copy_from_slice(&pn.to_be_bytes());
    p.seal(buf, HEADER_LEN + body).expect("room for the tag")
}

fn loopback_pair() -> (UdpSocket, UdpSocket) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    tx.connect(rx.local_addr().expect("address"))
        .expect("connect");
    rx.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    (tx, rx)
}

fn packet(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("packet");
    for body in BODIES {
        g.throughput(Throughput::Bytes(body as u64));
        let (ka, kb) = keys();
        let (tx, rx) = loopback_pair();
        let target = rx.local_addr().expect("address");
        let mut a = Protection::new(&ka, t0);
        let mut buf = vec![0u8; HEADER_LEN + body + TAG_LEN];
        let mut pn = 0u64;
        // The receiver is not read: the kernel drops what overflows its buffer, after the send
        // has been paid for, as a socket with a slow reader would.
        g.bench_with_input(BenchmarkId::new("encrypt_send", body), &body, |b, &body| {
            b.iter(|| {
                pn += 1;
                let n = sealed(&mut a, pn, body, &mut buf);
                black_box(tx.send_to(&buf[..n], target).expect("send"))
            })
        });
        drop(rx);

        let (tx, rx) = loopback_pair();
        let (mut a, mut b) = (Protection::new(&ka, t0), Protection::new(&kb, t0));
        let mut out = vec![0u8; HEADER_LEN + body + TAG_LEN];
        let mut inb = vec![0u8; 2048];
        let mut pn = 0u64;
        g.bench_with_input(
            BenchmarkId::new("receive_decrypt", body),
            &body,
            |bench, &body| {
                bench.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let round = left.min(QUEUED);
                        for _ in 0..round {
                            pn += 1;
                            let n = sealed(&mut a, pn, body, &mut out);
                            tx.send(&out[..n]).expect("send");
                        }
                        let start = Instant::now();
                        for _ in 0..round {
                            let (n, _) = rx.recv_from(&mut inb).expect("a queued datagram");
                            black_box(b.open(t0, &mut inb[..n]).expect("authentic, fresh"));
                        }
                        spent += start.elapsed();
                        left -= round;
                    }
                    spent
                })
            },
        );
    }
    g.finish();
}

fn protect(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("protect");
    for body in BODIES {
        g.throughput(Throughput::Bytes(body as u64));
        let (ka, kb) = keys();
        let mut a = Protection::new(&ka, t0);
        let mut buf = vec![0u8; HEADER_LEN + body + TAG_LEN];
        let mut pn = 0u64;
        g.bench_with_input(BenchmarkId::new("seal", body), &body, |bench, &body| {
            bench.iter(|| {
                pn += 1;
                black_box(sealed(&mut a, pn, body, &mut buf))
            })
        });
        let mut b = Protection::new(&kb, t0);
        let mut packets: Vec<Vec<u8>> = Vec::new();
        g.bench_with_input(BenchmarkId::new("open", body), &body, |bench, &body| {
            bench.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let round = left.min(1024);
                    packets.clear();
                    for _ in 0..round {
                        pn += 1;
                        let n = sealed(&mut a, pn, body, &mut buf);
                        packets.push(buf[..n].to_vec());
                    }
                    let start = Instant::now();
                    for p in packets.iter_mut() {
                        black_box(b.open(t0, p).expect("authentic, fresh"));
                    }
                    spent += start.elapsed();
                    left -= round;
                }
                spent
            })
        });
    }
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let (host, client) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    c.bench_function("handshake/xx_complete", |b| {
        b.iter(|| {
            let mut i = Handshake::initiator(&client, 1, pinned(host.public())).unwrap();
            let mut r = Handshake::responder(&host, 1, allow_list(vec![client.public()])).unwrap();
            let (mut m, mut p) = ([0u8; MAX_HANDSHAKE_MESSAGE], [0u8; MAX_HANDSHAKE_MESSAGE]);
            let n = i.write_message(b"", &mut m).unwrap();
            r.read_message(&m[..n], &mut p).unwrap();
            let n = r.write_message(b"", &mut m).unwrap();
            i.read_message(&m[..n], &mut p).unwrap();
            let n = i.write_message(b"", &mut m).unwrap();
            r.read_message(&m[..n], &mut p).unwrap();
            black_box((i.into_keys().unwrap(), r.into_keys().unwrap()))
        })
    });
}

criterion_group!(benches, packet, protect, handshake);
criterion_main!(benches);
