//! The SIMD converter against the per-pixel BT.709 limited-range formulas
//! (`convert::reference_i420`), for both layouts, padded and odd sizes; and the frame pool's
//! triple buffering.

use crate::common;

use common::planes;
use wavry_media::convert::reference_i420;
use wavry_media::pattern::Pattern;
use wavry_media::{convert, BgraView, FramePool, PixelSize, YuvFrame, YuvLayout};

/// Largest absolute difference between two planes, and how many samples differ at all.
fn max_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    let mut max = 0;
    let mut n = 0;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += usize::from(d > 0);
    }
    (max, n)
}

fn check(size: PixelSize, stride: usize, layout: YuvLayout) {
    let mut p = Pattern::with_stride(size, stride);
    p.draw(17);
    let view = p.view();
    let mut frame = YuvFrame::new(layout, size);
    convert(&view, &mut frame).expect("convert");
    let one_thread = planes(&frame);
    // The pool converts in two bands on two threads: the same result.
    let pool = FramePool::new(layout, size, 1);
    let pooled = planes(&pool.convert(&view, 0).expect("convert").expect("frame"));
    assert!(
        one_thread == pooled,
        "{layout:?} {size:?}: two-band conversion differs"
    );
    let (y, u, v) = reference_i420(&view);
    for (name, g, want) in [
        ("Y", &pooled[0], &y),
        ("U", &pooled[1], &u),
        ("V", &pooled[2], &v),
    ] {
        let (max, n) = max_diff(g, want);
        eprintln!(
            "{layout:?} {}x{} stride {stride}: {name} max error {max}, {n} of {} samples off",
            size.width,
            size.height,
            want.len()
        );
        assert!(max <= 2, "{layout:?} {size:?} {name}: error {max} levels");
    }
}

#[test]
fn i420_matches_reference() {
    check(PixelSize::new(1280, 720), 1280 * 4, YuvLayout::I420);
}

#[test]
fn nv12_matches_reference() {
    check(PixelSize::new(1280, 720), 1280 * 4, YuvLayout::Nv12);
}

#[test]
fn padded_and_odd_sizes_match_reference() {
    for layout in [YuvLayout::I420, YuvLayout::Nv12] {
        check(PixelSize::new(333, 201), 333 * 4 + 52, layout);
        check(PixelSize::new(1366, 767), 1366 * 4, layout);
        check(PixelSize::new(64, 2), 64 * 4 + 64, layout);
    }
}

/// Pure colours land where BT.709 limited range puts them.
#[test]
fn known_colours() {
    // (B, G, R) → (Y, U, V)
    let cases = [
        ([0, 0, 0], [16, 128, 128]),
        ([255, 255, 255], [235, 128, 128]),
        ([0, 0, 255], [63, 102, 240]),
        ([0, 255, 0], [173, 42, 26]),
        ([255, 0, 0], [32, 240, 118]),
    ];
    for (bgr, yuv) in cases {
        let size = PixelSize::new(16, 16);
        let px = [bgr[0], bgr[1], bgr[2], 255];
        let data: Vec<u8> = px.iter().copied().cycle().take(16 * 16 * 4).collect();
        let view = BgraView::new(&data, size, 64, std::time::Instant::now()).unwrap();
        let mut f = YuvFrame::new(YuvLayout::I420, size);
        convert(&view, &mut f).unwrap();
        let p = planes(&f);
        let got = [p[0][0], p[1][0], p[2][0]];
        for i in 0..3 {
            assert!(
                got[i].abs_diff(yuv[i]) <= 1,
                "BGR {bgr:?}: got YUV {got:?}, want {yuv:?}"
            );
        }
    }
}

/// A padded view whose last row lacks its padding is refused, not half converted.
#[test]
fn short_last_row_is_an_error() {
    let size = PixelSize::new(64, 2);
    let data = vec![0u8; 320 + 256];
    let view = BgraView::new(&data, size, 320, std::time::Instant::now()).unwrap();
    let mut f = YuvFrame::new(YuvLayout::I420, size);
    assert!(convert(&view, &mut f).is_err());
}

#[test]
fn size_mismatch_is_an_error() {
    let p = Pattern::new(PixelSize::new(64, 64));
    let mut f = YuvFrame::new(YuvLayout::I420, PixelSize::new(32, 32));
    assert!(convert(&p.view(), &mut f).is_err());
}

/// Three frames in flight at most; a dropped frame goes back and is handed out again.
#[test]
fn pool_recycles_three_frames() {
    let size = PixelSize::new(64, 32);
    let pool = FramePool::new(YuvLayout::I420, size, FramePool::DEFAULT_FRAMES);
    let mut p = Pattern::new(size);
    p.draw(0);
    let a = pool.convert(&p.view(), 0).unwrap().unwrap();
    let b = pool.convert(&p.view(), 1).unwrap().unwrap();
    let c = pool.convert(&p.view(), 2).unwrap().unwrap();
    assert_eq!(pool.available(), 0);
    assert!(
        pool.convert(&p.view(), 3).unwrap().is_none(),
        "a fourth frame"
    );
    let (pa, pb, pc) = (
        a.plane(0).0.as_ptr(),
        b.plane(0).0.as_ptr(),
        c.plane(0).0.as_ptr(),
    );
    assert!(pa != pb && pb != pc && pa != pc);
    drop(b);
    assert_eq!(pool.available(), 1);
    let d = pool.convert(&p.view(), 4).unwrap().unwrap();
    assert_eq!(d.plane(0).0.as_ptr(), pb, "the returned frame is reused");
    assert_eq!(d.pts(), Some(4));
}
