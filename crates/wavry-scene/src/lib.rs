//! wavry-scene: what the demo, the end-to-end tests and the latency benchmark put on a screen.
//!
//! - `display`: a private Xvfb display, started on a free number and stopped on drop.
//! - `scene`: a moving desktop-like scene painted into a window at a steady frame rate.

pub mod display;
pub mod scene;

pub use display::{DisplayError, VirtualDisplay};
pub use scene::Scene;
