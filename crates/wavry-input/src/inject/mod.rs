//! Host-side injectors: turn received input events into input on the host's desktop.

#[cfg(target_os = "linux")]
pub mod x11;

use crate::event::InputEvent;
use thiserror::Error;

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
