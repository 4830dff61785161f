//! What the host tells the client about the pointer: the cursor's shape when its serial
//! changes, and its position when it moves (docs/CONTROL.md, "Cursor"). Sans-IO: capture
//! results in, control messages out.
//!
//! The cursor is not in the video (docs/MEDIA.md): a pointer move costs one small control
//! message, sent right after the capture that saw it, ahead of that frame's encoding.

use std::time::{Duration, Instant};
use wavry_control::{ControlMessage, Cursor};
use wavry_media::capture::{CursorPosition, CursorShape};

/// Positions go out at most this often (250 per second): a pointer moving every millisecond
/// is coalesced, and the client never waits more than this for the latest one.
pub const POSITION_INTERVAL: Duration = Duration::from_millis(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    x: i32,
    y: i32,
    visible: bool,
    serial: u32,
}

/// Decides which cursor messages to send.
#[derive(Debug, Default)]
pub struct CursorSync {
    /// Serial of the last shape handled (sent, or refused).
    shape_serial: Option<u32>,
    /// That shape reached the client and has pixels to draw.
    shape_visible: bool,
    last: Option<Sent>,
    last_at: Option<Instant>,
}

impl CursorSync {
    /// The `CursorShape` chunks to send when `shape` is not the last one handled. A shape the
    /// protocol cannot carry (larger than `MAX_CURSOR_SIDE`, empty) is logged once and the
    /// pointer is shown as hidden until the next shape.
    pub fn shape(&mut self, shape: Option<&CursorShape>) -> Vec<ControlMessage> {
        let Some(shape) = shape else {
            return Vec::new();
        };
        if self.shape_serial == Some(shape.serial) {
            return Vec::new();
        }
        self.shape_serial = Some(shape.serial);
        let cursor = Cursor {
            serial: shape.serial,
            width: shape.width,
            height: shape.height,
            // X guarantees the hotspot lies in the image; clamp rather than trust it.
            hotspot_x: shape.hotspot_x.min(shape.width.saturating_sub(1)),
            hotspot_y: shape.hotspot_y.min(shape.height.saturating_sub(1)),
            bgra: shape.bgra.clone(),
        };
        match cursor.chunks() {
            Ok(messages) => {
                self.shape_visible = cursor.is_visible();
                tracing::debug!(
                    serial = shape.serial,
                    width = shape.width,
                    height = shape.height,
                    visible = self.shape_visible,
                    "cursor shape sent"
                );
                messages
            }
            Err(e) => {
                tracing::warn!(serial = shape.serial, error = %e, "cursor shape not sent; the pointer shows as hidden");
                self.shape_visible = false;
                Vec::new()
            }
        }
    }

    /// The `CursorPosition` to send at `now`, if the pointer moved, appeared, disappeared or
    /// changed shape since the last one and that one is at least `POSITION_INTERVAL` old.
    pub fn position(&mut self, pos: &CursorPosition, now: Instant) -> Option<ControlMessage> {
        let visible = pos.inside && self.shape_visible;
        let next = Sent {
            // A hidden pointer's coordinates do not matter: do not resend them on every move.
            x: if visible { pos.x } else { 0 },
            y: if visible { pos.y } else { 0 },
            visible,
            serial: self.shape_serial.unwrap_or(0),
        };
        if self.last == Some(next) {
            return None;
        }
        if self
            .last_at
            .is_some_and(|t| now.saturating_duration_since(t) < POSITION_INTERVAL)
        {
            // Coalesced: the caller asks again within the interval.
            return None;
        }
        self.last = Some(next);
        self.last_at = Some(now);
        Some(ControlMessage::CursorPosition {
            x: next.x,
            y: next.y,
            visible: next.visible,
            serial: next.serial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(serial: u32, side: u16, alpha: u8) -> CursorShape {
        CursorShape {
            serial,
            width: side,
            height: side,
            hotspot_x: 1,
            hotspot_y: 1,
            bgra: [0, 0, 255, alpha].repeat(usize::from(side) * usize::from(side)),
        }
    }

    fn at(x: i32, y: i32, inside: bool) -> CursorPosition {
        CursorPosition {
            x,
            y,
            inside,
            shape_serial: 0,
        }
    }

    #[test]
    fn shape_once_per_serial_then_positions_coalesced() {
        let mut c = CursorSync::default();
        let t0 = Instant::now();
        assert_eq!(c.shape(Some(&shape(5, 32, 255))).len(), 4);
        assert!(c.shape(Some(&shape(5, 32, 255))).is_empty(), "same serial");
        assert_eq!(
            c.position(&at(10, 20, true), t0),
            Some(ControlMessage::CursorPosition {
                x: 10,
                y: 20,
                visible: true,
                serial: 5
            })
        );
        assert_eq!(c.position(&at(10, 20, true), t0 + POSITION_INTERVAL), None);
        // A move within the interval waits; the next call after it sends the newest.
        assert_eq!(
            c.position(&at(11, 20, true), t0 + Duration::from_millis(1)),
            None
        );
        assert!(matches!(
            c.position(&at(12, 21, true), t0 + POSITION_INTERVAL),
            Some(ControlMessage::CursorPosition { x: 12, y: 21, .. })
        ));
        // Outside the streamed area: hidden, once.
        let t1 = t0 + 3 * POSITION_INTERVAL;
        assert!(matches!(
            c.position(&at(-5, 21, false), t1),
            Some(ControlMessage::CursorPosition { visible: false, .. })
        ));
        assert_eq!(
            c.position(&at(-50, 21, false), t1 + POSITION_INTERVAL),
            None
        );
    }

    #[test]
    fn transparent_or_oversized_shapes_hide_the_pointer() {
        let mut c = CursorSync::default();
        let t0 = Instant::now();
        assert_eq!(
            c.shape(Some(&shape(1, 8, 0))).len(),
            1,
            "sent, but invisible"
        );
        assert!(matches!(
            c.position(&at(1, 1, true), t0),
            Some(ControlMessage::CursorPosition {
                visible: false,
                serial: 1,
                ..
            })
        ));
        assert!(
            c.shape(Some(&shape(2, 200, 255))).is_empty(),
            "too large: refused"
        );
        assert!(matches!(
            c.position(&at(1, 1, true), t0 + POSITION_INTERVAL),
            Some(ControlMessage::CursorPosition {
                visible: false,
                serial: 2,
                ..
            })
        ));
        assert!(c.shape(Some(&shape(2, 200, 255))).is_empty(), "not retried");
        assert_eq!(c.shape(Some(&shape(3, 16, 255))).len(), 1);
        assert!(matches!(
            c.position(&at(1, 1, true), t0 + 2 * POSITION_INTERVAL),
            Some(ControlMessage::CursorPosition {
                visible: true,
                serial: 3,
                ..
            })
        ));
        assert!(c.shape(None).is_empty());
    }
}
