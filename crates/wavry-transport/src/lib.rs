//! RIFT transport: sessions (handshake, connection ids, protection, the rift-core connection)
//! driven over one UDP socket per endpoint.
//!
//! - `session`: the sans-IO session state machine (the client's handshake, then both ends).
//! - `listen`: the host's side of the handshake, sans-IO: many pending, bounded, rationed.
//! - `socket`: batched, DSCP-marked UDP I/O and precise waits.
//! - `udp`: a driver running a session on the calling thread.
//! - `thread`: a session on a dedicated I/O thread, fed and drained through channels.
//! - `priority`: a higher scheduling priority for the threads on the latency path.
//! - `testing` (feature `test-support`): the session set-up tests and benchmarks share.

pub mod listen;
pub mod priority;
pub mod session;
pub mod socket;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod thread;
pub mod udp;
