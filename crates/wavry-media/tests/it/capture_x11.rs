//! X11 capture against real Xvfb servers (each test starts its own; skipped when Xvfb is
//! missing): pixels, resolution changes, monitors, damage-driven pacing and the cursor.

use std::time::{Duration, Instant};
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{
    CaptureError, CaptureTarget, Capturer, Frame, MonitorId, PacerConfig, Rect,
};
use wavry_media::testing::{pixel, tool_available, TestDisplay};
use wavry_media::PixelSize;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _};

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const BLUE: u32 = 0x0000ff;
const GREY: u32 = 0x808080;

fn open(display: &TestDisplay, pacer: PacerConfig) -> X11Capturer {
    X11Capturer::open(X11Config {
        display: Some(display.name().into()),
        pacer,
        target: CaptureTarget::WholeScreen,
    })
    .expect("open capture")
}

fn next(cap: &mut X11Capturer) -> Frame {
    cap.next_frame(Instant::now() + Duration::from_secs(5))
        .expect("capture")
        .expect("a frame within 5 s")
}

/// The next frames until one satisfies `ok` (the first after a change may predate it).
fn frame_where(cap: &mut X11Capturer, ok: impl Fn(&Frame) -> bool) -> Frame {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = cap
            .next_frame(deadline)
            .expect("capture")
            .unwrap_or_else(|| panic!("no matching frame within 5 s"));
        if ok(&f) {
            return f;
        }
    }
}

/// Every pixel of `rect` (in frame coordinates) has colour `rgb`.
fn assert_filled(frame: &Frame, rect: Rect, rgb: u32) {
    let view = frame.view();
    for y in rect.y as u32..rect.y as u32 + rect.height {
        for x in rect.x as u32..rect.x as u32 + rect.width {
            let got = pixel(&view, x, y);
            assert_eq!(got, rgb, "pixel ({x}, {y}): {got:06x}, expected {rgb:06x}");
        }
    }
}

fn rect(x: i32, y: i32, width: u32, height: u32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

#[test]
fn captured_window_pixels_match_what_was_drawn() {
    let Some(display) = TestDisplay::start(640, 480) else {
        return;
    };
    let conn = display.connect();
    display.paint(&conn, 0, 0, 320, 240, RED);
    display.paint(&conn, 320, 0, 320, 240, GREEN);
    display.paint(&conn, 0, 240, 320, 240, BLUE);
    display.paint(&conn, 320, 240, 320, 240, GREY);
    // A small window over the others, at an odd place.
    display.paint(&conn, 101, 57, 33, 17, 0x123456);

    let mut cap = open(&display, PacerConfig::default());
    let f = next(&mut cap);
    assert_eq!(f.size(), PixelSize::new(640, 480));
    assert_eq!(f.stride(), 640 * 4);
    assert!(!f.repeat);
    assert_filled(&f, rect(0, 0, 101, 240), RED);
    assert_filled(&f, rect(320, 0, 320, 240), GREEN);
    assert_filled(&f, rect(0, 240, 320, 240), BLUE);
    assert_filled(&f, rect(320, 240, 320, 240), GREY);
    assert_filled(&f, rect(101, 57, 33, 17), 0x123456);
    assert_eq!(pixel(&f.view(), 134, 57), RED);
}

#[test]
fn resolution_change_mid_stream_resizes_the_next_frames() {
    if !tool_available("xrandr") {
        return;
    }
    let Some(display) = TestDisplay::start(1920, 1080) else {
        return;
    };
    let conn = display.connect();
    let win = display.paint(&conn, 0, 0, 1920, 1080, RED);
    let mut cap = open(&display, PacerConfig::default());
    let f = next(&mut cap);
    assert_eq!(f.size(), PixelSize::new(1920, 1080));
    drop(f);

    display.set_resolution(1280, 720);
    let f = frame_where(&mut cap, |f| f.size() != PixelSize::new(1920, 1080));
    assert_eq!(f.size(), PixelSize::new(1280, 720));
    assert_eq!(f.stride(), 1280 * 4);
    assert_filled(&f, rect(0, 0, 1280, 720), RED);
    drop(f);
    assert_eq!(cap.monitors().len(), 1);
    assert_eq!(cap.monitors()[0].geometry, rect(0, 0, 1280, 720));
    let hz = cap.monitors()[0]
        .refresh_hz
        .expect("the added mode has timings");
    assert!((hz - 60.0).abs() < 0.5, "refresh {hz} Hz");
    display.repaint(&conn, win, BLUE);
    let f = frame_where(&mut cap, |f| pixel(&f.view(), 0, 0) == BLUE);
    assert_eq!(f.size(), PixelSize::new(1280, 720));
    assert_filled(&f, rect(0, 0, 1280, 720), BLUE);
    drop(f);

    // Back to the larger size: the buffers grow again.
    display.set_resolution(1920, 1080);
    let f = frame_where(&mut cap, |f| f.size() == PixelSize::new(1920, 1080));
    assert_filled(&f, rect(0, 0, 1920, 1080), BLUE);
    assert_eq!(cap.monitors()[0].geometry, rect(0, 0, 1920, 1080));
}

#[test]
fn two_monitors_are_discovered_and_captured_separately() {
    if !tool_available("xrandr") {
        return;
    }
    let Some(display) = TestDisplay::start(3840, 1080) else {
        return;
    };
    let conn = display.connect();
    display.paint(&conn, 0, 0, 1920, 1080, RED);
    display.paint(&conn, 1920, 0, 1920, 1080, BLUE);
    display.paint(&conn, 1920 + 100, 200, 50, 60, GREEN);
    let unknown = X11Capturer::open(X11Config {
        display: Some(display.name().into()),
        pacer: PacerConfig::default(),
        target: CaptureTarget::Monitor(MonitorId(u32::MAX)),
    });
    assert!(matches!(unknown, Err(CaptureError::NoSuchMonitor(_))));
    let mut cap = open(&display, PacerConfig::default());
    assert_eq!(cap.monitors().len(), 1, "{:?}", cap.monitors());

    // Monitors appear while the capture runs.
    display.set_monitor("LEFT", 0, 0, 1920, 1080);
    display.set_monitor("RIGHT", 1920, 0, 1920, 1080);
    let f = frame_where(&mut cap, |_| true);
    drop(f);
    let named = |cap: &X11Capturer, name: &str| cap.monitors().iter().any(|m| m.name == name);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(named(&cap, "LEFT") && named(&cap, "RIGHT")) && Instant::now() < deadline {
        let _ = cap.next_frame(Instant::now() + Duration::from_millis(50));
    }
    // The server also keeps reporting the output's own monitor ("screen", 3840x1080).
    let monitors = cap.monitors().to_vec();
    assert_eq!(monitors.len(), 3, "{monitors:?}");
    let left = monitors.iter().find(|m| m.name == "LEFT").expect("LEFT");
    let right = monitors.iter().find(|m| m.name == "RIGHT").expect("RIGHT");
    assert_eq!(left.geometry, rect(0, 0, 1920, 1080));
    assert_eq!(right.geometry, rect(1920, 0, 1920, 1080));
    assert_eq!(
        left.refresh_hz, None,
        "a --setmonitor monitor drives no mode"
    );

    cap.select(CaptureTarget::Monitor(left.id)).unwrap();
    let f = next(&mut cap);
    assert_eq!(f.size(), PixelSize::new(1920, 1080));
    assert_eq!(f.area, left.geometry);
    assert_filled(&f, rect(0, 0, 1920, 1080), RED);
    drop(f);

    cap.select(CaptureTarget::Monitor(right.id)).unwrap();
    let f = next(&mut cap);
    assert_eq!(f.area, right.geometry);
    assert_filled(&f, rect(0, 0, 100, 1080), BLUE);
    assert_filled(&f, rect(100, 200, 50, 60), GREEN);
    drop(f);

    // The selected monitor goes away: the capture falls back to the whole screen.
    display.delete_monitor("RIGHT");
    let f = frame_where(&mut cap, |f| f.size() == PixelSize::new(3840, 1080));
    assert_eq!(cap.target(), CaptureTarget::WholeScreen);
    assert_filled(&f, rect(0, 0, 1920, 1080), RED);
    assert_filled(&f, rect(1920 + 100, 200, 50, 60), GREEN);
}

#[test]
fn frames_come_on_damage_and_repeat_only_while_still() {
    let Some(display) = TestDisplay::start(640, 480) else {
        return;
    };
    let conn = display.connect();
    let win = display.paint(&conn, 0, 0, 640, 480, RED);
    let repeat_after = Duration::from_millis(1000);
    let mut cap = open(&display, PacerConfig::new(60, Some(repeat_after)));
    let first = next(&mut cap);
    assert!(!first.repeat);
    let t0 = first.captured_at;
    drop(first);

    // Still screen: nothing until the repeat is due …
    let quiet = cap.next_frame(t0 + Duration::from_millis(600)).unwrap();
    assert!(
        quiet.is_none(),
        "a frame while the screen was still: {quiet:?}"
    );
    // … then exactly one repeat, not earlier than the repeat interval.
    let f = next(&mut cap);
    assert!(f.repeat);
    assert!(f.captured_at - t0 >= repeat_after);
    assert_filled(&f, rect(0, 0, 640, 480), RED);
    drop(f);

    // A change brings a fresh frame with the new content, long before the next repeat.
    let changed = Instant::now();
    display.repaint(&conn, win, GREEN);
    let f = next(&mut cap);
    assert!(!f.repeat);
    assert!(f.captured_at >= changed);
    assert_filled(&f, rect(0, 0, 640, 480), GREEN);
    drop(f);

    // A stream of changes is capped at the frame rate (60 fps: ≥ 16 ms apart).
    let mut last: Option<Instant> = None;
    for i in 0..5u32 {
        display.repaint(&conn, win, 0x010101 * (i + 1));
        let f = next(&mut cap);
        assert!(!f.repeat);
        if let Some(last) = last {
            assert!(f.captured_at - last >= Duration::from_micros(16_666));
        }
        last = Some(f.captured_at);
    }
}

#[test]
fn damage_on_another_monitor_does_not_wake_the_capture() {
    if !tool_available("xrandr") {
        return;
    }
    let Some(display) = TestDisplay::start(1280, 480) else {
        return;
    };
    let conn = display.connect();
    display.set_monitor("A", 0, 0, 640, 480);
    display.set_monitor("B", 640, 0, 640, 480);
    let other = display.paint(&conn, 700, 10, 100, 100, RED);
    let mut cap = open(&display, PacerConfig::new(60, None));
    let a = cap.monitors().iter().find(|m| m.name == "A").unwrap().id;
    cap.select(CaptureTarget::Monitor(a)).unwrap();
    drop(next(&mut cap));

    display.repaint(&conn, other, BLUE);
    let none = cap
        .next_frame(Instant::now() + Duration::from_millis(300))
        .unwrap();
    assert!(none.is_none(), "damage on monitor B woke a capture of A");
    // After ignoring damage elsewhere, damage on our monitor still gets through.
    display.paint(&conn, 10, 10, 50, 50, GREEN);
    let f = next(&mut cap);
    assert_filled(&f, rect(10, 10, 50, 50), GREEN);
}

#[test]
fn cursor_shape_and_position_are_reported() {
    if !tool_available("xrandr") {
        return;
    }
    let Some(display) = TestDisplay::start(800, 600) else {
        return;
    };
    let conn = display.connect();
    display.set_monitor("A", 0, 0, 400, 600);
    display.set_monitor("B", 400, 0, 400, 600);
    let mut cap = open(&display, PacerConfig::default());
    let shape = cap.cursor_shape().expect("a cursor shape").clone();
    assert!(shape.width > 0 && shape.height > 0);
    assert_eq!(
        shape.bgra.len(),
        usize::from(shape.width) * usize::from(shape.height) * 4
    );
    assert!(shape.hotspot_x < shape.width && shape.hotspot_y < shape.height);
    assert!(
        shape.bgra.chunks(4).any(|p| p[3] != 0),
        "the cursor image is fully transparent"
    );

    let warp = |x, y| {
        let root = conn.setup().roots[0].root;
        conn.warp_pointer(x11rb::NONE, root, 0, 0, 0, 0, x, y)
            .unwrap();
        x11rb::wrapper::ConnectionExt::sync(&conn).unwrap();
    };
    warp(450, 123);
    let b = cap.monitors().iter().find(|m| m.name == "B").unwrap().id;
    cap.select(CaptureTarget::Monitor(b)).unwrap();
    let pos = cap.cursor_position().unwrap();
    assert_eq!((pos.x, pos.y, pos.inside), (50, 123, true));
    assert_eq!(pos.shape_serial, shape.serial);
    let f = next(&mut cap);
    assert_eq!((f.cursor.x, f.cursor.y, f.cursor.inside), (50, 123, true));
    drop(f);
    // The cursor is not in the picture: moving it alone makes no frame.
    for x in 300..320 {
        warp(x, 300);
    }
    let none = cap
        .next_frame(Instant::now() + Duration::from_millis(200))
        .unwrap();
    assert!(none.is_none(), "a pointer move woke the capture: {none:?}");
    warp(10, 20);
    let pos = cap.cursor_position().unwrap();
    assert_eq!((pos.x, pos.y, pos.inside), (-390, 20, false));

    // A window with another cursor under the pointer changes the shape and its serial.
    let win = display.paint(&conn, 0, 0, 100, 100, GREY);
    let font = conn.generate_id().unwrap();
    conn.open_font(font, b"cursor").unwrap();
    let cursor = conn.generate_id().unwrap();
    // Glyph 58 of the cursor font: XC_hand1.
    conn.create_glyph_cursor(cursor, font, font, 58, 59, 0, 0, 0, 0xffff, 0xffff, 0xffff)
        .unwrap();
    conn.change_window_attributes(win, &ChangeWindowAttributesAux::new().cursor(cursor))
        .unwrap();
    x11rb::wrapper::ConnectionExt::sync(&conn).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cap.cursor_position().unwrap().shape_serial == shape.serial {
        assert!(Instant::now() < deadline, "cursor serial did not change");
        std::thread::sleep(Duration::from_millis(10));
    }
    let new_shape = cap.cursor_shape().unwrap();
    assert_ne!(new_shape.serial, shape.serial);
    assert_ne!(new_shape.bgra, shape.bgra);
}
