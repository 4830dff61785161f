//! wavry-media: everything between the host's pixels and the client's decoded picture, and
//! nothing that touches the network.
//!
//! - `frame`: the picture types every stage hands to the next.

pub mod frame;

pub use frame::{BgraView, PixelSize};
