//! The client window on a real Xvfb display, on each presentation path: an I420 picture is
//! shown letterboxed with the right colours (scaled, and at its own size), and the overlay
//! draws on top when toggled.

use wavry_client::window::{Plane, PresentMode, VideoWindow, I420};
use wavry_media::testing::TestDisplay;

/// BT.709 limited-range YUV of a colour.
fn yuv(r: f64, g: f64, b: f64) -> (u8, u8, u8) {
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let u = (b - y) / 1.8556;
    let v = (r - y) / 1.5748;
    (
        (16.0 + 219.0 * y / 255.0).round() as u8,
        (128.0 + 224.0 * u / 255.0).round() as u8,
        (128.0 + 224.0 * v / 255.0).round() as u8,
    )
}

#[test]
fn shows_a_picture_letterboxed_with_its_colours() {
    let _window = crate::one_window();
    let Some(display) = TestDisplay::start(800, 600) else {
        return;
    };
    std::env::set_var("DISPLAY", display.name());
    for mode in [PresentMode::Gpu, PresentMode::Cpu] {
        println!("presentation path {mode:?}");
        shows_a_picture(mode);
    }
}

fn shows_a_picture(mode: PresentMode) {
    let mut win = VideoWindow::open("wavry test", 800, 600, mode).unwrap();
    let expected = if mode == PresentMode::Cpu {
        "cpu"
    } else {
        "gpu"
    };
    assert!(win.presenter().starts_with(expected), "{}", win.presenter());

    // A 320×180 picture: left half green-ish grey, right half bright (Y only varies).
    let (w, h) = (320usize, 180usize);
    let (yl, ul, vl) = yuv(40.0, 160.0, 40.0);
    let (yr, ur, vr) = yuv(220.0, 220.0, 220.0);
    let mut y = vec![0u8; w * h];
    let mut u = vec![0u8; w / 2 * h / 2];
    let mut v = vec![0u8; w / 2 * h / 2];
    for row in 0..h {
        for col in 0..w {
            y[row * w + col] = if col < w / 2 { yl } else { yr };
        }
    }
    for row in 0..h / 2 {
        for col in 0..w / 2 {
            let left = col < w / 4;
            u[row * w / 2 + col] = if left { ul } else { ur };
            v[row * w / 2 + col] = if left { vl } else { vr };
        }
    }
    let pic = I420 {
        width: w as u32,
        height: h as u32,
        y: Plane {
            data: &y,
            stride: w,
        },
        u: Plane {
            data: &u,
            stride: w / 2,
        },
        v: Plane {
            data: &v,
            stride: w / 2,
        },
    };
    win.present(&pic).unwrap();
    let (ww, wh, px) = win.read_pixels().unwrap();
    assert_eq!((ww, wh), (800, 600));
    let at = |x: u32, y: u32| pixel(&px, ww, x, y);
    let close = |a: (u8, u8, u8), b: (u8, u8, u8)| {
        (a.0 as i32 - b.0 as i32).abs() <= 12
            && (a.1 as i32 - b.1 as i32).abs() <= 12
            && (a.2 as i32 - b.2 as i32).abs() <= 12
    };
    // 16:9 in 4:3: the picture is 800×450 at y = 75; bars above and below.
    assert_eq!(at(400, 10), (0, 0, 0), "letterbox bar");
    assert!(
        close(at(200, 300), (40, 160, 40)),
        "left half: {:?}",
        at(200, 300)
    );
    assert!(
        close(at(600, 300), (220, 220, 220)),
        "right half: {:?}",
        at(600, 300)
    );

    // The overlay, once shown, dims the picture under its top-left corner.
    let lines: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
    win.set_overlay(&lines).unwrap();
    win.redraw().unwrap();
    let (_, _, px) = win.read_pixels().unwrap();
    assert!(
        close(pixel(&px, ww, 10, 110), (40, 160, 40)),
        "hidden by default"
    );
    win.set_overlay_visible(true).unwrap();
    let (_, _, px) = win.read_pixels().unwrap();
    let dimmed = pixel(&px, ww, 10, 110);
    assert!(
        dimmed.1 < 80 && dimmed.1 > 30,
        "translucent black over green: {dimmed:?}"
    );
    let mut sent = vec![];
    assert!(!win.pump(&mut sent).unwrap(), "nothing asked to quit");

    // A picture of the window's own size fills it (the cpu path converts straight into it).
    win.set_overlay_visible(false).unwrap();
    let (fw, fh) = (800usize, 600usize);
    let (yc, uc, vc) = yuv(200.0, 60.0, 30.0);
    let (y, u, v) = (
        vec![yc; fw * fh],
        vec![uc; fw * fh / 4],
        vec![vc; fw * fh / 4],
    );
    let full = I420 {
        width: fw as u32,
        height: fh as u32,
        y: Plane {
            data: &y,
            stride: fw,
        },
        u: Plane {
            data: &u,
            stride: fw / 2,
        },
        v: Plane {
            data: &v,
            stride: fw / 2,
        },
    };
    win.present(&full).unwrap();
    let (_, _, px) = win.read_pixels().unwrap();
    for (x, y) in [(0, 0), (799, 599), (400, 300)] {
        let got = pixel(&px, ww, x, y);
        assert!(close(got, (200, 60, 30)), "({x}, {y}): {got:?}");
    }
}

/// (R, G, B) of an ARGB8888 read-back (B, G, R, A in memory on little-endian).
fn pixel(px: &[u8], width: u32, x: u32, y: u32) -> (u8, u8, u8) {
    let i = ((y * width + x) * 4) as usize;
    (px[i + 2], px[i + 1], px[i])
}
