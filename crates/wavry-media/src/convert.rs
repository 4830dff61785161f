//! BGRA → planar YUV 4:2:0 (I420 or NV12), BT.709 limited range, with SIMD.
//!
//! BT.709 is the matrix HD video assumes, and limited ("TV", 16–235 luma) range is what every
//! decoder and hardware scaler treats as the default; the same choice is written into each
//! [`YuvFrame`] and each encoder's VUI so a decoder never has to guess. Chroma is the average of
//! each 2×2 block (sited at its centre).
//!
//! The converter is `yuvutils-rs` (AVX2/SSE4.1/NEON picked at run time); [`FramePool::convert`]
//! splits each picture into two bands converted on two threads: 0.6–0.75 ms at 1080p on our
//! 2-core VM against swscale's 4.4 ms. docs/MEDIA.md has the numbers and the alternatives
//! measured (benches/convert.rs, examples/media_bench.rs).
//!
//! [`YuvFrame`]s wrap an FFmpeg `AVFrame` with reference-counted planes, so an encoder takes
//! them without a copy; [`FramePool`] keeps a fixed set of them (three: triple buffering) and
//! takes each back when its [`PooledFrame`] is dropped, so a running stream allocates nothing
//! per frame.

use crate::frame::{BgraView, PixelSize};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::util::color;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex};
use yuvutils_rs::{
    BufferStoreMut, YuvBiPlanarImageMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// Memory layout of a 4:2:0 picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum YuvLayout {
    /// Three planes: Y, then U and V at half width and half height (FFmpeg `yuv420p`). What the
    /// software encoders take.
    I420,
    /// Two planes: Y, then interleaved U/V (FFmpeg `nv12`). What hardware encoders take.
    Nv12,
}

impl YuvLayout {
    /// Number of planes (3 for I420, 2 for NV12).
    pub fn planes(self) -> usize {
        match self {
            YuvLayout::I420 => 3,
            YuvLayout::Nv12 => 2,
        }
    }

    pub(crate) fn pixel(self) -> Pixel {
        match self {
            YuvLayout::I420 => Pixel::YUV420P,
            YuvLayout::Nv12 => Pixel::NV12,
        }
    }
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("source is {src:?} but the destination frame is {dst:?}")]
    SizeMismatch { src: PixelSize, dst: PixelSize },
    #[error("colour conversion failed: {0}")]
    Convert(#[from] yuvutils_rs::YuvError),
    #[error("the conversion helper thread panicked")]
    HelperPanicked,
    #[error("the destination frame is still referenced by a codec and cannot be written")]
    Busy,
    #[error(
        "padded rows (stride {stride}) need the last row's padding too: {len} < {needed} bytes"
    )]
    ShortLastRow {
        stride: usize,
        len: usize,
        needed: usize,
    },
}

/// One 4:2:0 picture in BT.709 limited range, backed by an FFmpeg frame.
pub struct YuvFrame {
    pub(crate) frame: ffmpeg::frame::Video,
    layout: YuvLayout,
    size: PixelSize,
}

impl YuvFrame {
    /// A new frame of `size` (allocated once; 32-byte aligned rows for SIMD).
    pub fn new(layout: YuvLayout, size: PixelSize) -> Self {
        crate::init_ffmpeg();
        let mut frame = ffmpeg::frame::Video::empty();
        frame.set_format(layout.pixel());
        frame.set_width(size.width);
        frame.set_height(size.height);
        // Rows 32-byte aligned for SIMD, except NV12: yuvutils-rs 0.8 insists that the UV
        // plane's stride be exactly its width (its size check is stricter than its loops), so
        // NV12 rows are packed.
        let align = match layout {
            YuvLayout::I420 => 32,
            YuvLayout::Nv12 => 1,
        };
        // SAFETY: a fresh frame with format and size set, as av_frame_get_buffer requires.
        let r = unsafe { ffmpeg::ffi::av_frame_get_buffer(frame.as_mut_ptr(), align) };
        // Fails only when out of memory, like any allocation: treat it the same way.
        assert!(r >= 0, "av_frame_get_buffer: out of memory ({r})");
        set_bt709(&mut frame);
        Self {
            frame,
            layout,
            size,
        }
    }

    /// Another reference to the same planes, without a copy: FFmpeg's planes are
    /// reference-counted, and a decoder never writes into a picture it has handed out, so
    /// this stays valid (and unchanged) after the decoder moves on to the next one.
    pub fn share(&self) -> YuvFrame {
        let mut shared = YuvFrame {
            frame: ffmpeg::frame::Video::empty(),
            layout: self.layout,
            size: self.size,
        };
        shared.share_from(self);
        shared
    }

    /// Make this frame another reference to `src`'s planes (dropping its own), reusing this
    /// frame's FFmpeg structure: what a holder that takes a new picture each frame calls.
    pub fn share_from(&mut self, src: &YuvFrame) {
        // SAFETY: both are valid AVFrames; av_frame_ref wants an empty destination, which
        // av_frame_unref makes.
        let r = unsafe {
            ffmpeg::ffi::av_frame_unref(self.frame.as_mut_ptr());
            ffmpeg::ffi::av_frame_ref(self.frame.as_mut_ptr(), src.frame.as_ptr())
        };
        // Fails only when out of memory, like any allocation: treat it the same way.
        assert!(r >= 0, "av_frame_ref: out of memory ({r})");
        self.layout = src.layout;
        self.size = src.size;
    }

    /// Take layout and size from the FFmpeg frame after a decoder wrote into it; false when
    /// its pixel format is not a 4:2:0 layout we know.
    pub(crate) fn refresh(&mut self) -> bool {
        self.layout = match self.frame.format() {
            Pixel::YUV420P | Pixel::YUVJ420P => YuvLayout::I420,
            Pixel::NV12 => YuvLayout::Nv12,
            _ => return false,
        };
        self.size = PixelSize::new(self.frame.width(), self.frame.height());
        true
    }

    pub fn layout(&self) -> YuvLayout {
        self.layout
    }

    pub fn size(&self) -> PixelSize {
        self.size
    }

    /// Presentation timestamp (in the stream's time base, frames for our encoders).
    pub fn pts(&self) -> Option<i64> {
        self.frame.pts()
    }

    pub fn set_pts(&mut self, pts: i64) {
        self.frame.set_pts(Some(pts));
    }

    /// Plane `i` (0 = Y; 1 = U or UV; 2 = V for I420) with its stride in bytes.
    pub fn plane(&self, i: usize) -> (&[u8], usize) {
        (self.frame.data(i), self.frame.stride(i))
    }

    /// Whether nothing else (a codec, a [`YuvFrame::share`]) still holds a reference to the
    /// planes: only then may they be written.
    pub(crate) fn writable(&mut self) -> bool {
        // SAFETY: the pointer is a valid AVFrame owned by `self.frame`.
        unsafe { ffmpeg::ffi::av_frame_is_writable(self.frame.as_mut_ptr()) != 0 }
    }
}

impl std::fmt::Debug for YuvFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuvFrame")
            .field("layout", &self.layout)
            .field("size", &self.size)
            .field("pts", &self.pts())
            .finish()
    }
}

pub(crate) fn set_bt709(frame: &mut ffmpeg::frame::Video) {
    frame.set_color_space(color::Space::BT709);
    frame.set_color_range(color::Range::MPEG);
    frame.set_color_primaries(color::Primaries::BT709);
    frame.set_color_transfer_characteristic(color::TransferCharacteristic::BT709);
}

/// Convert a BGRA picture into `dst`, which must have the same size, on this thread.
pub fn convert(src: &BgraView<'_>, dst: &mut YuvFrame) -> Result<(), ConvertError> {
    convert_with(src, dst, None)
}

fn convert_with(
    src: &BgraView<'_>,
    dst: &mut YuvFrame,
    helper: Option<&Helper>,
) -> Result<(), ConvertError> {
    if src.size != dst.size {
        return Err(ConvertError::SizeMismatch {
            src: src.size,
            dst: dst.size,
        });
    }
    if !dst.writable() {
        return Err(ConvertError::Busy);
    }
    let PixelSize { width, height } = src.size;
    // yuvutils-rs 0.8 walks the source in whole strides (`chunks_exact`) and would silently
    // skip a last row pair whose padding is missing, which a view allows: refuse that case.
    let tight = src.stride == width as usize * 4;
    let needed = src.stride * height as usize;
    let bgra = match src.data.get(..needed) {
        Some(b) => b,
        None if tight => src.data,
        None => {
            return Err(ConvertError::ShortLastRow {
                stride: src.stride,
                len: src.data.len(),
                needed,
            })
        }
    };
    let f = &mut dst.frame;
    let planes = dst.layout.planes();
    let mut strides = [0u32; 3];
    let mut slices: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
    for i in 0..planes {
        strides[i] = f.stride(i) as u32;
        let len = f.stride(i) * f.plane_height(i) as usize;
        // SAFETY: the planes of an AVFrame are distinct allocations of `stride × plane
        // height` bytes (av_frame_get_buffer); the slices never overlap and live as long as
        // `dst`, which we borrow mutably for the whole call.
        slices[i] = unsafe { std::slice::from_raw_parts_mut((*f.as_mut_ptr()).data[i], len) };
    }
    let band = Band {
        bgra,
        stride: src.stride as u32,
        width,
        rows: height,
        layout: dst.layout,
        planes: slices,
        strides,
    };
    // Two bands of whole chroma rows, when there is a helper and the picture is not tiny.
    let top = (height / 2) & !1;
    match helper {
        Some(h) if top >= 16 => {
            let (a, b) = band.split(top);
            h.run(a, b)?;
        }
        _ => band.convert()?,
    }
    Ok(())
}

/// A horizontal band of a conversion: `rows` rows of BGRA and the matching plane rows.
struct Band<'a> {
    bgra: &'a [u8],
    stride: u32,
    width: u32,
    rows: u32,
    layout: YuvLayout,
    /// Y, U, V (I420) or Y, UV, empty (NV12).
    planes: [&'a mut [u8]; 3],
    strides: [u32; 3],
}

impl<'a> Band<'a> {
    /// The first `top` rows (even) and the rest.
    fn split(self, top: u32) -> (Band<'a>, Band<'a>) {
        let [y, c1, c2] = self.planes;
        let at = |p: &'a mut [u8], stride: u32, rows: u32| {
            let n = (stride as usize * rows as usize).min(p.len());
            p.split_at_mut(n)
        };
        let (y0, y1) = at(y, self.strides[0], top);
        let (a0, a1) = at(c1, self.strides[1], top / 2);
        let (b0, b1) = at(c2, self.strides[2], top / 2);
        let (s0, s1) = self.bgra.split_at(self.stride as usize * top as usize);
        let part = |bgra, rows, planes| Band {
            bgra,
            stride: self.stride,
            width: self.width,
            rows,
            layout: self.layout,
            planes,
            strides: self.strides,
        };
        (
            part(s0, top, [y0, a0, b0]),
            part(s1, self.rows - top, [y1, a1, b1]),
        )
    }

    fn convert(self) -> Result<(), yuvutils_rs::YuvError> {
        let (range, matrix) = (YuvRange::Limited, YuvStandardMatrix::Bt709);
        // Fast: libyuv's precision (within a level of the exact formulas, see the tests),
        // about 20 % quicker than Balanced here.
        let mode = YuvConversionMode::Fast;
        let [y, c1, c2] = self.planes;
        match self.layout {
            YuvLayout::I420 => {
                let mut img = YuvPlanarImageMut {
                    y_plane: BufferStoreMut::Borrowed(y),
                    y_stride: self.strides[0],
                    u_plane: BufferStoreMut::Borrowed(c1),
                    u_stride: self.strides[1],
                    v_plane: BufferStoreMut::Borrowed(c2),
                    v_stride: self.strides[2],
                    width: self.width,
                    height: self.rows,
                };
                yuvutils_rs::bgra_to_yuv420(&mut img, self.bgra, self.stride, range, matrix, mode)
            }
            YuvLayout::Nv12 => {
                let mut img = YuvBiPlanarImageMut {
                    y_plane: BufferStoreMut::Borrowed(y),
                    y_stride: self.strides[0],
                    uv_plane: BufferStoreMut::Borrowed(c1),
                    uv_stride: self.strides[1],
                    width: self.width,
                    height: self.rows,
                };
                yuvutils_rs::bgra_to_yuv_nv12(&mut img, self.bgra, self.stride, range, matrix, mode)
            }
        }
    }
}

/// A second thread that converts the bottom band of each picture while the caller converts
/// the top one. Conversion is bound by memory bandwidth, which one core of our VM does not
/// saturate: two bands take about 0.75 ms at 1080p against 1.2 ms on one thread. A rayon
/// pool did the same but allocates a job-queue block every 63 calls; this hand-off (a mutex
/// and a condition variable) allocates nothing.
struct Helper {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    slot: Mutex<Slot>,
    cv: Condvar,
}

enum Slot {
    Empty,
    Job(Band<'static>),
    Done(Result<(), ConvertError>),
    Quit,
}

impl Helper {
    fn spawn() -> Option<Self> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Empty),
            cv: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wavry-convert".into())
            .spawn(move || loop {
                let mut slot = s.lock();
                let job = loop {
                    match std::mem::replace(&mut *slot, Slot::Empty) {
                        Slot::Job(b) => break b,
                        Slot::Quit => return,
                        other => *slot = other,
                    }
                    slot = s.cv.wait(slot).unwrap_or_else(|e| e.into_inner());
                };
                drop(slot);
                // A panic must still report Done, or the caller would wait for ever.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.convert()));
                *s.lock() = Slot::Done(match r {
                    Ok(r) => r.map_err(ConvertError::from),
                    Err(_) => Err(ConvertError::HelperPanicked),
                });
                s.cv.notify_all();
            })
            .ok()?;
        Some(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Convert `top` here and `bottom` on the helper; returns when both are done.
    fn run(&self, top: Band<'_>, bottom: Band<'_>) -> Result<(), ConvertError> {
        // SAFETY: the helper's borrow of `bottom` ends before we return: `Wait` blocks until
        // the helper reports Done, also when `top.convert()` unwinds.
        let bottom: Band<'static> =
            unsafe { std::mem::transmute::<Band<'_>, Band<'static>>(bottom) };
        *self.shared.lock() = Slot::Job(bottom);
        self.shared.cv.notify_all();
        let wait = Wait(&self.shared);
        let r_top = top.convert();
        let r_bottom = wait.finish();
        r_top?;
        r_bottom
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends the helper's part of a conversion: takes the bottom band back if the helper has not
/// started it, else waits for its Done (on `finish` or on drop, so an unwinding caller cannot
/// leave the helper writing into freed planes).
struct Wait<'a>(&'a Shared);

impl Wait<'_> {
    /// The bottom band's result. When the helper has not started it yet (its core is busy:
    /// on a loaded machine a woken thread can wait milliseconds for a CPU), the caller
    /// converts it itself rather than wait.
    fn finish(self) -> Result<(), ConvertError> {
        if let Some(band) = self.reclaim() {
            // The helper never saw the band: nothing to wait for, also if this panics.
            std::mem::forget(self);
            return band.convert().map_err(ConvertError::from);
        }
        let r = self.wait();
        std::mem::forget(self);
        r
    }

    fn reclaim(&self) -> Option<Band<'static>> {
        let mut slot = self.0.lock();
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Job(band) => Some(band),
            other => {
                *slot = other;
                None
            }
        }
    }

    fn wait(&self) -> Result<(), ConvertError> {
        let mut slot = self.0.lock();
        loop {
            match std::mem::replace(&mut *slot, Slot::Empty) {
                Slot::Done(r) => return r,
                other => *slot = other,
            }
            slot = self.0.cv.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.reclaim().is_none() {
            let _ = self.wait();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        *self.shared.lock() = Slot::Quit;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fixed set of [`YuvFrame`]s of one layout and size, handed out and taken back.
///
/// Three frames let capture fill one while the encoder reads another and a third waits, without
/// either side blocking; when all are out, [`FramePool::acquire`] returns `None` and the caller
/// skips the frame (the encoder is behind, and queueing more would only add latency).
#[derive(Clone)]
pub struct FramePool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    layout: YuvLayout,
    size: PixelSize,
    free: Mutex<Vec<YuvFrame>>,
    /// The second conversion thread; `try_lock`ed, so concurrent conversions of one pool
    /// run single-threaded rather than wait.
    helper: Mutex<Option<Helper>>,
}

impl FramePool {
    /// Triple buffering.
    pub const DEFAULT_FRAMES: usize = 3;

    /// A pool of `count` frames, all allocated now, with a second thread for conversions
    /// ([`FramePool::convert`] splits each picture between the caller and it).
    pub fn new(layout: YuvLayout, size: PixelSize, count: usize) -> Self {
        let free = (0..count).map(|_| YuvFrame::new(layout, size)).collect();
        Self {
            inner: Arc::new(PoolInner {
                layout,
                size,
                free: Mutex::new(free),
                helper: Mutex::new(Helper::spawn()),
            }),
        }
    }

    pub fn layout(&self) -> YuvLayout {
        self.inner.layout
    }

    pub fn size(&self) -> PixelSize {
        self.inner.size
    }

    /// A free frame, or `None` when every frame is in use.
    pub fn acquire(&self) -> Option<PooledFrame> {
        let frame = self.lock().pop()?;
        Some(PooledFrame {
            frame: Some(frame),
            pool: Arc::clone(&self.inner),
        })
    }

    /// Frames currently free.
    pub fn available(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<YuvFrame>> {
        // A panic while holding the lock cannot leave the Vec inconsistent: keep using it.
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Convert `src` into a free frame stamped with `pts`; `Ok(None)` when none is free.
    pub fn convert(
        &self,
        src: &BgraView<'_>,
        pts: i64,
    ) -> Result<Option<PooledFrame>, ConvertError> {
        let Some(mut frame) = self.acquire() else {
            return Ok(None);
        };
        match self.inner.helper.try_lock() {
            Ok(h) => convert_with(src, &mut frame, h.as_ref())?,
            Err(_) => convert(src, &mut frame)?,
        }
        frame.set_pts(pts);
        Ok(Some(frame))
    }
}

/// A frame on loan from a [`FramePool`]; it goes back to the pool when dropped.
pub struct PooledFrame {
    frame: Option<YuvFrame>,
    pool: Arc<PoolInner>,
}

impl Deref for PooledFrame {
    type Target = YuvFrame;
    fn deref(&self) -> &YuvFrame {
        // Only `drop` takes the frame out.
        self.frame.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for PooledFrame {
    fn deref_mut(&mut self) -> &mut YuvFrame {
        self.frame.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            // The Vec was allocated with room for every frame: this push never allocates.
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(frame);
        }
    }
}

/// The straightforward per-pixel BT.709 limited-range formulas, for tests and as the
/// definition of what [`convert`] computes: returns (Y plane, U plane, V plane), tightly
/// packed, chroma from the average of each 2×2 block (edge pixels repeated for odd sizes).
pub fn reference_i420(src: &BgraView<'_>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    const KR: f64 = 0.2126;
    const KB: f64 = 0.0722;
    const KG: f64 = 1.0 - KR - KB;
    let (w, h) = (src.size.width as usize, src.size.height as usize);
    let px = |x: usize, y: usize| {
        let r = src.row(y.min(h - 1) as u32);
        let i = x.min(w - 1) * 4;
        (r[i + 2] as f64, r[i + 1] as f64, r[i] as f64)
    };
    let luma = |(r, g, b): (f64, f64, f64)| KR * r + KG * g + KB * b;
    let clamp = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    let mut y_plane = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            y_plane.push(clamp(16.0 + luma(px(x, y)) * 219.0 / 255.0));
        }
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (mut u_plane, mut v_plane) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(cx * 2 + dx, cy * 2 + dy);
                r += p.0 / 4.0;
                g += p.1 / 4.0;
                b += p.2 / 4.0;
            }
            let l = luma((r, g, b));
            let u = (b - l) / (2.0 * (1.0 - KB));
            let v = (r - l) / (2.0 * (1.0 - KR));
            u_plane.push(clamp(128.0 + u * 224.0 / 255.0));
            v_plane.push(clamp(128.0 + v * 224.0 / 255.0));
        }
    }
    (y_plane, u_plane, v_plane)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A helper whose thread never comes: every bottom band it is given stays in its slot.
    fn absent_helper() -> Helper {
        Helper {
            shared: Arc::new(Shared {
                slot: Mutex::new(Slot::Empty),
                cv: Condvar::new(),
            }),
            thread: None,
        }
    }

    #[test]
    fn a_band_the_helper_never_starts_is_converted_by_the_caller() {
        ffmpeg::init().unwrap();
        let size = PixelSize::new(64, 48);
        let bgra: Vec<u8> = (0..64 * 48 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let src = BgraView::new(&bgra, size, 64 * 4, Instant::now()).unwrap();
        let (mut one, mut two) = (
            YuvFrame::new(YuvLayout::I420, size),
            YuvFrame::new(YuvLayout::I420, size),
        );
        convert(&src, &mut one).unwrap();
        let helper = absent_helper();
        convert_with(&src, &mut two, Some(&helper)).unwrap();
        assert!(
            matches!(*helper.shared.lock(), Slot::Empty),
            "the band was taken back"
        );
        for i in 0..3 {
            assert_eq!(one.plane(i), two.plane(i), "plane {i}");
        }
    }
}
