//! Picture types shared by capture, conversion and the codecs.
//!
//! Capture produces BGRA (X11's native 32-bit layout: bytes B, G, R, X in memory); conversion
//! turns it into planar YUV for the encoders. Stages exchange borrowed views so buffers can come
//! from a recycled pool instead of being allocated per frame.

use std::time::Instant;

/// Width and height of a picture in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PixelSize {
    pub width: u32,
    pub height: u32,
}

impl PixelSize {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

/// A borrowed BGRA picture: `height` rows of `stride` bytes, each row holding `width` pixels of
/// 4 bytes (B, G, R, unused) followed by optional padding.
#[derive(Clone, Copy, Debug)]
pub struct BgraView<'a> {
    pub data: &'a [u8],
    pub size: PixelSize,
    /// Bytes from the start of one row to the start of the next (≥ 4 × width).
    pub stride: usize,
    /// When the pixels were read from the screen (monotonic).
    pub captured_at: Instant,
}

/// Why a [`BgraView`] cannot be built from a buffer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("picture size {0}x{1} is empty")]
    Empty(u32, u32),
    #[error("stride {stride} is shorter than a row of {width} BGRA pixels")]
    StrideTooShort { stride: usize, width: u32 },
    #[error("buffer of {len} bytes is shorter than {needed} bytes for the picture")]
    BufferTooShort { len: usize, needed: usize },
}

impl<'a> BgraView<'a> {
    /// Check that `data` holds a whole picture of `size` with rows `stride` bytes apart.
    pub fn new(
        data: &'a [u8],
        size: PixelSize,
        stride: usize,
        captured_at: Instant,
    ) -> Result<Self, FrameError> {
        if size.width == 0 || size.height == 0 {
            return Err(FrameError::Empty(size.width, size.height));
        }
        let row = size.width as usize * 4;
        if stride < row {
            return Err(FrameError::StrideTooShort {
                stride,
                width: size.width,
            });
        }
        // The last row needs only its pixels, not its padding.
        let needed = stride * (size.height as usize - 1) + row;
        if data.len() < needed {
            return Err(FrameError::BufferTooShort {
                len: data.len(),
                needed,
            });
        }
        Ok(Self {
            data,
            size,
            stride,
            captured_at,
        })
    }

    /// The pixels of row `y` (without padding).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.size.width as usize * 4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_checks_its_buffer() {
        let now = Instant::now();
        let buf = vec![0u8; 16 * 3 + 8];
        let v = BgraView::new(&buf, PixelSize::new(2, 4), 16, now).unwrap();
        assert_eq!(v.row(3).len(), 8);
        assert_eq!(
            BgraView::new(&buf, PixelSize::new(5, 4), 16, now).unwrap_err(),
            FrameError::StrideTooShort {
                stride: 16,
                width: 5
            }
        );
        assert_eq!(
            BgraView::new(&buf[..50], PixelSize::new(2, 4), 16, now).unwrap_err(),
            FrameError::BufferTooShort {
                len: 50,
                needed: 56
            }
        );
        assert!(BgraView::new(&buf, PixelSize::new(0, 4), 16, now).is_err());
    }
}
