//! wavry-media: everything between the host's pixels and the client's decoded picture, and
//! nothing that touches the network.
//!
//! - `frame`: the picture types every stage hands to the next.
//! - `pool`: fixed sets of reused buffers (no allocation per frame).
//! - `capture`: screen capture behind the `Capturer` trait (X11 backend).
//! - `testing` (feature `test-support`): Xvfb displays and drawing helpers for tests.

pub mod capture;
pub mod frame;
pub mod pool;
#[cfg(feature = "test-support")]
pub mod testing;

pub use frame::{BgraView, PixelSize};
