//! rift-sim's integration tests, one binary: congestion control against RFC 8867's cases,
//! connections over lossy simulated links, FEC against its theory.
mod congestion;
mod connection_lossy;
mod fec_theory;
