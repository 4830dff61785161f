//! A running stream makes no heap allocation per frame on our side once warmed up.
//!
//! The counting global allocator of `alloc-counter` counts every `alloc`, `alloc_zeroed`,
//! `realloc` and `dealloc` made by any thread while it measures (so the conversion helper
//! thread is counted too). Each test warms up for 30 frames,
//! then measures 100 frames of the whole per-frame loop:
//!
//!   `FramePool::convert` (BGRA → I420 into a pooled frame) → `VideoEncoder::send` →
//!   `receive` (into a reused `EncodedPacket`) → `VideoDecoder::send` → `receive` → the frame
//!   goes back to the pool
//!
//! and asserts zero counted operations. The BGRA pictures are drawn beforehand.
//!
//! What this cannot see: FFmpeg, x264 and the other C libraries allocate with libc's `malloc`
//! directly, not through Rust's allocator. libavcodec does allocate per frame internally (an
//! `AVBufferRef` and packet buffer for each encoded packet, a copy of each non-refcounted input
//! packet in the decoder); that is FFmpeg's own pooling and is not counted here.
//!
//! Set `NO_ALLOC_BACKTRACE=1` to print a backtrace of every counted allocation:
//! `NO_ALLOC_BACKTRACE=1 cargo test -p wavry-media --test no_alloc -- --nocapture`

use alloc_counter::{measure, Counts, Scope};
use wavry_media::codec::open_encoder_from;
use wavry_media::pattern::Pattern;
use wavry_media::{
    open_decoder, Codec, DecoderConfig, EncodedPacket, EncoderConfig, FramePool, PixelSize,
    VideoDecoder, VideoEncoder,
};

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

const WARMUP: usize = 30;
const MEASURED: usize = 100;
/// Distinct pictures cycled through (drawn before measuring).
const PICTURES: usize = 16;

/// Stream `n` frames starting at `first` through the whole loop; returns the bytes encoded.
fn stream(
    pool: &FramePool,
    pictures: &[Pattern],
    enc: &mut dyn VideoEncoder,
    dec: &mut dyn VideoDecoder,
    pkt: &mut EncodedPacket,
    first: usize,
    n: usize,
) -> usize {
    let mut bytes = 0;
    for i in first..first + n {
        let mut frame = pool
            .convert(&pictures[i % PICTURES].view(), i as i64)
            .expect("convert")
            .expect("a free frame");
        enc.send(&mut frame).expect("encode");
        assert!(enc.receive(pkt).expect("packet"), "encoder lag");
        bytes += pkt.data.len();
        dec.send(&pkt.data, pkt.pts).expect("decode");
        let pic = dec.receive().expect("picture").expect("decoder lag");
        assert_eq!(pic.pts(), Some(i as i64));
    }
    bytes
}

fn run(encoder: &'static str) {
    ffmpeg_next::init().ok();
    if encoder != "openh264" && ffmpeg_next::encoder::find_by_name(encoder).is_none() {
        wavry_testenv::skip(&format!("this FFmpeg has no {encoder} encoder"));
        return;
    }
    let size = PixelSize::new(640, 360);
    let mut cfg = EncoderConfig::new(Codec::H264, size, 30, 4_000_000);
    cfg.hardware = false;
    let mut enc = open_encoder_from(&cfg, &[encoder]).expect("encoder");
    let mut dec = open_decoder(&DecoderConfig {
        hardware: false,
        ..DecoderConfig::new(Codec::H264)
    })
    .expect("decoder");
    let pool = FramePool::new(enc.input_layout(), size, FramePool::DEFAULT_FRAMES);
    let pictures: Vec<Pattern> = (0..PICTURES)
        .map(|n| {
            let mut p = Pattern::new(size);
            p.draw(n as u32 * 5);
            p
        })
        .collect();
    // Room for the largest packet up front, as a sender's reused buffer would have.
    let mut pkt = EncodedPacket {
        data: Vec::with_capacity(1 << 20),
        ..Default::default()
    };
    stream(
        &pool,
        &pictures,
        enc.as_mut(),
        dec.as_mut(),
        &mut pkt,
        0,
        WARMUP,
    );
    let (bytes, counts) = measure(Scope::AllThreads, || {
        stream(
            &pool,
            &pictures,
            enc.as_mut(),
            dec.as_mut(),
            &mut pkt,
            WARMUP,
            MEASURED,
        )
    });
    eprintln!("{encoder}: {MEASURED} frames, {bytes} bytes encoded: {counts:?}");
    assert_eq!(
        counts,
        Counts::default(),
        "{encoder}: heap allocations per frame after warm-up; rerun with NO_ALLOC_BACKTRACE=1 \
         -- --nocapture to see where"
    );
    assert_eq!(pool.available(), FramePool::DEFAULT_FRAMES);
}

/// One test in this binary: the counters are process-wide, and the test harness allocates
/// when any test starts or ends, which would be counted during another test's measurement.
#[test]
fn stream_does_not_allocate() {
    run("libx264");
    #[cfg(feature = "openh264")]
    run("openh264");
}
