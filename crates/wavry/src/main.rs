//! `wavry`: the one command-line tool. Each subcommand wires library crates together; the logic
//! lives in the libraries.

mod demo;
mod identity_cmd;
mod impair_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wavry",
    version,
    about = "Low-latency remote desktop and game streaming over RIFT",
    long_about = "Low-latency remote desktop and game streaming over RIFT.\n\n\
                  Today the protocol core runs against a deterministic network simulator: \
                  `wavry demo` streams synthetic video through a simulated path and prints what \
                  arrived; `wavry sim` runs the congestion-control scenarios and draws them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream synthetic 60 fps video over RIFT through a simulated network path and print
    /// delivery, bitrate, delay and loss statistics.
    Demo(demo::DemoArgs),
    /// Congestion-control scenarios (RFC 8867 style): DELTA against baselines.
    Sim {
        #[command(subcommand)]
        scenario: demo::SimCommand,
    },
    /// Create this device's identity (its static key for the encrypted RIFT handshake) and print
    /// its fingerprint.
    Keygen(identity_cmd::KeygenArgs),
    /// Print this device's identity fingerprint (and with --public its public key).
    Id(identity_cmd::IdArgs),
    /// Impair real traffic: forward it between two network namespaces (or interfaces) with
    /// delay, jitter, loss, burst loss, reordering, duplication and a rate-limited queue.
    /// Needs root.
    Impair(Box<impair_cmd::ImpairArgs>),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => demo::run_demo(&args),
        Command::Sim { scenario } => demo::run_sim(&scenario),
        Command::Keygen(args) => identity_cmd::run_keygen(args),
        Command::Id(args) => identity_cmd::run_id(args),
        Command::Impair(args) => impair_cmd::run_impair(*args),
    }
}
