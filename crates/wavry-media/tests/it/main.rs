//! wavry-media's integration tests, one binary: capture under Xvfb, codecs, conversion.
//! The no-allocation tests (no_alloc.rs, capture_no_alloc.rs) stay binaries of their own: each installs
//! a counting global allocator and measures the whole process.
mod capture_codec;
mod capture_x11;
mod codec;
mod common;
mod convert;
