//! Decoded I420 (BT.709 limited range, what our encoders produce) → BGRA, for a client that has
//! no GPU to convert while it draws: on a software rasterizer (llvmpipe) a YUV texture costs
//! more than this SIMD pass into the window's own pixels (docs/MEDIA.md, *Showing pictures*).
//!
//! The bytes come out B, G, R, 255: X11's 24-bit visuals and SDL's `RGB888`/`ARGB8888` surfaces
//! on a little-endian machine.

use crate::convert::ConvertError;
use yuvutils_rs::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

/// One plane of a picture: its bytes and the distance between rows.
#[derive(Debug, Clone, Copy)]
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// Why a picture cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ToBgraError {
    #[error("plane {plane} holds {len} bytes, {needed} needed for a {width}x{height} picture")]
    ShortPlane {
        plane: usize,
        len: usize,
        needed: usize,
        width: u32,
        height: u32,
    },
    #[error("a {width}x{height} picture does not fit {len} bytes at {stride} bytes per row")]
    ShortDestination {
        width: u32,
        height: u32,
        stride: usize,
        len: usize,
    },
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// Convert a `width`×`height` I420 picture (`planes`: Y, U, V) into `dst`, `dst_stride` bytes
/// per row. Every plane must hold whole rows (`stride × rows` bytes), as FFmpeg's do.
pub fn i420_to_bgra(
    width: u32,
    height: u32,
    planes: [PlaneRef<'_>; 3],
    dst: &mut [u8],
    dst_stride: usize,
) -> Result<(), ToBgraError> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for (i, (p, pw, ph)) in [(planes[0], w, h), (planes[1], cw, ch), (planes[2], cw, ch)]
        .into_iter()
        .enumerate()
    {
        let needed = p.stride.max(pw) * ph;
        if p.stride < pw || p.data.len() < needed {
            return Err(ToBgraError::ShortPlane {
                plane: i,
                len: p.data.len(),
                needed,
                width,
                height,
            });
        }
    }
    if dst_stride < w * 4 || dst.len() < dst_stride * h {
        return Err(ToBgraError::ShortDestination {
            width,
            height,
            stride: dst_stride,
            len: dst.len(),
        });
    }
    let img = YuvPlanarImage {
        y_plane: planes[0].data,
        y_stride: planes[0].stride as u32,
        u_plane: planes[1].data,
        u_stride: planes[1].stride as u32,
        v_plane: planes[2].data,
        v_stride: planes[2].stride as u32,
        width,
        height,
    };
    yuvutils_rs::yuv420_to_bgra(
        &img,
        &mut dst[..dst_stride * h],
        dst_stride as u32,
        YuvRange::Limited,
        YuvStandardMatrix::Bt709,
    )
    .map_err(ConvertError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8], w: usize) -> [PlaneRef<'a>; 3] {
        [
            PlaneRef { data: y, stride: w },
            PlaneRef {
                data: u,
                stride: w / 2,
            },
            PlaneRef {
                data: v,
                stride: w / 2,
            },
        ]
    }

    #[test]
    fn limited_range_bt709_greys_and_primaries() {
        let (w, h) = (64usize, 4usize);
        let mut y = vec![16u8; w * h];
        y[w..2 * w].fill(235);
        y[2 * w..3 * w].fill(63); // BT.709 red: Y 63, Cb 102, Cr 240
        let mut u = vec![128u8; w * h / 4];
        let mut v = vec![128u8; w * h / 4];
        u[w / 2..].fill(102);
        v[w / 2..].fill(240);
        let stride = w * 4 + 16;
        let mut out = vec![0u8; stride * h];
        i420_to_bgra(w as u32, h as u32, planes(&y, &u, &v, w), &mut out, stride).unwrap();
        let px = |x: usize, row: usize| &out[row * stride + x * 4..row * stride + x * 4 + 4];
        let near = |a: &[u8], b: [u8; 4]| a.iter().zip(b).all(|(&p, q)| p.abs_diff(q) <= 2);
        assert!(near(px(5, 0), [0, 0, 0, 255]), "{:?}", px(5, 0));
        assert!(near(px(40, 1), [255, 255, 255, 255]), "{:?}", px(40, 1));
        assert!(near(px(7, 2), [0, 0, 255, 255]), "{:?}", px(7, 2));
    }

    #[test]
    fn short_planes_and_destinations_are_errors() {
        let (w, h) = (16usize, 4usize);
        let (y, u, v) = (vec![0u8; w * h], vec![0u8; w * h / 4], vec![0u8; w * h / 4]);
        let mut out = vec![0u8; w * 4 * h];
        let short = &y[..w * h - 1];
        assert!(matches!(
            i420_to_bgra(16, 4, planes(short, &u, &v, w), &mut out, w * 4),
            Err(ToBgraError::ShortPlane { plane: 0, .. })
        ));
        assert!(matches!(
            i420_to_bgra(16, 4, planes(&y, &u, &v, w), &mut out[..10], w * 4),
            Err(ToBgraError::ShortDestination { .. })
        ));
        assert!(i420_to_bgra(16, 4, planes(&y, &u, &v, w), &mut out, w * 4).is_ok());
    }
}
