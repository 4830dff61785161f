//! Media hot path on one core: `MediaSender::push_frame` (packetize + FEC parity) →
//! `poll_transmit` of every packet into a send batch → `Body::decode` of each body →
//! `MediaReceiver::on_packet` + `poll_frame` until the frame is delivered.
//!
//! Frame: 100_000 bytes (84 data packets of ≤ 1200 bytes), FEC ratio 0.2 (17 parity packets).
//! Issue target: ≤ 100 µs per frame for packetize + FEC + reassemble.
//!
//! Run: `cargo bench -p rift-core --bench media_path` (add a filter, e.g. `-- media_path/xor`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rift_core::bitset::BitSet;
use rift_core::fec::{self, FecDecoder, FecEncoder, FrameShards};
use rift_core::media::{
    FecPlan, MediaReceiver, MediaReceiverConfig, MediaSender, MediaSenderConfig, OutgoingFrame,
};
use rift_core::wire::{
    Body, FecScheme, Header, MediaFields, MediaHeader, Packet, PacketType, DEFAULT_MEDIA_PAYLOAD,
    HEADER_LEN, MAX_DATAGRAM, STREAM_VIDEO,
};
use std::hint::black_box;
use std::time::Instant;

const FRAME_LEN: usize = 100_000;
const FEC_RATIO: f64 = 0.2;

fn frame_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Which data fragments the "network" drops (by fragment index), for every frame.
#[derive(Clone, Copy)]
enum Loss {
    None,
    /// Fragments with `index % 20 == 10`: 10, 30, 50, 70 of 84 (4.8 % of data packets). With
    /// 17 XOR groups they fall in groups 10, 13, 16 and 2, so XOR recovers all four; for
    /// Reed-Solomon any 4 losses out of 17 parity are recoverable.
    EveryTwentieth,
}

impl Loss {
    fn drops(self, index: u16) -> bool {
        match self {
            Loss::None => false,
            Loss::EveryTwentieth => index % 20 == 10,
        }
    }
}

/// Sender, receiver and a reusable send batch; state carries over between iterations so frame
/// ids keep increasing and buffers are warm.
struct MediaPath {
    tx: MediaSender,
    rx: MediaReceiver,
    plan: FecPlan,
    loss: Loss,
    frame: Vec<u8>,
    /// Encoded bodies of one frame: (bytes, len, parity).
    batch: Vec<([u8; MAX_DATAGRAM], usize, bool)>,
    now: Instant,
}

impl MediaPath {
    fn new(scheme: FecScheme, ratio: f64, loss: Loss) -> Self {
        let mut p = MediaPath {
            tx: MediaSender::new(MediaSenderConfig::default()),
            rx: MediaReceiver::new(MediaReceiverConfig::default()),
            plan: FecPlan { scheme, ratio },
            loss,
            frame: frame_bytes(FRAME_LEN),
            batch: Vec::with_capacity(256),
            now: Instant::now(),
        };
        // The receiver waits for a keyframe before delivering: start with one, then P-frames.
        p.run_frame(true);
        for _ in 0..32 {
            p.run_frame(false);
        }
        p
    }

    /// Send one frame through the whole path; returns the fragments FEC rebuilt.
    fn run_frame(&mut self, keyframe: bool) -> usize {
        let id = self
            .tx
            .push_frame(
                OutgoingFrame {
                    data: &self.frame,
                    keyframe,
                    recovery_point: false,
                    capture_us: 0,
                },
                self.plan,
            )
            .expect("push_frame");
        // Sender: every packet of the frame into the send batch.
        let mut n = 0;
        loop {
            if n == self.batch.len() {
                self.batch.push(([0u8; MAX_DATAGRAM], 0, false));
            }
            let slot = &mut self.batch[n];
            match self.tx.poll_transmit(&mut slot.0).expect("poll_transmit") {
                Some(m) => {
                    slot.1 = m.len;
                    slot.2 = m.parity;
                    n += 1;
                }
                None => break,
            }
        }
        // Receiver: decode and reassemble, polling for the frame after every packet.
        let mut data_index = 0u16;
        let mut delivered = None;
        for (bytes, len, parity) in &self.batch[..n] {
            if !parity {
                let i = data_index;
                data_index += 1;
                if self.loss.drops(i) {
                    continue;
                }
            }
            let t = if *parity {
                PacketType::MediaParity
            } else {
                PacketType::MediaData
            };
            let (header, payload, parity) = match Body::decode(t, &bytes[..*len]).expect("decode") {
                Body::MediaData { header, payload } => (header, payload, false),
                Body::MediaParity { header, payload } => (header, payload, true),
                _ => unreachable!(),
            };
            self.rx
                .on_packet(self.now, &header, payload, parity)
                .expect("on_packet");
            if delivered.is_none() {
                if let Some(f) = self.rx.poll_frame() {
                    delivered = Some((f.frame_id, f.data.len(), f.recovered));
                }
            }
        }
        let (got, len, recovered) = delivered.expect("frame not delivered");
        assert_eq!((got, len), (id, FRAME_LEN));
        recovered
    }
}

fn bench_media_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("media_path");
    g.throughput(Throughput::Bytes(FRAME_LEN as u64));
    let cases = [
        ("none/no_loss", FecScheme::None, 0.0, Loss::None),
        ("xor_20pct/no_loss", FecScheme::Xor, FEC_RATIO, Loss::None),
        (
            "rs_20pct/no_loss",
            FecScheme::ReedSolomon,
            FEC_RATIO,
            Loss::None,
        ),
        (
            "xor_20pct/loss_5pct",
            FecScheme::Xor,
            FEC_RATIO,
            Loss::EveryTwentieth,
        ),
        (
            "rs_20pct/loss_5pct",
            FecScheme::ReedSolomon,
            FEC_RATIO,
            Loss::EveryTwentieth,
        ),
    ];
    for (name, scheme, ratio, loss) in cases {
        let mut p = MediaPath::new(scheme, ratio, loss);
        let expect_recovered = match loss {
            Loss::None => 0,
            Loss::EveryTwentieth => 4,
        };
        assert_eq!(p.run_frame(false), expect_recovered, "{name}: FEC recovery");
        g.bench_function(name, |b| b.iter(|| black_box(p.run_frame(false))));
    }
    g.finish();
}

fn bench_packet_decode(c: &mut Criterion) {
    // A full-size MediaData packet (header + media header + 1200-byte payload), as it is after
    // decryption.
    let payload = frame_bytes(DEFAULT_MEDIA_PAYLOAD);
    let packet = Packet {
        header: Header {
            packet_type: PacketType::MediaData,
            flags: 0,
            connection_id: 0x1234_5678,
            packet_number: 1_000_000,
        },
        body: Body::MediaData {
            header: MediaHeader::new(MediaFields {
                stream: STREAM_VIDEO,
                keyframe: false,
                recovery_point: false,
                fec: FecScheme::Xor,
                frame_id: 4242,
                frame_len: FRAME_LEN as u32,
                capture_us: 123_456_789,
                frag_count: 84,
                fec_count: 17,
                index: 83,
            })
            .expect("a valid layout"),
            // Fragment 83 of a 100_000-byte frame in 84 fragments is 1190 bytes.
            payload: &payload[..MediaHeader::fragment_len(FRAME_LEN as u32, 84, 83)],
        },
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let len = packet.encode(&mut buf).expect("encode");
    assert!(len > HEADER_LEN);
    assert_eq!(Packet::decode(&buf[..len]).expect("decode"), packet);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("packet_decode/media_data", |b| {
        b.iter(|| Packet::decode(black_box(&buf[..len])).map(|p| p.header.packet_number))
    });
    g.finish();
}

fn bench_fec_encode(c: &mut Criterion) {
    let frame = frame_bytes(FRAME_LEN);
    let frag_count = FRAME_LEN.div_ceil(DEFAULT_MEDIA_PAYLOAD) as u16;
    let mut g = c.benchmark_group("fec_encode");
    g.throughput(Throughput::Bytes(FRAME_LEN as u64));
    for (name, scheme) in [
        ("xor_20pct", FecScheme::Xor),
        ("rs_20pct", FecScheme::ReedSolomon),
    ] {
        let fec_count = fec::parity_count(scheme, frag_count, FEC_RATIO);
        assert_eq!((frag_count, fec_count), (84, 17));
        let mut enc = FecEncoder::new();
        enc.encode(scheme, &frame, frag_count, fec_count)
            .expect("encode");
        g.bench_function(name, |b| {
            b.iter(|| {
                enc.encode(scheme, black_box(&frame), frag_count, fec_count)
                    .expect("encode");
                black_box(enc.parity(0).map(|p| p[0]))
            })
        });
    }
    g.finish();
}

/// FEC recovery alone: the receiver's `FecDecoder::recover` rebuilding the 4 fragments the
/// `loss_5pct` cases drop (10, 30, 50, 70 of 84) from 80 data + 17 parity packets.
fn bench_fec_recover(c: &mut Criterion) {
    let src = frame_bytes(FRAME_LEN);
    let frame_len = FRAME_LEN as u32;
    let n = FRAME_LEN.div_ceil(DEFAULT_MEDIA_PAYLOAD) as u16;
    let mut g = c.benchmark_group("fec_recover");
    g.throughput(Throughput::Bytes(FRAME_LEN as u64));
    for (name, scheme) in [
        ("xor_20pct/4_lost", FecScheme::Xor),
        ("rs_20pct/4_lost", FecScheme::ReedSolomon),
    ] {
        let m = fec::parity_count(scheme, n, FEC_RATIO);
        let mut enc = FecEncoder::new();
        enc.encode(scheme, &src, n, m).expect("encode");
        let parity: Vec<u8> = (0..m as usize)
            .flat_map(|j| enc.parity(j).expect("parity").to_vec())
            .collect();
        let mut parity_have = BitSet::with_len(m as usize);
        (0..m as usize).for_each(|j| {
            parity_have.set(j);
        });
        let mut frame = src.clone();
        let mut have = BitSet::with_len(n as usize);
        let mut dec = FecDecoder::new();
        let mut recover = |frame: &mut Vec<u8>, have: &mut BitSet| {
            have.reset(n as usize);
            for i in (0..n).filter(|i| !Loss::EveryTwentieth.drops(*i)) {
                have.set(i as usize);
            }
            let mut shards = FrameShards {
                scheme,
                frame_len,
                frag_count: n,
                fec_count: m,
                frame,
                have,
                parity: &parity,
                parity_have: &parity_have,
            };
            dec.recover(&mut shards).expect("recover")
        };
        // Wipe the lost fragments and check they come back byte-exact.
        for i in (0..n).filter(|i| Loss::EveryTwentieth.drops(*i)) {
            let off = MediaHeader::fragment_offset(frame_len, n, i);
            frame[off..off + MediaHeader::fragment_len(frame_len, n, i)].fill(0);
        }
        assert_eq!(recover(&mut frame, &mut have), 4);
        assert!(frame == src && have.count() == n as usize);
        g.bench_function(name, |b| b.iter(|| recover(&mut frame, &mut have)));
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_media_path,
    bench_packet_decode,
    bench_fec_encode,
    bench_fec_recover
);
criterion_main!(benches);
