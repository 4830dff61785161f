//! `wavry sim`: RIFT streaming through the deterministic network simulator.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use rift_sim::link::LossModel;
use rift_sim::scenario::{
    analyze_steps, capacity_steps_with_baselines, describe_loss, jain_fairness, run, run_figures,
    Controller, Scenario, ScenarioResult,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Simulated time to stream, e.g. 20s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = wavry_config::parse_duration)]
    duration: Duration,
    /// Bottleneck capacity, Mbit/s.
    #[arg(long, default_value_t = 10.0)]
    capacity: f64,
    /// One-way propagation delay, milliseconds (each direction). NACK repairs losses while
    /// the round trip stays under 40 ms.
    #[arg(long, default_value_t = 15.0)]
    delay_ms: f64,
    /// Drop-tail queue of the bottleneck, in milliseconds at its capacity.
    #[arg(long, default_value_t = 300.0)]
    queue_ms: f64,
    /// Packet loss on the forward path, percent.
    #[arg(long, default_value_t = 1.0)]
    loss: f64,
    /// Mean loss burst length in packets (1 = independent random loss; more = Gilbert-Elliott bursts).
    #[arg(long, default_value_t = 1.0)]
    burst: f64,
    /// Per-packet jitter, up to this many milliseconds (no reordering).
    #[arg(long, default_value_t = 1.0)]
    jitter_ms: f64,
    /// Percent of packets reordered (held back 5 ms).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Percent of packets duplicated.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Halve the capacity for the middle third of the run, to watch DELTA follow it.
    #[arg(long)]
    step: bool,
    /// Congestion controller: delta, fixed (at the capacity) or loss-abr.
    #[arg(long, default_value = "delta")]
    controller: String,
    /// Seed of every random choice in the run (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Stream synthetic 60 fps video over RIFT through a simulated network path and print
    /// delivery, bitrate, delay and loss statistics.
    Stream(DemoArgs),
    /// Capacity 10 → 2.5 → 6 → 10 Mbit/s, 50 ms one way, 300 ms drop-tail queue: DELTA beside a
    /// fixed-bitrate and a loss-threshold ABR baseline.
    Steps,
    /// Three DELTA flows sharing 3.5 Mbit/s, started 20 s apart: fairness and delay.
    Fairness,
    /// Draw both scenarios as PNG plots.
    Plot {
        /// Directory to write the PNGs into.
        #[arg(long, default_value = "docs/img")]
        out: PathBuf,
    },
}

fn controller(name: &str, capacity_bps: u64) -> Result<Controller> {
    Ok(match name {
        "delta" => Controller::delta(),
        "fixed" => Controller::Fixed(capacity_bps),
        "loss-abr" | "abr" => Controller::LossAbr(capacity_bps),
        other => bail!("unknown controller {other:?}: use delta, fixed or loss-abr"),
    })
}

fn percent(name: &str, v: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&v) {
        bail!("--{name} must be a percentage between 0 and 100, got {v}");
    }
    Ok(v / 100.0)
}

fn positive(name: &str, v: f64) -> Result<f64> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{name} must be a positive number, got {v}");
    }
    Ok(v)
}

pub fn run_demo(a: &DemoArgs) -> Result<()> {
    let capacity = (positive("capacity", a.capacity)? * 1e6) as u64;
    let duration = a.duration;
    if duration.is_zero() {
        bail!("--duration must be longer than zero");
    }
    if !(0.0..=10_000.0).contains(&a.delay_ms) || !(0.0..=10_000.0).contains(&a.jitter_ms) {
        bail!("--delay-ms and --jitter-ms must be between 0 and 10000");
    }
    let loss = percent("loss", a.loss)?;
    if a.burst < 1.0 {
        bail!(
            "--burst is a mean burst length in packets: at least 1, got {}",
            a.burst
        );
    }
    let mut s = Scenario::simple(
        "demo",
        controller(&a.controller, capacity)?,
        capacity,
        Duration::from_secs_f64(a.delay_ms / 1000.0),
    );
    s.duration = duration;
    s.seed = a.seed;
    s.queue_time = Some(Duration::from_secs_f64(
        positive("queue-ms", a.queue_ms)? / 1000.0,
    ));
    s.forward.loss = if loss == 0.0 {
        LossModel::None
    } else if a.burst <= 1.0 {
        LossModel::Random { p: loss }
    } else {
        LossModel::burst(loss, a.burst)
    };
    s.forward.jitter = Duration::from_secs_f64(a.jitter_ms / 1000.0);
    s.forward.reorder = percent("reorder", a.reorder)?;
    s.forward.reorder_delay = Duration::from_millis(5);
    s.forward.duplicate = percent("duplicate", a.duplicate)?;
    if a.step {
        s.capacity_steps = vec![(duration / 3, capacity / 2), (duration * 2 / 3, capacity)];
    }
    println!(
        "Wavry demo: RIFT streaming synthetic 60 fps video through a simulated path\n  \
         {:.1} Mbit/s bottleneck{}, {:.0} ms one way, {:.0} ms drop-tail queue, {}{}{}, {} controller, seed {}",
        a.capacity,
        if a.step { " (halved for the middle third)" } else { "" },
        a.delay_ms,
        a.queue_ms,
        describe_loss(&s.forward.loss),
        if a.reorder > 0.0 { format!(", {:.1} % reordered", a.reorder) } else { String::new() },
        if a.duplicate > 0.0 { format!(", {:.1} % duplicated", a.duplicate) } else { String::new() },
        s.flows[0].controller.label(),
        a.seed
    );
    let started = Instant::now();
    let r = run(&s);
    let wall = started.elapsed();
    print_timeline(&r);
    print_summary(&s, &r, wall);
    Ok(())
}

/// One line per simulated second.
fn print_timeline(r: &ScenarioResult) {
    println!(
        "\n  {:>6}  {:>9}  {:>9}  {:>9}  {:>10}  state",
        "time", "capacity", "target", "sent", "max queue"
    );
    for chunk in r.timeline.chunks(10) {
        let Some(last) = chunk.last() else { continue };
        let n = chunk.len() as f64;
        let sent = chunk.iter().map(|x| x.send_bps[0] as f64).sum::<f64>() / n;
        let queue = chunk.iter().map(|x| x.queue_ms).fold(0.0, f64::max);
        println!(
            "  {:>5.1}s  {:>6.2} Mb  {:>6.2} Mb  {:>6.2} Mb  {:>7.1} ms  {:?}",
            last.t,
            last.capacity_bps as f64 / 1e6,
            last.target_bps[0] as f64 / 1e6,
            sent / 1e6,
            queue,
            last.state[0]
        );
    }
}

fn print_summary(s: &Scenario, r: &ScenarioResult, wall: Duration) {
    let f = &r.flows[0];
    let fig = run_figures(s, r, Duration::from_secs(2).min(s.duration / 4));
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    println!("\nSummary");
    println!(
        "  frames       {} sent, {} delivered ({:.2} %), {} lost, {} corrupt",
        f.frames_sent,
        f.frames_delivered,
        pct(f.frames_delivered, f.frames_sent),
        f.frames_lost,
        f.frames_corrupt
    );
    println!(
        "  latency      capture → complete at receiver: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        f.frame_latency_ms[0], f.frame_latency_ms[1], f.frame_latency_ms[2]
    );
    println!(
        "  recovery     {} packets rebuilt by FEC, {} retransmitted on NACK, {} keyframe requests",
        f.fec_recovered, f.retransmissions, f.keyframe_requests
    );
    println!(
        "  link         mean send rate {:.2} Mbit/s, utilization {:.1} %, queuing delay p50 {:.1} ms / p95 {:.1} ms",
        f.mean_send_bps / 1e6,
        fig.utilization * 100.0,
        fig.p50_queue_ms,
        fig.p95_queue_ms
    );
    println!(
        "  drops        {} by the drop-tail queue, {} by the loss model",
        r.dropped_queue, r.dropped_loss
    );
    println!(
        "  simulated {:.0} s in {:.2} s of wall time",
        s.duration.as_secs_f64(),
        wall.as_secs_f64()
    );
}

pub fn run_sim(cmd: &SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Stream(args) => return run_demo(args),
        SimCommand::Steps => {
            let runs = capacity_steps_with_baselines();
            println!("Capacity 10 → 2.5 → 6 → 10 Mbit/s, 50 ms one way, 300 ms drop-tail queue");
            let (ds, dr) = &runs[0];
            println!("DELTA per step (converged: the 500 ms send rate within 80–110 % of capacity and the queue under 20 ms):");
            for st in analyze_steps(ds, dr) {
                println!("  {st}");
            }
            println!("Whole trace after 2 s:");
            for (s, r) in &runs {
                let fig = run_figures(s, r, Duration::from_secs(2));
                let f = &r.flows[0];
                println!(
                    "  {:<9} queue p50 {:>6.1} ms, p95 {:>6.1} ms; utilization {:>5.1} %; frames lost {:>5}; frame latency p50 {:>6.1} ms",
                    f.controller,
                    fig.p50_queue_ms,
                    fig.p95_queue_ms,
                    fig.utilization * 100.0,
                    f.frames_lost,
                    f.frame_latency_ms[0]
                );
            }
        }
        SimCommand::Fairness => {
            let s = Scenario::three_flows();
            let r = run(&s);
            let (j, rates) = jain_fairness(&r, 50.0, 80.0);
            let fig = run_figures(&s, &r, Duration::from_secs(2));
            println!("Three DELTA flows on 3.5 Mbit/s, 50 ms one way, started at 0, 20 and 40 s:");
            println!(
                "  mean send rates over 50–80 s: {} kbit/s; Jain fairness {:.3}",
                rates
                    .iter()
                    .map(|r| format!("{:.0}", r / 1000.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                j
            );
            println!(
                "  queuing delay p50 {:.1} ms, p95 {:.1} ms; utilization {:.1} %",
                fig.p50_queue_ms,
                fig.p95_queue_ms,
                fig.utilization * 100.0
            );
        }
        SimCommand::Plot { out } => {
            std::fs::create_dir_all(out)?;
            for p in rift_sim::plot::render_all(out)? {
                println!("wrote {}", p.display());
            }
        }
    }
    Ok(())
}
