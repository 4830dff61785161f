//! Deterministic network simulation for RIFT: a bottleneck link model, a synthetic video encoder,
//! and the congestion-control scenarios the tests, the demo and the plots share.
//!
//! Everything runs on simulated time (`Instant`s the caller advances), so minutes of streaming
//! take milliseconds and every run with the same seed is identical.

#![forbid(unsafe_code)]

pub mod encoder;
pub mod link;
pub mod plot;
pub mod scenario;
