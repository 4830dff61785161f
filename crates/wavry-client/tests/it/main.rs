//! The client window under Xvfb: presenting pictures and drawing the host's cursor.

/// SDL allows one context per process, and the window finds its X display through `DISPLAY`:
/// a test that opens a window holds this for its whole run, so such tests take turns in this
/// binary (cargo-nextest runs every test in a process of its own anyway).
pub fn one_window() -> std::sync::MutexGuard<'static, ()> {
    static WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());
    WINDOW.lock().unwrap_or_else(|e| e.into_inner())
}

mod window_cursor;
mod window_xvfb;
