//! wavry-client: the client end of a Wavry session.
//!
//! - `input_map`: SDL events → input events for the host, and the client's hotkeys.

pub mod input_map;
