//! `wavry`: the one command-line tool. Each subcommand wires library crates together; the logic
//! lives in the libraries.

mod bench_cmd;
mod connect_cmd;
mod desktop_demo;
mod gateway_cmd;
mod host_cmd;
mod identity_cmd;
mod impair_cmd;
mod sim_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wavry",
    version,
    about = "Low-latency remote desktop and game streaming over RIFT",
    long_about = "Low-latency remote desktop and game streaming over RIFT.\n\n\
                  `wavry host` streams this X display; `wavry connect HOST` shows it in a window \
                  and sends it keyboard, mouse and gamepad input. `wavry demo` runs both ends on \
                  this machine with a moving scene. `wavry sim` runs the congestion-control \
                  scenarios against a simulated network."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log format on stderr: `text` for people, `json` (one object per line, with every field)
    /// for log collectors. What is logged is set with RUST_LOG (default: warn).
    #[arg(
        long,
        global = true,
        env = "WAVRY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Stream a moving scene from a virtual display to a client window on this machine (host
    /// and client end to end, encrypted, over loopback) and print live stats.
    Demo(desktop_demo::DesktopDemoArgs),
    /// Stream this machine's X display to allowed clients.
    Host(host_cmd::HostArgs),
    /// Show a host's desktop in a window and send it your input.
    Connect(connect_cmd::ConnectArgs),
    /// Simulated network: a synthetic stream through a simulated path (`stream`) and the
    /// congestion-control scenarios (RFC 8867 style) with DELTA against baselines.
    Sim {
        #[command(subcommand)]
        scenario: sim_cmd::SimCommand,
    },
    /// Measure Wavry end to end (glass-to-glass latency beside other pipelines).
    Bench {
        #[command(subcommand)]
        what: bench_cmd::BenchCommand,
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
    /// Run the gateway: accounts (login sessions, TOTP), devices and hosts, signaling over
    /// WebSocket, and the admin dashboard, on SQLite (default) or PostgreSQL.
    ///
    /// Every flag can also be set through the environment variable shown with it. Ctrl-C or
    /// SIGTERM stops it gracefully: no new connections, requests in flight finish (up to
    /// 30 s). The API and the security choices are in docs/GATEWAY.md, signaling in
    /// docs/SIGNALING.md, the admin panel in docs/ADMIN.md.
    Gateway(Box<gateway_cmd::GatewayArgs>),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Ctrl-C and SIGTERM end sessions cleanly (the peer is told).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    match cli.command {
        Command::Demo(args) => desktop_demo::run_desktop_demo(args, stop),
        Command::Host(args) => host_cmd::run_host(args, stop),
        Command::Connect(args) => connect_cmd::run_connect(args, stop),
        Command::Sim { scenario } => sim_cmd::run_sim(&scenario),
        Command::Bench { what } => bench_cmd::run_bench(what),
        Command::Keygen(args) => identity_cmd::run_keygen(args),
        Command::Id(args) => identity_cmd::run_id(args),
        Command::Impair(args) => impair_cmd::run_impair(*args),
        Command::Gateway(args) => gateway_cmd::run_gateway(*args),
    }
}
