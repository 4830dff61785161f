//! wavry-inject: the host-side injectors, which turn the input events a client sends
//! (wavry-input's event model) into input on the host's desktop.
//!
//! - `x11`: keys, pointer and scroll through X11's XTEST extension.
//! - `uinput`: virtual gamepads through Linux uinput, with rumble.
//!
//! They are apart from wavry-input so that the client and the fuzz targets, which only need
//! the event model and its codec, do not build the X11 and evdev back-ends.

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod uinput;
#[cfg(target_os = "linux")]
pub mod x11;

#[cfg(target_os = "linux")]
pub use uinput::UinputGamepad;

use thiserror::Error;
use wavry_input::InputEvent;

#[derive(Debug, Error)]
pub enum InjectError {
    #[error("{what} unavailable: {why}")]
    Unavailable { what: &'static str, why: String },
    #[error("the display connection failed: {0}")]
    Connection(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Something that makes input happen on the host.
pub trait Injector {
    /// Inject one event now. Events a backend cannot express (a key with no keycode on this
    /// host) are skipped with a debug log, not an error.
    fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError>;
}
