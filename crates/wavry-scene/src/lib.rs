//! wavry-scene: what the demo, the end-to-end tests and the latency benchmark put on a screen.
//!
//! - `display`: a private Xvfb display, started on a free number and stopped on drop.
//! - `scene`: a moving desktop-like scene painted into a window at a steady frame rate.
//! - `probe`: the glass-to-glass latency probe (the clock as a barcode) and its reader.

pub mod display;
pub mod probe;
pub mod scene;

pub use display::{DisplayError, VirtualDisplay};
pub use scene::Scene;
