//! RIFT protocol core, sans-IO: bytes and `Instant`s in, bytes and timers out.
//!
//! No sockets, threads or clocks live here; the transport drives these state machines and tests
//! drive them deterministically.

#![forbid(unsafe_code)]

pub mod bitset;
pub mod connection;
pub mod control;
pub mod delta;
pub mod fec;
pub mod feedback;
pub mod input;
pub mod media;
pub mod pacer;
pub mod rtt;
pub mod wire;
