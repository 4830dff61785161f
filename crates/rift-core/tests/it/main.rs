//! rift-core's integration tests, one binary (one link, one run of the harness).
//!
//! `no_alloc` counts allocations with `alloc-counter`'s counting global allocator, installed
//! here once for the whole binary. Its measurements use `Scope::ThisThread`, which counts only
//! the measuring thread, and `alloc_counter::measure` serialises them, so the other tests
//! running on their own threads under plain `cargo test` do not disturb them.

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

mod media_reassembly;
mod no_alloc;
mod wire_roundtrip;
