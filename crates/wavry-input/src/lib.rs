//! wavry-input: the input event model shared by client and host, its wire encoding, and key
//! code mapping. The host-side injectors that act on the events are wavry-inject's.
//!
//! - `event`: the events and their encoding inside RIFT Input packets (docs/INPUT.md).
//! - `keys`: USB HID usages and the mapping to evdev / X11 / SDL codes.
//! - `gamepad`: gamepad button bits and the mapping to a virtual evdev pad's events.

pub mod event;
pub mod gamepad;
pub mod keys;

pub use event::{monotonic_us, Button, GamepadState, InputEvent, Timed, MAX_EVENT_LEN};
pub use keys::Modifiers;
