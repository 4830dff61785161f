//! The stats overlay's pixels: lines of text drawn with 8×8 bitmap glyphs into an RGBA buffer
//! (white on translucent black), uploaded by the window as a texture. No font files needed.

use font8x8::UnicodeFonts;

/// Pixels per glyph side before scaling.
const GLYPH: usize = 8;
/// Padding around the text, in glyph pixels.
const PAD: usize = 4;

/// An RGBA image (4 bytes per pixel, rows `width * 4` bytes apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Draw `lines` at `scale` (1 = 8 px glyphs). Characters without a glyph draw as '?'.
pub fn render(lines: &[String], scale: usize) -> Rgba {
    let scale = scale.max(1);
    let cols = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let width = (cols * GLYPH + 2 * PAD) * scale;
    let line_h = (GLYPH + 2) * scale;
    let height = lines.len() * line_h + 2 * PAD * scale;
    let mut pixels = vec![0u8; width * height * 4];
    for px in pixels.chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 0, 160]);
    }
    for (row, line) in lines.iter().enumerate() {
        for (col, ch) in line.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..GLYPH {
                    // font8x8 stores the leftmost pixel in the lowest bit.
                    if bits & (1 << gx) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let x = (PAD + col * GLYPH + gx) * scale + sx;
                            let y = PAD * scale + row * line_h + gy * scale + sy;
                            let i = (y * width + x) * 4;
                            pixels[i..i + 4].copy_from_slice(&[255, 255, 255, 255]);
                        }
                    }
                }
            }
        }
    }
    Rgba {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lands_where_the_glyphs_say() {
        let img = render(&["I".to_string()], 1);
        assert_eq!((img.width, img.height), (16, 18));
        let lit = |x: usize, y: usize| img.pixels[(y * img.width + x) * 4] == 255;
        // 'I' in font8x8: a vertical bar in columns 2..=3 on rows 1..=5 (with serifs).
        assert!(lit(PAD + 2, PAD + 3) && lit(PAD + 3, PAD + 3));
        assert!(!lit(PAD, PAD + 3));
        // The background is translucent black.
        assert_eq!(&img.pixels[..4], &[0, 0, 0, 160]);
    }

    #[test]
    fn unknown_characters_draw_a_question_mark() {
        assert_eq!(
            render(&["\u{1F600}".to_string()], 2),
            render(&["?".to_string()], 2)
        );
    }
}
