//! wavry-client: the client end of a Wavry session.
//!
//! - `input_map`: SDL events → input events for the host, and the client's hotkeys.
//! - `window`: the SDL window: pictures letterboxed, the host's cursor and the overlay on top,
//!   input and hotkeys.
//! - `present`: how a picture reaches the screen (YUV textures on a GPU, SIMD conversion into
//!   the window's framebuffer without one).
//! - `overlay`: the stats overlay's pixels (8×8 bitmap text).
//! - `stats`: the figures the overlay shows and the JSON lines carry.
//! - `run`: a whole client session: decode thread, window loop, input, stats.

pub mod input_map;
pub mod overlay;
mod present;
pub mod run;
pub mod stats;
pub mod window;
