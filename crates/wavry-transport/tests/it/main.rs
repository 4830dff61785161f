//! wavry-transport's integration tests, one binary (one link, one run of the harness). The
//! session set-up they share is the crate's `testing` module (feature `test-support`); `common`
//! holds what only tests use (a UDP proxy).
//!
//! `frame_buffers` counts allocations with `alloc-counter`'s counting global allocator,
//! installed here once for the whole binary. Its measurement uses `Scope::ThisThread`, which
//! counts only the measuring thread, and `alloc_counter::measure` serialises measurements, so
//! the other tests running on their own threads under plain `cargo test` do not disturb it.
//! Its other assertion (buffers come back) is about timing, as are the other real-socket tests:
//! those hold `common::real_time()` and so run one after another, as separate binaries did.

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

mod common;
mod frame_buffers;
mod handshake_attacks;
mod independent_client;
mod netns_tbf;
mod rekey_loopback;
mod roaming;
mod session;
mod thread;
mod udp_adversity;
mod udp_loopback;
