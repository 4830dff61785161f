//! wavry-bench: Wavry's end-to-end benchmarks, behind `wavry bench`.
//!
//! - `glass`: glass-to-glass latency of a pipeline over a network path, on two virtual
//!   displays with the latency probe (`wavry bench latency`).
//! - `baseline`: the ffmpeg and GStreamer pipelines measured beside Wavry.
//! - `gateway`: signaling sockets held, relay latency and logins per second of the gateway
//!   (`wavry bench gateway`).
//! - `plot`: the latency distributions side by side, as a PNG.

pub mod baseline;
pub mod gateway;
pub mod glass;
pub mod plot;

pub use baseline::Baseline;
pub use glass::{measure, Figures, Measured, NetPath, Pipeline, Rig};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Display(#[from] wavry_scene::DisplayError),
    #[error("scene: {0}")]
    Scene(#[from] wavry_scene::scene::SceneError),
    #[error("latency probe: {0}")]
    Probe(String),
    #[error("network namespaces unavailable: {0}")]
    NoNamespaces(&'static str),
    #[error("impairment tool: {0}")]
    Impair(String),
    #[error("{pipeline} skipped: {program} is not installed (apt: {packages})")]
    Missing {
        pipeline: &'static str,
        program: String,
        packages: &'static str,
    },
    #[error("cannot start {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("wavry: {0}")]
    Wavry(String),
    #[error("identity: {0}")]
    Identity(#[from] rift_crypto::identity::IdentityError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}
