//! The input thread: blocks on the session's input channel and injects each event the moment
//! it is decrypted, never behind video (it shares nothing with the video thread but the
//! streamed area).

use crate::video::Shared;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use wavry_inject::x11::X11Injector;
use wavry_inject::Injector;
use wavry_input::{monotonic_us, InputEvent, Timed};

/// (client timestamp, injection time) per event, both in monotonic µs: on one machine the
/// difference is the event's latency from the client's hand to the host's desktop.
pub type InjectLog = Arc<std::sync::Mutex<Vec<(u64, u64)>>>;

pub fn run(
    display: Option<String>,
    input: Receiver<rift_core::connection::InputEvent>,
    shared: Arc<Shared>,
    log: Option<InjectLog>,
) {
    wavry_transport::priority::raise_current_thread(wavry_transport::priority::Role::Input);
    let mut injector = match X11Injector::connect(display.as_deref()) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::warn!(error = %e, "input injection disabled");
            None
        }
    };
    #[cfg(target_os = "linux")]
    let mut pads: [Option<wavry_inject::UinputGamepad>; 4] = Default::default();
    let mut pad_warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let raw = match input.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let timed = match Timed::decode(raw.data()) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "input event refused");
                continue;
            }
        };
        match timed.event {
            InputEvent::Gamepad {
                pad,
                connected,
                state,
            } => {
                #[cfg(target_os = "linux")]
                {
                    let slot = &mut pads[pad as usize % 4];
                    if !connected {
                        *slot = None;
                        continue;
                    }
                    if slot.is_none() {
                        match wavry_inject::UinputGamepad::create(pad) {
                            Ok(p) => *slot = Some(p),
                            Err(e) if !pad_warned => {
                                tracing::warn!(error = %e, "gamepads disabled");
                                pad_warned = true;
                            }
                            Err(_) => {}
                        }
                    }
                    if let Some(p) = slot.as_mut() {
                        if let Err(e) = p.apply(&state) {
                            tracing::debug!(error = %e, "gamepad event lost");
                        }
                    }
                }
                #[cfg(not(target_os = "linux"))]
                let _ = (pad, connected, state, &mut pad_warned);
            }
            ev => {
                if let Some(inj) = injector.as_mut() {
                    if let Ok(a) = shared.area.lock() {
                        inj.set_area(*a);
                    }
                    if let Err(e) = inj.inject(&ev) {
                        tracing::warn!(error = %e, "input injection failed; disabled");
                        injector = None;
                    }
                }
                if let Some(log) = &log {
                    if let Ok(mut l) = log.lock() {
                        l.push((timed.t_us, monotonic_us()));
                    }
                }
            }
        }
    }
}
