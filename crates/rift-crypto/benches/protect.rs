//! Per-packet protection cost (seal, and open with the replay check) for a full-size media
//! packet, and the cost of a whole Noise_XX handshake.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rift_crypto::handshake::{allow_list, pinned, Handshake, MAX_HANDSHAKE_MESSAGE};
use rift_crypto::identity::Identity;
use rift_crypto::protect::{Protection, SessionKeys, HEADER_LEN, TAG_LEN};
use std::hint::black_box;
use std::time::Instant;

fn protect(c: &mut Criterion) {
    let t0 = Instant::now();
    let (ka, kb) = (
        SessionKeys {
            send: [1; 32],
            recv: [2; 32],
        },
        SessionKeys {
            send: [2; 32],
            recv: [1; 32],
        },
    );
    let mut g = c.benchmark_group("protect");
    for body in [64usize, 1238] {
        g.throughput(Throughput::Bytes(body as u64));
        let mut a = Protection::new(&ka, t0);
        let mut b = Protection::new(&kb, t0);
        let mut buf = vec![0u8; HEADER_LEN + body + TAG_LEN];
        buf[0] = 0xA0;
        buf[5] = 1;
        let mut pn = 0u64;
        g.bench_with_input(
            BenchmarkId::new("seal_open", body),
            &body,
            |bench, &body| {
                bench.iter(|| {
                    pn += 1;
                    buf[6..14].copy_from_slice(&pn.to_be_bytes());
                    let n = a.seal(&mut buf, HEADER_LEN + body).unwrap();
                    black_box(b.open(t0, &mut buf[..n]).unwrap())
                })
            },
        );
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

criterion_group!(benches, protect, handshake);
criterion_main!(benches);
