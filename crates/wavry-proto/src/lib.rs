//! wavry-proto: the one definition of the messages Wavry components exchange with the gateway.
//! (The host–client control channel's messages are wavry-control's.)
//!
//! - `account`: the gateway's HTTP account API (docs/GATEWAY.md).
//! - `admin`: the gateway's admin API (docs/ADMIN.md).
//! - `registry`: the gateway's HTTP device and host registry (docs/SIGNALING.md).
//! - `signal`: the gateway's signaling WebSocket messages and signed host records
//!   (docs/SIGNALING.md).

#![forbid(unsafe_code)]

pub mod account;
pub mod admin;
pub mod registry;
pub mod signal;
