//! BGRA → YUV 4:2:0 conversion at 720p and 1080p: our converter (yuvutils-rs) for I420 and
//! NV12 on one thread and as the frame pool runs it (two bands on two threads), and dcv-color-primitives (the other SIMD candidate) for comparison, on the synthetic
//! desktop picture. `cargo bench -p wavry-media --bench convert`
//! (p95 figures: `cargo run --release -p wavry-media --example media_bench`.)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dcv_color_primitives as dcp;
use std::hint::black_box;
use wavry_media::pattern::Pattern;
use wavry_media::{convert, FramePool, PixelSize, YuvFrame, YuvLayout};

const SIZES: [(&str, PixelSize); 2] = [
    ("720p", PixelSize::new(1280, 720)),
    ("1080p", PixelSize::new(1920, 1080)),
];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("convert");
    for (label, size) in SIZES {
        let mut p = Pattern::new(size);
        p.draw(10);
        g.throughput(Throughput::Elements(u64::from(size.width * size.height)));
        for layout in [YuvLayout::I420, YuvLayout::Nv12] {
            let mut frame = YuvFrame::new(layout, size);
            g.bench_function(
                BenchmarkId::new(format!("yuvutils/{layout:?}"), label),
                |b| b.iter(|| convert(black_box(&p.view()), &mut frame).unwrap()),
            );
            // What the host runs: the pool's two-band conversion.
            let pool = FramePool::new(layout, size, 3);
            g.bench_function(BenchmarkId::new(format!("pool/{layout:?}"), label), |b| {
                b.iter(|| pool.convert(black_box(&p.view()), 0).unwrap())
            });
        }
        // dcv-color-primitives: BGRA → I420 BT.709 (limited range).
        let (w, h) = (size.width as usize, size.height as usize);
        let src_fmt = dcp::ImageFormat {
            pixel_format: dcp::PixelFormat::Bgra,
            color_space: dcp::ColorSpace::Rgb,
            num_planes: 1,
        };
        let dst_fmt = dcp::ImageFormat {
            pixel_format: dcp::PixelFormat::I420,
            color_space: dcp::ColorSpace::Bt709,
            num_planes: 3,
        };
        let (mut y, mut u, mut v) = (vec![0u8; w * h], vec![0u8; w * h / 4], vec![0u8; w * h / 4]);
        g.bench_function(BenchmarkId::new("dcv/I420", label), |b| {
            b.iter(|| {
                let mut dst: [&mut [u8]; 3] = [&mut y, &mut u, &mut v];
                dcp::convert_image(
                    size.width,
                    size.height,
                    &src_fmt,
                    None,
                    &[black_box(&p.data)],
                    &dst_fmt,
                    None,
                    &mut dst,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
