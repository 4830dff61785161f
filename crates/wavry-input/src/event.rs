//! The input events a client sends a host (and the rumble a host sends back), and their wire
//! encoding inside RIFT Input packets (one event per RIFT input event, docs/INPUT.md).
//!
//! Every event starts with its kind (1 byte) and the sender's monotonic timestamp in
//! microseconds (8 bytes, big-endian), then fixed fields, big-endian. Sizes are fixed per kind,
//! so a decoder checks one length and never allocates.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::keys::Modifiers;
use thiserror::Error;

/// Microseconds of the system's monotonic clock (CLOCK_MONOTONIC on Linux): the clock `t_us`
/// is read from. Processes on one machine share it, so a host and a client there can compare
/// timestamps directly.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The largest encoded event.
pub const MAX_EVENT_LEN: usize = 27;

/// A mouse button. X11's buttons 4–7 are scroll clicks, so the side buttons are named here
/// and mapped by each injector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    Left,
    Middle,
    Right,
    /// "Back" side button.
    X1,
    /// "Forward" side button.
    X2,
}

impl Button {
    fn to_wire(self) -> u8 {
        match self {
            Button::Left => 1,
            Button::Middle => 2,
            Button::Right => 3,
            Button::X1 => 4,
            Button::X2 => 5,
        }
    }

    fn from_wire(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => Button::Left,
            2 => Button::Middle,
            3 => Button::Right,
            4 => Button::X1,
            5 => Button::X2,
            _ => return Err(DecodeError::Invalid("button")),
        })
    }
}

/// Gamepads per session.
pub const MAX_GAMEPADS: u8 = 4;

/// The whole state of one gamepad. Sent as a snapshot on every change (and repeated by the
/// input channel), so a lost packet is repaired by the next one, never leaving a stuck button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GamepadState {
    /// Buttons held, a bit per [`crate::gamepad::buttons`] constant.
    pub buttons: u32,
    /// Left stick X, Y; right stick X, Y (−32768..=32767, +Y down as SDL reports it);
    /// left and right trigger (0..=32767).
    pub axes: [i16; 6],
}

/// One input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    /// A key by its USB HID usage (page 7), with the modifiers held after this event, so the
    /// host can repair a modifier whose own event was lost.
    Key {
        usage: u16,
        down: bool,
        modifiers: Modifiers,
    },
    /// Pointer position on the streamed monitor, 0..=65535 edge to edge on each axis, so it
    /// does not depend on the client's window size.
    MouseAbsolute {
        x: u16,
        y: u16,
    },
    /// Relative motion in host pixels (pointer lock, games).
    MouseRelative {
        dx: i16,
        dy: i16,
    },
    MouseButton {
        button: Button,
        down: bool,
    },
    /// Scroll in 1/120 of a notch (high-resolution wheels send less than 120); +y scrolls
    /// up (away from the user), +x right.
    Scroll {
        dx: i16,
        dy: i16,
    },
    /// A gamepad's state; `connected: false` unplugs it on the host.
    Gamepad {
        pad: u8,
        connected: bool,
        state: GamepadState,
    },
    /// Host → client: rumble motors of one gamepad (0..=65535 each) for `duration_ms`.
    Rumble {
        pad: u8,
        low: u16,
        high: u16,
        duration_ms: u16,
    },
}

/// An event and when its sender produced it (monotonic µs, the sender's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub t_us: u64,
    pub event: InputEvent,
}

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty input event")]
    Empty,
    #[error("unknown input event kind {0:#04x}")]
    UnknownKind(u8),
    #[error("input event kind {kind:#04x} must be {want} bytes, got {got}")]
    Length { kind: u8, want: usize, got: usize },
    #[error("invalid {0} in input event")]
    Invalid(&'static str),
}

mod kind {
    pub const KEY: u8 = 1;
    pub const MOUSE_ABS: u8 = 2;
    pub const MOUSE_REL: u8 = 3;
    pub const BUTTON: u8 = 4;
    pub const SCROLL: u8 = 5;
    pub const GAMEPAD: u8 = 6;
    pub const RUMBLE: u8 = 7;
}

/// kind + timestamp.
const HEAD: usize = 9;

fn body_len(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::KEY => 4,
        kind::MOUSE_ABS | kind::MOUSE_REL | kind::SCROLL => 4,
        kind::BUTTON => 2,
        kind::GAMEPAD => 2 + 4 + 12,
        kind::RUMBLE => 7,
        _ => return None,
    })
}

impl Timed {
    /// Encode into `out` (at least [`MAX_EVENT_LEN`] bytes); returns the length.
    pub fn encode(&self, out: &mut [u8; MAX_EVENT_LEN]) -> usize {
        let mut w = Writer { out, n: 0 };
        match self.event {
            InputEvent::Key {
                usage,
                down,
                modifiers,
            } => {
                w.head(kind::KEY, self.t_us);
                w.u16(usage);
                w.u8(down as u8);
                w.u8(modifiers.bits());
            }
            InputEvent::MouseAbsolute { x, y } => {
                w.head(kind::MOUSE_ABS, self.t_us);
                w.u16(x);
                w.u16(y);
            }
            InputEvent::MouseRelative { dx, dy } => {
                w.head(kind::MOUSE_REL, self.t_us);
                w.u16(dx as u16);
                w.u16(dy as u16);
            }
            InputEvent::MouseButton { button, down } => {
                w.head(kind::BUTTON, self.t_us);
                w.u8(button.to_wire());
                w.u8(down as u8);
            }
            InputEvent::Scroll { dx, dy } => {
                w.head(kind::SCROLL, self.t_us);
                w.u16(dx as u16);
                w.u16(dy as u16);
            }
            InputEvent::Gamepad {
                pad,
                connected,
                state,
            } => {
                w.head(kind::GAMEPAD, self.t_us);
                w.u8(pad);
                w.u8(connected as u8);
                w.u32(state.buttons);
                for a in state.axes {
                    w.u16(a as u16);
                }
            }
            InputEvent::Rumble {
                pad,
                low,
                high,
                duration_ms,
            } => {
                w.head(kind::RUMBLE, self.t_us);
                w.u8(pad);
                w.u16(low);
                w.u16(high);
                w.u16(duration_ms);
            }
        }
        w.n
    }

    /// Decode one event; bytes from the network, so every field is checked.
    pub fn decode(b: &[u8]) -> Result<Timed, DecodeError> {
        let &k = b.first().ok_or(DecodeError::Empty)?;
        let body = body_len(k).ok_or(DecodeError::UnknownKind(k))?;
        if b.len() != HEAD + body {
            return Err(DecodeError::Length {
                kind: k,
                want: HEAD + body,
                got: b.len(),
            });
        }
        // Fields in order; the length is right, so none comes up short.
        let mut r = Fields {
            rest: b,
            short: DecodeError::Length {
                kind: k,
                want: HEAD + body,
                got: b.len(),
            },
        };
        r.u8()?; // the kind
        let t_us = r.u64()?;
        let flag = |v: u8, what| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid(what)),
        };
        let event = match k {
            kind::KEY => InputEvent::Key {
                usage: r.u16()?,
                down: flag(r.u8()?, "key state")?,
                modifiers: Modifiers::from_bits(r.u8()?),
            },
            kind::MOUSE_ABS => InputEvent::MouseAbsolute {
                x: r.u16()?,
                y: r.u16()?,
            },
            kind::MOUSE_REL => InputEvent::MouseRelative {
                dx: r.u16()? as i16,
                dy: r.u16()? as i16,
            },
            kind::BUTTON => InputEvent::MouseButton {
                button: Button::from_wire(r.u8()?)?,
                down: flag(r.u8()?, "button state")?,
            },
            kind::SCROLL => InputEvent::Scroll {
                dx: r.u16()? as i16,
                dy: r.u16()? as i16,
            },
            kind::GAMEPAD => {
                let pad = r.u8()?;
                if pad >= MAX_GAMEPADS {
                    return Err(DecodeError::Invalid("gamepad index"));
                }
                let connected = flag(r.u8()?, "gamepad connection")?;
                let buttons = r.u32()?;
                let mut axes = [0i16; 6];
                for a in &mut axes {
                    *a = r.u16()? as i16;
                }
                InputEvent::Gamepad {
                    pad,
                    connected,
                    state: GamepadState { buttons, axes },
                }
            }
            kind::RUMBLE => {
                let pad = r.u8()?;
                if pad >= MAX_GAMEPADS {
                    return Err(DecodeError::Invalid("gamepad index"));
                }
                InputEvent::Rumble {
                    pad,
                    low: r.u16()?,
                    high: r.u16()?,
                    duration_ms: r.u16()?,
                }
            }
            _ => return Err(DecodeError::UnknownKind(k)),
        };
        Ok(Timed { t_us, event })
    }
}

/// Reads big-endian fields off the front of an event, `short` the error when too few remain.
struct Fields<'a> {
    rest: &'a [u8],
    short: DecodeError,
}

impl Fields<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (a, rest) = self.rest.split_first_chunk::<N>().ok_or(self.short)?;
        self.rest = rest;
        Ok(*a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let [v] = self.array()?;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

struct Writer<'a> {
    out: &'a mut [u8; MAX_EVENT_LEN],
    n: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        // `MAX_EVENT_LEN` holds the largest event, so every field fits.
        if let Some(out) = self.out.get_mut(self.n..self.n + b.len()) {
            out.copy_from_slice(b);
            self.n += b.len();
        }
    }
    fn head(&mut self, kind: u8, t_us: u64) {
        self.u8(kind);
        self.put(&t_us.to_be_bytes());
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_event() -> impl Strategy<Value = InputEvent> {
        let button = prop_oneof![
            Just(Button::Left),
            Just(Button::Middle),
            Just(Button::Right),
            Just(Button::X1),
            Just(Button::X2)
        ];
        prop_oneof![
            (any::<u16>(), any::<bool>(), any::<u8>()).prop_map(|(usage, down, m)| {
                InputEvent::Key {
                    usage,
                    down,
                    modifiers: Modifiers::from_bits(m),
                }
            }),
            (any::<u16>(), any::<u16>()).prop_map(|(x, y)| InputEvent::MouseAbsolute { x, y }),
            (any::<i16>(), any::<i16>()).prop_map(|(dx, dy)| InputEvent::MouseRelative { dx, dy }),
            (button, any::<bool>())
                .prop_map(|(button, down)| InputEvent::MouseButton { button, down }),
            (any::<i16>(), any::<i16>()).prop_map(|(dx, dy)| InputEvent::Scroll { dx, dy }),
            (
                0..MAX_GAMEPADS,
                any::<bool>(),
                any::<u32>(),
                any::<[i16; 6]>()
            )
                .prop_map(|(pad, connected, buttons, axes)| InputEvent::Gamepad {
                    pad,
                    connected,
                    state: GamepadState { buttons, axes },
                }),
            (0..MAX_GAMEPADS, any::<u16>(), any::<u16>(), any::<u16>()).prop_map(
                |(pad, low, high, duration_ms)| InputEvent::Rumble {
                    pad,
                    low,
                    high,
                    duration_ms
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn every_event_round_trips(event in arb_event(), t_us in any::<u64>()) {
            let t = Timed { t_us, event };
            let mut buf = [0u8; MAX_EVENT_LEN];
            let n = t.encode(&mut buf);
            prop_assert_eq!(Timed::decode(&buf[..n]), Ok(t));
            // Any shorter or longer slice is refused.
            prop_assert!(Timed::decode(&buf[..n - 1]).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Timed::decode(&bytes);
        }
    }

    #[test]
    fn key_encoding_is_as_documented() {
        let t = Timed {
            t_us: 0x0102030405060708,
            event: InputEvent::Key {
                usage: 0x0004,
                down: true,
                modifiers: Modifiers::LEFT_SHIFT,
            },
        };
        let mut buf = [0u8; MAX_EVENT_LEN];
        let n = t.encode(&mut buf);
        assert_eq!(
            &buf[..n],
            &[0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x04, 0x01, 0x02]
        );
    }

    #[test]
    fn bad_fields_are_refused_with_a_reason() {
        assert_eq!(Timed::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Timed::decode(&[0x7f]), Err(DecodeError::UnknownKind(0x7f)));
        let mut b = [0u8; 11];
        b[0] = kind::BUTTON;
        b[9] = 9;
        assert_eq!(Timed::decode(&b), Err(DecodeError::Invalid("button")));
        b[9] = 1;
        b[10] = 2;
        assert_eq!(Timed::decode(&b), Err(DecodeError::Invalid("button state")));
    }
}
