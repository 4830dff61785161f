//! One direction of a network path: loss, a drop-tail bottleneck queue, propagation delay,
//! jitter, reordering and duplication.
//!
//! The model is sans-IO and deterministic: the caller passes simulated time in as `Instant`s
//! (non-decreasing across all calls) and every random decision comes from one
//! `Xoshiro256PlusPlus` seeded from [`LinkConfig::seed`].
//!
//! A packet goes through three stages:
//! 1. **Loss**, decided on offer, so a lost packet takes no queue space (it was lost upstream of
//!    the bottleneck, like on a lossy access link).
//! 2. **Bottleneck**: a FIFO served at `rate_bps`. Each packet's departure time is computed when
//!    it is enqueued (`start = max(now, previous departure)`, `departure = start + size*8/rate`)
//!    and recomputed only by [`Link::set_rate`]. That keeps `send` O(1) and lets
//!    [`Link::queued_bytes`] answer by binary search.
//! 3. **Path**: `delay` plus a uniform jitter sample, clamped so the packet never arrives before
//!    the previous one (real jitter comes from queues, which are FIFO), unless the packet was
//!    picked for reordering, in which case it is held back by `reorder_delay` and later packets
//!    overtake it.
//!
//! Packets that left the bottleneck wait in a min-heap keyed by arrival time, so memory is
//! bounded by what is in flight and every operation is O(log n).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// How packets are lost before the bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LossModel {
    /// Nothing is lost.
    #[default]
    None,
    /// Independent random loss with probability `p`.
    Random { p: f64 },
    /// Gilbert-Elliott two-state burst loss. Per packet, the current state decides the loss
    /// (`loss_good` in Good, `loss_bad` in Bad), then the chain moves Good→Bad with `p_gb` or
    /// Bad→Good with `p_bg`. Wi-Fi and cellular losses come in bursts, which is what defeats
    /// naive XOR FEC, so scenarios need this and not just `Random`.
    GilbertElliott {
        p_gb: f64,
        p_bg: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

impl LossModel {
    /// Gilbert-Elliott parameters with average loss `mean` and mean loss-burst length `burst`
    /// packets (`loss_bad = 1`, `loss_good = 0`, so a burst is exactly a stay in Bad).
    ///
    /// Bad lasts a geometric number of packets with mean `1/p_bg`, so `p_bg = 1/burst`; the
    /// stationary share of Bad is `p_gb/(p_gb+p_bg) = mean`, which gives `p_gb`. `mean` is
    /// clamped to `[0, 0.99]` and `burst` to at least 1; if the pair is unreachable
    /// (`p_gb > 1`) `p_gb` is clamped to 1 and the mean loss comes out lower.
    pub fn burst(mean: f64, burst: f64) -> Self {
        let mean = if mean.is_finite() {
            mean.clamp(0.0, 0.99)
        } else {
            0.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        let p_bg = 1.0 / burst;
        let p_gb = (mean * p_bg / (1.0 - mean)).clamp(0.0, 1.0);
        LossModel::GilbertElliott {
            p_gb,
            p_bg,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// Long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Random { p } => prob(p),
            LossModel::GilbertElliott {
                p_gb,
                p_bg,
                loss_good,
                loss_bad,
            } => {
                let (p_gb, p_bg) = (prob(p_gb), prob(p_bg));
                if p_gb + p_bg == 0.0 {
                    // The chain never leaves its initial state, which is Good.
                    return prob(loss_good);
                }
                let bad = p_gb / (p_gb + p_bg);
                bad * prob(loss_bad) + (1.0 - bad) * prob(loss_good)
            }
        }
    }
}

/// Clamp a probability from a config to `[0, 1]` (NaN counts as 0) so a typo degrades to
/// "never"/"always" instead of a panic deep inside a simulation.
fn prob(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Parameters of a [`Link`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Bottleneck serialization rate in bit/s; 0 means unlimited (no queue ever forms).
    pub rate_bps: u64,
    /// Drop-tail limit on bytes waiting in the bottleneck queue, not counting the packet in
    /// service. A packet reaching an idle bottleneck is always accepted.
    pub queue_bytes: usize,
    /// One-way propagation delay, added after the bottleneck.
    pub delay: Duration,
    /// Extra delay uniform in `[0, jitter]` per packet, applied without reordering.
    pub jitter: Duration,
    /// Loss applied before the queue.
    pub loss: LossModel,
    /// Probability a packet is held back by `reorder_delay` so later packets overtake it.
    pub reorder: f64,
    /// How long a reordered packet is held back.
    pub reorder_delay: Duration,
    /// Probability a packet is delivered twice (the copy arrives right after the original).
    pub duplicate: f64,
    /// Seed of the link's random stream.
    pub seed: u64,
}

impl Default for LinkConfig {
    /// A perfect link: unlimited rate, no delay, no loss, no queue limit.
    fn default() -> Self {
        LinkConfig {
            rate_bps: 0,
            queue_bytes: usize::MAX,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: LossModel::None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            seed: 0,
        }
    }
}

/// Counters since the link was created. Every offered packet is counted in exactly one of
/// `dropped_loss`, `dropped_queue` or accepted; `delivered_*` count every copy handed out by
/// [`Link::poll`], so with duplication `delivered_packets` can exceed the accepted count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub offered_packets: u64,
    pub offered_bytes: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    /// Extra copies created (each is also counted in `delivered_*` once polled).
    pub duplicated: u64,
    /// Packets picked to be held back by `reorder_delay`.
    pub reordered: u64,
}

/// A packet waiting in (or being served by) the bottleneck. The random path decisions are
/// drawn at `send` time so the trace does not depend on how often the caller polls.
struct Queued<T> {
    departure: Instant,
    size: usize,
    /// Total bytes ever accepted into the bottleneck up to and including this packet, so the
    /// bytes still queued behind any point are one subtraction away.
    cum_end: u64,
    jitter: Duration,
    reorder: bool,
    duplicate: bool,
    item: T,
}

/// A packet past the bottleneck, ordered by arrival time and then by `seq` so equal arrival
/// times keep their sending order (and a duplicate lands right after its original).
struct InFlight<T> {
    arrival: Instant,
    seq: u64,
    size: usize,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        self.arrival == other.arrival && self.seq == other.seq
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.arrival, self.seq).cmp(&(other.arrival, other.seq))
    }
}

/// One direction of a simulated network path carrying items of type `T`.
pub struct Link<T: Clone> {
    cfg: LinkConfig,
    rng: Xoshiro256PlusPlus,
    /// Gilbert-Elliott state (`true` = Bad). Starts Good.
    ge_bad: bool,
    queue: VecDeque<Queued<T>>,
    /// Bytes ever accepted into the bottleneck (see [`Queued::cum_end`]).
    accepted_bytes: u64,
    /// Departure time of the last packet accepted; the next one starts serializing then.
    last_departure: Instant,
    /// Arrival time of the last non-reordered packet: the floor that keeps jitter FIFO.
    last_arrival: Instant,
    in_flight: BinaryHeap<Reverse<InFlight<T>>>,
    seq: u64,
    stats: LinkStats,
}

impl<T: Clone> Link<T> {
    /// A link that is empty and idle at `now`.
    pub fn new(cfg: LinkConfig, now: Instant) -> Self {
        Link {
            rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
            cfg,
            ge_bad: false,
            queue: VecDeque::new(),
            accepted_bytes: 0,
            last_departure: now,
            last_arrival: now,
            in_flight: BinaryHeap::new(),
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    /// The current configuration (reflecting any `set_*` calls).
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Change the bottleneck rate from `now` on.
    ///
    /// Rule: the packet in service at `now` finishes at the departure time it already had (its
    /// transmission started at the old rate); every packet waiting behind it is re-timed
    /// back-to-back at the new rate. This is exact for a rate step that lands on a packet
    /// boundary and off by at most one packet's serialization time otherwise.
    pub fn set_rate(&mut self, now: Instant, rate_bps: u64) {
        self.advance(now);
        self.cfg.rate_bps = rate_bps;
        let mut waiting = self.queue.iter_mut();
        let Some(in_service) = waiting.next() else {
            return;
        };
        let mut t = in_service.departure;
        for q in waiting {
            t += serialization(q.size, rate_bps);
            q.departure = t;
        }
        self.last_departure = t;
    }

    /// Change the drop-tail limit. Packets already queued stay even if they exceed it; the new
    /// limit applies to the next packets offered.
    pub fn set_queue_bytes(&mut self, queue_bytes: usize) {
        self.cfg.queue_bytes = queue_bytes;
    }

    /// Change the loss model. The Gilbert-Elliott chain restarts in Good.
    pub fn set_loss(&mut self, loss: LossModel) {
        self.cfg.loss = loss;
        self.ge_bad = false;
    }

    /// Change the propagation delay for packets that have not yet left the bottleneck. A
    /// shorter delay does not let packets overtake those already on the wire: they bunch up
    /// behind them, as on a real route change.
    pub fn set_delay(&mut self, delay: Duration) {
        self.cfg.delay = delay;
    }

    /// Change the jitter bound for packets offered from now on.
    pub fn set_jitter(&mut self, jitter: Duration) {
        self.cfg.jitter = jitter;
    }

    /// Offer a packet of `size` bytes at `now`. Returns `false` if it was dropped, by the loss
    /// model or because the bottleneck queue was full.
    ///
    /// The random stream advances by the same amount for every offered packet whatever its
    /// fate, so two runs with the same seed see the same loss pattern even when other
    /// parameters (rate, queue, jitter) differ — handy for A/B comparisons.
    pub fn send(&mut self, now: Instant, size: usize, item: T) -> bool {
        self.advance(now);
        self.stats.offered_packets += 1;
        self.stats.offered_bytes += size as u64;

        let u_loss: f64 = self.rng.random();
        let u_state: f64 = self.rng.random();
        let u_jitter: f64 = self.rng.random();
        let u_reorder: f64 = self.rng.random();
        let u_dup: f64 = self.rng.random();

        if self.lose(u_loss, u_state) {
            self.stats.dropped_loss += 1;
            return false;
        }

        // After `advance(now)` every packet still in the queue departs after `now`, so the
        // front one is in service and the rest are waiting.
        if let Some(front) = self.queue.front().filter(|_| self.cfg.rate_bps > 0) {
            let waiting = self.accepted_bytes - front.cum_end;
            if waiting.saturating_add(size as u64) > self.cfg.queue_bytes as u64 {
                self.stats.dropped_queue += 1;
                return false;
            }
        }

        let start = self.last_departure.max(now);
        let departure = start + serialization(size, self.cfg.rate_bps);
        self.last_departure = departure;
        self.accepted_bytes += size as u64;

        let jitter = self.cfg.jitter.mul_f64(u_jitter);
        let reorder = u_reorder < prob(self.cfg.reorder);
        let duplicate = u_dup < prob(self.cfg.duplicate);
        self.stats.reordered += u64::from(reorder);
        self.stats.duplicated += u64::from(duplicate);

        self.queue.push_back(Queued {
            departure,
            size,
            cum_end: self.accepted_bytes,
            jitter,
            reorder,
            duplicate,
            item,
        });
        // With an unlimited rate the packet leaves the bottleneck immediately.
        self.advance(now);
        true
    }

    /// Next time something happens inside the link (a packet leaves the bottleneck or arrives
    /// at the far end), if anything is pending. Polling at that time is always enough to make
    /// progress.
    pub fn next_event(&self) -> Option<Instant> {
        let departure = self.queue.front().map(|q| q.departure);
        let arrival = self.in_flight.peek().map(|Reverse(p)| p.arrival);
        match (departure, arrival) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        }
    }

    /// Pop the next packet that has arrived at the far end by `now`, in arrival order, with its
    /// arrival time.
    pub fn poll(&mut self, now: Instant) -> Option<(Instant, T)> {
        self.advance(now);
        match self.in_flight.peek() {
            Some(Reverse(p)) if p.arrival <= now => {}
            _ => return None,
        }
        let Reverse(p) = self.in_flight.pop()?;
        self.stats.delivered_packets += 1;
        self.stats.delivered_bytes += p.size as u64;
        Some((p.arrival, p.item))
    }

    /// Bytes in the bottleneck at `now`, including the packet in service.
    pub fn queued_bytes(&self, now: Instant) -> usize {
        let first = self.queue.partition_point(|q| q.departure <= now);
        match self.queue.get(first) {
            Some(q) => {
                let bytes = self.accepted_bytes - (q.cum_end - q.size as u64);
                usize::try_from(bytes).unwrap_or(usize::MAX)
            }
            None => 0,
        }
    }

    /// Queuing delay a packet offered at `now` would see: the time until its serialization
    /// starts.
    pub fn queue_delay(&self, now: Instant) -> Duration {
        self.last_departure.saturating_duration_since(now)
    }

    /// Packets inside the link (in the bottleneck or on the wire, duplicates included).
    pub fn in_flight(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Counters since creation.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Decide loss for one packet from two uniform draws, stepping the Gilbert-Elliott chain.
    fn lose(&mut self, u_loss: f64, u_state: f64) -> bool {
        match self.cfg.loss {
            LossModel::None => false,
            LossModel::Random { p } => u_loss < prob(p),
            LossModel::GilbertElliott {
                p_gb,
                p_bg,
                loss_good,
                loss_bad,
            } => {
                let lost = if self.ge_bad {
                    u_loss < prob(loss_bad)
                } else {
                    u_loss < prob(loss_good)
                };
                let flip = if self.ge_bad { prob(p_bg) } else { prob(p_gb) };
                if u_state < flip {
                    self.ge_bad = !self.ge_bad;
                }
                lost
            }
        }
    }

    /// Move every packet that has left the bottleneck by `now` onto the wire, fixing its
    /// arrival time. Done in FIFO order, which is what makes the no-reorder jitter floor work.
    fn advance(&mut self, now: Instant) {
        while self.queue.front().is_some_and(|q| q.departure <= now) {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            let on_time = (q.departure + self.cfg.delay + q.jitter).max(self.last_arrival);
            let arrival = if q.reorder {
                on_time + self.cfg.reorder_delay
            } else {
                self.last_arrival = on_time;
                on_time
            };
            let copy = q.duplicate.then(|| q.item.clone());
            self.push_in_flight(arrival, q.size, q.item);
            if let Some(copy) = copy {
                self.push_in_flight(arrival, q.size, copy);
            }
        }
    }

    fn push_in_flight(&mut self, arrival: Instant, size: usize, item: T) {
        self.in_flight.push(Reverse(InFlight {
            arrival,
            seq: self.seq,
            size,
            item,
        }));
        self.seq += 1;
    }
}

/// Time to put `size` bytes on a `rate_bps` wire, rounded to the nearest nanosecond
/// (0 for an unlimited rate). The rounding drifts by under 1 ns per packet, far below anything
/// a scenario measures.
fn serialization(size: usize, rate_bps: u64) -> Duration {
    if rate_bps == 0 {
        return Duration::ZERO;
    }
    let rate = u128::from(rate_bps);
    let nanos = (size as u128 * 8 * 1_000_000_000 + rate / 2) / rate;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(t0: Instant, gap: Duration, i: u64) -> Instant {
        t0 + Duration::from_nanos(gap.as_nanos() as u64 * i)
    }

    fn drain(link: &mut Link<u64>, now: Instant, out: &mut Vec<(u64, Instant)>) {
        while let Some((arrival, seq)) = link.poll(now) {
            out.push((seq, arrival));
        }
    }

    fn drain_all(link: &mut Link<u64>, out: &mut Vec<(u64, Instant)>) {
        while let Some(t) = link.next_event() {
            drain(link, t, out);
        }
    }

    /// Offer `n` packets of `size` bytes every `gap` (item = sequence number), polling as time
    /// goes, then drain. Returns deliveries `(seq, arrival)` in delivery order.
    fn run(
        link: &mut Link<u64>,
        t0: Instant,
        n: u64,
        size: usize,
        gap: Duration,
    ) -> Vec<(u64, Instant)> {
        let mut out = Vec::new();
        for i in 0..n {
            let now = at(t0, gap, i);
            drain(link, now, &mut out);
            link.send(now, size, i);
        }
        drain_all(link, &mut out);
        out
    }

    fn rate_between(out: &[(u64, Instant)], size: usize, from: Instant, to: Instant) -> f64 {
        let n = out.iter().filter(|(_, a)| *a > from && *a <= to).count();
        n as f64 * size as f64 * 8.0 / (to - from).as_secs_f64()
    }

    #[test]
    fn rate_limit_and_drop_tail() {
        let t0 = Instant::now();
        let q = 50_000;
        let size = 1250;
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 8_000_000,
                queue_bytes: q,
                ..LinkConfig::default()
            },
            t0,
        );
        // 1250 B every 1 ms = 10 Mbit/s into an 8 Mbit/s bottleneck, for 10 s.
        let mut out = Vec::new();
        let mut max_delay = Duration::ZERO;
        for i in 0..10_000 {
            let now = at(t0, ms(1), i);
            drain(&mut link, now, &mut out);
            // Equal sizes: the packet is dropped exactly when the waiting bytes plus it exceed
            // the limit, i.e. when the queue including the packet in service exceeds it.
            let full = link.queued_bytes(now) > q;
            assert_eq!(link.send(now, size, i), !full, "packet {i}");
            max_delay = max_delay.max(link.queue_delay(now));
        }
        drain_all(&mut link, &mut out);

        let rate = rate_between(&out, size, t0 + ms(1000), t0 + ms(10_000));
        assert!((rate - 8e6).abs() < 8e6 * 0.01, "delivered {rate} bit/s");
        let s = link.stats();
        // 20 % excess minus what the queue absorbed.
        assert!((1900..=2000).contains(&s.dropped_queue), "{s:?}");
        assert_eq!(s.delivered_packets + s.dropped_queue, 10_000);
        assert_eq!(s.delivered_bytes, s.delivered_packets * size as u64);
        // Standing queue delay reaches queue_bytes*8/rate (plus at most one packet in service).
        let full_delay = Duration::from_millis(50);
        assert!(
            max_delay >= full_delay && max_delay <= full_delay + ms(2),
            "{max_delay:?}"
        );
        assert_eq!(link.in_flight(), 0);
    }

    #[test]
    fn queue_accounting_is_exact() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 8_000_000, // 1000 B = 1 ms
                queue_bytes: 1000,
                ..LinkConfig::default()
            },
            t0,
        );
        assert!(link.send(t0, 1000, 0)); // idle: straight into service
        assert!(link.send(t0, 1000, 1)); // waits: 1000 <= 1000
        assert!(!link.send(t0, 1000, 2)); // 2000 > 1000
        assert_eq!(link.queued_bytes(t0), 2000);
        assert_eq!(link.queue_delay(t0), ms(2));
        assert_eq!(link.queued_bytes(t0 + Duration::from_micros(999)), 2000);
        assert_eq!(link.queued_bytes(t0 + ms(1)), 1000);
        assert_eq!(
            link.queue_delay(t0 + Duration::from_micros(1500)),
            Duration::from_micros(500)
        );
        assert_eq!(link.queued_bytes(t0 + ms(2)), 0);
        assert_eq!(link.next_event(), Some(t0 + ms(1)));
        assert_eq!(link.poll(t0 + ms(2)), Some((t0 + ms(1), 0)));
        assert_eq!(link.poll(t0 + ms(2)), Some((t0 + ms(2), 1)));
        assert_eq!(link.poll(t0 + ms(2)), None);
        assert_eq!(link.next_event(), None);

        // A zero-byte queue still lets one packet through an idle bottleneck.
        link.set_queue_bytes(0);
        assert!(link.send(t0 + ms(3), 1000, 3));
        assert!(!link.send(t0 + ms(3), 1, 4));
        assert_eq!(link.stats().dropped_queue, 2);

        // Unlimited rate never queues, whatever the limit.
        let mut free: Link<u64> = Link::new(
            LinkConfig {
                queue_bytes: 0,
                ..LinkConfig::default()
            },
            t0,
        );
        assert!((0..100).all(|i| free.send(t0, 1500, i)));
        assert_eq!(free.queued_bytes(t0), 0);
        assert_eq!(free.queue_delay(t0), Duration::ZERO);
    }

    #[test]
    fn propagation_delay_is_exact() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                delay: ms(37),
                ..LinkConfig::default()
            },
            t0,
        );
        let out = run(&mut link, t0, 100, 1200, Duration::from_micros(333));
        assert_eq!(out.len(), 100);
        for (i, (seq, arrival)) in out.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(
                *arrival,
                at(t0, Duration::from_micros(333), i as u64) + ms(37)
            );
        }

        // With a bottleneck: arrival = serialization end + delay, back to back.
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 1_000_000,
                delay: ms(10),
                ..LinkConfig::default()
            },
            t0,
        );
        link.send(t0, 1000, 0);
        link.send(t0, 1000, 1);
        let mut out = Vec::new();
        drain_all(&mut link, &mut out);
        assert_eq!(out, vec![(0, t0 + ms(18)), (1, t0 + ms(26))]);
    }

    #[test]
    fn jitter_never_reorders() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                delay: ms(10),
                jitter: ms(20),
                seed: 7,
                ..LinkConfig::default()
            },
            t0,
        );
        // Packets 5 ms apart against 20 ms of jitter: plenty of would-be overtakes.
        let gap = ms(5);
        let out = run(&mut link, t0, 5000, 1200, gap);
        assert_eq!(out.len(), 5000);
        let mut min_owd = Duration::MAX;
        let mut max_owd = Duration::ZERO;
        for (i, (seq, arrival)) in out.iter().enumerate() {
            assert_eq!(*seq, i as u64, "jitter reordered");
            let owd = *arrival - at(t0, gap, *seq);
            assert!(owd >= ms(10) && owd <= ms(30), "{owd:?}");
            min_owd = min_owd.min(owd);
            max_owd = max_owd.max(owd);
        }
        // The jitter is really there.
        assert!(
            min_owd < ms(12) && max_owd > ms(28),
            "{min_owd:?} {max_owd:?}"
        );
        assert_eq!(link.stats().reordered, 0);
    }

    #[test]
    fn reorder_rate() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                delay: ms(20),
                reorder: 0.05,
                reorder_delay: ms(5),
                seed: 3,
                ..LinkConfig::default()
            },
            t0,
        );
        let n = 20_000;
        let out = run(&mut link, t0, n, 1200, ms(1));
        assert_eq!(out.len() as u64, n);
        // A held-back packet arrives after some later packet.
        let mut max_seen = None;
        let mut late = 0u64;
        for (seq, _) in &out {
            if max_seen.is_some_and(|m| *seq < m) {
                late += 1;
            }
            max_seen = max_seen.max(Some(*seq));
        }
        // Expected 1000, σ ≈ 31.
        assert!((850..=1150).contains(&late), "late {late}");
        let reordered = link.stats().reordered;
        assert!((850..=1150).contains(&reordered), "reordered {reordered}");
        // With 1 ms spacing and a 5 ms hold every reordered packet is overtaken, except when
        // its successors were held back too.
        assert!(
            late <= reordered && late + 60 >= reordered,
            "{late} {reordered}"
        );
        let mut seqs: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
        seqs.sort_unstable();
        assert!(seqs.iter().copied().eq(0..n));
    }

    #[test]
    fn duplicate_rate() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                delay: ms(5),
                jitter: ms(2),
                duplicate: 0.03,
                seed: 11,
                ..LinkConfig::default()
            },
            t0,
        );
        let n = 50_000;
        let out = run(&mut link, t0, n, 1200, ms(1));
        let s = link.stats();
        // Expected 1500, σ ≈ 38.
        assert!((1300..=1700).contains(&s.duplicated), "{s:?}");
        assert_eq!(out.len() as u64, n + s.duplicated);
        assert_eq!(s.delivered_packets, n + s.duplicated);
        // The copy arrives right after the original, at the same time.
        let adjacent = out.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        assert_eq!(adjacent, s.duplicated);
    }

    #[test]
    fn random_loss_rate() {
        let t0 = Instant::now();
        let p = 0.1;
        let mut link = Link::new(
            LinkConfig {
                loss: LossModel::Random { p },
                seed: 5,
                ..LinkConfig::default()
            },
            t0,
        );
        let n = 100_000u64;
        let out = run(&mut link, t0, n, 1000, Duration::from_micros(100));
        let s = link.stats();
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (s.dropped_loss as f64 - n as f64 * p).abs() < 5.0 * sigma,
            "{s:?}"
        );
        assert_eq!(out.len() as u64 + s.dropped_loss, n);
        assert_eq!(LossModel::Random { p }.mean_loss(), p);
        assert_eq!(LossModel::None.mean_loss(), 0.0);
    }

    /// Offer `n` packets and return the loss pattern (true = lost).
    fn loss_pattern(loss: LossModel, seed: u64, n: u64) -> Vec<bool> {
        let t0 = Instant::now();
        let mut link: Link<u64> = Link::new(
            LinkConfig {
                loss,
                seed,
                ..LinkConfig::default()
            },
            t0,
        );
        (0..n)
            .map(|i| {
                let now = at(t0, Duration::from_micros(10), i);
                let lost = !link.send(now, 100, i);
                while link.poll(now).is_some() {}
                lost
            })
            .collect()
    }

    #[test]
    fn gilbert_elliott_mean_and_burst_length() {
        let model = LossModel::burst(0.05, 4.0);
        assert!((model.mean_loss() - 0.05).abs() < 1e-12);
        let pattern = loss_pattern(model, 42, 200_000);
        let lost = pattern.iter().filter(|l| **l).count();
        let bursts = pattern.windows(2).filter(|w| w[1] && !w[0]).count() + usize::from(pattern[0]);
        let mean = lost as f64 / pattern.len() as f64;
        let burst = lost as f64 / bursts as f64;
        assert!((mean - 0.05).abs() < 0.005, "mean loss {mean}");
        assert!((burst - 4.0).abs() < 0.4, "mean burst {burst}");

        // Random loss with the same mean has bursts of ~1/(1-p) packets: the contrast the
        // model exists for.
        let pattern = loss_pattern(LossModel::Random { p: 0.05 }, 42, 200_000);
        let lost = pattern.iter().filter(|l| **l).count();
        let bursts = pattern.windows(2).filter(|w| w[1] && !w[0]).count();
        assert!((lost as f64 / bursts as f64) < 1.1);

        // General parameters: simulation matches mean_loss().
        let model = LossModel::GilbertElliott {
            p_gb: 0.02,
            p_bg: 0.2,
            loss_good: 0.01,
            loss_bad: 0.5,
        };
        let expected = model.mean_loss();
        assert!((expected - (0.02 / 0.22 * 0.5 + 0.2 / 0.22 * 0.01)).abs() < 1e-12);
        let pattern = loss_pattern(model, 9, 200_000);
        let mean = pattern.iter().filter(|l| **l).count() as f64 / pattern.len() as f64;
        assert!(
            (mean - expected).abs() < 0.1 * expected,
            "{mean} vs {expected}"
        );
    }

    #[test]
    fn burst_parameters_are_clamped() {
        match LossModel::burst(2.0, 0.0) {
            LossModel::GilbertElliott { p_gb, p_bg, .. } => {
                assert!((0.0..=1.0).contains(&p_gb));
                assert_eq!(p_bg, 1.0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(LossModel::burst(0.0, 3.0).mean_loss(), 0.0);
        assert_eq!(LossModel::burst(f64::NAN, f64::NAN).mean_loss(), 0.0);
    }

    /// A run exercising every feature, as `(seq, arrival offset from t0)` plus stats and the
    /// accept/drop pattern. Offsets, not `Instant`s, so runs with different bases compare.
    fn trace(seed: u64) -> (Vec<(u64, Duration)>, LinkStats, Vec<bool>) {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 5_000_000,
                queue_bytes: 20_000,
                delay: ms(20),
                jitter: ms(5),
                loss: LossModel::burst(0.02, 3.0),
                reorder: 0.01,
                reorder_delay: ms(3),
                duplicate: 0.01,
                seed,
            },
            t0,
        );
        let mut out = Vec::new();
        let mut accepted = Vec::new();
        // ~6.4 Mbit/s offered into 5 Mbit/s, so the queue overflows too.
        for i in 0..20_000u64 {
            let now = at(t0, ms(1), i);
            drain(&mut link, now, &mut out);
            accepted.push(link.send(now, 200 + (i as usize * 37) % 1200, i));
        }
        drain_all(&mut link, &mut out);
        let rel = out.into_iter().map(|(s, a)| (s, a - t0)).collect();
        (rel, link.stats(), accepted)
    }

    #[test]
    fn deterministic_per_seed() {
        let (a, sa, la) = trace(1);
        let (b, sb, lb) = trace(1);
        let (c, sc, lc) = trace(2);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_eq!(la, lb);
        assert_ne!(a, c);
        assert_ne!(la, lc);
        assert_ne!(sa, sc);
        assert!(
            sa.dropped_loss > 0 && sa.dropped_queue > 0 && sa.reordered > 0 && sa.duplicated > 0,
            "{sa:?}"
        );
    }

    #[test]
    fn set_rate_retimes_waiting_packets() {
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 8_000_000, // 1000 B = 1 ms
                ..LinkConfig::default()
            },
            t0,
        );
        for i in 0..3 {
            link.send(t0, 1000, i);
        }
        // Halve the rate mid-service: packet 0 keeps its 1 ms finish, 1 and 2 take 2 ms each.
        link.set_rate(t0 + Duration::from_micros(500), 4_000_000);
        assert_eq!(
            link.queue_delay(t0 + Duration::from_micros(500)),
            Duration::from_micros(4500)
        );
        let mut out = Vec::new();
        drain_all(&mut link, &mut out);
        assert_eq!(out, vec![(0, t0 + ms(1)), (1, t0 + ms(3)), (2, t0 + ms(5))]);
    }

    #[test]
    fn set_rate_mid_stream() {
        let t0 = Instant::now();
        let size = 1500;
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 10_000_000,
                queue_bytes: 30_000,
                delay: ms(15),
                ..LinkConfig::default()
            },
            t0,
        );
        // Offer 12 Mbit/s (1500 B per 1 ms) for 6 s; drop the bottleneck to 2 Mbit/s at 2 s.
        let mut out = Vec::new();
        for i in 0..6000 {
            let now = at(t0, ms(1), i);
            drain(&mut link, now, &mut out);
            if i == 2000 {
                link.set_rate(now, 2_000_000);
                // The standing queue now drains at the new rate.
                let expect = link.queued_bytes(now) as f64 * 8.0 / 2e6;
                let got = link.queue_delay(now).as_secs_f64();
                assert!((got - expect).abs() < 0.007, "{got} vs {expect}");
            }
            link.send(now, size, i);
        }
        drain_all(&mut link, &mut out);
        let before = rate_between(&out, size, t0 + ms(500), t0 + ms(2000));
        let after = rate_between(&out, size, t0 + ms(3000), t0 + ms(6000));
        assert!((before - 10e6).abs() < 10e6 * 0.01, "before {before}");
        assert!((after - 2e6).abs() < 2e6 * 0.01, "after {after}");
        assert_eq!(link.config().rate_bps, 2_000_000);
    }

    #[test]
    fn sixty_seconds_at_ten_megabit() {
        // The size of a typical scenario; must stay cheap (see the perf note in the report).
        let t0 = Instant::now();
        let mut link = Link::new(
            LinkConfig {
                rate_bps: 10_000_000,
                queue_bytes: 100_000,
                delay: ms(20),
                jitter: ms(2),
                loss: LossModel::Random { p: 0.01 },
                seed: 1,
                ..LinkConfig::default()
            },
            t0,
        );
        let n = 60 * 10_000_000 / (1200 * 8);
        let out = run(&mut link, t0, n, 1200, Duration::from_nanos(960_000));
        let s = link.stats();
        assert_eq!(out.len() as u64 + s.dropped_loss + s.dropped_queue, n);
        assert_eq!(s.dropped_queue, 0);
    }
}
