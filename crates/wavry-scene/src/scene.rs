//! A moving scene on an X display: a full-screen window with a static "desktop" (panels and
//! text-like rows), a block bouncing across it, a scrolling stripe band and a panel of small
//! cells that change every frame (the detail of a video or a game, which costs the encoder
//! real bits), redrawn at a steady frame rate by a thread of its own. Enough motion and detail to exercise capture,
//! damage tracking and the encoder the way a real desktop or game would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Gcontext, Rectangle, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;

#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("cannot open display {display}: {reason}")]
    Connect { display: String, reason: String },
    #[error("X request failed: {0}")]
    X(String),
}

fn x<E: std::fmt::Display>(e: E) -> SceneError {
    SceneError::X(e.to_string())
}

/// A running scene; stops (and its window goes) when dropped.
pub struct Scene {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    join: Option<JoinHandle<()>>,
}

impl Scene {
    /// Start painting on `display` at `fps` frames per second.
    pub fn start(display: &str, fps: u32) -> Result<Scene, SceneError> {
        let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| SceneError::Connect {
            display: display.to_string(),
            reason: e.to_string(),
        })?;
        let s = &conn.setup().roots[screen];
        let (root, w, h) = (s.root, s.width_in_pixels, s.height_in_pixels);
        let win = conn.generate_id().map_err(x)?;
        conn.create_window(
            0,
            win,
            root,
            0,
            0,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(0x203040)
                .override_redirect(1),
        )
        .map_err(x)?;
        let gc = conn.generate_id().map_err(x)?;
        conn.create_gc(gc, win, &CreateGCAux::new()).map_err(x)?;
        conn.map_window(win).map_err(x)?;
        conn.flush().map_err(x)?;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let painter = Painter {
            conn,
            win,
            gc,
            w,
            h,
        };
        let (stop2, frames2) = (stop.clone(), frames.clone());
        let join = std::thread::Builder::new()
            .name("scene".into())
            .spawn(move || painter.run(fps.max(1), &stop2, &frames2))
            .map_err(x)?;
        Ok(Scene {
            stop,
            frames,
            join: Some(join),
        })
    }

    /// Frames painted so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

struct Painter {
    conn: RustConnection,
    win: Window,
    gc: Gcontext,
    w: u16,
    h: u16,
}

impl Painter {
    fn fill(&self, rgb: u32, rects: &[Rectangle]) -> Result<(), SceneError> {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .map_err(x)?;
        self.conn
            .poly_fill_rectangle(self.win, self.gc, rects)
            .map_err(x)?;
        Ok(())
    }

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rectangle {
        Rectangle {
            x: x as i16,
            y: y as i16,
            width: w.max(1) as u16,
            height: h.max(1) as u16,
        }
    }

    /// The still part: a top panel, a side panel and rows of "text".
    fn desktop(&self) -> Result<(), SceneError> {
        let (w, h) = (self.w as i32, self.h as i32);
        self.fill(0x203040, &[Self::rect(0, 0, w, h)])?;
        self.fill(0x101820, &[Self::rect(0, 0, w, h / 20)])?;
        self.fill(0x2c3e50, &[Self::rect(0, h / 20, w / 6, h)])?;
        let mut rows = Vec::new();
        let line = (h / 40).max(4);
        for i in 0..12 {
            let y = h / 10 + i * line * 2;
            let len = (w / 3) * (3 + (i * 7) % 5) / 7;
            rows.push(Self::rect(w / 5, y, len, line));
        }
        self.fill(0xd0d8e0, &rows)
    }

    /// The changing panel, top right: 8-pixel cells in 8 colours, about half of them
    /// changing each frame.
    fn detail(&self, n: u64) -> Result<(), SceneError> {
        const PALETTE: [u32; 8] = [
            0x1abc9c, 0x16a085, 0xe67e22, 0xd35400, 0x8e44ad, 0x2980b9, 0xc0392b, 0xbdc3c7,
        ];
        let (w, h) = (self.w as i32, self.h as i32);
        let (x0, y0, pw, ph) = (w * 2 / 3, h / 10, w / 3 - 8, h / 3);
        let cell = 8;
        let mut groups: [Vec<Rectangle>; 8] = Default::default();
        for cy in 0..ph / cell {
            for cx in 0..pw / cell {
                // A cheap hash of cell and time: each cell's colour changes every other frame.
                let mut v = (cx as u64 * 73_856_093)
                    ^ (cy as u64 * 19_349_663)
                    ^ ((n / 2 + (cx + cy) as u64 % 2) * 83_492_791);
                v ^= v >> 13;
                let c = (v % 8) as usize;
                groups[c].push(Self::rect(x0 + cx * cell, y0 + cy * cell, cell, cell));
            }
        }
        for (rgb, rects) in PALETTE.iter().zip(&groups) {
            self.fill(*rgb, rects)?;
        }
        Ok(())
    }

    fn run(self, fps: u32, stop: &AtomicBool, frames: &AtomicU64) {
        if let Err(e) = self.paint_loop(fps, stop, frames) {
            tracing::warn!(error = %e, "scene stopped");
        }
    }

    fn paint_loop(
        &self,
        fps: u32,
        stop: &AtomicBool,
        frames: &AtomicU64,
    ) -> Result<(), SceneError> {
        self.desktop()?;
        let (w, h) = (self.w as i32, self.h as i32);
        let interval = Duration::from_secs(1) / fps;
        let start = Instant::now();
        let block = (h / 6).max(8);
        let band_y = h - h / 8;
        let stripe = (w / 16).max(4);
        let (mut bx, mut by, mut dx, mut dy) = (w / 4, h / 4, (w / 120).max(2), (h / 90).max(2));
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            // Erase the block where it was, move it, draw it again.
            self.fill(0x203040, &[Self::rect(bx, by, block, block)])?;
            if bx + dx < w / 6 || bx + dx + block > w {
                dx = -dx;
            }
            if by + dy < h / 20 || by + dy + block > band_y {
                dy = -dy;
            }
            bx += dx;
            by += dy;
            let hue = [0xe74c3c, 0xf39c12, 0x2ecc71, 0x3498db, 0x9b59b6][(n / 30 % 5) as usize];
            self.fill(hue, &[Self::rect(bx, by, block, block)])?;
            // The stripe band scrolls one step per frame.
            let off = (n as i32 * 4) % (2 * stripe);
            let mut light = Vec::new();
            let mut dark = Vec::new();
            let mut sx = -2 * stripe + off;
            let mut k = 0;
            while sx < w {
                let r = Self::rect(sx.max(0), band_y, stripe - (sx.min(0)).abs(), h / 8);
                if k % 2 == 0 {
                    light.push(r);
                } else {
                    dark.push(r);
                }
                sx += stripe;
                k += 1;
            }
            self.fill(0xecf0f1, &light)?;
            self.fill(0x34495e, &dark)?;
            self.detail(n)?;
            self.conn.flush().map_err(x)?;
            n += 1;
            frames.store(n, Ordering::Relaxed);
            let next = start + interval * n as u32;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(())
    }
}
