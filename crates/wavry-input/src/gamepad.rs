//! Gamepads: the button bits on the wire, and the mapping of a gamepad's state to Linux evdev
//! events for a virtual Xbox 360-style pad (the layout of the kernel's xpad driver, which SDL,
//! Steam and games recognise by its USB ids). The virtual pad itself (uinput) is wavry-inject's.

use crate::event::GamepadState;

/// Button bits of [`GamepadState::buttons`], in SDL's game controller order
/// (`SDL_CONTROLLER_BUTTON_*`), so a client using SDL sets `1 << button`.
pub mod buttons {
    pub const A: u32 = 1 << 0;
    pub const B: u32 = 1 << 1;
    pub const X: u32 = 1 << 2;
    pub const Y: u32 = 1 << 3;
    pub const BACK: u32 = 1 << 4;
    pub const GUIDE: u32 = 1 << 5;
    pub const START: u32 = 1 << 6;
    pub const LEFT_STICK: u32 = 1 << 7;
    pub const RIGHT_STICK: u32 = 1 << 8;
    pub const LEFT_SHOULDER: u32 = 1 << 9;
    pub const RIGHT_SHOULDER: u32 = 1 << 10;
    pub const DPAD_UP: u32 = 1 << 11;
    pub const DPAD_DOWN: u32 = 1 << 12;
    pub const DPAD_LEFT: u32 = 1 << 13;
    pub const DPAD_RIGHT: u32 = 1 << 14;
}

/// Axis indices of [`GamepadState::axes`] (SDL's `SDL_CONTROLLER_AXIS_*` order).
pub mod axes {
    pub const LEFT_X: usize = 0;
    pub const LEFT_Y: usize = 1;
    pub const RIGHT_X: usize = 2;
    pub const RIGHT_Y: usize = 3;
    pub const TRIGGER_LEFT: usize = 4;
    pub const TRIGGER_RIGHT: usize = 5;
}

/// evdev event types and codes used (linux/input-event-codes.h).
pub mod ev {
    pub const EV_SYN: u16 = 0x00;
    pub const EV_KEY: u16 = 0x01;
    pub const EV_ABS: u16 = 0x03;
    pub const SYN_REPORT: u16 = 0;
    pub const BTN_A: u16 = 0x130;
    pub const BTN_B: u16 = 0x131;
    pub const BTN_X: u16 = 0x133;
    pub const BTN_Y: u16 = 0x134;
    pub const BTN_TL: u16 = 0x136;
    pub const BTN_TR: u16 = 0x137;
    pub const BTN_SELECT: u16 = 0x13a;
    pub const BTN_START: u16 = 0x13b;
    pub const BTN_MODE: u16 = 0x13c;
    pub const BTN_THUMBL: u16 = 0x13d;
    pub const BTN_THUMBR: u16 = 0x13e;
    pub const ABS_X: u16 = 0x00;
    pub const ABS_Y: u16 = 0x01;
    pub const ABS_Z: u16 = 0x02;
    pub const ABS_RX: u16 = 0x03;
    pub const ABS_RY: u16 = 0x04;
    pub const ABS_RZ: u16 = 0x05;
    pub const ABS_HAT0X: u16 = 0x10;
    pub const ABS_HAT0Y: u16 = 0x11;
}

/// Button bit → evdev key, as xpad reports an Xbox 360 pad. The d-pad is a hat, not keys.
pub const BUTTON_KEYS: [(u32, u16); 11] = [
    (buttons::A, ev::BTN_A),
    (buttons::B, ev::BTN_B),
    (buttons::X, ev::BTN_X),
    (buttons::Y, ev::BTN_Y),
    (buttons::BACK, ev::BTN_SELECT),
    (buttons::GUIDE, ev::BTN_MODE),
    (buttons::START, ev::BTN_START),
    (buttons::LEFT_STICK, ev::BTN_THUMBL),
    (buttons::RIGHT_STICK, ev::BTN_THUMBR),
    (buttons::LEFT_SHOULDER, ev::BTN_TL),
    (buttons::RIGHT_SHOULDER, ev::BTN_TR),
];

/// Stick axes → evdev (range −32768..=32767), triggers (0..=255 as xpad reports them).
pub const STICK_AXES: [(usize, u16); 4] = [
    (axes::LEFT_X, ev::ABS_X),
    (axes::LEFT_Y, ev::ABS_Y),
    (axes::RIGHT_X, ev::ABS_RX),
    (axes::RIGHT_Y, ev::ABS_RY),
];
pub const TRIGGER_AXES: [(usize, u16); 2] = [
    (axes::TRIGGER_LEFT, ev::ABS_Z),
    (axes::TRIGGER_RIGHT, ev::ABS_RZ),
];

/// One evdev event: (type, code, value).
pub type EvdevEvent = (u16, u16, i32);

fn hat(state: &GamepadState, neg: u32, pos: u32) -> i32 {
    (state.buttons & pos != 0) as i32 - (state.buttons & neg != 0) as i32
}

fn trigger(v: i16) -> i32 {
    // 0..=32767 → 0..=255; negative values (a misbehaving client) count as released.
    (v.max(0) as i32 * 255 + 16383) / 32767
}

/// The evdev events that take a virtual pad from `prev` to `next`, ending with a SYN_REPORT
/// when anything changed.
pub fn evdev_events(prev: &GamepadState, next: &GamepadState, out: &mut Vec<EvdevEvent>) {
    let start = out.len();
    for (bit, key) in BUTTON_KEYS {
        if (prev.buttons ^ next.buttons) & bit != 0 {
            out.push((ev::EV_KEY, key, (next.buttons & bit != 0) as i32));
        }
    }
    for (neg, pos, code) in [
        (buttons::DPAD_LEFT, buttons::DPAD_RIGHT, ev::ABS_HAT0X),
        (buttons::DPAD_UP, buttons::DPAD_DOWN, ev::ABS_HAT0Y),
    ] {
        let (a, b) = (hat(prev, neg, pos), hat(next, neg, pos));
        if a != b {
            out.push((ev::EV_ABS, code, b));
        }
    }
    for (i, code) in STICK_AXES {
        if prev.axes[i] != next.axes[i] {
            out.push((ev::EV_ABS, code, next.axes[i] as i32));
        }
    }
    for (i, code) in TRIGGER_AXES {
        let (a, b) = (trigger(prev.axes[i]), trigger(next.axes[i]));
        if a != b {
            out.push((ev::EV_ABS, code, b));
        }
    }
    if out.len() > start {
        out.push((ev::EV_SYN, ev::SYN_REPORT, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_sticks_triggers_and_dpad_map_to_xpad_events() {
        let rest = GamepadState::default();
        let mut pressed = rest;
        pressed.buttons = buttons::A | buttons::RIGHT_SHOULDER | buttons::DPAD_UP;
        pressed.axes[axes::LEFT_X] = -32768;
        pressed.axes[axes::TRIGGER_RIGHT] = 32767;
        let mut out = vec![];
        evdev_events(&rest, &pressed, &mut out);
        assert_eq!(
            out,
            vec![
                (ev::EV_KEY, ev::BTN_A, 1),
                (ev::EV_KEY, ev::BTN_TR, 1),
                (ev::EV_ABS, ev::ABS_HAT0Y, -1),
                (ev::EV_ABS, ev::ABS_X, -32768),
                (ev::EV_ABS, ev::ABS_RZ, 255),
                (ev::EV_SYN, ev::SYN_REPORT, 0),
            ]
        );
        // And back: everything released, centred.
        out.clear();
        evdev_events(&pressed, &rest, &mut out);
        assert_eq!(
            out,
            vec![
                (ev::EV_KEY, ev::BTN_A, 0),
                (ev::EV_KEY, ev::BTN_TR, 0),
                (ev::EV_ABS, ev::ABS_HAT0Y, 0),
                (ev::EV_ABS, ev::ABS_X, 0),
                (ev::EV_ABS, ev::ABS_RZ, 0),
                (ev::EV_SYN, ev::SYN_REPORT, 0),
            ]
        );
    }

    #[test]
    fn an_unchanged_state_emits_nothing() {
        let s = GamepadState {
            buttons: buttons::B,
            ..Default::default()
        };
        let mut out = vec![];
        evdev_events(&s, &s, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn opposite_dpad_directions_cancel_and_triggers_clamp() {
        let mut s = GamepadState {
            buttons: buttons::DPAD_LEFT | buttons::DPAD_RIGHT,
            ..Default::default()
        };
        s.axes[axes::TRIGGER_LEFT] = -5;
        let mut out = vec![];
        evdev_events(&GamepadState::default(), &s, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(trigger(16384), 128);
    }

    #[test]
    fn every_button_bit_has_one_key() {
        let mut keys: Vec<u16> = BUTTON_KEYS.iter().map(|b| b.1).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), BUTTON_KEYS.len());
    }
}
