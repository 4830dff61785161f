//! Encode and decode time per frame at 720p and 1080p for each codec present, on the moving
//! synthetic desktop picture at 60 fps and 0.15 bit per pixel (≈ 18.7 Mbit/s at 1080p60).
//! `cargo bench -p wavry-media --bench codec` (add `--features openh264` for openh264).
//! (p95 figures: `cargo run --release -p wavry-media --example media_bench`.)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::{Duration, Instant};
use wavry_media::codec::open_encoder_from;
use wavry_media::pattern::Pattern;
use wavry_media::{
    open_decoder, Codec, DecoderConfig, EncodedPacket, EncoderConfig, FramePool, PixelSize,
};

const SIZES: [(&str, PixelSize); 2] = [
    ("720p", PixelSize::new(1280, 720)),
    ("1080p", PixelSize::new(1920, 1080)),
];
const FPS: u32 = 60;
/// Distinct pictures cycled through.
const PICTURES: usize = 30;

fn encoders() -> Vec<(Codec, &'static str)> {
    let mut v = vec![
        (Codec::H264, "libx264"),
        (Codec::Hevc, "libx265"),
        (Codec::Av1, "libaom-av1"),
    ];
    if cfg!(feature = "openh264") {
        v.push((Codec::H264, "openh264"));
    }
    ffmpeg_next::init().ok();
    v.retain(|(_, n)| *n == "openh264" || ffmpeg_next::encoder::find_by_name(n).is_some());
    v
}

fn bitrate(size: PixelSize) -> u64 {
    (f64::from(size.width * size.height) * f64::from(FPS) * 0.15) as u64
}

fn bench(c: &mut Criterion) {
    for (label, size) in SIZES {
        let pictures: Vec<Pattern> = (0..PICTURES)
            .map(|n| {
                let mut p = Pattern::new(size);
                p.draw(n as u32);
                p
            })
            .collect();
        for (codec, name) in encoders() {
            let mut cfg = EncoderConfig::new(codec, size, FPS, bitrate(size));
            cfg.hardware = false;
            let Ok(mut enc) = open_encoder_from(&cfg, &[name]) else {
                continue;
            };
            let pool = FramePool::new(enc.input_layout(), size, 3);
            let mut pkt = EncodedPacket::default();
            // The stream the decoder bench replays: starts with the keyframe, so wrapping
            // around restarts cleanly.
            let mut stream = Vec::new();
            let mut n = 0usize;
            let mut g = c.benchmark_group(format!("codec/{label}"));
            g.sample_size(10).measurement_time(Duration::from_secs(4));
            g.bench_function(BenchmarkId::new("encode", name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut f = pool
                            .convert(&pictures[n % PICTURES].view(), n as i64)
                            .unwrap()
                            .unwrap();
                        let t = Instant::now();
                        enc.send(&mut f).unwrap();
                        enc.receive(&mut pkt).unwrap();
                        total += t.elapsed();
                        if stream.len() < 2 * PICTURES {
                            stream.push(pkt.data.clone());
                        }
                        n += 1;
                    }
                    total
                })
            });
            let mut dec = open_decoder(&DecoderConfig {
                hardware: false,
                ..DecoderConfig::new(codec)
            })
            .unwrap();
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new("decode", name), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        dec.send(&stream[i % stream.len()], i as i64).unwrap();
                        dec.receive().unwrap();
                        i += 1;
                    }
                    t.elapsed()
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
