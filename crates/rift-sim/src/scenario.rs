//! Congestion-control scenarios: RIFT connections streaming synthetic video through a shared
//! simulated bottleneck, in the spirit of RFC 8867. Tests assert on the results, the demo prints
//! them, and `wavry sim --plot` draws them.

use crate::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use crate::link::{Link, LinkConfig, LossModel};
use rift_core::connection::{Connection, ConnectionConfig, Event};
use rift_core::delta::{CongestionController, Delta, DeltaConfig, DeltaState, FixedRate, LossAbr};
use rift_core::media::OutgoingFrame;
use rift_core::wire::{MAX_DATAGRAM, STREAM_VIDEO, TAG_LEN, UDP_IP_OVERHEAD};
use std::time::{Duration, Instant};

/// Which controller a flow runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Controller {
    Delta(Box<DeltaConfig>),
    /// Fixed bitrate (bit/s).
    Fixed(u64),
    /// Loss-threshold ABR starting at this bitrate.
    LossAbr(u64),
}

impl Controller {
    pub fn delta() -> Self {
        Controller::Delta(Box::default())
    }

    fn build(&self, fps: f64) -> Box<dyn CongestionController> {
        match self {
            Controller::Delta(cfg) => Box::new(Delta::new((**cfg).clone())),
            Controller::Fixed(bps) => Box::new(FixedRate::new(*bps, fps)),
            Controller::LossAbr(bps) => Box::new(LossAbr::new(*bps, fps)),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Controller::Delta(_) => "DELTA",
            Controller::Fixed(_) => "fixed",
            Controller::LossAbr(_) => "loss-ABR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub controller: Controller,
    /// When the flow starts streaming.
    pub start: Duration,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub duration: Duration,
    /// The forward path (host → client) with its bottleneck. `rate_bps` is the initial capacity.
    pub forward: LinkConfig,
    /// The return path (client → host): propagation delay only, by default.
    pub reverse: LinkConfig,
    /// Capacity changes: from this time on, this rate.
    pub capacity_steps: Vec<(Duration, u64)>,
    /// When set, the drop-tail queue is resized to hold this much time at each capacity.
    pub queue_time: Option<Duration>,
    pub flows: Vec<Flow>,
    pub fps: f64,
    /// The most the encoder produces whatever the controller allows: a desktop or game whose
    /// picture needs no more (an application-limited sender). `None`: it fills any rate.
    pub encoder_max_bps: Option<u64>,
    pub seed: u64,
    /// Interval of the recorded timeline.
    pub sample_every: Duration,
}

impl Scenario {
    /// A single flow over a path with the given capacity and one-way delay.
    pub fn simple(name: &str, controller: Controller, rate_bps: u64, one_way: Duration) -> Self {
        Scenario {
            name: name.into(),
            duration: Duration::from_secs(30),
            forward: LinkConfig {
                rate_bps,
                delay: one_way,
                ..LinkConfig::default()
            },
            reverse: LinkConfig {
                delay: one_way,
                ..LinkConfig::default()
            },
            capacity_steps: vec![],
            queue_time: Some(Duration::from_millis(300)),
            flows: vec![Flow {
                controller,
                start: Duration::ZERO,
            }],
            fps: 60.0,
            encoder_max_bps: None,
            seed: 1,
            sample_every: Duration::from_millis(100),
        }
    }

    /// RFC 8867-style variable capacity: 10 → 2.5 → 6 → 10 Mbit/s, 50 ms one way, 300 ms queue.
    pub fn capacity_steps(controller: Controller) -> Self {
        let mut s = Scenario::simple(
            "capacity steps",
            controller,
            10_000_000,
            Duration::from_millis(50),
        );
        s.duration = Duration::from_secs(60);
        s.capacity_steps = vec![
            (Duration::from_secs(15), 2_500_000),
            (Duration::from_secs(30), 6_000_000),
            (Duration::from_secs(45), 10_000_000),
        ];
        s
    }

    /// A LAN-like path with far more capacity than the picture needs: 300 Mbit/s, 2 ms one way,
    /// an encoder that never wants more than 20 Mbit/s. Here pacing can only add latency: what
    /// a frame waits in the pacer is what the player waits.
    pub fn fast_path(controller: Controller) -> Self {
        let mut s = Scenario::simple(
            "fast path",
            controller,
            300_000_000,
            Duration::from_millis(2),
        );
        s.duration = Duration::from_secs(20);
        s.encoder_max_bps = Some(20_000_000);
        s
    }

    /// Three DELTA flows sharing 3.5 Mbit/s, started 20 s apart.
    pub fn three_flows() -> Self {
        let mut s = Scenario::simple(
            "three flows",
            Controller::delta(),
            3_500_000,
            Duration::from_millis(50),
        );
        s.duration = Duration::from_secs(80);
        s.flows = (0..3)
            .map(|i| Flow {
                controller: Controller::delta(),
                start: Duration::from_secs(20 * i),
            })
            .collect();
        s
    }

    /// Capacity in force at `t`.
    pub fn capacity_at(&self, t: Duration) -> u64 {
        self.capacity_steps
            .iter()
            .filter(|(at, _)| *at <= t)
            .map(|(_, r)| *r)
            .next_back()
            .unwrap_or(self.forward.rate_bps)
    }
}

/// The capacity-step trace run with DELTA, a fixed 10 Mbit/s sender and the loss-threshold ABR,
/// in that order.
pub fn capacity_steps_with_baselines() -> Vec<(Scenario, ScenarioResult)> {
    [
        Controller::delta(),
        Controller::Fixed(10_000_000),
        Controller::LossAbr(10_000_000),
    ]
    .into_iter()
    .map(|c| {
        let s = Scenario::capacity_steps(c);
        let r = run(&s);
        (s, r)
    })
    .collect()
}

/// One row of the timeline, every `sample_every`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub capacity_bps: u64,
    /// Largest bottleneck queuing delay a packet met during the interval, ms.
    pub queue_ms: f64,
    /// Per flow: bytes offered to the path during the interval, as bit/s.
    pub send_bps: Vec<u64>,
    /// Per flow: the controller's target.
    pub target_bps: Vec<u64>,
    /// Per flow: the controller's state.
    pub state: Vec<DeltaState>,
    /// Bytes that left the bottleneck during the interval, as bit/s (all flows).
    pub delivered_bps: u64,
}

/// Per-flow totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowSummary {
    pub controller: String,
    pub frames_sent: u64,
    pub frames_delivered: u64,
    pub frames_lost: u64,
    pub frames_corrupt: u64,
    pub keyframe_requests: u64,
    pub fec_recovered: u64,
    pub retransmissions: u64,
    /// Capture to complete-at-receiver, milliseconds: p50, p95, p99.
    pub frame_latency_ms: [f64; 3],
    pub bytes_sent: u64,
    pub mean_send_bps: f64,
}

#[derive(Debug, Clone, Default)]
pub struct ScenarioResult {
    pub name: String,
    pub timeline: Vec<Sample>,
    pub flows: Vec<FlowSummary>,
    /// Queuing delay each packet met at the bottleneck: (seconds, ms).
    pub packet_queue: Vec<(f64, f64)>,
    /// Bytes through the bottleneck per departure: (seconds, bytes); for utilization windows.
    pub dropped_queue: u64,
    pub dropped_loss: u64,
}

struct FlowState {
    host: Connection,
    client: Connection,
    encoder: SyntheticEncoder,
    started: bool,
    start: Instant,
    frame_buf: Vec<u8>,
    latencies: Vec<f64>,
    summary: FlowSummary,
    sent_in_interval: u64,
}

/// Packets in flight carry their flow index and bytes.
type Datagram = (usize, Vec<u8>);

/// Run a scenario to completion. Deterministic for a given scenario (seeds included).
pub fn run(s: &Scenario) -> ScenarioResult {
    let t0 = Instant::now();
    let mut fwd_cfg = s.forward.clone();
    fwd_cfg.seed = fwd_cfg.seed.wrapping_add(s.seed);
    if let Some(q) = s.queue_time {
        fwd_cfg.queue_bytes = queue_bytes(fwd_cfg.rate_bps, q);
    }
    let mut fwd: Link<Datagram> = Link::new(fwd_cfg, t0);
    let mut rev_cfg = s.reverse.clone();
    rev_cfg.seed = rev_cfg.seed.wrapping_add(s.seed).wrapping_add(7);
    let mut rev: Link<Datagram> = Link::new(rev_cfg, t0);
    let mut flows: Vec<FlowState> = s
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let cid_host = 0x1000 + i as u32;
            let cid_client = 0x2000 + i as u32;
            let host = Connection::new(
                ConnectionConfig::new(cid_host, cid_client, true),
                f.controller.build(s.fps),
                t0,
            );
            let client = Connection::new(
                ConnectionConfig::new(cid_client, cid_host, false),
                Box::new(FixedRate::new(1_000_000, s.fps)),
                t0,
            );
            let start = t0 + f.start;
            let encoder = SyntheticEncoder::new(
                EncoderConfig {
                    fps: s.fps,
                    seed: s.seed.wrapping_add(100 + i as u64),
                    ..EncoderConfig::default()
                },
                host.rate().encoder_bps,
                start,
            );
            FlowState {
                summary: FlowSummary {
                    controller: f.controller.label().into(),
                    ..FlowSummary::default()
                },
                host,
                client,
                encoder,
                started: false,
                start,
                frame_buf: Vec::new(),
                latencies: Vec::new(),
                sent_in_interval: 0,
            }
        })
        .collect();
    let mut result = ScenarioResult {
        name: s.name.clone(),
        ..ScenarioResult::default()
    };
    let end = t0 + s.duration;
    let mut now = t0;
    let mut next_sample = t0 + s.sample_every;
    let mut steps = s.capacity_steps.clone();
    steps.sort_by_key(|(t, _)| *t);
    let mut step_i = 0;
    let mut interval_queue_max = 0f64;
    let mut delivered_in_interval = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while now < end {
        // Capacity changes.
        while step_i < steps.len() && t0 + steps[step_i].0 <= now {
            let rate = steps[step_i].1;
            fwd.set_rate(now, rate);
            if let Some(q) = s.queue_time {
                fwd.set_queue_bytes(queue_bytes(rate, q));
            }
            step_i += 1;
        }
        // Arrivals.
        while let Some((_, (i, d))) = fwd.poll(now) {
            delivered_in_interval += d.len() as u64;
            let _ = flows[i].client.handle_packet(now, &d);
        }
        while let Some((_, (i, d))) = rev.poll(now) {
            let _ = flows[i].host.handle_packet(now, &d);
        }
        for (i, f) in flows.iter_mut().enumerate() {
            if !f.started {
                if now < f.start {
                    continue;
                }
                f.started = true;
            }
            // Encoder follows the controller.
            let rate = f.host.rate();
            f.encoder
                .set_bitrate(rate.encoder_bps.min(s.encoder_max_bps.unwrap_or(u64::MAX)));
            if (f.encoder.fps() - rate.fps).abs() > 0.01 {
                f.encoder.set_fps(rate.fps);
            }
            while let Some(ev) = f.host.poll_event() {
                if let Event::KeyframeRequested { .. } = ev {
                    f.encoder.request_keyframe();
                }
            }
            if let Some(frame) = f.encoder.poll(now) {
                frame_payload(frame.frame_id, frame.size, &mut f.frame_buf);
                let capture_us = frame.capture.saturating_duration_since(t0).as_micros() as u64;
                let out = OutgoingFrame {
                    data: &f.frame_buf,
                    keyframe: frame.keyframe,
                    recovery_point: false,
                    capture_us,
                };
                if f.host.send_frame(now, STREAM_VIDEO, out).is_ok() {
                    f.summary.frames_sent += 1;
                }
            }
            f.host.handle_timeout(now);
            f.client.handle_timeout(now);
            while let Ok(Some(tx)) = f.host.poll_transmit(now, &mut buf) {
                // The wire carries a 16-byte AEAD tag the simulation does not compute, and the
                // link carries UDP and IP headers.
                let size = tx.len + TAG_LEN + UDP_IP_OVERHEAD;
                result.packet_queue.push((
                    now.saturating_duration_since(t0).as_secs_f64(),
                    fwd.queue_delay(now).as_secs_f64() * 1000.0,
                ));
                interval_queue_max =
                    interval_queue_max.max(fwd.queue_delay(now).as_secs_f64() * 1000.0);
                f.sent_in_interval += size as u64;
                f.summary.bytes_sent += size as u64;
                fwd.send(now, size, (i, buf[..tx.len].to_vec()));
            }
            while let Ok(Some(tx)) = f.client.poll_transmit(now, &mut buf) {
                rev.send(
                    now,
                    tx.len + TAG_LEN + UDP_IP_OVERHEAD,
                    (i, buf[..tx.len].to_vec()),
                );
            }
            while let Some(frame) = f.client.poll_frame(STREAM_VIDEO) {
                f.summary.frames_delivered += 1;
                if !verify_payload(frame.frame_id, frame.data) {
                    f.summary.frames_corrupt += 1;
                }
                let done_us = frame.completed_at.saturating_duration_since(t0).as_micros() as u64;
                f.latencies
                    .push(done_us.saturating_sub(frame.capture_us) as f64 / 1000.0);
            }
            while let Some(ev) = f.client.poll_event() {
                if let Event::FrameLost { .. } = ev {
                    f.summary.frames_lost += 1;
                }
            }
        }
        if now >= next_sample {
            let secs = s.sample_every.as_secs_f64();
            result.timeline.push(Sample {
                t: now.saturating_duration_since(t0).as_secs_f64(),
                capacity_bps: s.capacity_at(now.saturating_duration_since(t0)),
                queue_ms: interval_queue_max.max(fwd.queue_delay(now).as_secs_f64() * 1000.0),
                send_bps: flows
                    .iter()
                    .map(|f| (f.sent_in_interval as f64 * 8.0 / secs) as u64)
                    .collect(),
                target_bps: flows
                    .iter()
                    .map(|f| {
                        if f.started {
                            f.host.rate().target_bps
                        } else {
                            0
                        }
                    })
                    .collect(),
                state: flows.iter().map(|f| f.host.rate().state).collect(),
                delivered_bps: (delivered_in_interval as f64 * 8.0 / secs) as u64,
            });
            for f in &mut flows {
                f.sent_in_interval = 0;
            }
            interval_queue_max = 0.0;
            delivered_in_interval = 0;
            next_sample += s.sample_every;
        }
        // Next event.
        let mut next = next_sample.min(end);
        if let Some((t, _)) = steps.get(step_i) {
            next = next.min(t0 + *t);
        }
        for t in [fwd.next_event(), rev.next_event()].into_iter().flatten() {
            next = next.min(t);
        }
        for f in &flows {
            if !f.started {
                next = next.min(f.start);
                continue;
            }
            next = next.min(f.encoder.next_frame_time());
            for t in [f.host.poll_timeout(), f.client.poll_timeout()]
                .into_iter()
                .flatten()
            {
                next = next.min(t);
            }
        }
        // Always move forward; a timer already due was serviced above.
        now = next.max(now + Duration::from_micros(20));
    }
    for f in &mut flows {
        let stats = f
            .host
            .sender(STREAM_VIDEO)
            .map(|s| s.stats)
            .unwrap_or_default();
        f.summary.retransmissions = stats.retransmissions;
        if let Some(r) = f.client.receiver(STREAM_VIDEO) {
            f.summary.fec_recovered = r.stats.fec_recovered_packets;
        }
        f.summary.keyframe_requests = f.client.stats.keyframe_requests_sent;
        f.summary.frame_latency_ms = percentiles(&mut f.latencies, [0.5, 0.95, 0.99]);
        let active = (end.saturating_duration_since(f.start))
            .as_secs_f64()
            .max(1e-9);
        f.summary.mean_send_bps = f.summary.bytes_sent as f64 * 8.0 / active;
        result.flows.push(f.summary.clone());
    }
    let st = fwd.stats();
    result.dropped_queue = st.dropped_queue;
    result.dropped_loss = st.dropped_loss;
    result
}

fn queue_bytes(rate_bps: u64, t: Duration) -> usize {
    ((rate_bps as f64 / 8.0) * t.as_secs_f64()) as usize
}

/// Percentiles (0..1) of `v`, sorting it in place. Empty input gives zeros.
pub fn percentiles<const N: usize>(v: &mut [f64], ps: [f64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    if v.is_empty() {
        return out;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    for (o, p) in out.iter_mut().zip(ps) {
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        *o = v[idx.min(v.len() - 1)];
    }
    out
}

/// Analysis of a capacity-step run, per step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAnalysis {
    pub from_s: f64,
    pub to_s: f64,
    pub capacity_bps: u64,
    /// Seconds from the step until the flow converged (None: never).
    pub convergence_s: Option<f64>,
    /// p95 of per-packet queuing delay after convergence, ms.
    pub p95_queue_ms: f64,
    /// Delivered / capacity after convergence.
    pub utilization: f64,
}

impl std::fmt::Display for StepAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>3.0}–{:<3.0} s at {:>4.1} Mbit/s: converged after {}, then p95 queue {:.1} ms, utilization {:.1} %",
            self.from_s,
            self.to_s,
            self.capacity_bps as f64 / 1e6,
            self.convergence_s
                .map_or("never".into(), |c| format!("{c:.2} s")),
            self.p95_queue_ms,
            self.utilization * 100.0
        )
    }
}

/// Converged at `t`: over the 500 ms ending at `t` the flows offered between 80 % and 110 % of
/// the capacity, and at `t` the bottleneck queue had drained below 20 ms.
pub fn analyze_steps(s: &Scenario, r: &ScenarioResult) -> Vec<StepAnalysis> {
    let mut bounds: Vec<(f64, u64)> = vec![(0.0, s.forward.rate_bps)];
    bounds.extend(s.capacity_steps.iter().map(|(t, c)| (t.as_secs_f64(), *c)));
    let end = s.duration.as_secs_f64();
    let window = (0.5 / s.sample_every.as_secs_f64()).round().max(1.0) as usize;
    bounds
        .iter()
        .enumerate()
        .map(|(k, &(from, cap))| {
            let to = bounds.get(k + 1).map_or(end, |b| b.0);
            let rows: Vec<&Sample> = r
                .timeline
                .iter()
                .filter(|x| x.t > from && x.t <= to)
                .collect();
            let conv = (window..=rows.len()).find(|&j| {
                let w = &rows[j - window..j];
                let sent = w
                    .iter()
                    .map(|x| x.send_bps.iter().sum::<u64>() as f64)
                    .sum::<f64>()
                    / w.len() as f64;
                let last = w[w.len() - 1];
                (0.8 * cap as f64..=1.1 * cap as f64).contains(&sent) && last.queue_ms < 20.0
            });
            let conv_t = conv.map(|j| rows[j - 1].t);
            let from_conv = conv_t.unwrap_or(to);
            let mut q: Vec<f64> = r
                .packet_queue
                .iter()
                .filter(|p| p.0 > from_conv && p.0 <= to)
                .map(|p| p.1)
                .collect();
            let after: Vec<&&Sample> = rows.iter().filter(|x| x.t > from_conv).collect();
            let utilization = if after.is_empty() {
                0.0
            } else {
                after.iter().map(|x| x.delivered_bps as f64).sum::<f64>()
                    / after.len() as f64
                    / cap as f64
            };
            StepAnalysis {
                from_s: from,
                to_s: to,
                capacity_bps: cap,
                convergence_s: conv_t.map(|t| t - from),
                p95_queue_ms: percentiles(&mut q, [0.95])[0],
                utilization,
            }
        })
        .collect()
}

/// Whole-run figures, skipping the first `warmup`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunFigures {
    pub p50_queue_ms: f64,
    pub p95_queue_ms: f64,
    pub utilization: f64,
}

pub fn run_figures(s: &Scenario, r: &ScenarioResult, warmup: Duration) -> RunFigures {
    let w = warmup.as_secs_f64();
    let mut q: Vec<f64> = r
        .packet_queue
        .iter()
        .filter(|p| p.0 > w)
        .map(|p| p.1)
        .collect();
    let [p50, p95] = percentiles(&mut q, [0.5, 0.95]);
    let rows: Vec<&Sample> = r.timeline.iter().filter(|x| x.t > w).collect();
    let (mut d, mut c) = (0.0, 0.0);
    for x in rows {
        d += x.delivered_bps as f64;
        c += s.capacity_at(Duration::from_secs_f64(x.t)) as f64;
    }
    RunFigures {
        p50_queue_ms: p50,
        p95_queue_ms: p95,
        utilization: if c > 0.0 { d / c } else { 0.0 },
    }
}

/// Jain's fairness index of the flows' mean send rates over `[from, to)` seconds.
pub fn jain_fairness(r: &ScenarioResult, from: f64, to: f64) -> (f64, Vec<f64>) {
    let rows: Vec<&Sample> = r
        .timeline
        .iter()
        .filter(|x| x.t >= from && x.t < to)
        .collect();
    let n = r.flows.len();
    let rates: Vec<f64> = (0..n)
        .map(|i| rows.iter().map(|x| x.send_bps[i] as f64).sum::<f64>() / rows.len().max(1) as f64)
        .collect();
    let sum: f64 = rates.iter().sum();
    let sq: f64 = rates.iter().map(|x| x * x).sum();
    let j = if sq > 0.0 {
        sum * sum / (n as f64 * sq)
    } else {
        0.0
    };
    (j, rates)
}

/// A loss model in words, for printing.
pub fn describe_loss(l: &LossModel) -> String {
    match l {
        LossModel::None => "no loss".into(),
        LossModel::Random { p } => format!("{:.1} % random loss", p * 100.0),
        m @ LossModel::GilbertElliott { .. } => {
            format!("{:.1} % burst loss", m.mean_loss() * 100.0)
        }
    }
}
