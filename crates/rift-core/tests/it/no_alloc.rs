//! The media hot path makes no heap allocation once its buffers have grown.
//!
//! The counting global allocator of `alloc-counter` counts every `alloc`, `alloc_zeroed`,
//! `realloc` and `dealloc` the test thread makes while it measures. Each test streams
//! a warm-up of 48 frames (24 of the largest size, 100_000 bytes, then 24 of the largest FEC
//! shard size, 99_600 bytes = 83 × 1200, so every sender and receiver slot and the FEC buffers
//! reach their final capacity), then turns measuring on and streams 200 frames of varying
//! sizes (200 to 100_000 bytes) with FEC ratio 0.2 and a deterministic loss pattern that FEC
//! recovers, through the whole per-packet driver loop:
//!
//!   `MediaSender::push_frame` → `poll_transmit` → `Body::decode` → `MediaReceiver::on_packet`
//!   → `handle_timeout` → `poll_event` → `poll_frame`
//!
//! and asserts that the allocation, reallocation and deallocation counts over those 200 frames
//! are all exactly 0 (so 0 per packet and 0 per frame), that every frame was delivered in order
//! and byte-exact, and that FEC did rebuild fragments.
//!
//! Set `NO_ALLOC_BACKTRACE=1` to print a backtrace of every counted allocation:
//! `NO_ALLOC_BACKTRACE=1 cargo test -p rift-core --test it no_alloc -- --nocapture`

use alloc_counter::{measure, Counts, Scope};
use rift_core::media::{
    FecPlan, MediaReceiver, MediaReceiverConfig, MediaSender, MediaSenderConfig, OutgoingFrame,
};
use rift_core::wire::{Body, FecScheme, PacketType, MAX_DATAGRAM};
use std::time::{Duration, Instant};

const MAX_FRAME: usize = 100_000;
/// The largest frame whose fragments all carry the full 1200-byte payload (83 × 1200): it has
/// the longest FEC shard (1200 bytes) and the largest parity block (17 × 1200 = 20_400 bytes),
/// larger than a 100_000-byte frame's (84 fragments of 1190-1191 bytes, 17 × 1191 = 20_247).
const MAX_SHARD_FRAME: usize = 99_600;
const WARMUP_FRAMES: usize = 48;
const MEASURED_FRAMES: usize = 200;

fn frame_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Frame sizes of the measured phase: 200 to 100_000 bytes in a scrambled order, with the two
/// extreme sizes every 50 frames.
fn frame_len(seq: usize) -> usize {
    match seq % 50 {
        24 => MAX_SHARD_FRAME,
        49 => MAX_FRAME,
        _ => 200 + (seq * 7_919) % (MAX_FRAME - 200 + 1),
    }
}

/// Data fragments dropped from frame `seq` of `n` fragments protected by `m` parity packets.
/// Frames cycle through: no loss, one loss, two adjacent losses, and (Reed-Solomon only) a
/// burst of `m` losses; always recoverable by the scheme.
fn lost(scheme: FecScheme, seq: usize, n: usize, m: usize, index: usize) -> bool {
    let burst = match seq % 4 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ if scheme == FecScheme::ReedSolomon => m,
        _ => 1,
    };
    // XOR recovers one loss per group of `m` interleaved fragments: adjacent losses are in
    // different groups as long as the burst is at most `m` long.
    // (No wrap-around: fragments n-1 and 0 may share a group.)
    let burst = burst.min(m).min(n);
    let start = (seq * 13) % (n - burst + 1);
    (start..start + burst).contains(&index)
}

/// Sender, receiver and the buffers of the driver loop, reused across frames.
struct Path {
    tx: MediaSender,
    rx: MediaReceiver,
    plan: FecPlan,
    buf: [u8; MAX_DATAGRAM],
    now: Instant,
    next_id: u32,
    recovered: usize,
    packets: usize,
}

impl Path {
    fn new(scheme: FecScheme) -> Self {
        let mut rx = MediaReceiver::new(MediaReceiverConfig::default());
        rx.set_rtt(Duration::from_millis(20));
        Path {
            tx: MediaSender::new(MediaSenderConfig::default()),
            rx,
            plan: FecPlan { scheme, ratio: 0.2 },
            buf: [0; MAX_DATAGRAM],
            now: Instant::now(),
            next_id: 0,
            recovered: 0,
            packets: 0,
        }
    }

    /// Stream one frame through the path, dropping the data fragments `lost` picks, and
    /// check it comes out whole and in order.
    fn frame(&mut self, data: &[u8], keyframe: bool, seq: usize) {
        let id = self
            .tx
            .push_frame(
                OutgoingFrame {
                    data,
                    keyframe,
                    recovery_point: false,
                    capture_us: seq as u64,
                },
                self.plan,
            )
            .unwrap();
        assert_eq!(id, self.next_id);
        self.next_id += 1;
        let mut delivered = false;
        while let Some(m) = self.tx.poll_transmit(&mut self.buf).unwrap() {
            self.now += Duration::from_micros(10);
            let t = if m.parity {
                PacketType::MediaParity
            } else {
                PacketType::MediaData
            };
            let (header, payload, parity) = match Body::decode(t, &self.buf[..m.len]).unwrap() {
                Body::MediaData { header, payload } => (header, payload, false),
                Body::MediaParity { header, payload } => (header, payload, true),
                _ => unreachable!(),
            };
            let (n, fec) = (header.frag_count() as usize, header.fec_count() as usize);
            if !parity && lost(self.plan.scheme, seq, n, fec, header.index() as usize) {
                continue;
            }
            self.packets += 1;
            self.rx
                .on_packet(self.now, &header, payload, parity)
                .unwrap();
            self.rx.handle_timeout(self.now);
            if let Some(ev) = self.rx.poll_event() {
                panic!("frame {id}: unexpected event {ev:?}");
            }
            if let Some(f) = self.rx.poll_frame() {
                assert!(!delivered, "frame {id} delivered twice");
                assert_eq!(f.frame_id, id);
                assert!(f.data == data, "frame {id} corrupted");
                self.recovered += f.recovered;
                delivered = true;
            }
        }
        assert!(delivered, "frame {id} not delivered");
        // A frame's duration on the wire is well below a frame interval; move on to the next.
        self.now += Duration::from_micros(16_667);
    }
}

fn run(scheme: FecScheme) {
    let mut path = Path::new(scheme);
    // Warm-up: a keyframe then P-frames, cycling through the loss patterns: first frames of
    // the largest size, then of the largest shard size, each run longer than the sender's
    // 16-frame history, so every sender slot, receiver slot and FEC buffer reaches its final
    // size. (Buffers grow to the largest frame *and* shard seen: with 100_000-byte frames
    // alone, the first frame with 1200-byte fragments grows the FEC scratch and parity
    // buffers once.)
    let big = frame_bytes(0, MAX_FRAME);
    let full_shards = frame_bytes(0, MAX_SHARD_FRAME);
    for seq in 0..WARMUP_FRAMES {
        let f = if seq < WARMUP_FRAMES / 2 {
            &big
        } else {
            &full_shards
        };
        path.frame(f, seq == 0, seq);
    }
    // Measured: the frames are generated beforehand (outside the measurement).
    let frames: Vec<Vec<u8>> = (0..MEASURED_FRAMES)
        .map(|i| frame_bytes(i as u64 + 1, frame_len(i)))
        .collect();
    let packets_before = path.packets;
    let recovered_before = path.recovered;
    let ((), counts) = measure(Scope::ThisThread, || {
        for (i, f) in frames.iter().enumerate() {
            path.frame(f, false, WARMUP_FRAMES + i);
        }
    });
    let packets = path.packets - packets_before;
    let recovered = path.recovered - recovered_before;
    eprintln!(
        "{scheme:?}: {MEASURED_FRAMES} frames, {packets} packets received, {recovered} \
         fragments rebuilt by FEC: {counts:?}"
    );
    assert_eq!(
        path.rx.stats.frames_delivered as usize,
        WARMUP_FRAMES + MEASURED_FRAMES
    );
    assert!(recovered > 0, "the loss pattern must exercise FEC recovery");
    assert_eq!(
        counts,
        Counts::default(),
        "{scheme:?}: heap allocations on the media path after warm-up; \
         rerun with NO_ALLOC_BACKTRACE=1 -- --nocapture to see where"
    );
}

#[test]
fn xor_media_path_does_not_allocate() {
    run(FecScheme::Xor);
}

#[test]
fn reed_solomon_media_path_does_not_allocate() {
    run(FecScheme::ReedSolomon);
}
