//! Transport-wide feedback: the receiver reports every packet's arrival time; the sender turns
//! the reports into RTT, queuing delay and its trend, loss, receive rate and a bottleneck
//! capacity estimate from the dispersion of each frame's packet train.
//!
//! A packet can carry two arrival times: when the receiver read it, and when it reached the
//! receiver's socket (a kernel stamp, where the transport has one). Queuing delay is measured
//! on read times, so a receiver that falls behind its socket shows as delay; train dispersion
//! on socket times, so the receiver's wake-ups do not pass for a slow path.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::rtt::RttEstimator;
use crate::wire::{
    zigzag, ArrivalTimes, Body, EncodeError, Feedback, Writer, MAX_BODY, MAX_FEEDBACK_PACKETS,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes of a feedback body before its bitmap and deltas.
const FEEDBACK_FIXED: usize = 4 + 8 + 2 + 8 + 4;
/// Packet numbers the recorder tracks ahead of the last report before it gives up older ones.
const RECORDER_SPAN: u64 = 4 * MAX_FEEDBACK_PACKETS as u64;
/// Packet numbers waiting that make a report due at once, before its interval: about what one
/// report body holds (2–3 bytes a packet). One report per interval would otherwise cover only
/// ≈ 25 000 packets/s, and beyond that rate the sender would see a fraction of the arrivals and
/// underrate the receive rate.
pub const REPORT_EARLY_PACKETS: usize = 512;

/// Receiver side: records arrivals and emits feedback bodies every `interval`.
pub struct FeedbackRecorder {
    epoch: Instant,
    interval: Duration,
    base: u64,
    /// Arrival times (µs since epoch) of packet `base + i`, if it arrived.
    arrivals: VecDeque<Option<Recorded>>,
    last_sent: Option<Instant>,
    seq: u32,
    bitmap: Vec<u8>,
    deltas: Vec<u8>,
    socket_deltas: Vec<u8>,
}

/// A packet's read time and, when the transport stamped it, its socket arrival time.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    read: u64,
    socket: Option<u64>,
}

impl FeedbackRecorder {
    /// `epoch` is any fixed instant; arrival times are reported relative to it.
    pub fn new(epoch: Instant, interval: Duration) -> Self {
        FeedbackRecorder {
            epoch,
            interval,
            base: 0,
            arrivals: VecDeque::new(),
            last_sent: None,
            seq: 0,
            bitmap: Vec::with_capacity(MAX_FEEDBACK_PACKETS / 8),
            deltas: Vec::with_capacity(MAX_BODY),
            socket_deltas: Vec::with_capacity(MAX_BODY),
        }
    }

    fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Record a packet's arrival. Packets older than the last report are ignored: the sender
    /// already counted them lost, which costs a little loss estimate under heavy reordering.
    pub fn on_packet(&mut self, now: Instant, pn: u64) {
        self.on_packet_stamped(now, None, pn);
    }

    /// Record a packet read at `now` that reached the socket at `socket` (a kernel receive
    /// stamp; `None` when there is none, and then the read time stands for both).
    pub fn on_packet_stamped(&mut self, now: Instant, socket: Option<Instant>, pn: u64) {
        if pn < self.base {
            return;
        }
        if pn - self.base >= RECORDER_SPAN {
            let new_base = pn + 1 - RECORDER_SPAN / 2;
            let drop = (new_base - self.base).min(self.arrivals.len() as u64) as usize;
            self.arrivals.drain(..drop);
            self.base = new_base;
            if self.arrivals.is_empty() {
                self.base = pn;
            }
        }
        let i = (pn - self.base) as usize;
        if i >= self.arrivals.len() {
            self.arrivals.resize(i + 1, None);
        }
        let read = self.us(now);
        // Never after the read: a stamp from a stepped clock must not invert the two.
        let socket = socket.map(|s| self.us(s).min(read));
        if let Some(a) = self.arrivals.get_mut(i) {
            a.get_or_insert(Recorded { read, socket });
        }
    }

    /// When the next report is due, if anything is waiting to be reported.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.arrivals.is_empty() {
            return None;
        }
        if self.arrivals.len() >= REPORT_EARLY_PACKETS {
            return Some(self.last_sent.unwrap_or(self.epoch));
        }
        Some(self.last_sent.map_or(self.epoch, |t| t + self.interval))
    }

    /// Encode the next feedback body into `out` if one is due.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<usize>, EncodeError> {
        if self.next_timeout().is_none_or(|t| now < t) {
            return Ok(None);
        }
        let now_us = self.us(now);
        self.bitmap.clear();
        self.deltas.clear();
        self.socket_deltas.clear();
        // Socket times only when the transport stamps packets: a sans-stamp report is as small
        // as before.
        let stamped = self
            .arrivals
            .iter()
            .take(MAX_FEEDBACK_PACKETS)
            .any(|a| a.is_some_and(|r| r.socket.is_some()));
        let (mut count, mut covered) = (0usize, 0usize);
        let (mut reference, mut prev, mut prev_socket, mut last_arrival) =
            (None, None::<u64>, None::<u64>, 0u64);
        // One varint each for the read and the socket delta.
        let (mut read_scratch, mut socket_scratch) = ([0u8; 10], [0u8; 10]);
        for (i, a) in self.arrivals.iter().enumerate().take(MAX_FEEDBACK_PACKETS) {
            let body = |bitmap: &[u8]| {
                FEEDBACK_FIXED + bitmap.len() + self.deltas.len() + self.socket_deltas.len()
            };
            if i % 8 == 0 {
                if body(&self.bitmap) + 1 + read_scratch.len() + socket_scratch.len() > MAX_BODY {
                    break;
                }
                self.bitmap.push(0);
            }
            count = i + 1;
            if let Some(r) = *a {
                let t = r.read;
                let reference = *reference.get_or_insert(t);
                let mut w = Writer::new(&mut read_scratch);
                w.varint(zigzag(t as i64 - prev.unwrap_or(t) as i64))?;
                let delta = w.into_written();
                let socket = r.socket.unwrap_or(t);
                let mut w = Writer::new(&mut socket_scratch);
                if stamped {
                    let from = prev_socket.unwrap_or(reference);
                    w.varint(zigzag(socket as i64 - from as i64))?;
                }
                let socket_delta = w.into_written();
                if body(&self.bitmap) + delta.len() + socket_delta.len() > MAX_BODY {
                    count = i;
                    break;
                }
                self.deltas.extend_from_slice(delta);
                self.socket_deltas.extend_from_slice(socket_delta);
                // The byte for packets `i / 8 * 8 ..`, pushed above.
                if let Some(b) = self.bitmap.last_mut() {
                    *b |= 1 << (i % 8);
                }
                prev = Some(t);
                prev_socket = Some(socket);
                last_arrival = t;
                covered = i + 1;
            }
        }
        // End the report at the last received packet so the range never ends in unknowns.
        let Some(reference) = reference else {
            // A whole report's worth of losses: skip past them so later arrivals get reported.
            let skip = count.max(1).min(self.arrivals.len());
            self.arrivals.drain(..skip);
            self.base += skip as u64;
            return Ok(None);
        };
        self.bitmap.truncate(covered.div_ceil(8));
        if covered % 8 != 0 {
            if let Some(b) = self.bitmap.last_mut() {
                *b &= (1u8 << (covered % 8)) - 1;
            }
        }
        let fb = Feedback::from_parts(
            self.seq,
            self.base,
            covered as u16,
            reference,
            now_us.saturating_sub(last_arrival).min(u32::MAX as u64) as u32,
            &self.bitmap,
            &self.deltas,
        )
        .and_then(|fb| fb.with_socket_deltas(&self.socket_deltas))
        .map_err(|_| EncodeError::Invalid {
            field: "feedback",
            reason: "recorder produced an invalid report",
        })?;
        let n = Body::Feedback(fb).encode(out)?;
        self.seq = self.seq.wrapping_add(1);
        self.arrivals.drain(..covered);
        self.base += covered as u64;
        self.last_sent = Some(now);
        Ok(Some(n))
    }
}

/// What the sender remembers of each packet it sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    size: u32,
    /// Burst the packet belongs to (a frame's packets); 0 for packets outside any burst.
    train: u32,
    /// First packet of its train, or outside any train: its queuing delay is the standing
    /// queue, not the frame's own burst queuing behind its earlier packets.
    probe: bool,
    reported: bool,
}

/// Sender side: the history of sent packets and the estimators fed by feedback.
pub struct FeedbackAnalyzer {
    epoch: Instant,
    first_pn: u64,
    sent: VecDeque<Sent>,
    cap: usize,
    /// Minimum of (arrival − send) per one-second bucket, for the base one-way delay.
    owd_buckets: VecDeque<(u64, i64)>,
    owd_window_s: u64,
    trend: VecDeque<(f64, f64)>,
    trend_points: usize,
    arrivals: VecDeque<(u64, u32)>,
    rate_window_us: u64,
    loss: VecDeque<(Instant, u32, u32)>,
    loss_window: Duration,
    burst_len: f64,
    train: Option<Train>,
    capacity: VecDeque<(Instant, u64, bool)>,
    capacity_window: Duration,
    last_report: Option<FeedbackReport>,
    samples: Vec<(Sent, ArrivalTimes)>,
}

#[derive(Debug, Clone, Copy)]
struct Train {
    id: u32,
    packets: u32,
    bytes: u64,
    first_sent: Instant,
    last_sent: Instant,
    first_arrival: u64,
    last_arrival: u64,
    broken: bool,
}

/// Everything the sender learned from one feedback packet, plus the windowed estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackReport {
    pub at: Instant,
    pub rtt_sample: Option<Duration>,
    pub srtt: Duration,
    pub min_rtt: Duration,
    pub packets: u32,
    pub lost: u32,
    /// Loss over the last `loss_window`.
    pub loss_rate: f64,
    /// Mean length of loss runs (1.0 for isolated losses), smoothed.
    pub burst_len: f64,
    /// Receive rate over the last `rate_window`, bit/s.
    pub recv_rate_bps: Option<u64>,
    /// Smallest queuing delay seen in this report (one-way delay above its windowed minimum),
    /// over the packets that probe the standing queue: the first of each frame's train and
    /// packets outside trains.
    pub queue_delay: Duration,
    /// Mean queuing delay of this report's probe packets.
    pub queue_delay_mean: Duration,
    /// Slope of the queuing delay over the recent reports, milliseconds per second.
    pub delay_gradient: f64,
    /// Bottleneck capacity from packet-train dispersion, when trains were sent faster than
    /// the bottleneck passed them (median over the window), bit/s.
    pub capacity_bps: Option<u64>,
    /// The fastest train that passed undispersed: capacity is at least this, bit/s.
    pub capacity_floor_bps: Option<u64>,
}

impl FeedbackAnalyzer {
    pub fn new(epoch: Instant) -> Self {
        FeedbackAnalyzer {
            epoch,
            first_pn: 0,
            sent: VecDeque::new(),
            cap: 1 << 15,
            owd_buckets: VecDeque::new(),
            owd_window_s: 10,
            trend: VecDeque::new(),
            trend_points: 12,
            arrivals: VecDeque::new(),
            rate_window_us: 200_000,
            loss: VecDeque::new(),
            loss_window: Duration::from_secs(1),
            burst_len: 1.0,
            train: None,
            capacity: VecDeque::new(),
            capacity_window: Duration::from_millis(500),
            last_report: None,
            samples: Vec::new(),
        }
    }

    pub fn last_report(&self) -> Option<&FeedbackReport> {
        self.last_report.as_ref()
    }

    /// Remember a sent packet. Packet numbers must be consecutive.
    pub fn on_sent(&mut self, pn: u64, now: Instant, size: usize, train: u32) {
        if self.sent.is_empty() {
            self.first_pn = pn;
        } else if pn != self.first_pn + self.sent.len() as u64 {
            self.sent.clear();
            self.first_pn = pn;
        }
        if self.sent.len() == self.cap {
            self.sent.pop_front();
            self.first_pn += 1;
        }
        let probe = train == 0 || self.sent.back().is_none_or(|p| p.train != train);
        self.sent.push_back(Sent {
            at: now,
            size: size as u32,
            train,
            probe,
            reported: false,
        });
    }

    fn sent_us(&self, t: Instant) -> i64 {
        t.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// Digest a feedback packet received at `now`. Its RTT sample goes into `rtt`, the
    /// connection's estimator, which the report's `srtt` and `min_rtt` then read.
    pub fn on_feedback(
        &mut self,
        now: Instant,
        fb: &Feedback<'_>,
        rtt: &mut RttEstimator,
    ) -> Option<FeedbackReport> {
        let (mut packets, mut lost, mut run, mut runs, mut run_total) =
            (0u32, 0u32, 0u32, 0u32, 0u32);
        let (mut q_min, mut q_sum, mut q_n) = (i64::MAX, 0i64, 0i64);
        let mut last_received: Option<Instant> = None;
        let mut samples = std::mem::take(&mut self.samples);
        samples.clear();
        for (pn, arrival) in fb.packets() {
            let Some(idx) = pn.checked_sub(self.first_pn) else {
                continue;
            };
            let Some(s) = self.sent.get_mut(idx as usize) else {
                continue;
            };
            if s.reported {
                continue;
            }
            s.reported = true;
            let s = *s;
            packets += 1;
            match arrival {
                None => {
                    lost += 1;
                    run += 1;
                }
                Some(a) => {
                    if run > 0 {
                        runs += 1;
                        run_total += run;
                        run = 0;
                    }
                    last_received = Some(s.at);
                    samples.push((s, a));
                }
            }
        }
        if run > 0 {
            runs += 1;
            run_total += run;
        }
        if packets == 0 {
            return None;
        }
        // RTT from the newest packet the report acknowledges, minus the receiver's hold time.
        let rtt_sample = last_received.map(|sent_at| {
            now.saturating_duration_since(sent_at)
                .saturating_sub(Duration::from_micros(fb.ack_delay_us as u64))
        });
        if let Some(r) = rtt_sample {
            rtt.on_sample(r);
        }
        for &(s, at) in &samples {
            let a = at.read_us;
            let owd = a as i64 - self.sent_us(s.at);
            let sec = (s.at.saturating_duration_since(self.epoch)).as_secs();
            match self.owd_buckets.back_mut() {
                Some((b, m)) if *b == sec => *m = (*m).min(owd),
                _ => self.owd_buckets.push_back((sec, owd)),
            }
            while self
                .owd_buckets
                .front()
                .is_some_and(|(b, _)| b + self.owd_window_s < sec)
            {
                self.owd_buckets.pop_front();
            }
            self.arrivals.push_back((a, s.size));
            // Dispersion on socket times: the path spread the train, not the receiver's reads.
            self.on_train_packet(now, s, at.socket_us.min(a));
        }
        let base = self.owd_buckets.iter().map(|(_, m)| *m).min().unwrap_or(0);
        for &(s, at) in samples.iter().filter(|(s, _)| s.probe) {
            let q = (at.read_us as i64 - self.sent_us(s.at) - base).max(0);
            q_min = q_min.min(q);
            q_sum += q;
            q_n += 1;
        }
        if lost > 0 && lost == packets {
            // A report of only losses: end any train in progress.
            if let Some(t) = self.train.as_mut() {
                t.broken = true;
            }
        }
        let newest = self.arrivals.back().map_or(0, |a| a.0);
        while self
            .arrivals
            .front()
            .is_some_and(|a| a.0 + self.rate_window_us < newest)
        {
            self.arrivals.pop_front();
        }
        let recv_rate_bps = match (self.arrivals.front(), self.arrivals.back()) {
            (Some(f), Some(l)) if l.0 > f.0 + 50_000 => {
                let bytes: u64 = self.arrivals.iter().skip(1).map(|a| a.1 as u64).sum();
                Some(bytes * 8 * 1_000_000 / (l.0 - f.0))
            }
            _ => None,
        };
        self.loss.push_back((now, packets, lost));
        while self
            .loss
            .front()
            .is_some_and(|l| now.saturating_duration_since(l.0) > self.loss_window)
        {
            self.loss.pop_front();
        }
        let (tot, los) = self
            .loss
            .iter()
            .fold((0u64, 0u64), |(t, l), x| (t + x.1 as u64, l + x.2 as u64));
        if runs > 0 {
            let mean = run_total as f64 / runs as f64;
            self.burst_len = 0.9 * self.burst_len + 0.1 * mean;
        }
        let (queue_delay, queue_delay_mean) = if q_n > 0 {
            (
                Duration::from_micros(q_min as u64),
                Duration::from_micros((q_sum / q_n) as u64),
            )
        } else {
            self.last_report
                .map_or((Duration::ZERO, Duration::ZERO), |r| {
                    (r.queue_delay, r.queue_delay_mean)
                })
        };
        let t = now.saturating_duration_since(self.epoch).as_secs_f64();
        if q_n > 0 {
            self.trend
                .push_back((t, queue_delay_mean.as_secs_f64() * 1000.0));
            if self.trend.len() > self.trend_points {
                self.trend.pop_front();
            }
        }
        self.samples = samples;
        self.capacity
            .retain(|c| now.saturating_duration_since(c.0) <= self.capacity_window);
        let report = FeedbackReport {
            at: now,
            rtt_sample,
            srtt: rtt.srtt(),
            min_rtt: rtt.min_rtt(),
            packets,
            lost,
            loss_rate: if tot > 0 {
                los as f64 / tot as f64
            } else {
                0.0
            },
            burst_len: self.burst_len,
            recv_rate_bps,
            queue_delay,
            queue_delay_mean,
            delay_gradient: slope(&self.trend),
            capacity_bps: median(self.capacity.iter().filter(|c| c.2).map(|c| c.1)),
            capacity_floor_bps: self.capacity.iter().filter(|c| !c.2).map(|c| c.1).max(),
        };
        self.last_report = Some(report);
        Some(report)
    }

    /// Follow packet trains (one frame's burst) and turn each finished one into a capacity
    /// sample: a train sent faster than it arrived was spread out by the bottleneck, so its
    /// arrival rate is the bottleneck rate; one that arrived as fast as it was sent only tells
    /// that capacity is at least that.
    fn on_train_packet(&mut self, now: Instant, s: Sent, arrival: u64) {
        match self.train.as_mut() {
            Some(t) if t.id == s.train && s.train != 0 => {
                t.packets += 1;
                t.bytes += s.size as u64;
                t.last_sent = s.at;
                t.last_arrival = t.last_arrival.max(arrival);
                return;
            }
            _ => {}
        }
        if let Some(t) = self.train.take() {
            self.finish_train(now, t);
        }
        if s.train != 0 {
            self.train = Some(Train {
                id: s.train,
                packets: 1,
                bytes: 0,
                first_sent: s.at,
                last_sent: s.at,
                first_arrival: arrival,
                last_arrival: arrival,
                broken: false,
            });
        }
    }

    fn finish_train(&mut self, now: Instant, t: Train) {
        if t.broken || t.packets < 2 {
            return;
        }
        let recv_us = t.last_arrival.saturating_sub(t.first_arrival);
        let send_us = t
            .last_sent
            .saturating_duration_since(t.first_sent)
            .as_micros() as u64;
        if recv_us < 200 {
            return;
        }
        let recv_rate = t.bytes * 8 * 1_000_000 / recv_us;
        let dispersed = send_us == 0 || recv_us as f64 > 1.15 * send_us as f64;
        self.capacity.push_back((now, recv_rate, dispersed));
    }
}

fn median(it: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = it.collect();
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(*v.select_nth_unstable(mid).1)
}

/// Least-squares slope of (x, y) points.
fn slope(points: &VecDeque<(f64, f64)>) -> f64 {
    let n = points.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), p| {
        (a + (p.0 - mx) * (p.1 - my), b + (p.0 - mx) * (p.0 - mx))
    });
    if den <= f64::EPSILON {
        0.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PacketType;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    /// Feed the recorder's next report to the analyzer.
    fn deliver(
        rec: &mut FeedbackRecorder,
        an: &mut FeedbackAnalyzer,
        now: Instant,
    ) -> FeedbackReport {
        let mut buf = [0u8; MAX_BODY];
        let n = rec.poll_transmit(now, &mut buf).unwrap().expect("a report");
        let Ok(Body::Feedback(fb)) = Body::decode(PacketType::Feedback, &buf[..n]) else {
            panic!("not a feedback body");
        };
        an.on_feedback(now, &fb, &mut RttEstimator::default())
            .expect("a report with packets")
    }

    /// A frame's train of 10 packets of 1250 bytes sent 100 µs apart from `at`, which reached
    /// the receiver's socket 1 ms later as sent (undispersed: the path is fast) and were read
    /// at `read(i)`. Returns the next packet number.
    fn train(
        rec: &mut FeedbackRecorder,
        an: &mut FeedbackAnalyzer,
        pn: u64,
        id: u32,
        at: Instant,
        stamped: bool,
        read: impl Fn(u64) -> Instant,
    ) -> u64 {
        for i in 0..10 {
            let sent = at + US * (100 * i as u32);
            an.on_sent(pn + i, sent, 1250, id);
            let socket = stamped.then_some(sent + MS);
            rec.on_packet_stamped(read(i), socket, pn + i);
        }
        pn + 10
    }

    /// The same packets, reported with and without socket times.
    fn backlogged_receiver(stamped: bool) -> FeedbackReport {
        let t0 = Instant::now();
        let (mut rec, mut an) = (
            FeedbackRecorder::new(t0, 25 * MS),
            FeedbackAnalyzer::new(t0),
        );
        // A first train read as it arrived sets the base one-way delay (1 ms).
        let pn = train(&mut rec, &mut an, 0, 1, t0, stamped, |i| {
            t0 + MS + US * (100 * i as u32)
        });
        deliver(&mut rec, &mut an, t0 + 30 * MS);
        // The second waits in the socket while the receiving thread is busy: it reads half
        // of it 8 ms late, the rest 4 ms after that.
        let at = t0 + 50 * MS;
        let pn = train(&mut rec, &mut an, pn, 2, at, stamped, |i| {
            at + 9 * MS + if i < 5 { Duration::ZERO } else { 4 * MS }
        });
        // A packet outside any train ends it.
        an.on_sent(pn, at + 2 * MS, 100, 0);
        rec.on_packet_stamped(at + 13 * MS, stamped.then_some(at + 3 * MS), pn);
        deliver(&mut rec, &mut an, at + 20 * MS)
    }

    #[test]
    fn socket_times_measure_dispersion_and_read_times_measure_queuing() {
        let r = backlogged_receiver(true);
        // The train crossed as fast as it was sent (9 × 1250 B in 900 µs): no bottleneck below
        // 100 Mbit/s, though the receiver read it spread over 4 ms.
        assert_eq!(r.capacity_bps, None);
        assert_eq!(r.capacity_floor_bps, Some(100_000_000));
        // The receiver's 8 ms backlog is queuing delay all the same.
        assert_eq!(r.queue_delay, 8 * MS);
    }

    #[test]
    fn without_socket_times_the_receivers_reads_pass_for_a_slow_path() {
        let r = backlogged_receiver(false);
        // 9 × 1250 B over the 4 ms the reads were spread: a "22.5 Mbit/s bottleneck".
        assert_eq!(r.capacity_bps, Some(22_500_000));
        assert_eq!(r.queue_delay, 8 * MS);
    }

    #[test]
    fn unstamped_packets_report_their_read_time_for_both() {
        let t0 = Instant::now();
        let mut rec = FeedbackRecorder::new(t0, 25 * MS);
        // Stamping starts a moment after the socket asks for it; a stamp after the read (a
        // stepped clock) is held to the read time.
        rec.on_packet_stamped(t0 + MS, None, 0);
        rec.on_packet_stamped(t0 + 2 * MS, Some(t0 + MS + 500 * US), 1);
        rec.on_packet_stamped(t0 + 3 * MS, Some(t0 + 4 * MS), 2);
        let mut buf = [0u8; MAX_BODY];
        let n = rec.poll_transmit(t0 + 5 * MS, &mut buf).unwrap().unwrap();
        let Ok(Body::Feedback(fb)) = Body::decode(PacketType::Feedback, &buf[..n]) else {
            panic!("not a feedback body");
        };
        assert!(fb.has_socket_times());
        let got: Vec<_> = fb
            .packets()
            .map(|(_, a)| a.map(|a| (a.read_us, a.socket_us)))
            .collect();
        assert_eq!(
            got,
            vec![Some((1000, 1000)), Some((2000, 1500)), Some((3000, 3000))]
        );
        // Without any stamp the report is the same size as ever: no socket section.
        rec.on_packet(t0 + 6 * MS, 3);
        let n = rec.poll_transmit(t0 + 40 * MS, &mut buf).unwrap().unwrap();
        let Ok(Body::Feedback(fb)) = Body::decode(PacketType::Feedback, &buf[..n]) else {
            panic!("not a feedback body");
        };
        assert!(!fb.has_socket_times());
    }

    #[test]
    fn a_full_report_is_due_before_its_interval() {
        let t0 = Instant::now();
        let mut rec = FeedbackRecorder::new(t0, 25 * MS);
        rec.on_packet(t0, 0);
        let mut buf = [0u8; MAX_BODY];
        assert!(rec.poll_transmit(t0, &mut buf).unwrap().is_some());
        let t1 = t0 + MS;
        for pn in 1..REPORT_EARLY_PACKETS as u64 {
            rec.on_packet_stamped(t1, Some(t1 - 10 * US), pn);
        }
        assert_eq!(rec.next_timeout(), Some(t0 + 25 * MS));
        rec.on_packet_stamped(t1, Some(t1 - 10 * US), REPORT_EARLY_PACKETS as u64);
        assert!(rec.next_timeout().is_some_and(|t| t <= t1));
        // And a report holds them all, both times each.
        let n = rec.poll_transmit(t1, &mut buf).unwrap().unwrap();
        let Ok(Body::Feedback(fb)) = Body::decode(PacketType::Feedback, &buf[..n]) else {
            panic!("not a feedback body");
        };
        assert_eq!(fb.count as usize, REPORT_EARLY_PACKETS);
        assert!(fb.has_socket_times());
    }
}
