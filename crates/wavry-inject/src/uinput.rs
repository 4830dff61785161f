//! A virtual gamepad through Linux uinput: the host side of the gamepad events of
//! `wavry_input::gamepad`, which defines the button bits and the evdev events a state change
//! makes ([`evdev_events`]).

use crate::InjectError;
use evdev::uinput::VirtualDevice;
use evdev::{
    AbsInfo, AbsoluteAxisCode, AttributeSet, BusType, EventSummary, FFEffectCode, FFEffectKind,
    InputEvent, InputId, KeyCode, UInputCode, UinputAbsSetup,
};
use std::collections::HashMap;
use wavry_input::gamepad::{ev, evdev_events, EvdevEvent, BUTTON_KEYS, STICK_AXES, TRIGGER_AXES};
use wavry_input::GamepadState;

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
