//! Test support (cargo feature `test-support`): private Xvfb displays and drawing helpers, for
//! this crate's tests and for end-to-end tests elsewhere.
//!
//! ```no_run
//! # use wavry_media::testing::TestDisplay;
//! let Some(display) = TestDisplay::start(640, 480) else { return }; // skipped (fails under CI)
//! let conn = display.connect();
//! display.paint(&conn, 0, 0, 100, 100, 0xff0000);
//! ```

use std::process::{Command, Stdio};
use wavry_scene::{DisplayError, VirtualDisplay};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// An Xvfb server of its own, killed when dropped.
pub struct TestDisplay {
    display: VirtualDisplay,
    name: String,
}

impl TestDisplay {
    /// Start Xvfb with one `width`×`height` 24-bit screen on a free display number. Returns
    /// `None` when Xvfb is not installed, after reporting the skip through `wavry_testenv`
    /// (the caller then returns; under CI the test fails there instead).
    ///
    /// The screen can later shrink (and grow back) up to this size with
    /// [`set_resolution`](Self::set_resolution).
    pub fn start(width: u32, height: u32) -> Option<Self> {
        match VirtualDisplay::start(width, height) {
            Ok(display) => {
                let name = display.name().to_string();
                Some(Self { display, name })
            }
            Err(e @ DisplayError::Spawn(_)) => {
                wavry_testenv::skip(&e.to_string());
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The underlying display.
    pub fn display(&self) -> &VirtualDisplay {
        &self.display
    }

    /// The display name, e.g. `:3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new x11rb connection to this display.
    pub fn connect(&self) -> RustConnection {
        x11rb::connect(Some(&self.name))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
            .0
    }

    /// Run an X command-line tool (`xrandr`, `xdotool` …) against this display.
    pub fn run(&self, program: &str, args: &[&str]) {
        let status = Command::new(program)
            .args(args)
            .env("DISPLAY", &self.name)
            .status()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(status.success(), "{program} {args:?} failed: {status}");
    }

    /// Resize the screen through RandR, as a user changing the resolution would: add a
    /// `width`×`height` mode to Xvfb's output, switch to it and resize the framebuffer.
    pub fn set_resolution(&self, width: u32, height: u32) {
        let mode = format!("{width}x{height}");
        // A plausible 60 Hz modeline; Xvfb only stores it.
        let (htotal, vtotal) = (width + 160, height + 30);
        let clock = format!("{:.2}", f64::from(htotal * vtotal) * 60.0 / 1e6);
        let listing = Command::new("xrandr")
            .env("DISPLAY", &self.name)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !listing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&mode))
        {
            let timings = [
                width,
                width + 40,
                width + 80,
                htotal,
                height,
                height + 5,
                height + 10,
                vtotal,
            ]
            .map(|v| v.to_string());
            let mut args = vec!["--newmode", &mode, &clock];
            args.extend(timings.iter().map(String::as_str));
            self.run("xrandr", &args);
            self.run("xrandr", &["--addmode", "screen", &mode]);
        }
        self.run(
            "xrandr",
            &["--output", "screen", "--mode", &mode, "--fb", &mode],
        );
    }

    /// Declare a RandR monitor `name` covering the given area (`xrandr --setmonitor`).
    pub fn set_monitor(&self, name: &str, x: i32, y: i32, width: u32, height: u32) {
        // Physical size: about 96 dpi.
        let geometry = format!(
            "{width}/{}x{height}/{}+{x}+{y}",
            width * 254 / 960,
            height * 254 / 960
        );
        self.run("xrandr", &["--setmonitor", name, &geometry, "none"]);
    }

    pub fn delete_monitor(&self, name: &str) {
        self.run("xrandr", &["--delmonitor", name]);
    }

    /// Map a borderless window filled with `rgb` (0xRRGGBB) at the given place, and wait until
    /// the server has drawn it.
    pub fn paint(
        &self,
        conn: &RustConnection,
        x: i16,
        y: i16,
        width: u16,
        height: u16,
        rgb: u32,
    ) -> Window {
        let screen = &conn.setup().roots[0];
        let win = conn.generate_id().expect("X id");
        conn.create_window(
            0,
            win,
            screen.root,
            x,
            y,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            // No window manager runs: override-redirect keeps the place exact regardless.
            &CreateWindowAux::new()
                .background_pixel(rgb)
                .override_redirect(1),
        )
        .expect("create window");
        conn.map_window(win).expect("map window");
        conn.sync().expect("sync");
        win
    }

    /// The whole screen's pixels as BGRA rows (width × height × 4 bytes), read with a plain
    /// GetImage: slow, but independent of the capture code under test.
    pub fn grab(&self, conn: &RustConnection) -> (u32, u32, Vec<u8>) {
        let screen = &conn.setup().roots[0];
        let (w, h) = (screen.width_in_pixels, screen.height_in_pixels);
        let img = conn
            .get_image(
                x11rb::protocol::xproto::ImageFormat::Z_PIXMAP,
                screen.root,
                0,
                0,
                w,
                h,
                !0,
            )
            .expect("GetImage")
            .reply()
            .expect("GetImage reply");
        (w as u32, h as u32, img.data)
    }

    /// Fill an existing window with another colour and wait until it is drawn.
    pub fn repaint(&self, conn: &RustConnection, win: Window, rgb: u32) {
        conn.change_window_attributes(win, &ChangeWindowAttributesAux::new().background_pixel(rgb))
            .expect("change window");
        conn.clear_area(false, win, 0, 0, 0, 0).expect("clear");
        conn.sync().expect("sync");
    }
}

/// Whether the command-line tool `program` can be run; prints why the caller skips if not.
pub fn tool_available(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIP: {program} is not installed (scripts/setup.sh installs it)");
    }
    found
}

/// The colour (0xRRGGBB) of pixel (`x`, `y`) in a BGRA picture.
pub fn pixel(view: &crate::BgraView<'_>, x: u32, y: u32) -> u32 {
    let p = &view.row(y)[x as usize * 4..x as usize * 4 + 4];
    u32::from_le_bytes([p[0], p[1], p[2], 0])
}
