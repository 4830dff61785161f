//! Gamepads: the button bits on the wire, and the mapping of a gamepad's state to Linux evdev
//! events for a virtual Xbox 360-style pad (the layout of the kernel's xpad driver, which SDL,
//! Steam and games recognise by its USB ids).

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

#[cfg(target_os = "linux")]
pub use uinput::UinputGamepad;

#[cfg(target_os = "linux")]
mod uinput {
    use super::*;
    use crate::inject::InjectError;
    use evdev::uinput::VirtualDevice;
    use evdev::{
        AbsInfo, AbsoluteAxisCode, AttributeSet, BusType, EventSummary, FFEffectCode, FFEffectKind,
        InputEvent, InputId, KeyCode, UInputCode, UinputAbsSetup,
    };
    use std::collections::HashMap;

    /// A virtual Xbox 360-style pad through /dev/uinput, with rumble.
    ///
    /// Untested on this project's machines: their kernel has no /dev/uinput. The event mapping
    /// it uses ([`evdev_events`]) is unit-tested.
    pub struct UinputGamepad {
        dev: VirtualDevice,
        state: GamepadState,
        /// Uploaded rumble effects by id: (strong, weak, length ms).
        effects: HashMap<i16, (u16, u16, u16)>,
        scratch: Vec<EvdevEvent>,
    }

    impl UinputGamepad {
        /// Create pad `index` (0..4). Fails with a clear error when /dev/uinput is missing or
        /// not writable.
        pub fn create(index: u8) -> Result<Self, InjectError> {
            let unavailable = |e: std::io::Error| InjectError::Unavailable {
                what: "uinput gamepad",
                why: format!("/dev/uinput: {e}"),
            };
            let mut keys = AttributeSet::<KeyCode>::new();
            for (_, k) in BUTTON_KEYS {
                keys.insert(KeyCode::new(k));
            }
            let mut ff = AttributeSet::<FFEffectCode>::new();
            ff.insert(FFEffectCode::FF_RUMBLE);
            let stick = AbsInfo::new(0, -32768, 32767, 16, 128, 0);
            let trig = AbsInfo::new(0, 0, 255, 0, 0, 0);
            let hat = AbsInfo::new(0, -1, 1, 0, 0, 0);
            let name = format!("Wavry virtual gamepad {index}");
            let mut b = VirtualDevice::builder()
                .map_err(unavailable)?
                .name(&name)
                // Microsoft Xbox 360 controller ids, so SDL and games apply the xpad mapping.
                .input_id(InputId::new(BusType::BUS_USB, 0x045e, 0x028e, 0x0114))
                .with_keys(&keys)
                .map_err(unavailable)?
                .with_ff(&ff)
                .map_err(unavailable)?
                .with_ff_effects_max(16);
            for (_, code) in STICK_AXES {
                b = b
                    .with_absolute_axis(&UinputAbsSetup::new(AbsoluteAxisCode(code), stick))
                    .map_err(unavailable)?;
            }
            for (_, code) in TRIGGER_AXES {
                b = b
                    .with_absolute_axis(&UinputAbsSetup::new(AbsoluteAxisCode(code), trig))
                    .map_err(unavailable)?;
            }
            for code in [ev::ABS_HAT0X, ev::ABS_HAT0Y] {
                b = b
                    .with_absolute_axis(&UinputAbsSetup::new(AbsoluteAxisCode(code), hat))
                    .map_err(unavailable)?;
            }
            Ok(UinputGamepad {
                dev: b.build().map_err(unavailable)?,
                state: GamepadState::default(),
                effects: HashMap::new(),
                scratch: Vec::new(),
            })
        }

        /// Move the pad to `state`.
        pub fn apply(&mut self, state: &GamepadState) -> Result<(), InjectError> {
            self.scratch.clear();
            evdev_events(&self.state, state, &mut self.scratch);
            self.state = *state;
            if self.scratch.is_empty() {
                return Ok(());
            }
            let events: Vec<InputEvent> = self
                .scratch
                .iter()
                .map(|&(t, c, v)| InputEvent::new(t, c, v))
                .collect();
            self.dev.emit(&events).map_err(InjectError::Io)
        }

        /// Serve the kernel's force-feedback requests (effect uploads and erasures) and return
        /// the rumble changes games asked for: (strong, weak, duration ms).
        pub fn poll_rumble(&mut self) -> Result<Vec<(u16, u16, u16)>, InjectError> {
            let mut out = vec![];
            let events: Vec<InputEvent> = match self.dev.fetch_events() {
                Ok(ev) => ev.collect(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(InjectError::Io(e)),
            };
            for e in events {
                match e.destructure() {
                    EventSummary::UInput(ev, UInputCode::UI_FF_UPLOAD, _) => {
                        let mut up = self.dev.process_ff_upload(ev).map_err(InjectError::Io)?;
                        let data = up.effect();
                        if let FFEffectKind::Rumble {
                            strong_magnitude,
                            weak_magnitude,
                        } = data.kind
                        {
                            // The strong motor is the low-frequency one, as on the wire.
                            self.effects.insert(
                                up.effect_id(),
                                (strong_magnitude, weak_magnitude, data.replay.length),
                            );
                        }
                        up.set_retval(0);
                    }
                    EventSummary::UInput(ev, UInputCode::UI_FF_ERASE, _) => {
                        let er = self.dev.process_ff_erase(ev).map_err(InjectError::Io)?;
                        self.effects.remove(&(er.effect_id() as i16));
                    }
                    EventSummary::ForceFeedback(_, code, value) => {
                        let id = code.0 as i16;
                        match (value, self.effects.get(&id)) {
                            (0, _) => out.push((0, 0, 0)),
                            (_, Some(&r)) => out.push(r),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
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
