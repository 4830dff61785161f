//! wavry-proto: the one definition of the messages Wavry components exchange.
//!
//! - `account`: the gateway's HTTP account API (docs/GATEWAY.md).
//! - `admin`: the gateway's admin API (docs/ADMIN.md).
//! - `control`: messages on a session's RIFT control channel between host and client
//!   (docs/CONTROL.md).
//! - `registry`: the gateway's HTTP device and host registry (docs/SIGNALING.md).
//! - `signal`: the gateway's signaling WebSocket messages and signed host records
//!   (docs/SIGNALING.md).

pub mod account;
pub mod admin;
pub mod control;
pub mod registry;
pub mod signal;

pub use control::{
    Codec, ControlError, ControlMessage, Cursor, CursorAssembler, CursorChunk, MonitorInfo,
    StageStat, CURSOR_CHUNK_BYTES, MAX_CURSOR_SIDE, PROTOCOL_VERSION,
};
