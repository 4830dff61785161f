//! The host's cursor in the client window on a real Xvfb display: drawn over the picture at
//! the letterboxed, scaled place (hotspot included), blended by its alpha, clipped to the
//! picture, and gone when hidden.

use wavry_client::window::{CursorImage, Plane, PresentMode, VideoWindow, I420};
use wavry_media::testing::TestDisplay;

/// (R, G, B) of an ARGB8888 read-back (B, G, R, A in memory on little-endian).
fn pixel(px: &[u8], width: u32, x: u32, y: u32) -> (u8, u8, u8) {
    let i = ((y * width + x) * 4) as usize;
    (px[i + 2], px[i + 1], px[i])
}

#[test]
fn cursor_is_drawn_scaled_blended_and_clipped() {
    let _window = crate::one_window();
    let Some(display) = TestDisplay::start(800, 600) else {
        return;
    };
    std::env::set_var("DISPLAY", display.name());
    for mode in [PresentMode::Gpu, PresentMode::Cpu] {
        println!("presentation path {mode:?}");
        cursor_on(mode);
    }
}

fn cursor_on(mode: PresentMode) {
    let mut win = VideoWindow::open("wavry cursor test", 800, 600, mode).unwrap();
    // A mid-grey 320×180 picture: shown as 800×450 at y = 75 (scale 2.5).
    let (w, h) = (320usize, 180usize);
    let (y, uv) = (vec![126u8; w * h], vec![128u8; w / 2 * h / 2]);
    let plane = |data, stride| Plane { data, stride };
    let pic = I420 {
        width: w as u32,
        height: h as u32,
        y: plane(&y, w),
        u: plane(&uv, w / 2),
        v: plane(&uv, w / 2),
    };
    // 4×4, hotspot (1, 1): the top row half-transparent red (premultiplied: R = 128, A = 128),
    // the rest opaque red.
    let mut bgra = [0u8, 0, 255, 255].repeat(16);
    for px in bgra[..16].chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 128, 128]);
    }
    win.set_cursor_shape(&CursorImage {
        width: 4,
        height: 4,
        hotspot_x: 1,
        hotspot_y: 1,
        bgra: &bgra,
    })
    .unwrap();
    win.set_cursor_position(Some((100, 50)));
    win.present(&pic).unwrap();
    let (ww, _, px) = win.read_pixels().unwrap();
    let at = |px: &[u8], x, y| pixel(px, ww, x, y);
    let red = |p: (u8, u8, u8)| p.0 > 240 && p.1 < 15 && p.2 < 15;
    let grey = at(&px, 400, 300);
    assert!(
        grey.0.abs_diff(grey.1) < 8 && grey.0 > 90,
        "picture: {grey:?}"
    );
    // Video (99, 49)–(103, 53) → window x 247.5–257.5, y 75 + 122.5–132.5.
    assert!(
        red(at(&px, 252, 205)),
        "cursor body: {:?}",
        at(&px, 252, 205)
    );
    assert!(
        !red(at(&px, 244, 205)) && !red(at(&px, 260, 205)),
        "beside the cursor"
    );
    // The half-transparent row: half way between the grey and red.
    let half = at(&px, 252, 198);
    assert!(
        half.0 > grey.0 + 40 && half.0 < 240 && half.1 < grey.1 - 20,
        "blended: {half:?} over {grey:?}"
    );

    // At the picture's bottom-right corner: drawn inside it, not over the black bar.
    win.set_cursor_position(Some((319, 179)));
    win.redraw().unwrap();
    let (_, _, px) = win.read_pixels().unwrap();
    assert!(
        red(at(&px, 798, 523)),
        "inside the picture: {:?}",
        at(&px, 798, 523)
    );
    assert_eq!(at(&px, 798, 527), (0, 0, 0), "clipped at the bar");
    assert!(!red(at(&px, 252, 205)), "moved away");

    // Hidden: nothing drawn.
    win.set_cursor_position(None);
    win.redraw().unwrap();
    let (_, _, px) = win.read_pixels().unwrap();
    assert!(!red(at(&px, 798, 523)));
}
