//! DELTA, RIFT's delay-based congestion controller, and the baselines it is measured against.
//!
//! DELTA watches the queuing delay (one-way delay above its windowed minimum) and its trend, and
//! aims at a near-empty bottleneck queue: it backs off as soon as a standing queue appears,
//! drains it, and climbs back using the capacity that frame trains reveal. Its outputs drive the
//! encoder bitrate, the FEC ratio and scheme, the pacer and, as a last resort, the frame rate.
//! docs/DELTA.md explains every parameter.

use crate::feedback::FeedbackReport;
use crate::media::FecPlan;
use crate::wire::FecScheme;
use std::time::{Duration, Instant};

/// Share of the send rate taken by RIFT, UDP and IP headers and the AEAD tag on full-size media
/// packets (14 + 24 + 16 + 28 bytes per 1200 payload bytes); the encoder gets the rest.
pub const PACKET_OVERHEAD: f64 = 82.0 / 1200.0;

/// Encoder bitrate that, with FEC and packet overhead, fills `target_bps`.
pub fn encoder_bitrate(target_bps: f64, fec_ratio: f64) -> u64 {
    (target_bps / (1.0 + fec_ratio) / (1.0 + PACKET_OVERHEAD)) as u64
}

/// The controller's view of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeltaState {
    /// No standing queue: the rate may grow.
    Stable,
    /// A queue is forming: hold the rate.
    Rising,
    /// A standing queue (or heavy loss): cut the rate and drain.
    Congested,
}

/// What the controller wants the sender to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub state: DeltaState,
    /// Total send rate: media plus FEC, bit/s.
    pub target_bps: u64,
    /// Bitrate for the encoder: the target less FEC and packet overhead.
    pub encoder_bps: u64,
    pub fec: FecPlan,
    /// Rate at which the pacer releases media packets.
    pub pacer_bps: u64,
    /// Frame rate the encoder should run at (steps down when the bitrate cannot carry it).
    pub fps: f64,
}

/// A congestion controller fed by transport feedback.
pub trait CongestionController: Send {
    fn on_feedback(&mut self, report: &FeedbackReport);
    /// A frame of `wire_bytes` (parity and headers included) was queued for sending.
    fn on_frame(&mut self, _now: Instant, _wire_bytes: usize) {}
    fn decision(&self) -> RateDecision;
    fn name(&self) -> &'static str;
}

/// FEC redundancy from measured loss, shared by every controller so comparisons isolate the
/// rate logic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecPolicy {
    pub min_ratio: f64,
    pub max_ratio: f64,
    /// Ratio added per unit of loss rate.
    pub loss_gain: f64,
    /// Mean loss-run length above which Reed-Solomon replaces XOR.
    pub burst_threshold: f64,
}

impl Default for FecPolicy {
    fn default() -> Self {
        FecPolicy {
            min_ratio: 0.05,
            max_ratio: 0.5,
            loss_gain: 3.0,
            burst_threshold: 1.5,
        }
    }
}

impl FecPolicy {
    pub fn plan(&self, loss_rate: f64, burst_len: f64) -> FecPlan {
        let ratio =
            (self.min_ratio + self.loss_gain * loss_rate).clamp(self.min_ratio, self.max_ratio);
        let scheme = if burst_len > self.burst_threshold {
            FecScheme::ReedSolomon
        } else {
            FecScheme::Xor
        };
        FecPlan { scheme, ratio }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeltaConfig {
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
    /// Queuing delay below which the path counts as empty.
    pub q_low: Duration,
    /// Queuing delay at which the path counts as congested.
    pub q_high: Duration,
    /// Queuing-delay slope (ms per second) that counts as a queue forming.
    pub rising_gradient: f64,
    /// Loss rate that counts as congestion even without delay (a policer, a shallow buffer).
    pub loss_congested: f64,
    /// Multiplier applied to the receive rate on congestion.
    pub backoff: f64,
    /// Time over which a measured standing queue is drained after a cut.
    pub drain_time: Duration,
    /// Additive increase while stable, bit/s per second.
    pub additive_bps_per_s: u64,
    /// Fraction of the gap to the capacity estimate closed per report while stable.
    pub probe_gain: f64,
    /// Fraction of the capacity estimate the probe aims at.
    pub probe_target: f64,
    /// Largest multiplicative growth per report.
    pub max_growth: f64,
    /// Pacer rate as a multiple of the target rate: the least it paces at.
    pub pacing_gain: f64,
    /// Where frame trains show the bottleneck's rate (they arrived spread out), the pacer runs
    /// at this share of it: a frame then crosses as fast as the path can carry it, without
    /// building a queue of its own.
    pub pacing_capacity: f64,
    /// Where trains arrived as fast as they were sent (the bottleneck is faster still), the
    /// pacer tries this multiple of the fastest such train.
    pub pacing_probe: f64,
    /// The pacer never goes faster than this, bit/s: a frame that leaves in well under a
    /// millisecond gains nothing from more, and a receiver's socket buffer takes the burst.
    pub max_pacer_bps: u64,
    /// A frame this many times the average size (a keyframe) is a burst whose own queue does
    /// not count as congestion while it drains.
    pub burst_factor: f64,
    /// Never let the target run further ahead of the measured receive rate than this factor
    /// (keeps an application-limited sender from inflating its target).
    pub max_over_recv: f64,
    pub fec: FecPolicy,
    pub max_fps: f64,
    pub min_fps: f64,
    /// Encoder bits per frame below which the frame rate halves.
    pub min_bits_per_frame: u64,
    /// How long the bitrate must allow the higher frame rate before it is restored.
    pub fps_recovery: Duration,
}

impl Default for DeltaConfig {
    fn default() -> Self {
        DeltaConfig {
            initial_bps: 1_500_000,
            min_bps: 200_000,
            max_bps: 200_000_000,
            q_low: Duration::from_millis(3),
            q_high: Duration::from_millis(10),
            rising_gradient: 20.0,
            loss_congested: 0.25,
            backoff: 0.9,
            drain_time: Duration::from_millis(400),
            additive_bps_per_s: 400_000,
            probe_gain: 0.25,
            probe_target: 0.92,
            max_growth: 1.1,
            pacing_gain: 1.5,
            pacing_capacity: 0.95,
            pacing_probe: 2.0,
            max_pacer_bps: 500_000_000,
            burst_factor: 2.5,
            max_over_recv: 1.5,
            fec: FecPolicy::default(),
            max_fps: 60.0,
            min_fps: 15.0,
            min_bits_per_frame: 20_000,
            fps_recovery: Duration::from_secs(2),
        }
    }
}

/// The DELTA controller.
pub struct Delta {
    cfg: DeltaConfig,
    state: DeltaState,
    target: f64,
    fec: FecPlan,
    fps: f64,
    last_report: Option<Instant>,
    hold_until: Option<Instant>,
    fps_ok_since: Option<Instant>,
    /// Smoothed size of ordinary frames, bytes.
    avg_frame: Option<f64>,
    /// A frame far above average (a keyframe) is draining until then, adding up to `burst_delay`
    /// of queue that is ours, expected, and gone by itself.
    burst_until: Option<Instant>,
    burst_delay: Duration,
    srtt: Duration,
    /// Rate to restore once a drained queue is gone.
    recover_to: Option<f64>,
    /// The pacing rate the path's measured capacity allows (before the `pacing_gain` floor).
    path_pace: Option<f64>,
}

impl Delta {
    pub fn new(cfg: DeltaConfig) -> Self {
        Delta {
            state: DeltaState::Stable,
            target: cfg.initial_bps as f64,
            fec: cfg.fec.plan(0.0, 1.0),
            fps: cfg.max_fps,
            last_report: None,
            hold_until: None,
            fps_ok_since: None,
            avg_frame: None,
            burst_until: None,
            burst_delay: Duration::ZERO,
            srtt: crate::rtt::INITIAL_RTT,
            recover_to: None,
            path_pace: None,
            cfg,
        }
    }

    pub fn config(&self) -> &DeltaConfig {
        &self.cfg
    }

    /// Pacing at the path's rate, not the target's: a frame paced at `gain × target` on a path
    /// ten times faster waits in the pacer for no reason (5 ms of a 16.7 ms frame at 20 Mbit/s
    /// on a 300 Mbit/s path in the fast-path scenario). Never below `gain × target`, so the
    /// pacer always drains faster than the encoder fills it.
    fn pacer_bps(&self) -> u64 {
        let floor = self.target * self.cfg.pacing_gain;
        let pace = self.path_pace.map_or(floor, |p| p.max(floor));
        (pace as u64).min(self.cfg.max_pacer_bps.max(floor as u64))
    }

    /// Thresholds never below a few packets' serialization time: at low rates one full-size
    /// packet alone takes milliseconds, and a frame's first packet often waits for the last
    /// packet of the frame before.
    fn thresholds(&self) -> (Duration, Duration) {
        let packet = Duration::from_secs_f64(1282.0 * 8.0 / self.target.max(1.0));
        (
            self.cfg.q_low.max(packet.mul_f64(1.5)),
            self.cfg.q_high.max(packet * 2),
        )
    }

    fn classify(&self, r: &FeedbackReport) -> DeltaState {
        let (q_low, mut q_high) = self.thresholds();
        if self.burst_until.is_some_and(|t| r.at < t) {
            q_high += self.burst_delay;
        }
        // Loss of this report alone: the one-second window would keep signalling long after
        // a queue overflow has been dealt with.
        let recent_loss = if r.packets >= 8 {
            r.lost as f64 / r.packets as f64
        } else {
            0.0
        };
        if r.queue_delay >= q_high || recent_loss >= self.cfg.loss_congested {
            DeltaState::Congested
        } else if r.queue_delay >= q_low
            || (r.delay_gradient > self.cfg.rising_gradient && r.queue_delay_mean >= q_low)
        {
            DeltaState::Rising
        } else {
            DeltaState::Stable
        }
    }

    fn update_fps(&mut self, now: Instant) {
        let encoder = encoder_bitrate(self.target, self.fec.ratio) as f64;
        let min_bits = self.cfg.min_bits_per_frame as f64;
        while self.fps > self.cfg.min_fps && encoder / self.fps < min_bits {
            self.fps = (self.fps / 2.0).max(self.cfg.min_fps);
            self.fps_ok_since = None;
        }
        let up = (self.fps * 2.0).min(self.cfg.max_fps);
        if up > self.fps && encoder / up >= 1.3 * min_bits {
            let since = *self.fps_ok_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.cfg.fps_recovery {
                self.fps = up;
                self.fps_ok_since = None;
            }
        } else {
            self.fps_ok_since = None;
        }
    }
}

impl CongestionController for Delta {
    fn on_frame(&mut self, now: Instant, wire_bytes: usize) {
        let bytes = wire_bytes as f64;
        match self.avg_frame {
            Some(avg) if bytes > self.cfg.burst_factor * avg => {
                let drain = Duration::from_secs_f64(bytes * 8.0 / self.target.max(1.0));
                self.burst_delay = drain;
                self.burst_until = Some(now + drain + self.srtt + Duration::from_millis(50));
            }
            _ => self.avg_frame = Some(self.avg_frame.map_or(bytes, |a| 0.95 * a + 0.05 * bytes)),
        }
    }

    fn on_feedback(&mut self, r: &FeedbackReport) {
        let now = r.at;
        self.srtt = r.srtt;
        let dt = self
            .last_report
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_millis(100))
            .as_secs_f64();
        self.last_report = Some(now);
        self.fec = self.cfg.fec.plan(r.loss_rate, r.burst_len);
        self.path_pace = match (r.capacity_bps, r.capacity_floor_bps) {
            (Some(c), _) => Some(c as f64 * self.cfg.pacing_capacity),
            (None, Some(f)) => Some(f as f64 * self.cfg.pacing_probe),
            (None, None) => None,
        };
        self.state = self.classify(r);
        let recv = r.recv_rate_bps.map(|b| b as f64);
        match self.state {
            DeltaState::Congested => {
                // Cut once per round trip, and again only if the queue is not already
                // draining: the reports after a cut still show the queue it left behind.
                let draining = r.delay_gradient < 0.0 && self.hold_until.is_some();
                if self.hold_until.is_none_or(|t| now >= t) && !draining {
                    // From the receive rate, which a standing queue pins at the bottleneck's
                    // rate, so repeated cuts while the queue drains do not compound.
                    let q = r.queue_delay.as_secs_f64();
                    let drain = 1.0 - (q / self.cfg.drain_time.as_secs_f64()).min(0.5);
                    let base = recv.unwrap_or(self.target) * self.cfg.backoff;
                    self.target = self.target.min(base * drain);
                    // Once the queue has drained, come straight back to the rate the path
                    // carried: the drain term was for the queue, not a verdict on capacity.
                    self.recover_to = Some(base.min(self.target / drain));
                    self.hold_until = Some(now + r.srtt + Duration::from_millis(50));
                }
            }
            DeltaState::Rising => {
                // Hold: a queue is forming but not standing yet. Cutting here to the receive
                // rate would punish an application-limited sender (a static screen, the
                // frames after a keyframe) for rate it never used.
            }
            DeltaState::Stable => {
                if self.hold_until.is_some_and(|t| now < t) {
                    // Still inside the post-cut hold: let the queue finish draining.
                } else if let Some(r) = self.recover_to.take() {
                    self.target = self.target.max(r);
                } else {
                    let mut next = self.target + self.cfg.additive_bps_per_s as f64 * dt;
                    let probe = match (r.capacity_bps, r.capacity_floor_bps) {
                        (Some(c), _) => Some(c as f64),
                        (None, Some(f)) => Some(f as f64),
                        _ => None,
                    };
                    if let Some(c) = probe {
                        let aim = c * self.cfg.probe_target;
                        if aim > next {
                            next += (aim - next) * self.cfg.probe_gain;
                        }
                    }
                    next = next.min(self.target * self.cfg.max_growth);
                    if let Some(rr) = recv {
                        next = next.min((rr * self.cfg.max_over_recv).max(self.target));
                    }
                    self.target = next.max(self.target);
                }
            }
        }
        self.target = self
            .target
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
        self.update_fps(now);
    }

    fn decision(&self) -> RateDecision {
        let target = self.target as u64;
        RateDecision {
            state: self.state,
            target_bps: target,
            encoder_bps: encoder_bitrate(self.target, self.fec.ratio),
            fec: self.fec,
            pacer_bps: self.pacer_bps(),
            fps: self.fps,
        }
    }

    fn name(&self) -> &'static str {
        "DELTA"
    }
}

/// Baseline: a fixed bitrate, as Moonlight/Sunshine stream by default.
pub struct FixedRate {
    bps: u64,
    fec: FecPolicy,
    plan: FecPlan,
    fps: f64,
    pacing_gain: f64,
}

impl FixedRate {
    pub fn new(bps: u64, fps: f64) -> Self {
        let fec = FecPolicy::default();
        FixedRate {
            bps,
            plan: fec.plan(0.0, 1.0),
            fec,
            fps,
            pacing_gain: DeltaConfig::default().pacing_gain,
        }
    }
}

impl CongestionController for FixedRate {
    fn on_feedback(&mut self, r: &FeedbackReport) {
        self.plan = self.fec.plan(r.loss_rate, r.burst_len);
    }

    fn decision(&self) -> RateDecision {
        RateDecision {
            state: DeltaState::Stable,
            target_bps: self.bps,
            encoder_bps: encoder_bitrate(self.bps as f64, self.plan.ratio),
            fec: self.plan,
            pacer_bps: (self.bps as f64 * self.pacing_gain) as u64,
            fps: self.fps,
        }
    }

    fn name(&self) -> &'static str {
        "fixed"
    }
}

/// Baseline: loss-threshold adaptive bitrate. More than 5 % loss: −30 %; more than 2 % for 2 s:
/// −10 %; 4 s without loss: +5 %.
pub struct LossAbr {
    bps: f64,
    min_bps: f64,
    max_bps: f64,
    fec: FecPolicy,
    plan: FecPlan,
    fps: f64,
    pacing_gain: f64,
    above_2_since: Option<Instant>,
    clean_since: Option<Instant>,
    last_cut: Option<Instant>,
}

impl LossAbr {
    pub fn new(initial_bps: u64, fps: f64) -> Self {
        let fec = FecPolicy::default();
        LossAbr {
            bps: initial_bps as f64,
            min_bps: 200_000.0,
            max_bps: 200_000_000.0,
            plan: fec.plan(0.0, 1.0),
            fec,
            fps,
            pacing_gain: DeltaConfig::default().pacing_gain,
            above_2_since: None,
            clean_since: None,
            last_cut: None,
        }
    }
}

impl CongestionController for LossAbr {
    fn on_feedback(&mut self, r: &FeedbackReport) {
        let now = r.at;
        self.plan = self.fec.plan(r.loss_rate, r.burst_len);
        // The loss window is one second: give a cut that long to show its effect.
        let cooled = self
            .last_cut
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        let loss = r.loss_rate;
        if loss > 0.05 && cooled {
            self.bps *= 0.7;
            self.last_cut = Some(now);
            self.above_2_since = None;
        } else if loss > 0.02 {
            let since = *self.above_2_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= Duration::from_secs(2) && cooled {
                self.bps *= 0.9;
                self.last_cut = Some(now);
                self.above_2_since = None;
            }
        } else {
            self.above_2_since = None;
        }
        if r.lost == 0 && loss == 0.0 {
            let since = *self.clean_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= Duration::from_secs(4) {
                self.bps *= 1.05;
                self.clean_since = Some(now);
            }
        } else {
            self.clean_since = None;
        }
        self.bps = self.bps.clamp(self.min_bps, self.max_bps);
    }

    fn decision(&self) -> RateDecision {
        RateDecision {
            state: DeltaState::Stable,
            target_bps: self.bps as u64,
            encoder_bps: encoder_bitrate(self.bps, self.plan.ratio),
            fec: self.plan,
            pacer_bps: (self.bps * self.pacing_gain) as u64,
            fps: self.fps,
        }
    }

    fn name(&self) -> &'static str {
        "loss-ABR"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(at: Instant, q_ms: f64, recv_bps: u64) -> FeedbackReport {
        FeedbackReport {
            at,
            rtt_sample: Some(Duration::from_millis(50)),
            srtt: Duration::from_millis(50),
            min_rtt: Duration::from_millis(50),
            packets: 40,
            lost: 0,
            loss_rate: 0.0,
            burst_len: 1.0,
            recv_rate_bps: Some(recv_bps),
            queue_delay: Duration::from_secs_f64(q_ms / 1000.0),
            queue_delay_mean: Duration::from_secs_f64(q_ms / 1000.0),
            delay_gradient: 0.0,
            capacity_bps: None,
            capacity_floor_bps: None,
        }
    }

    fn delta(initial: u64) -> Delta {
        Delta::new(DeltaConfig {
            initial_bps: initial,
            ..DeltaConfig::default()
        })
    }

    #[test]
    fn congestion_cuts_from_the_receive_rate_once_per_round_trip() {
        let t0 = Instant::now();
        let mut d = delta(10_000_000);
        d.on_feedback(&report(t0, 50.0, 2_500_000));
        let first = d.decision();
        assert_eq!(first.state, DeltaState::Congested);
        // 2.5 Mbit/s × 0.9 × (1 − 50/400).
        assert!((first.target_bps as f64 - 2_500_000.0 * 0.9 * 0.875).abs() < 1000.0);
        // Still congested a report later: the queue is the one the cut is draining.
        d.on_feedback(&report(t0 + Duration::from_millis(25), 60.0, 2_500_000));
        assert_eq!(d.decision().target_bps, first.target_bps);
        // After the hold, a queue that still grows earns another cut, never a raise.
        d.on_feedback(&report(t0 + Duration::from_millis(200), 60.0, 1_500_000));
        assert!(d.decision().target_bps < first.target_bps);
    }

    #[test]
    fn the_pacer_follows_the_path_not_the_target() {
        let t0 = Instant::now();
        let mut d = delta(10_000_000);
        // Nothing known of the path: gain × target.
        assert_eq!(d.decision().pacer_bps, 15_000_000);
        // Trains crossed undispersed at 15 Mbit/s: the path is faster still, try twice that.
        let mut r = report(t0, 0.5, 10_000_000);
        r.capacity_floor_bps = Some(15_000_000);
        d.on_feedback(&r);
        assert_eq!(d.decision().pacer_bps, 30_000_000);
        // A train spread out at 100 Mbit/s: pace just under the bottleneck.
        r.at += Duration::from_millis(25);
        r.capacity_bps = Some(100_000_000);
        d.on_feedback(&r);
        assert_eq!(d.decision().pacer_bps, 95_000_000);
        // A bottleneck below gain × target never slows the pacer below the encoder's rate.
        r.at += Duration::from_millis(25);
        r.capacity_bps = Some(8_000_000);
        d.on_feedback(&r);
        let dec = d.decision();
        assert_eq!(dec.pacer_bps, (dec.target_bps as f64 * 1.5) as u64);
        // However fast the path, at most `max_pacer_bps`.
        r.at += Duration::from_millis(25);
        r.capacity_bps = None;
        r.capacity_floor_bps = Some(10_000_000_000);
        d.on_feedback(&r);
        assert_eq!(d.decision().pacer_bps, 500_000_000);
    }

    #[test]
    fn rising_holds_and_stable_grows_toward_the_measured_capacity() {
        let t0 = Instant::now();
        let mut d = delta(2_000_000);
        // At 2 Mbit/s one packet takes 5.1 ms, so Rising starts at 7.7 ms and Congested at 12.8.
        d.on_feedback(&report(t0, 9.0, 2_000_000));
        assert_eq!(d.decision().state, DeltaState::Rising);
        assert_eq!(d.decision().target_bps, 2_000_000);
        let mut t = t0;
        for _ in 0..40 {
            t += Duration::from_millis(25);
            let mut r = report(t, 0.5, d.decision().target_bps);
            r.capacity_bps = Some(6_000_000);
            d.on_feedback(&r);
        }
        let got = d.decision().target_bps as f64;
        assert!(got > 5_000_000.0 && got < 6_000_000.0, "{got}");
    }

    #[test]
    fn application_limited_sender_does_not_inflate_its_target() {
        let t0 = Instant::now();
        let mut d = delta(2_000_000);
        for i in 1..200 {
            d.on_feedback(&report(t0 + Duration::from_millis(25 * i), 0.0, 300_000));
        }
        assert!(d.decision().target_bps <= 2_000_000);
    }

    #[test]
    fn keyframe_queue_is_not_congestion() {
        let t0 = Instant::now();
        let mut d = delta(4_000_000);
        for i in 0..20 {
            d.on_frame(t0 + Duration::from_millis(16 * i), 8_000);
        }
        // A 60 kB keyframe at 4 Mbit/s drains in 120 ms: its queue must not cut the rate.
        d.on_frame(t0 + Duration::from_millis(400), 60_000);
        d.on_feedback(&report(t0 + Duration::from_millis(450), 80.0, 4_000_000));
        assert_ne!(d.decision().state, DeltaState::Congested);
        assert_eq!(d.decision().target_bps, 4_000_000);
        // Long after it, the same queue is congestion.
        d.on_feedback(&report(t0 + Duration::from_secs(2), 80.0, 4_000_000));
        assert_eq!(d.decision().state, DeltaState::Congested);
    }

    #[test]
    fn frame_rate_steps_down_and_recovers() {
        let t0 = Instant::now();
        let mut d = delta(1_000_000);
        // 20 kbit per frame at 60 fps needs 1.2 Mbit/s of encoder rate.
        d.on_feedback(&report(t0, 0.0, 1_000_000));
        assert_eq!(d.decision().fps, 30.0);
        let mut t = t0;
        for _ in 0..200 {
            t += Duration::from_millis(25);
            let mut r = report(t, 0.0, d.decision().target_bps);
            r.capacity_bps = Some(5_000_000);
            d.on_feedback(&r);
        }
        assert_eq!(d.decision().fps, 60.0);
    }

    #[test]
    fn fec_follows_loss_and_burstiness() {
        let p = FecPolicy::default();
        assert_eq!(
            p.plan(0.0, 1.0),
            FecPlan {
                scheme: FecScheme::Xor,
                ratio: 0.05
            }
        );
        assert!((p.plan(0.05, 1.0).ratio - 0.20).abs() < 1e-9);
        assert_eq!(p.plan(0.5, 1.0).ratio, 0.5);
        assert_eq!(p.plan(0.02, 3.0).scheme, FecScheme::ReedSolomon);
    }

    #[test]
    fn loss_abr_follows_its_rules() {
        let t0 = Instant::now();
        let mut c = LossAbr::new(10_000_000, 60.0);
        let mut r = report(t0, 0.0, 0);
        r.loss_rate = 0.06;
        r.lost = 3;
        c.on_feedback(&r);
        assert_eq!(c.decision().target_bps, 7_000_000);
        r.loss_rate = 0.0;
        r.lost = 0;
        for i in 1..=161 {
            r.at = t0 + Duration::from_millis(25 * i);
            c.on_feedback(&r);
        }
        assert_eq!(c.decision().target_bps, 7_350_000);
    }
}
