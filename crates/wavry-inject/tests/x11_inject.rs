//! XTEST injection into a real Xvfb display: a window with focus receives what the injector
//! sends (keys with the right keysyms, modifiers repaired, pointer moves, buttons, scroll).

use std::time::{Duration, Instant};
use wavry_inject::x11::{Area, X11Injector};
use wavry_inject::Injector;
use wavry_input::{Button, InputEvent, Modifiers};
use wavry_media::testing::TestDisplay;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, KeyButMask, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Input events the window saw, waiting up to a second for `n` of them (the server's
/// MappingNotify and the like are passed over).
fn events(conn: &RustConnection, n: usize) -> Vec<Event> {
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(1);
    while out.len() < n && Instant::now() < deadline {
        match conn.poll_for_event().unwrap() {
            Some(
                e @ (Event::KeyPress(_)
                | Event::KeyRelease(_)
                | Event::ButtonPress(_)
                | Event::ButtonRelease(_)),
            ) => out.push(e),
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    out
}

/// The pointer position once it reaches `want` (the injector's requests travel on its own
/// connection, so this one may ask before the server has run them), or where it stayed.
fn pointer(conn: &RustConnection, want: (i16, i16)) -> (i16, i16) {
    let root = conn.setup().roots[0].root;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let p = conn.query_pointer(root).unwrap().reply().unwrap();
        if (p.root_x, p.root_y) == want || Instant::now() > deadline {
            return (p.root_x, p.root_y);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn xtest_injection_reaches_a_focused_window() {
    let Some(display) = TestDisplay::start(640, 480) else {
        return;
    };
    let conn = display.connect();
    let screen = &conn.setup().roots[0];
    let win = conn.generate_id().unwrap();
    conn.create_window(
        0,
        win,
        screen.root,
        0,
        0,
        640,
        480,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().event_mask(
            EventMask::KEY_PRESS
                | EventMask::KEY_RELEASE
                | EventMask::BUTTON_PRESS
                | EventMask::BUTTON_RELEASE,
        ),
    )
    .unwrap();
    conn.map_window(win).unwrap();
    conn.set_input_focus(InputFocus::POINTER_ROOT, win, x11rb::CURRENT_TIME)
        .unwrap();
    conn.sync().unwrap();

    let mut inj = X11Injector::connect(Some(display.name())).unwrap();
    assert_eq!(
        inj.area(),
        Area {
            x: 0,
            y: 0,
            width: 640,
            height: 480
        }
    );

    // 'A' with Shift held according to the event, though no Shift press was sent: the
    // injector presses Shift first, so the key arrives shifted.
    inj.inject(&InputEvent::Key {
        usage: 0x04,
        down: true,
        modifiers: Modifiers::LEFT_SHIFT,
    })
    .unwrap();
    inj.inject(&InputEvent::Key {
        usage: 0x04,
        down: false,
        modifiers: Modifiers::NONE,
    })
    .unwrap();
    let ev = events(&conn, 4);
    let keys: Vec<(bool, u8, bool)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::KeyPress(k) => Some((true, k.detail, k.state.contains(KeyButMask::SHIFT))),
            Event::KeyRelease(k) => Some((false, k.detail, k.state.contains(KeyButMask::SHIFT))),
            _ => None,
        })
        .collect();
    // Shift (50) down, A (38) down while shifted, Shift up (reconciled to none), A up.
    assert_eq!(
        keys,
        vec![
            (true, 50, false),
            (true, 38, true),
            (false, 50, true),
            (false, 38, false)
        ]
    );
    // And keycode 38 is 'a' in this server's keymap: the evdev keycode assumption holds.
    let map = conn.get_keyboard_mapping(38, 1).unwrap().reply().unwrap();
    assert_eq!(map.keysyms[0], 'a' as u32);

    // Absolute motion onto a sub-area (a monitor at 100,50 of 400×300), then relative.
    inj.set_area(Area {
        x: 100,
        y: 50,
        width: 400,
        height: 300,
    });
    inj.inject(&InputEvent::MouseAbsolute { x: 65535, y: 0 })
        .unwrap();
    assert_eq!(pointer(&conn, (499, 50)), (499, 50));
    inj.inject(&InputEvent::MouseRelative { dx: -9, dy: 20 })
        .unwrap();
    assert_eq!(pointer(&conn, (490, 70)), (490, 70));

    // Buttons and scroll: 1.5 notches up is one click of button 4, and the half notch left
    // over completes with the next half.
    for down in [true, false] {
        inj.inject(&InputEvent::MouseButton {
            button: Button::Right,
            down,
        })
        .unwrap();
    }
    inj.inject(&InputEvent::Scroll { dx: 0, dy: 180 }).unwrap();
    inj.inject(&InputEvent::Scroll { dx: 0, dy: 60 }).unwrap();
    inj.inject(&InputEvent::Scroll { dx: -120, dy: 0 }).unwrap();
    let presses: Vec<u8> = events(&conn, 8)
        .iter()
        .filter_map(|e| match e {
            Event::ButtonPress(b) => Some(b.detail),
            _ => None,
        })
        .collect();
    assert_eq!(presses, vec![3, 4, 4, 6]);
}
