//! Mean and p95 per-frame times of conversion, encode and decode for each codec present, at
//! 720p and 1080p, on the moving synthetic desktop picture (criterion does not report p95).
//!
//! `cargo run --release -p wavry-media --example media_bench [--features openh264] -- --frames 300`

use clap::Parser;
use std::time::{Duration, Instant};
use wavry_media::codec::open_encoder_from;
use wavry_media::pattern::Pattern;
use wavry_media::{
    convert, open_decoder, Codec, DecoderConfig, EncodedPacket, EncoderConfig, FramePool,
    PixelSize, YuvFrame, YuvLayout,
};

#[derive(Parser)]
struct Args {
    /// Frames per measurement (fewer for an encoder slower than 10 s in total).
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Frame rate the bitrate budget assumes.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Bits per pixel per frame (0.15 ≈ 18.7 Mbit/s at 1080p60).
    #[arg(long, default_value_t = 0.15)]
    bpp: f64,
    /// Measure conversion only.
    #[arg(long)]
    convert_only: bool,
    /// libx264's threads (slices per frame encoded side by side).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Only these encoders (comma-separated FFmpeg names, e.g. libx264).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Stats(Vec<Duration>);

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = self.0.clone();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len().max(1) as f64;
        let p95 = v.get(v.len() * 95 / 100).copied().unwrap_or_default();
        write!(f, "mean {mean:6.2} ms  p95 {:6.2} ms", ms(p95))
    }
}

const PICTURES: usize = 60;

fn main() {
    let args = Args::parse();
    let mut encoders = vec![
        (Codec::H264, "libx264"),
        (Codec::Hevc, "libx265"),
        (Codec::Av1, "libaom-av1"),
        (Codec::Av1, "libsvtav1"),
    ];
    if cfg!(feature = "openh264") {
        encoders.push((Codec::H264, "openh264"));
    }
    if !args.only.is_empty() {
        encoders.retain(|(_, name)| args.only.iter().any(|o| o == name));
    }
    for size in [PixelSize::new(1280, 720), PixelSize::new(1920, 1080)] {
        println!("== {}x{}", size.width, size.height);
        let pictures: Vec<Pattern> = (0..PICTURES)
            .map(|n| {
                let mut p = Pattern::new(size);
                p.draw(n as u32);
                p
            })
            .collect();
        for layout in [YuvLayout::I420, YuvLayout::Nv12] {
            let mut f = YuvFrame::new(layout, size);
            let one: Vec<Duration> = (0..args.frames)
                .map(|i| {
                    let view = pictures[i % PICTURES].view();
                    let t = Instant::now();
                    convert(&view, &mut f).expect("convert");
                    t.elapsed()
                })
                .collect();
            let pool = FramePool::new(layout, size, 3);
            let two: Vec<Duration> = (0..args.frames)
                .map(|i| {
                    let view = pictures[i % PICTURES].view();
                    let t = Instant::now();
                    let f = pool.convert(&view, i as i64).expect("convert");
                    let d = t.elapsed();
                    drop(f);
                    d
                })
                .collect();
            println!(
                "convert {layout:?}: one thread {}  | pool, two bands {}",
                Stats(one),
                Stats(two)
            );
        }
        if args.convert_only {
            continue;
        }
        let bitrate = (f64::from(size.width * size.height) * f64::from(args.fps) * args.bpp) as u64;
        for &(codec, name) in &encoders {
            let mut cfg = EncoderConfig::new(codec, size, args.fps, bitrate);
            cfg.hardware = false;
            cfg.threads = args.threads;
            let mut enc = match open_encoder_from(&cfg, &[name]) {
                Ok(e) => e,
                Err(e) => {
                    println!("{name}: skipped ({e})");
                    continue;
                }
            };
            let mut dec = open_decoder(&DecoderConfig {
                hardware: false,
                ..DecoderConfig::new(codec)
            })
            .expect("decoder");
            let pool = FramePool::new(enc.input_layout(), size, 3);
            let mut pkt = EncodedPacket::default();
            let (mut enc_t, mut pipe_t, mut dec_t) = (Vec::new(), Vec::new(), Vec::new());
            let (mut bytes, mut lag, mut packets) = (0usize, None, 0usize);
            let start = Instant::now();
            for i in 0..args.frames {
                if i >= 30 && start.elapsed() > Duration::from_secs(10) {
                    break;
                }
                let t0 = Instant::now();
                let mut f = pool
                    .convert(&pictures[i % PICTURES].view(), i as i64)
                    .expect("convert")
                    .expect("frame");
                let t1 = Instant::now();
                enc.send(&mut f).expect("encode");
                let got = enc.receive(&mut pkt).expect("packet");
                let t2 = Instant::now();
                enc_t.push(t2 - t1);
                pipe_t.push(t2 - t0);
                if !got {
                    continue;
                }
                lag.get_or_insert(i);
                packets += 1;
                bytes += pkt.data.len();
                let t3 = Instant::now();
                dec.send(&pkt.data, pkt.pts).expect("decode");
                // A decoder with lag answers later; count only pictures out.
                let out = dec.receive().expect("picture").is_some();
                if out {
                    dec_t.push(t3.elapsed());
                }
            }
            println!(
                "{name:11} encode: {}  convert+encode: {}  | {} decode: {}  | {} kB/frame, \
                 lag {} frames, {} frames",
                Stats(enc_t.clone()),
                Stats(pipe_t),
                dec.name(),
                Stats(dec_t),
                bytes / packets.max(1) / 1000,
                lag.unwrap_or(usize::MAX),
                enc_t.len()
            );
        }
    }
}
