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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// Both ends on this machine's loopback, nothing in between.
    Loopback,
    /// 20 ms round trip with 1 % random loss each way (needs root: network namespaces).
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
        default_value = "loopback,loss,burst"
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

fn net_path(p: PathArg) -> Result<NetPath, BenchError> {
    match p {
        PathArg::Loopback => Ok(NetPath::Loopback),
        PathArg::Loss => Ok(NetPath::random_loss(0.01)),
        PathArg::Burst => NetPath::burst_loss(0.02, 3.0),
    }
}

pub fn run_bench(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Latency(a) => run_latency(a),
    }
}

fn run_latency(a: LatencyArgs) -> Result<()> {
    let mut pipelines = vec![Pipeline::Wavry { present: a.present }];
    if !a.no_baselines {
        pipelines.extend(Baseline::ALL.map(Pipeline::Baseline));
    }
    let mut all: Vec<Measured> = Vec::new();
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
            ratio(&here);
            all.extend(here);
        }
    }
    targets(&all);
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
fn ratio(runs: &[Measured]) {
    let p50 = |m: &Measured| m.figures().event_ms[0];
    let Some(wavry) = runs.iter().find(|m| m.pipeline == "wavry") else {
        return;
    };
    let shown = |m: &Measured| m.latency.frame_ms.len();
    let best = runs
        .iter()
        .filter(|m| m.pipeline != "wavry" && m.latency.corrupt == 0)
        .filter(|m| 2 * shown(m) >= shown(wavry))
        .min_by(|a, b| p50(a).total_cmp(&p50(b)));
    if best.is_none() && runs.len() > 1 {
        println!("  no baseline streamed usable pictures here: no ratio");
    }
    if let Some(best) = best {
        println!(
            "  wavry event p50 / {} event p50 = {:.2}",
            best.pipeline,
            p50(wavry) / p50(best)
        );
    }
}

/// Issue 5's targets at 1080p60: on loopback event p50 ≤ 15 ms, p99 ≤ 22 ms, frame p50 ≤ 8 ms;
/// under loss no corrupt picture and event p95 within 1.5× of the clean run's.
fn targets(all: &[Measured]) {
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
    for m in all.iter().filter(|m| {
        m.pipeline == "wavry" && (m.width, m.height) == (1920, 1080) && m.path != "loopback"
    }) {
        let f = m.figures();
        println!(
            "  {}: corrupt {} (0: {}), event p95 {:.1} ms ≤ 1.5 × {:.1}: {}",
            m.path,
            f.corrupt,
            mark(f.corrupt == 0),
            f.event_ms[1],
            c.event_ms[1],
            mark(f.event_ms[1] <= 1.5 * c.event_ms[1])
        );
    }
}
