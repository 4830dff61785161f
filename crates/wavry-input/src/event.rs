//! The input events a client sends a host (and the rumble a host sends back), and their wire
//! encoding inside RIFT Input packets (one event per RIFT input event, docs/INPUT.md).
//!
//! Every event starts with its kind (1 byte) and the sender's monotonic timestamp in
//! microseconds (8 bytes, big-endian), then fixed fields, big-endian. Sizes are fixed per kind,
//! so a decoder checks one length and never allocates.

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

#[derive(Debug, Error, PartialEq, Eq)]
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
        let t_us = u64::from_be_bytes(b[1..9].try_into().unwrap_or_default());
        let f = &b[HEAD..];
        let u16_at = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let flag = |v: u8, what| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid(what)),
        };
        let event = match k {
            kind::KEY => InputEvent::Key {
                usage: u16_at(0),
                down: flag(f[2], "key state")?,
                modifiers: Modifiers::from_bits(f[3]),
            },
            kind::MOUSE_ABS => InputEvent::MouseAbsolute {
                x: u16_at(0),
                y: u16_at(2),
            },
            kind::MOUSE_REL => InputEvent::MouseRelative {
                dx: u16_at(0) as i16,
                dy: u16_at(2) as i16,
            },
            kind::BUTTON => InputEvent::MouseButton {
                button: Button::from_wire(f[0])?,
                down: flag(f[1], "button state")?,
            },
            kind::SCROLL => InputEvent::Scroll {
                dx: u16_at(0) as i16,
                dy: u16_at(2) as i16,
            },
            kind::GAMEPAD => {
                if f[0] >= MAX_GAMEPADS {
                    return Err(DecodeError::Invalid("gamepad index"));
                }
                let mut axes = [0i16; 6];
                for (i, a) in axes.iter_mut().enumerate() {
                    *a = u16_at(6 + 2 * i) as i16;
                }
                InputEvent::Gamepad {
                    pad: f[0],
                    connected: flag(f[1], "gamepad connection")?,
                    state: GamepadState {
                        buttons: u32::from_be_bytes([f[2], f[3], f[4], f[5]]),
                        axes,
                    },
                }
            }
            kind::RUMBLE => {
                if f[0] >= MAX_GAMEPADS {
                    return Err(DecodeError::Invalid("gamepad index"));
                }
                InputEvent::Rumble {
                    pad: f[0],
                    low: u16_at(1),
                    high: u16_at(3),
                    duration_ms: u16_at(5),
                }
            }
            _ => return Err(DecodeError::UnknownKind(k)),
        };
        Ok(Timed { t_us, event })
    }
}

struct Writer<'a> {
    out: &'a mut [u8; MAX_EVENT_LEN],
    n: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.out[self.n..self.n + b.len()].copy_from_slice(b);
        self.n += b.len();
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
