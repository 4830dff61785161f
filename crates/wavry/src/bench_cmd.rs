//! `wavry bench latency`: glass-to-glass latency of Wavry beside the ffmpeg and GStreamer
//! pipelines, per picture size and network path (the harness is wavry-bench).

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use wavry_bench::{measure, Baseline, BenchError, Measured, NetPath, Pipeline, Rig};
use wavry_client::window::PresentMode;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Glass-to-glass latency: a probe paints the clock as a barcode on the host's virtual
    /// display at 240 Hz beside a moving scene; a reader decodes it from the client's display
    /// every millisecond. Reports event latency (a change until it shows), frame latency (a
    /// shown picture's age), corrupt pictures and freezes, p50/p95/p99, for Wavry and, in the
    /// same run, ffmpeg and GStreamer pipelines with the same x264 settings.
    Latency(LatencyArgs),
    /// The gateway under load: signaling WebSockets held open (hello, pings at the heartbeat),
    /// relay latency of `candidate` messages between the two sides of connected pairs
    /// (p50/p95/p99/max, lost messages), connect time, the gateway's memory, and logins per
    /// second at the OWASP Argon2 cost (and at the cheapest cost, for contrast).
    ///
    /// By default the gateway runs in this process (clients and gateway then share the
    /// machine's cores and this process's file descriptors: 2 per client). Results and the
    /// machine they were measured on: docs/BENCHMARKS.md, "Gateway".
    Gateway(GatewayArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// Both ends on this machine's loopback, nothing in between.
    Loopback,
    /// 20 ms round trip without loss (needs root: network namespaces): the clean run the loss
    /// paths are held against, so the comparison is of loss alone, not of the added delay.
    Delay,
    /// 20 ms round trip with 1 % random loss each way (needs root).
    Loss,
    /// 20 ms round trip with 2 % loss in bursts of 3 packets on average (needs root).
    Burst,
}

#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Picture sizes, WIDTHxHEIGHT, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1920x1080,1280x720")]
    sizes: Vec<String>,
    /// Seconds measured per pipeline and path (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Network paths, comma-separated. Impaired paths run host and client in network
    /// namespaces with `wavry impair` between them; without root they are skipped.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "loopback,delay,loss,burst"
    )]
    paths: Vec<PathArg>,
    /// Frame rate of the scene and of every pipeline.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Measure Wavry alone.
    #[arg(long)]
    no_baselines: bool,
    /// The Wavry client's presentation path (see `wavry connect --help`).
    #[arg(long, value_name = "PATH", default_value = "auto", value_parser = crate::connect_cmd::parse_present)]
    present: PresentMode,
    /// Write the latency distributions side by side as a PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Host,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CostArg {
    /// OWASP's baseline (19 MiB, t=2, p=1), the gateway's default.
    Owasp,
    /// The cheapest Argon2 (8 KiB, t=1): contrast only, insecure.
    Cheap,
}

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Signaling WebSockets to open and hold (0 skips the signaling part).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Devices registered per account (the gateway allows at most 100): 10,000 clients are
    /// 100 accounts of 100 devices, so only 100 logins are needed to set up.
    #[arg(long, default_value_t = 100, value_name = "N")]
    devices_per_account: usize,
    /// Host/client pairs among the clients that `connect`, `accept` and then relay
    /// candidates; the other sockets only ping.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Device kind of the sockets outside the pairs (an online host costs the gateway a
    /// presence row; a client does not).
    #[arg(long, value_enum, default_value = "host")]
    idle_kind: KindArg,
    /// Candidate messages per second, across all pairs (round-robin). The gateway allows one
    /// socket 20 messages/s, so at most 15 per pair are accepted here.
    #[arg(long, default_value_t = 1000.0, value_name = "MSG_PER_SEC")]
    rate: f64,
    /// Seconds the candidates flow (the sockets stay open through it: past 45 s, three
    /// heartbeats, this also shows the pings keep them alive).
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// WebSocket handshakes (and device registrations) in flight at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    connect_concurrency: usize,
    /// Register the bench's own setup accounts at the OWASP Argon2 cost instead of the
    /// cheapest one (in-process or --separate-process only; slower setup, same signaling).
    #[arg(long)]
    setup_owasp: bool,
    /// Run the gateway as a separate `wavry gateway` process on loopback (this executable),
    /// so its sockets count against its own file-descriptor limit, its memory and CPU time
    /// are its own. Logins are still measured in-process.
    #[arg(long, conflicts_with = "url")]
    separate_process: bool,
    /// Measure a gateway that is already running at this base URL (http://HOST:PORT) instead
    /// of starting one. Its per-address registration limit is met by registering from
    /// several 127.x loopback addresses; logins run at its own Argon2 cost.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With --url: the gateway's process id, to read its memory (VmRSS) and CPU time.
    #[arg(long, value_name = "PID", requires = "url")]
    gateway_pid: Option<u32>,
    /// Database of the gateway this bench starts: sqlite://PATH or postgres://… [default: a
    /// SQLite file in a temporary directory]. Accounts are named per run, so a database can
    /// be reused.
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    database: Option<String>,
    /// Argon2 costs to measure logins at, comma-separated. Ignored with --url (the target's
    /// own cost is measured).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "owasp,cheap")]
    login_costs: Vec<CostArg>,
    /// Skip the login measurements.
    #[arg(long)]
    no_logins: bool,
    /// Logins in flight at once, each worker on its own account (the gateway hashes as many
    /// at once as it has CPUs; the rest queue).
    #[arg(long, default_value_t = 8, value_name = "N")]
    login_concurrency: usize,
    /// Seconds each login measurement runs.
    #[arg(long, default_value_t = 10.0)]
    login_seconds: f64,
}

fn run_gateway_bench(a: GatewayArgs) -> Result<()> {
    use wavry_bench::gateway::{DeviceKind, LoginCost, Options, Target};
    let target = if let Some(url) = a.url.clone() {
        Target::External {
            url,
            pid: a.gateway_pid,
        }
    } else if a.separate_process {
        Target::Spawn {
            exe: std::env::current_exe().context("finding this executable")?,
        }
    } else {
        Target::InProcess
    };
    let login_costs = if a.no_logins {
        vec![]
    } else if a.url.is_some() {
        vec![LoginCost::Target]
    } else {
        a.login_costs
            .iter()
            .map(|c| match c {
                CostArg::Owasp => LoginCost::Owasp,
                CostArg::Cheap => LoginCost::Cheap,
            })
            .collect()
    };
    let opts = Options {
        target,
        database: a.database,
        clients: a.clients,
        devices_per_account: a.devices_per_account,
        pairs: a.pairs,
        idle_kind: match a.idle_kind {
            KindArg::Host => DeviceKind::Host,
            KindArg::Client => DeviceKind::Client,
        },
        rate: a.rate,
        relay_secs: a.seconds,
        connect_concurrency: a.connect_concurrency,
        setup_owasp: a.setup_owasp,
        login_costs,
        login_concurrency: a.login_concurrency,
        login_secs: a.login_seconds,
    };
    println!(
        "wavry bench gateway: {} clients, {} pairs, {} candidates/s for {} s; {} CPUs",
        opts.clients,
        opts.pairs,
        opts.rate,
        opts.relay_secs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let report = wavry_bench::gateway::run(&opts)?;
    print!("{report}");
    if let Some(s) = &report.signal {
        // Issue 6's target: 10,000 connected clients with p99 relay latency under 10 ms.
        let held = s.clients >= 10_000 && s.still_open == s.clients;
        let fast = s.relay.n > 0 && s.relay.p99 < 10.0 && s.lost == 0;
        println!(
            "target (10,000 clients held, relay p99 < 10 ms, nothing lost): {}",
            if held && fast { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

fn net_path(p: PathArg) -> Result<NetPath, BenchError> {
    match p {
        PathArg::Loopback => Ok(NetPath::Loopback),
        PathArg::Delay => Ok(NetPath::random_loss(0.0)),
        PathArg::Loss => Ok(NetPath::random_loss(0.01)),
        PathArg::Burst => NetPath::burst_loss(0.02, 3.0),
    }
}

pub fn run_bench(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Latency(a) => run_latency(a),
        BenchCommand::Gateway(a) => run_gateway_bench(a),
    }
}

fn run_latency(a: LatencyArgs) -> Result<()> {
    let mut pipelines = vec![Pipeline::Wavry { present: a.present }];
    if !a.no_baselines {
        pipelines.extend(Baseline::ALL.map(Pipeline::Baseline));
    }
    let mut all: Vec<Measured> = Vec::new();
    let mut loopback_ratio = None;
    for size in &a.sizes {
        let (w, h) = crate::desktop_demo::parse_size(size)?;
        let rig = Rig::start(w, h, a.fps).context("starting the virtual displays")?;
        for &p in &a.paths {
            let path = net_path(p)?;
            let mut here: Vec<Measured> = Vec::new();
            for &pipeline in &pipelines {
                match measure(&rig, pipeline, &path, a.seconds) {
                    Ok(m) => {
                        println!("{m}");
                        if let Some(s) = &m.stages {
                            println!("  wavry stages: {s}");
                        }
                        here.push(m);
                    }
                    Err(e @ (BenchError::Missing { .. } | BenchError::NoNamespaces(_))) => {
                        println!(
                            "{w}x{h} {:<34} {:<9} skipped: {e}",
                            path.label(),
                            pipeline.name()
                        );
                        if matches!(e, BenchError::NoNamespaces(_)) {
                            break;
                        }
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("{} over {} at {w}x{h}", pipeline.name(), path.label())
                        })
                    }
                }
            }
            if let (Some(r), PathArg::Loopback, (1920, 1080)) = (ratio(&here), p, (w, h)) {
                loopback_ratio = Some(r);
            }
            all.extend(here);
        }
    }
    targets(&all, loopback_ratio);
    if let Some(png) = &a.plot {
        let title = format!(
            "Glass-to-glass latency at {} fps, x264 ultrafast/zerolatency ({} s per run)",
            a.fps, a.seconds
        );
        wavry_bench::plot::plot_latency(&all, &title, png)
            .with_context(|| format!("plotting to {}", png.display()))?;
        println!("plot: {}", png.display());
    }
    Ok(())
}

/// Wavry's event p50 against the better baseline's, in one size and path. A baseline that
/// showed corrupt pictures or under half as many values as Wavry did not really stream: no
/// ratio against it.
fn ratio(runs: &[Measured]) -> Option<f64> {
    let p50 = |m: &Measured| m.figures().event_ms[0];
    let wavry = runs.iter().find(|m| m.pipeline == "wavry")?;
    let shown = |m: &Measured| m.latency.frame_ms.len();
    let best = runs
        .iter()
        .filter(|m| m.pipeline != "wavry" && m.latency.corrupt == 0)
        .filter(|m| 2 * shown(m) >= shown(wavry))
        .min_by(|a, b| p50(a).total_cmp(&p50(b)));
    if best.is_none() && runs.len() > 1 {
        println!("  no baseline streamed usable pictures here: no ratio");
    }
    let best = best?;
    let r = p50(wavry) / p50(best);
    println!("  wavry event p50 / {} event p50 = {r:.2}", best.pipeline);
    Some(r)
}

/// Issue 5's targets at 1080p60: on loopback event p50 ≤ 15 ms, p99 ≤ 22 ms, frame p50 ≤ 8 ms
/// and at most 0.7× the better baseline's event p50 (`ratio`); under loss no corrupt picture
/// and event p95 within 1.5× of the clean run's: the 20 ms run without loss when it was
/// measured, else loopback.
fn targets(all: &[Measured], ratio: Option<f64>) {
    let wavry_at = |path: &str| {
        all.iter().find(|m| {
            m.pipeline == "wavry" && (m.width, m.height) == (1920, 1080) && m.path == path
        })
    };
    let Some(clean) = wavry_at("loopback") else {
        return;
    };
    let c = clean.figures();
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("targets, wavry at 1920x1080 on loopback:");
    println!(
        "  event p50 {:.1} ms ≤ 15: {}",
        c.event_ms[0],
        mark(c.event_ms[0] <= 15.0)
    );
    println!(
        "  event p99 {:.1} ms ≤ 22: {}",
        c.event_ms[2],
        mark(c.event_ms[2] <= 22.0)
    );
    println!(
        "  frame p50 {:.1} ms ≤ 8: {}",
        c.frame_ms[0],
        mark(c.frame_ms[0] <= 8.0)
    );
    match ratio {
        Some(r) => println!(
            "  event p50 ≤ 0.7 × the better baseline's: {r:.2} ×: {}",
            mark(r <= 0.7)
        ),
        None => println!("  event p50 ≤ 0.7 × the better baseline's: no baseline measured"),
    }
    let delay_label = NetPath::random_loss(0.0).label().to_string();
    let (reference, r) = match wavry_at(&delay_label) {
        Some(d) => (delay_label.as_str(), d.figures()),
        None => ("loopback", c),
    };
    let lossy = all.iter().filter(|m| {
        m.pipeline == "wavry"
            && (m.width, m.height) == (1920, 1080)
            && m.path != "loopback"
            && m.path != delay_label
    });
    for m in lossy {
        let f = m.figures();
        println!(
            "  {}: corrupt {} (0: {}), event p95 {:.1} ms ≤ 1.5 × {:.1} ({reference}): {}",
            m.path,
            f.corrupt,
            mark(f.corrupt == 0),
            f.event_ms[1],
            r.event_ms[1],
            mark(f.event_ms[1] <= 1.5 * r.event_ms[1])
        );
    }
}
