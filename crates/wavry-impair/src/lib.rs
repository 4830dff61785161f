//! Network impairment for testing Wavry over bad paths on a kernel without netem.
//!
//! - [`model`]: the sans-IO model of one direction (delay, jitter, loss, burst loss, reordering,
//!   duplication, a rate-limited drop-tail queue), driven with `Instant`s.
//! - [`queue_log`]: the queue-occupancy log (CSV), `--queue-log`.
//! - [`forward`]: the forwarder: two TUN devices in a middle network namespace, policy routing
//!   steering each side's packets through one of them, a precise timing loop.
//! - [`netns`]: the A — M — B namespace topology for tests and users, removed on drop.
//!
//! docs/IMPAIR.md describes the tool and its measured accuracy.

pub mod forward;
pub mod model;
pub mod netns;
pub mod queue_log;

pub use forward::{ForwardError, Forwarder, ForwarderConfig, Lateness, Summary};
pub use model::{ConfigError, GilbertElliott, Link, LinkConfig, LinkStats, Packet};
pub use netns::{Impairer, Topology};
