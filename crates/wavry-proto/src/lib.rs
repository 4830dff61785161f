//! wavry-proto: the one definition of the messages Wavry components exchange.
//!
//! - `account`: the gateway's HTTP account API (docs/GATEWAY.md).
//! - `control`: messages on a session's RIFT control channel between host and client
//!   (docs/CONTROL.md).

pub mod account;
pub mod control;

pub use control::{
    Codec, ControlError, ControlMessage, Cursor, CursorAssembler, CursorChunk, MonitorInfo,
    StageStat, CURSOR_CHUNK_BYTES, MAX_CURSOR_SIDE, PROTOCOL_VERSION,
};
