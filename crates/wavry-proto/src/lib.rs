//! wavry-proto: the one definition of the messages Wavry components exchange.
//!
//! - `control`: messages on a session's RIFT control channel between host and client
//!   (docs/CONTROL.md).

pub mod control;

pub use control::{Codec, ControlMessage, MonitorInfo, StageStat, PROTOCOL_VERSION};
