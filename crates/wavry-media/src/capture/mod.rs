//! Screen capture: a backend-neutral [`Capturer`] trait and its backends.
//!
//! - `x11`: X11 through MIT-SHM, driven by XDamage, cursor through XFixes, monitors from RandR.
//!
//! Wayland (PipeWire through the screencast portal), Windows Graphics Capture and macOS
//! ScreenCaptureKit are later backends of the same trait; none exists yet.
//!
//! A capturer hands out [`Frame`]s whose pixels live in a small pool of reused buffers (three:
//! one being filled, one being encoded, one spare), so a running capture does not allocate.
//! The cursor is not drawn into frames: its shape and position travel apart so the client can
//! draw it at once, and a pointer move does not cost a new video frame.

mod pacer;
pub mod x11;

pub use pacer::{CapturePacer, PacerConfig, PacerDecision};

use crate::buffer_pool::Pooled;
use crate::frame::{BgraView, PixelSize};
use std::time::Instant;

/// Identifies a monitor for as long as it exists (X11: the atom of its RandR monitor name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MonitorId(pub u32);

/// A rectangle in screen coordinates (pixels; the origin is the top-left of the whole screen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn size(&self) -> PixelSize {
        PixelSize::new(self.width, self.height)
    }

    /// Whether the two rectangles share at least one pixel.
    pub fn intersects(&self, other: &Rect) -> bool {
        let (ax1, ay1) = (self.x + self.width as i32, self.y + self.height as i32);
        let (bx1, by1) = (other.x + other.width as i32, other.y + other.height as i32);
        self.x < bx1 && other.x < ax1 && self.y < by1 && other.y < ay1
    }

    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x
            && y >= self.y
            && x < self.x + self.width as i32
            && y < self.y + self.height as i32
    }
}

/// One monitor as the platform describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub id: MonitorId,
    pub name: String,
    pub geometry: Rect,
    pub primary: bool,
    /// Refresh rate in Hz, when the monitor drives a real mode (virtual monitors have none).
    pub refresh_hz: Option<f64>,
}

/// What to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureTarget {
    /// The whole screen: every monitor, as one picture.
    #[default]
    WholeScreen,
    Monitor(MonitorId),
}

/// The pointer at the time of a frame, relative to the captured area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CursorPosition {
    /// Position of the hotspot in the captured picture (may lie outside it).
    pub x: i32,
    pub y: i32,
    /// Whether the hotspot lies inside the captured area.
    pub inside: bool,
    /// Serial of the cursor shape shown ([`CursorShape::serial`]): a client re-requests the
    /// shape only when this changes.
    pub shape_serial: u32,
}

/// A cursor image, drawn by the client at [`CursorPosition`] minus the hotspot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorShape {
    /// Changes whenever the shape does; equal serials mean equal shapes.
    pub serial: u32,
    pub width: u16,
    pub height: u16,
    pub hotspot_x: u16,
    pub hotspot_y: u16,
    /// `width × height` pixels, 4 bytes each (B, G, R, A), alpha premultiplied.
    pub bgra: Vec<u8>,
}

/// Pixel memory a backend captures into: a shared-memory segment, a mapped GPU buffer …
pub trait PixelMemory: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// The backend's handle for this memory (X11: the MIT-SHM segment id).
    fn handle(&self) -> u32;
}

/// A captured picture. Its buffer returns to the capturer's pool when the frame is dropped,
/// so hold at most two at a time (the third is the one being captured into).
pub struct Frame {
    pub(crate) buffer: Pooled<Box<dyn PixelMemory>>,
    // Private: `view` relies on them matching the buffer.
    size: PixelSize,
    stride: usize,
    /// When the pixels were read (monotonic clock).
    pub captured_at: Instant,
    /// `true` for a repeat while the screen is still: same content as the previous frame.
    pub repeat: bool,
    /// Counts captured frames from 0.
    pub index: u64,
    /// Where the target area sits on the screen (a monitor's geometry, or the whole screen).
    pub area: Rect,
    pub cursor: CursorPosition,
}

impl Frame {
    pub fn size(&self) -> PixelSize {
        self.size
    }

    /// Bytes from one row to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The pixels, BGRA (B, G, R, unused), `stride` bytes per row.
    pub fn view(&self) -> BgraView<'_> {
        BgraView {
            data: &self.buffer.bytes()[..self.stride * self.size.height as usize],
            size: self.size,
            stride: self.stride,
            captured_at: self.captured_at,
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("size", &self.size)
            .field("stride", &self.stride)
            .field("captured_at", &self.captured_at)
            .field("repeat", &self.repeat)
            .field("index", &self.index)
            .field("area", &self.area)
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// Why capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot connect to the display: {0}")]
    Connect(String),
    #[error("the display lacks {0}")]
    Unsupported(String),
    #[error("no monitor with id {0:?}")]
    NoSuchMonitor(MonitorId),
    #[error("every capture buffer is still held by the consumer (drop older frames)")]
    PoolExhausted,
    #[error("display server error: {0}")]
    Protocol(String),
    #[error("the display server refused a capture request: X error {code} (request major opcode {major_opcode})")]
    X { code: u8, major_opcode: u8 },
    #[error("display connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("display server did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// A screen capture source.
///
/// Calls are made from one thread; frames may be sent to another (the encoder).
pub trait Capturer {
    /// The monitors known now; refreshed when the platform reports a change.
    fn monitors(&self) -> &[Monitor];

    /// Capture `target` from the next frame on. A monitor that goes away while selected falls
    /// back to the whole screen (logged).
    fn select(&mut self, target: CaptureTarget) -> Result<(), CaptureError>;

    /// The target being captured (after any fallback).
    fn target(&self) -> CaptureTarget;

    /// Wait for the next frame until `deadline`: a fresh frame soon after the screen changes
    /// (no sooner than the frame interval after the last one), or a repeat when it has been
    /// still for the repeat interval. `Ok(None)` when the deadline passes first.
    fn next_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, CaptureError>;

    /// The current cursor shape, if the platform shows one.
    fn cursor_shape(&self) -> Option<&CursorShape>;

    /// Read the pointer position now (between frames, to follow pointer moves that do not
    /// change the picture).
    fn cursor_position(&mut self) -> Result<CursorPosition, CaptureError>;
}

// Frames go to the encoder thread; a capturer may be moved to its own thread.
const _: () = {
    const fn send<T: Send>() {}
    send::<Frame>();
    send::<x11::X11Capturer>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_intersect_only_when_they_share_a_pixel() {
        let a = Rect {
            x: 0,
            y: 0,
            width: 1920,
            height: 1080,
        };
        let right = Rect { x: 1920, ..a };
        assert!(!a.intersects(&right));
        assert!(a.intersects(&Rect { x: 1919, ..right }));
        assert!(a.intersects(&Rect {
            x: 10,
            y: 10,
            width: 1,
            height: 1
        }));
        assert!(!a.intersects(&Rect { y: -1080, ..a }));
        assert!(a.contains(0, 0) && a.contains(1919, 1079) && !a.contains(1920, 0));
    }
}
