//! The host's cursor, end to end: a host streams a 640x480 Xvfb display whose left half shows
//! a 16x16 red cursor (hotspot 8,8) and whose right half a fully transparent one; the client's
//! window (800x450, so the picture is letterboxed to 600x450 at x = 100) on a second Xvfb
//! display must draw the red square where the host's pointer is, scaled like the picture,
//! follow it when the pointer is warped on the host (a move alone makes no video frame), and
//! draw nothing over the transparent cursor.

use crate::common;

use rift_crypto::handshake::pinned;
use rift_crypto::identity::Identity;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_client::run::{connect, run, RunOptions};
use wavry_media::testing::TestDisplay;
use wavry_transport::udp::UdpDriver;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::*;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

const HOST: (u32, u32) = (640, 480);
const CLIENT: (u32, u32) = (800, 450);
const SIDE: i32 = 16;
const HOT: i32 = 8;

/// A core cursor of SIDE × SIDE pixels: red where `visible`, else fully transparent.
fn square_cursor(conn: &RustConnection, visible: bool) -> Cursor {
    let root = conn.setup().roots[0].root;
    let make = |bit: u32| {
        let pix = conn.generate_id().unwrap();
        conn.create_pixmap(1, pix, root, SIDE as u16, SIDE as u16)
            .unwrap();
        let gc = conn.generate_id().unwrap();
        conn.create_gc(gc, pix, &CreateGCAux::new().foreground(bit))
            .unwrap();
        let all = Rectangle {
            x: 0,
            y: 0,
            width: SIDE as u16,
            height: SIDE as u16,
        };
        conn.poly_fill_rectangle(pix, gc, &[all]).unwrap();
        pix
    };
    let (source, mask) = (make(1), make(u32::from(visible)));
    let cursor = conn.generate_id().unwrap();
    conn.create_cursor(
        cursor, source, mask, 0xffff, 0, 0, 0, 0, 0, HOT as u16, HOT as u16,
    )
    .unwrap();
    cursor
}

/// Where host pixel `v` lands on the client (one axis): scale 450/480, offset `origin`.
fn map(v: i32, origin: i32) -> i32 {
    origin + v * 450 / 480
}

/// The bounding box (left, top, right, bottom; exclusive) of the red pixels on the client's
/// screen, and how many there are.
fn red_box(px: &[u8], width: u32) -> Option<((i32, i32, i32, i32), usize)> {
    let mut bx: Option<(i32, i32, i32, i32)> = None;
    let mut n = 0;
    for (i, p) in px.chunks_exact(4).enumerate() {
        // BGRx: red is high R, low G and B (the video is grey).
        if p[2] > 200 && p[1] < 60 && p[0] < 60 {
            let (x, y) = ((i as u32 % width) as i32, (i as u32 / width) as i32);
            n += 1;
            bx = Some(bx.map_or((x, y, x + 1, y + 1), |(l, t, r, b)| {
                (l.min(x), t.min(y), r.max(x + 1), b.max(y + 1))
            }));
        }
    }
    bx.map(|b| (b, n))
}

#[test]
fn client_draws_the_host_cursor_where_the_host_pointer_is() {
    let _window = common::one_window();
    let (Some(host_disp), Some(client_disp)) = (
        TestDisplay::start(HOST.0, HOST.1),
        TestDisplay::start(CLIENT.0, CLIENT.1),
    ) else {
        return;
    };
    let hc = host_disp.connect();
    let left = host_disp.paint(&hc, 0, 0, 320, 480, 0x505050);
    let right = host_disp.paint(&hc, 320, 0, 320, 480, 0x606060);
    for (win, visible) in [(left, true), (right, false)] {
        let c = square_cursor(&hc, visible);
        hc.change_window_attributes(win, &ChangeWindowAttributesAux::new().cursor(c))
            .unwrap();
    }
    hc.sync().unwrap();

    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let host_display = host_disp.name().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let host_stop = stop.clone();
    let host = std::thread::spawn(move || {
        common::serve_one(hd, &host_id, client_pub, host_display, &host_stop)
    });
    let client = connect(
        "127.0.0.1:0".parse().unwrap(),
        host_addr,
        &client_id,
        pinned(host_pub),
    )
    .unwrap();

    let client_name = client_disp.name().to_string();
    let checker = std::thread::spawn(move || {
        let cc = client_disp.connect();
        let grab = || client_disp.grab(&cc).2;
        // Wait for the picture: the host's grey at the centre of the client's screen.
        let deadline = Instant::now() + Duration::from_secs(10);
        while {
            let px = grab();
            let i = ((225 * CLIENT.0 + 400) * 4) as usize;
            px[i + 1] < 0x40
        } {
            assert!(Instant::now() < deadline, "no picture on the client");
            std::thread::sleep(Duration::from_millis(20));
        }
        let root = hc.setup().roots[0].root;
        // Warp the host's pointer to (x, y); wait until the client shows a red box (or, for
        // `None`, none at all); return the box and how long it took.
        let step = |x: i16, y: i16, expect_red: bool| {
            hc.warp_pointer(x11rb::NONE, root, 0, 0, 0, 0, x, y)
                .unwrap();
            hc.sync().unwrap();
            let warped = Instant::now();
            loop {
                let found = red_box(&grab(), CLIENT.0);
                let want = |(b, _): &((i32, i32, i32, i32), usize)| {
                    // The box's top-left must be the new one (not the previous position).
                    (b.0 - map(i32::from(x) - HOT, 100)).abs() <= 1
                        && (b.1 - map(i32::from(y) - HOT, 0)).abs() <= 1
                };
                let done = match &found {
                    Some(f) => expect_red && want(f),
                    None => !expect_red,
                };
                if done {
                    return (found, warped.elapsed());
                }
                assert!(
                    warped.elapsed() < Duration::from_secs(2),
                    "pointer at {x},{y}: client shows red {found:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let mut results = vec![];
        for (x, y) in [(100, 200), (250, 330), (40, 60)] {
            let (found, took) = step(x, y, true);
            let (b, n) = found.unwrap();
            // 16 host pixels × 450/480: 15 (or 16, by rounding of the edges) client pixels.
            let expect = (
                map(i32::from(x) - HOT, 100),
                map(i32::from(y) - HOT, 0),
                map(i32::from(x) - HOT + SIDE, 100),
                map(i32::from(y) - HOT + SIDE, 0),
            );
            results.push(((x, y), b, expect, n, took));
        }
        // Over the right half the cursor is fully transparent: nothing is drawn.
        let (hidden, hidden_took) = step(480, 240, false);
        (results, hidden, hidden_took, client_disp)
    });
    std::env::set_var("DISPLAY", &client_name);
    let summary = run(
        client,
        RunOptions {
            title: "wavry cursor".into(),
            width: CLIENT.0,
            height: CLIENT.1,
            overlay: false,
            report: None,
            duration: Some(Duration::from_secs(8)),
            hardware_decode: false,
            present: wavry_client::window::PresentMode::Auto,
            client_name: "cursor-e2e".into(),
            stop: Arc::new(AtomicBool::new(false)),
        },
    )
    .unwrap();
    let (results, hidden, hidden_took, _client_disp) = checker.join().unwrap();
    let _ = host.join().unwrap();
    println!("client: {summary:?}");
    for (at, got, expect, n, took) in &results {
        println!("host pointer {at:?}: red box {got:?} ({n} px), expected {expect:?}, shown after {took:?}");
        assert!(
            (got.2 - expect.2).abs() <= 1 && (got.3 - expect.3).abs() <= 1,
            "box {got:?} vs {expect:?}"
        );
        // Solid: every pixel of the box is red.
        assert_eq!(*n, ((got.2 - got.0) * (got.3 - got.1)) as usize);
        // A pointer move is a control message, not a frame: well under the 200 ms a changed
        // picture is allowed in end_to_end.rs.
        assert!(*took <= Duration::from_millis(200), "{took:?}");
    }
    println!("transparent cursor: nothing drawn after {hidden_took:?}");
    assert!(hidden.is_none());
}
