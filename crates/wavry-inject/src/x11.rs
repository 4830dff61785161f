//! Injection on an X11 display through the XTEST extension.
//!
//! - Keys: HID usage → X keycode (evdev keycodes, see `keys`). The event's modifier byte is
//!   reconciled with what this injector holds, so a lost Shift press or release is repaired by
//!   the next key.
//! - Absolute motion maps 0..=65535 onto the streamed area (a monitor's rectangle in root
//!   coordinates); relative motion moves the pointer by host pixels.
//! - Buttons: left/middle/right are X buttons 1–3, the side buttons X1/X2 are 8/9.
//! - Scroll: X11's core protocol scrolls in clicks (buttons 4/5 vertical, 6/7 horizontal), so
//!   high-resolution deltas accumulate and a click is sent per 120 units.
//!
//! Each event is flushed to the server at once.

use crate::{InjectError, Injector};
use wavry_input::keys::{usage_to_x11, Modifiers};
use wavry_input::{Button, InputEvent};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    Window, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
    MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

/// One notch of a wheel in scroll units.
const NOTCH: i32 = 120;

/// A rectangle of the root window, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub x: i16,
    pub y: i16,
    pub width: u16,
    pub height: u16,
}

pub struct X11Injector {
    conn: RustConnection,
    root: Window,
    area: Area,
    /// Modifiers this injector holds down.
    held: Modifiers,
    /// Scroll not yet sent as a click, in 1/120 notch.
    scroll: (i32, i32),
}

impl X11Injector {
    /// Connect to `display` (or `$DISPLAY`); absolute motion covers the whole screen until
    /// [`X11Injector::set_area`] narrows it to the streamed monitor.
    pub fn connect(display: Option<&str>) -> Result<Self, InjectError> {
        let (conn, screen) = x11rb::connect(display)
            .map_err(|e| InjectError::Connection(format!("cannot open the display: {e}")))?;
        let has_xtest = conn
            .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)
            .map_err(|e| InjectError::Connection(e.to_string()))?
            .is_some();
        if !has_xtest {
            return Err(InjectError::Unavailable {
                what: "X11 input injection",
                why: "the X server has no XTEST extension".into(),
            });
        }
        let s = &conn.setup().roots[screen];
        let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
        Ok(X11Injector {
            conn,
            root,
            area: Area {
                x: 0,
                y: 0,
                width,
                height,
            },
            held: Modifiers::NONE,
            scroll: (0, 0),
        })
    }

    /// The area absolute positions map onto (the streamed monitor).
    pub fn set_area(&mut self, area: Area) {
        self.area = area;
    }

    pub fn area(&self) -> Area {
        self.area
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), InjectError> {
        let root = if kind == MOTION_NOTIFY_EVENT && detail == 1 {
            x11rb::NONE
        } else {
            self.root
        };
        self.conn
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, root, x, y, 0)
            .map_err(|e| InjectError::Connection(e.to_string()))?;
        Ok(())
    }

    fn key(&mut self, usage: u16, down: bool) -> Result<(), InjectError> {
        let Some(code) = usage_to_x11(usage) else {
            tracing::debug!(usage, "no X keycode for this key; skipped");
            return Ok(());
        };
        let kind = if down {
            KEY_PRESS_EVENT
        } else {
            KEY_RELEASE_EVENT
        };
        self.fake(kind, code, 0, 0)?;
        if let Some(m) = Modifiers::of_usage(usage) {
            self.held = if down {
                self.held.union(m)
            } else {
                self.held.difference(m)
            };
        }
        Ok(())
    }

    /// Press or release modifiers until this injector holds exactly `want`.
    fn reconcile(&mut self, want: Modifiers) -> Result<(), InjectError> {
        for u in want.difference(self.held).usages() {
            self.key(u, true)?;
        }
        for u in self.held.difference(want).usages() {
            self.key(u, false)?;
        }
        Ok(())
    }

    fn button(&self, button: u8, down: bool) -> Result<(), InjectError> {
        let kind = if down {
            BUTTON_PRESS_EVENT
        } else {
            BUTTON_RELEASE_EVENT
        };
        self.fake(kind, button, 0, 0)
    }

    fn scroll(&mut self, dx: i16, dy: i16) -> Result<(), InjectError> {
        self.scroll.0 += dx as i32;
        self.scroll.1 += dy as i32;
        // (accumulator, button for a positive notch, button for a negative notch)
        for axis in 0..2 {
            let (acc, pos, neg) = if axis == 0 {
                (&mut self.scroll.0, 7u8, 6u8)
            } else {
                (&mut self.scroll.1, 4u8, 5u8)
            };
            let clicks = *acc / NOTCH;
            *acc -= clicks * NOTCH;
            let b = if clicks > 0 { pos } else { neg };
            for _ in 0..clicks.unsigned_abs().min(64) {
                self.button(b, true)?;
                self.button(b, false)?;
            }
        }
        Ok(())
    }

    /// Absolute 0..=65535 → a pixel of the area (the last pixel for 65535).
    fn to_pixel(v: u16, origin: i16, extent: u16) -> i16 {
        let off = (v as u32 * extent.saturating_sub(1) as u32 + 32767) / 65535;
        origin.saturating_add(off as i16)
    }
}

impl Injector for X11Injector {
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        match *event {
            InputEvent::Key {
                usage,
                down,
                modifiers,
            } => {
                if Modifiers::of_usage(usage).is_some() {
                    self.key(usage, down)?;
                    self.reconcile(modifiers)?;
                } else {
                    self.reconcile(modifiers)?;
                    self.key(usage, down)?;
                }
            }
            InputEvent::MouseAbsolute { x, y } => {
                let a = self.area;
                let (px, py) = (
                    Self::to_pixel(x, a.x, a.width),
                    Self::to_pixel(y, a.y, a.height),
                );
                self.fake(MOTION_NOTIFY_EVENT, 0, px, py)?;
            }
            InputEvent::MouseRelative { dx, dy } => self.fake(MOTION_NOTIFY_EVENT, 1, dx, dy)?,
            InputEvent::MouseButton { button, down } => {
                let b = match button {
                    Button::Left => 1,
                    Button::Middle => 2,
                    Button::Right => 3,
                    Button::X1 => 8,
                    Button::X2 => 9,
                };
                self.button(b, down)?;
            }
            InputEvent::Scroll { dx, dy } => self.scroll(dx, dy)?,
            // Gamepads go to uinput; rumble flows the other way.
            InputEvent::Gamepad { .. } | InputEvent::Rumble { .. } => return Ok(()),
        }
        self.conn
            .flush()
            .map_err(|e| InjectError::Connection(e.to_string()))
    }
}

impl Drop for X11Injector {
    fn drop(&mut self) {
        // Leave no modifier stuck on the host when the session ends.
        let _ = self.reconcile(Modifiers::NONE);
        let _ = self.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_positions_cover_the_area_edge_to_edge() {
        assert_eq!(X11Injector::to_pixel(0, 100, 1920), 100);
        assert_eq!(X11Injector::to_pixel(65535, 100, 1920), 100 + 1919);
        assert_eq!(X11Injector::to_pixel(32768, 0, 1920), 960);
        assert_eq!(X11Injector::to_pixel(65535, 0, 0), 0);
    }
}
