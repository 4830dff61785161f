//! SDL events → Wavry input events, and the client's own hotkeys.
//!
//! Hotkeys are Ctrl+Alt+Shift plus a key, and are not sent to the host:
//! `F` fullscreen, `S` stats overlay, `L` pointer lock (relative mouse), `M` the host's next
//! monitor, `Q` quit.

use sdl2::controller::{Axis, Button as PadButton};
use sdl2::event::Event;
use sdl2::keyboard::{Mod, Scancode};
use sdl2::mouse::{MouseButton, MouseWheelDirection};
use wavry_input::event::MAX_GAMEPADS;
use wavry_input::gamepad::{axes, buttons};
use wavry_input::keys::sdl_scancode_to_usage;
use wavry_input::{Button, GamepadState, InputEvent, Modifiers};

/// What the window loop should do with an SDL event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send(InputEvent),
    ToggleFullscreen,
    ToggleOverlay,
    TogglePointerLock,
    /// Stream the host's next monitor (then the whole screen, then the first again).
    NextMonitor,
    Quit,
}

/// Where the video sits in the window: scaled to fit, centred, aspect kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoRect {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

/// The largest rectangle of the video's aspect that fits the window, centred.
pub fn letterbox(window: (u32, u32), video: (u32, u32)) -> VideoRect {
    let (ww, wh) = (window.0.max(1) as u64, window.1.max(1) as u64);
    let (vw, vh) = (video.0.max(1) as u64, video.1.max(1) as u64);
    let (w, h) = if ww * vh <= wh * vw {
        (ww, (ww * vh / vw).max(1))
    } else {
        ((wh * vw / vh).max(1), wh)
    };
    VideoRect {
        x: ((ww - w) / 2) as i32,
        y: ((wh - h) / 2) as i32,
        w: w as u32,
        h: h as u32,
    }
}

fn modifiers(m: Mod) -> Modifiers {
    let pairs = [
        (Mod::LCTRLMOD, Modifiers::LEFT_CTRL),
        (Mod::LSHIFTMOD, Modifiers::LEFT_SHIFT),
        (Mod::LALTMOD, Modifiers::LEFT_ALT),
        (Mod::LGUIMOD, Modifiers::LEFT_GUI),
        (Mod::RCTRLMOD, Modifiers::RIGHT_CTRL),
        (Mod::RSHIFTMOD, Modifiers::RIGHT_SHIFT),
        (Mod::RALTMOD, Modifiers::RIGHT_ALT),
        (Mod::RGUIMOD, Modifiers::RIGHT_GUI),
    ];
    pairs
        .into_iter()
        .filter(|(sdl, _)| m.intersects(*sdl))
        .fold(Modifiers::NONE, |acc, (_, ours)| acc.union(ours))
}

fn is_hotkey(m: Mod) -> bool {
    let ctrl = m.intersects(Mod::LCTRLMOD | Mod::RCTRLMOD);
    let alt = m.intersects(Mod::LALTMOD | Mod::RALTMOD);
    let shift = m.intersects(Mod::LSHIFTMOD | Mod::RSHIFTMOD);
    ctrl && alt && shift
}

fn pad_button(b: PadButton) -> Option<u32> {
    Some(match b {
        PadButton::A => buttons::A,
        PadButton::B => buttons::B,
        PadButton::X => buttons::X,
        PadButton::Y => buttons::Y,
        PadButton::Back => buttons::BACK,
        PadButton::Guide => buttons::GUIDE,
        PadButton::Start => buttons::START,
        PadButton::LeftStick => buttons::LEFT_STICK,
        PadButton::RightStick => buttons::RIGHT_STICK,
        PadButton::LeftShoulder => buttons::LEFT_SHOULDER,
        PadButton::RightShoulder => buttons::RIGHT_SHOULDER,
        PadButton::DPadUp => buttons::DPAD_UP,
        PadButton::DPadDown => buttons::DPAD_DOWN,
        PadButton::DPadLeft => buttons::DPAD_LEFT,
        PadButton::DPadRight => buttons::DPAD_RIGHT,
        _ => return None,
    })
}

fn pad_axis(a: Axis) -> usize {
    match a {
        Axis::LeftX => axes::LEFT_X,
        Axis::LeftY => axes::LEFT_Y,
        Axis::RightX => axes::RIGHT_X,
        Axis::RightY => axes::RIGHT_Y,
        Axis::TriggerLeft => axes::TRIGGER_LEFT,
        Axis::TriggerRight => axes::TRIGGER_RIGHT,
    }
}

/// Turns the window's SDL events into input events for the host.
pub struct InputMapper {
    window: (u32, u32),
    video: (u32, u32),
    pointer_locked: bool,
    /// Controllers by pad index: (SDL instance id, state).
    pads: [Option<(u32, GamepadState)>; MAX_GAMEPADS as usize],
    /// Fractions of a 1/120 notch not yet sent.
    scroll_rem: (f32, f32),
}

impl InputMapper {
    pub fn new(window: (u32, u32), video: (u32, u32)) -> Self {
        InputMapper {
            window,
            video,
            pointer_locked: false,
            pads: [None; MAX_GAMEPADS as usize],
            scroll_rem: (0.0, 0.0),
        }
    }

    pub fn set_window_size(&mut self, w: u32, h: u32) {
        self.window = (w, h);
    }

    pub fn set_video_size(&mut self, w: u32, h: u32) {
        self.video = (w, h);
    }

    /// Relative mouse mode: motion is sent as deltas (the window loop also tells SDL).
    pub fn set_pointer_locked(&mut self, locked: bool) {
        self.pointer_locked = locked;
    }

    pub fn pointer_locked(&self) -> bool {
        self.pointer_locked
    }

    /// A controller was opened with SDL instance id `instance`: its pad index, if one is free.
    pub fn add_pad(&mut self, instance: u32) -> Option<(u8, InputEvent)> {
        let i = self.pads.iter().position(|p| p.is_none())?;
        self.pads[i] = Some((instance, GamepadState::default()));
        Some((
            i as u8,
            InputEvent::Gamepad {
                pad: i as u8,
                connected: true,
                state: GamepadState::default(),
            },
        ))
    }

    /// The SDL instance id of pad `pad` (for rumble coming back).
    pub fn pad_instance(&self, pad: u8) -> Option<u32> {
        self.pads.get(pad as usize).copied().flatten().map(|p| p.0)
    }

    fn pad_of(&mut self, instance: u32) -> Option<(u8, &mut GamepadState)> {
        self.pads.iter_mut().enumerate().find_map(|(i, p)| match p {
            Some((id, s)) if *id == instance => Some((i as u8, s)),
            _ => None,
        })
    }

    /// Absolute position of a window point on the video, 0..=65535 per axis (clamped to the
    /// picture's edges when the pointer is over the letterbox bars).
    pub fn absolute(&self, x: i32, y: i32) -> (u16, u16) {
        let r = letterbox(self.window, self.video);
        let norm = |p: i32, origin: i32, extent: u32| -> u16 {
            let span = extent.saturating_sub(1).max(1) as i64;
            let v = (p - origin).clamp(0, span as i32) as i64;
            ((v * 65535 + span / 2) / span) as u16
        };
        (norm(x, r.x, r.w), norm(y, r.y, r.h))
    }

    /// Map one SDL event, appending what to do to `out`.
    pub fn map(&mut self, ev: &Event, out: &mut Vec<Action>) {
        match *ev {
            Event::Quit { .. } => out.push(Action::Quit),
            Event::KeyDown {
                scancode: Some(sc),
                keymod,
                repeat,
                ..
            } => {
                if is_hotkey(keymod) {
                    let action = match sc {
                        Scancode::F => Some(Action::ToggleFullscreen),
                        Scancode::S => Some(Action::ToggleOverlay),
                        Scancode::L => Some(Action::TogglePointerLock),
                        Scancode::M => Some(Action::NextMonitor),
                        Scancode::Q => Some(Action::Quit),
                        _ => None,
                    };
                    if let Some(a) = action {
                        if !repeat {
                            out.push(a);
                        }
                        return;
                    }
                }
                // The host's own key repeat takes care of held keys.
                if repeat {
                    return;
                }
                if let Some(usage) = sdl_scancode_to_usage(sc as u32) {
                    out.push(Action::Send(InputEvent::Key {
                        usage,
                        down: true,
                        modifiers: modifiers(keymod),
                    }));
                }
            }
            Event::KeyUp {
                scancode: Some(sc),
                keymod,
                ..
            } => {
                if let Some(usage) = sdl_scancode_to_usage(sc as u32) {
                    out.push(Action::Send(InputEvent::Key {
                        usage,
                        down: false,
                        modifiers: modifiers(keymod),
                    }));
                }
            }
            Event::MouseMotion {
                x, y, xrel, yrel, ..
            } => {
                let e = if self.pointer_locked {
                    InputEvent::MouseRelative {
                        dx: xrel.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
                        dy: yrel.clamp(i16::MIN as i32, i16::MAX as i32) as i16,
                    }
                } else {
                    let (x, y) = self.absolute(x, y);
                    InputEvent::MouseAbsolute { x, y }
                };
                out.push(Action::Send(e));
            }
            Event::MouseButtonDown { mouse_btn, .. } | Event::MouseButtonUp { mouse_btn, .. } => {
                let down = matches!(ev, Event::MouseButtonDown { .. });
                let button = match mouse_btn {
                    MouseButton::Left => Button::Left,
                    MouseButton::Middle => Button::Middle,
                    MouseButton::Right => Button::Right,
                    MouseButton::X1 => Button::X1,
                    MouseButton::X2 => Button::X2,
                    MouseButton::Unknown => return,
                };
                out.push(Action::Send(InputEvent::MouseButton { button, down }));
            }
            Event::MouseWheel {
                precise_x,
                precise_y,
                direction,
                ..
            } => {
                let flip = if direction == MouseWheelDirection::Flipped {
                    -1.0
                } else {
                    1.0
                };
                // SDL's precise values are in notches; ours are 1/120 notch.
                let fx = self.scroll_rem.0 + precise_x * flip * 120.0;
                let fy = self.scroll_rem.1 + precise_y * flip * 120.0;
                let (dx, dy) = (fx.trunc(), fy.trunc());
                self.scroll_rem = (fx - dx, fy - dy);
                if dx != 0.0 || dy != 0.0 {
                    out.push(Action::Send(InputEvent::Scroll {
                        dx: dx.clamp(i16::MIN as f32, i16::MAX as f32) as i16,
                        dy: dy.clamp(i16::MIN as f32, i16::MAX as f32) as i16,
                    }));
                }
            }
            Event::ControllerButtonDown { which, button, .. }
            | Event::ControllerButtonUp { which, button, .. } => {
                let down = matches!(ev, Event::ControllerButtonDown { .. });
                let (Some(bit), Some((pad, state))) = (pad_button(button), self.pad_of(which))
                else {
                    return;
                };
                if down {
                    state.buttons |= bit;
                } else {
                    state.buttons &= !bit;
                }
                let state = *state;
                out.push(Action::Send(InputEvent::Gamepad {
                    pad,
                    connected: true,
                    state,
                }));
            }
            Event::ControllerAxisMotion {
                which, axis, value, ..
            } => {
                let Some((pad, state)) = self.pad_of(which) else {
                    return;
                };
                let i = pad_axis(axis);
                if state.axes[i] == value {
                    return;
                }
                state.axes[i] = value;
                let state = *state;
                out.push(Action::Send(InputEvent::Gamepad {
                    pad,
                    connected: true,
                    state,
                }));
            }
            Event::ControllerDeviceRemoved { which, .. } => {
                if let Some((pad, _)) = self.pad_of(which) {
                    self.pads[pad as usize] = None;
                    out.push(Action::Send(InputEvent::Gamepad {
                        pad,
                        connected: false,
                        state: GamepadState::default(),
                    }));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sc: Scancode, keymod: Mod, down: bool) -> Event {
        if down {
            Event::KeyDown {
                timestamp: 0,
                window_id: 1,
                keycode: None,
                scancode: Some(sc),
                keymod,
                repeat: false,
            }
        } else {
            Event::KeyUp {
                timestamp: 0,
                window_id: 1,
                keycode: None,
                scancode: Some(sc),
                keymod,
                repeat: false,
            }
        }
    }

    fn mapped(m: &mut InputMapper, ev: Event) -> Vec<Action> {
        let mut out = vec![];
        m.map(&ev, &mut out);
        out
    }

    #[test]
    fn keys_travel_as_hid_usages_with_modifiers() {
        let mut m = InputMapper::new((1280, 720), (1920, 1080));
        assert_eq!(
            mapped(&mut m, key(Scancode::A, Mod::LSHIFTMOD, true)),
            vec![Action::Send(InputEvent::Key {
                usage: 0x04,
                down: true,
                modifiers: Modifiers::LEFT_SHIFT
            })]
        );
        assert_eq!(
            mapped(&mut m, key(Scancode::RCtrl, Mod::RCTRLMOD, true)),
            vec![Action::Send(InputEvent::Key {
                usage: 0xE4,
                down: true,
                modifiers: Modifiers::RIGHT_CTRL
            })]
        );
    }

    #[test]
    fn hotkeys_stay_on_the_client() {
        let mut m = InputMapper::new((1280, 720), (1920, 1080));
        let all = Mod::LCTRLMOD | Mod::LALTMOD | Mod::LSHIFTMOD;
        assert_eq!(
            mapped(&mut m, key(Scancode::S, all, true)),
            vec![Action::ToggleOverlay]
        );
        assert_eq!(
            mapped(&mut m, key(Scancode::L, all, true)),
            vec![Action::TogglePointerLock]
        );
        // Not a hotkey letter: sent as usual.
        assert!(matches!(
            mapped(&mut m, key(Scancode::Z, all, true))[..],
            [Action::Send(InputEvent::Key { usage: 0x1D, .. })]
        ));
    }

    #[test]
    fn absolute_motion_is_normalised_over_the_letterboxed_video() {
        // A 16:9 video in a 4:3 window: bars above and below.
        let m = InputMapper::new((1600, 1200), (1920, 1080));
        let r = letterbox((1600, 1200), (1920, 1080));
        assert_eq!(
            r,
            VideoRect {
                x: 0,
                y: 150,
                w: 1600,
                h: 900
            }
        );
        assert_eq!(m.absolute(0, 150), (0, 0));
        assert_eq!(m.absolute(1599, 1049), (65535, 65535));
        assert_eq!(
            m.absolute(800, 0),
            (32788, 0),
            "over the bar: clamped to the top edge"
        );
    }

    #[test]
    fn pointer_lock_sends_relative_motion() {
        let mut m = InputMapper::new((1280, 720), (1280, 720));
        m.set_pointer_locked(true);
        let ev = Event::MouseMotion {
            timestamp: 0,
            window_id: 1,
            which: 0,
            mousestate: sdl2::mouse::MouseState::from_sdl_state(0),
            x: 10,
            y: 10,
            xrel: -7,
            yrel: 3,
        };
        assert_eq!(
            mapped(&mut m, ev),
            vec![Action::Send(InputEvent::MouseRelative { dx: -7, dy: 3 })]
        );
    }

    #[test]
    fn high_resolution_wheel_accumulates_fractions() {
        let mut m = InputMapper::new((1280, 720), (1280, 720));
        let wheel = |py: f32| Event::MouseWheel {
            timestamp: 0,
            window_id: 1,
            which: 0,
            x: 0,
            y: 0,
            direction: MouseWheelDirection::Normal,
            precise_x: 0.0,
            precise_y: py,
            mouse_x: 0,
            mouse_y: 0,
        };
        assert_eq!(
            mapped(&mut m, wheel(0.25)),
            vec![Action::Send(InputEvent::Scroll { dx: 0, dy: 30 })]
        );
        assert_eq!(
            mapped(&mut m, wheel(-1.0)),
            vec![Action::Send(InputEvent::Scroll { dx: 0, dy: -120 })]
        );
    }

    #[test]
    fn gamepads_send_whole_states_and_unplug() {
        let mut m = InputMapper::new((1280, 720), (1280, 720));
        let (pad, _) = m.add_pad(42).unwrap();
        assert_eq!(pad, 0);
        let out = mapped(
            &mut m,
            Event::ControllerButtonDown {
                timestamp: 0,
                which: 42,
                button: PadButton::A,
            },
        );
        let out2 = mapped(
            &mut m,
            Event::ControllerAxisMotion {
                timestamp: 0,
                which: 42,
                axis: Axis::TriggerRight,
                value: 30000,
            },
        );
        let mut want = GamepadState {
            buttons: buttons::A,
            ..Default::default()
        };
        assert_eq!(
            out,
            vec![Action::Send(InputEvent::Gamepad {
                pad: 0,
                connected: true,
                state: want
            })]
        );
        want.axes[axes::TRIGGER_RIGHT] = 30000;
        assert_eq!(
            out2,
            vec![Action::Send(InputEvent::Gamepad {
                pad: 0,
                connected: true,
                state: want
            })]
        );
        let gone = mapped(
            &mut m,
            Event::ControllerDeviceRemoved {
                timestamp: 0,
                which: 42,
            },
        );
        assert!(matches!(
            gone[..],
            [Action::Send(InputEvent::Gamepad {
                pad: 0,
                connected: false,
                ..
            })]
        ));
        assert_eq!(m.pad_instance(0), None);
    }
}
