//! A synthetic desktop-like BGRA picture for tests and benchmarks: a diagonal colour gradient
//! (a wallpaper), windows with title bars and lines of high-contrast "glyphs" (text edges are
//! what screen content is made of and what encoders find hard), a text area that scrolls one
//! pixel row per frame, and a coloured block that moves across the picture.
//!
//! It is deterministic: frame `n` of a size is always the same picture.

use crate::frame::{BgraView, PixelSize};
use std::time::Instant;

/// A BGRA picture buffer with tight rows (stride = 4 × width, unless built with padding).
pub struct Pattern {
    pub size: PixelSize,
    pub stride: usize,
    pub data: Vec<u8>,
}

impl Pattern {
    pub fn new(size: PixelSize) -> Self {
        Self::with_stride(size, size.width as usize * 4)
    }

    /// A buffer whose rows are `stride` bytes apart (≥ 4 × width), as a capture may give.
    pub fn with_stride(size: PixelSize, stride: usize) -> Self {
        assert!(stride >= size.width as usize * 4);
        Self {
            size,
            stride,
            data: vec![0; stride * size.height as usize],
        }
    }

    /// Draw frame number `n`.
    pub fn draw(&mut self, n: u32) {
        let (w, h) = (self.size.width as usize, self.size.height as usize);
        for y in 0..h {
            let row = &mut self.data[y * self.stride..y * self.stride + w * 4];
            for x in 0..w {
                let px = &mut row[x * 4..x * 4 + 4];
                let (r, g, b) = background(x, y, w, h);
                px.copy_from_slice(&[b, g, r, 255]);
            }
        }
        // Two "windows": a static one and one whose text scrolls by a row per frame.
        let win = |fx: f32, fy: f32, fw: f32, fh: f32| {
            (
                (w as f32 * fx) as usize,
                (h as f32 * fy) as usize,
                ((w as f32 * fw) as usize).max(8),
                ((h as f32 * fh) as usize).max(8),
            )
        };
        self.window(win(0.05, 0.08, 0.42, 0.6), 0);
        self.window(win(0.52, 0.3, 0.44, 0.62), n as usize);
        // The moving block: crosses the picture in about four seconds at 60 fps.
        let bw = (w / 10).max(4);
        let bh = (h / 8).max(4);
        let bx = (n as usize * 7) % (w.saturating_sub(bw).max(1));
        let by = (n as usize * 3) % (h.saturating_sub(bh).max(1));
        self.fill(bx, by, bw, bh, [40, 200, 240]);
    }

    fn fill(&mut self, x0: usize, y0: usize, w: usize, h: usize, rgb: [u8; 3]) {
        let (pw, ph) = (self.size.width as usize, self.size.height as usize);
        for y in y0..(y0 + h).min(ph) {
            for x in x0..(x0 + w).min(pw) {
                let i = y * self.stride + x * 4;
                self.data[i..i + 4].copy_from_slice(&[rgb[2], rgb[1], rgb[0], 255]);
            }
        }
    }

    /// A window: title bar, white client area, lines of dark glyphs scrolled by `scroll` rows.
    fn window(&mut self, (x0, y0, w, h): (usize, usize, usize, usize), scroll: usize) {
        let bar = (h / 12).clamp(4, 24);
        self.fill(x0, y0, w, bar, [50, 80, 140]);
        self.fill(x0, y0 + bar, w, h - bar, [250, 250, 248]);
        let (pw, ph) = (self.size.width as usize, self.size.height as usize);
        let line = 16;
        for y in y0 + bar + 4..(y0 + h).min(ph) {
            // Text coordinates, scrolled.
            let ty = y - (y0 + bar + 4) + scroll;
            let in_line = ty % line;
            if in_line >= 11 {
                continue; // the gap between lines
            }
            let line_no = ty / line;
            for x in x0 + 4..(x0 + w - 4).min(pw) {
                let tx = x - x0 - 4;
                let glyph = tx / 8;
                let gx = tx % 8;
                // A pseudo-random glyph: 7 of 8 columns, strokes from a hash of
                // (line, glyph, column, row); every ninth glyph is a space.
                if gx == 7 || (glyph + line_no) % 9 == 8 {
                    continue;
                }
                let hsh = hash(line_no as u32, glyph as u32, gx as u32, in_line as u32);
                if hsh % 5 < 2 {
                    let i = y * self.stride + x * 4;
                    self.data[i..i + 4].copy_from_slice(&[30, 30, 30, 255]);
                }
            }
        }
    }

    pub fn view(&self) -> BgraView<'_> {
        BgraView {
            data: &self.data,
            size: self.size,
            stride: self.stride,
            captured_at: Instant::now(),
        }
    }
}

fn background(x: usize, y: usize, w: usize, h: usize) -> (u8, u8, u8) {
    let fx = x as f32 / w as f32;
    let fy = y as f32 / h as f32;
    (
        (40.0 + 120.0 * fx) as u8,
        (60.0 + 100.0 * fy) as u8,
        (150.0 + 80.0 * (1.0 - fx * fy)) as u8,
    )
}

fn hash(a: u32, b: u32, c: u32, d: u32) -> u32 {
    let mut x = a
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(b.wrapping_mul(0x85EB_CA77))
        .wrapping_add(c.wrapping_mul(0xC2B2_AE3D))
        .wrapping_add(d.wrapping_mul(0x27D4_EB2F));
    x ^= x >> 15;
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^= x >> 12;
    x
}
