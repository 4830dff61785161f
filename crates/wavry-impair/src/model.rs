//! The sans-IO impairment model of one direction of a link. Packets go in with the time they
//! arrived and come out at the time they should be forwarded; the caller owns the clock, the
//! sockets and the sleeping, so tests are deterministic.
//!
//! A packet passes, in order:
//! 1. the bottleneck: a drop-tail queue drained at `rate_bps` (skipped without a rate);
//! 2. the wire: random loss, then Gilbert-Elliott burst loss, then duplication;
//! 3. propagation: `delay` ± uniform `jitter`, and with probability `reorder` an extra
//!    `reorder_delay` that lets later packets overtake it.
//!
//! Without `jitter_reorders`, jitter never reorders: a packet never leaves before the one ahead
//! of it (its delay is raised instead), like a real path whose delay varies.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name} must be a probability in [0, 1], got {value}")]
    Probability { name: &'static str, value: f64 },
    #[error("a mean burst length must be at least 1 packet, got {0}")]
    BurstLength(f64),
    #[error("burst loss must be below 100 %, got {0}")]
    BurstLoss(f64),
    #[error("a queue limit needs a rate limit (--rate)")]
    QueueWithoutRate,
    #[error("the rate limit must be above 0 bit/s")]
    ZeroRate,
}

/// Gilbert-Elliott burst loss: a two-state Markov chain stepped once per packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state.
    pub p: f64,
    /// Probability of moving from the bad to the good state; the mean time in the bad state is
    /// `1 / r` packets.
    pub r: f64,
    /// Loss probability in the good state (usually 0).
    pub loss_good: f64,
    /// Loss probability in the bad state (usually 1).
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model with a mean loss rate `loss` in bursts of `mean_burst` packets on
    /// average: every packet in the bad state is lost, none in the good state.
    pub fn from_loss_and_burst(loss: f64, mean_burst: f64) -> Result<Self, ConfigError> {
        check_probability("burst loss", loss)?;
        if loss >= 1.0 {
            return Err(ConfigError::BurstLoss(loss));
        }
        if mean_burst.is_nan() || mean_burst < 1.0 {
            return Err(ConfigError::BurstLength(mean_burst));
        }
        let r = 1.0 / mean_burst;
        // Stationary share of the bad state: p / (p + r) = loss.
        let p = loss * r / (1.0 - loss);
        Ok(GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        })
    }

    /// The long-run loss rate.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return self.loss_good;
        }
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_probability("Gilbert-Elliott p", self.p)?;
        check_probability("Gilbert-Elliott r", self.r)?;
        check_probability("Gilbert-Elliott loss in the good state", self.loss_good)?;
        check_probability("Gilbert-Elliott loss in the bad state", self.loss_bad)
    }
}

/// What one direction does to the packets crossing it. The default passes everything unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay is `delay` plus a uniform sample in `[-jitter, +jitter]` (at least 0).
    pub jitter: Duration,
    /// Let jitter reorder packets (a later packet with a shorter sample overtakes).
    pub jitter_reorders: bool,
    /// Independent random loss probability per packet.
    pub loss: f64,
    /// Burst loss, applied after (and independently of) `loss`.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a packet is held back by `reorder_delay` more than the others.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that a packet is sent twice (the copy gets its own jitter sample).
    pub duplicate: f64,
    /// Bottleneck rate in bit/s of IP packet bytes; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// Drop-tail queue limit in bytes (with a rate).
    pub queue_bytes: Option<usize>,
    /// Drop-tail queue limit as time to drain at the rate (with a rate).
    pub queue_time: Option<Duration>,
}

/// A queue limit when none is set: a second at the rate.
const DEFAULT_QUEUE_TIME: Duration = Duration::from_secs(1);

impl LinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_probability("loss", self.loss)?;
        check_probability("reorder", self.reorder)?;
        check_probability("duplicate", self.duplicate)?;
        if let Some(ge) = &self.burst_loss {
            ge.validate()?;
        }
        match self.rate_bps {
            Some(0) => Err(ConfigError::ZeroRate),
            None if self.queue_bytes.is_some() || self.queue_time.is_some() => {
                Err(ConfigError::QueueWithoutRate)
            }
            _ => Ok(()),
        }
    }

    /// The drop-tail limit in bytes: the smaller of the byte and the time limit.
    pub fn queue_limit_bytes(&self) -> Option<usize> {
        let rate = self.rate_bps?;
        let by_time = |t: Duration| (rate as u128 * t.as_nanos() / 8_000_000_000) as usize;
        Some(match (self.queue_bytes, self.queue_time) {
            (Some(b), Some(t)) => b.min(by_time(t)),
            (Some(b), None) => b,
            (None, Some(t)) => by_time(t),
            (None, None) => by_time(DEFAULT_QUEUE_TIME),
        })
    }
}

fn check_probability(name: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Probability { name, value })
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Dropped because the queue was full.
    pub dropped_queue: u64,
    /// Dropped by random loss.
    pub dropped_random: u64,
    /// Dropped by burst loss.
    pub dropped_burst: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Bytes and packets in the bottleneck queue now (the one being sent included).
    pub queue_bytes: usize,
    pub queue_packets: usize,
    pub max_queue_bytes: usize,
}

impl LinkStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped_queue + self.dropped_random + self.dropped_burst
    }
}

/// A packet leaving the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub data: Vec<u8>,
    /// When it was due to leave (`poll` may be called later).
    pub due: Instant,
}

/// A packet waiting out its propagation delay; ordered by release time, then arrival order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

/// One direction of an impaired link.
pub struct Link {
    cfg: LinkConfig,
    queue_limit: Option<usize>,
    rng: Xoshiro256PlusPlus,
    queue: VecDeque<Vec<u8>>,
    /// When the head of the queue has been fully sent.
    head_done: Option<Instant>,
    ge_bad: bool,
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Release time of the last in-order packet: later ones never leave before it.
    last_release: Option<Instant>,
    seq: u64,
    stats: LinkStats,
}

impl Link {
    pub fn new(cfg: LinkConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Link {
            queue_limit: cfg.queue_limit_bytes(),
            cfg,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            queue: VecDeque::new(),
            head_done: None,
            ge_bad: false,
            delayed: BinaryHeap::new(),
            last_release: None,
            seq: 0,
            stats: LinkStats::default(),
        })
    }

    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// A packet arrives at `now`.
    pub fn push(&mut self, now: Instant, packet: Vec<u8>) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += packet.len() as u64;
        let Some(rate) = self.cfg.rate_bps else {
            self.on_wire(now, packet);
            return;
        };
        self.advance(now);
        let limit = self.queue_limit.unwrap_or(usize::MAX);
        // An empty queue takes any packet, so a limit below one MTU still passes traffic.
        if !self.queue.is_empty() && self.stats.queue_bytes + packet.len() > limit {
            self.stats.dropped_queue += 1;
            return;
        }
        if self.queue.is_empty() {
            self.head_done = Some(now + tx_time(packet.len(), rate));
        }
        self.stats.queue_bytes += packet.len();
        self.stats.queue_packets += 1;
        self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(self.stats.queue_bytes);
        self.queue.push_back(packet);
    }

    /// The next packet due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Packet> {
        self.advance(now);
        if self.delayed.peek()?.0.at > now {
            return None;
        }
        let d = self.delayed.pop()?.0;
        self.stats.packets_out += 1;
        self.stats.bytes_out += d.data.len() as u64;
        Some(Packet {
            data: d.data,
            due: d.at,
        })
    }

    /// When `poll` next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let release = self.delayed.peek().map(|d| d.0.at);
        match (self.head_done, release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Move packets whose serialisation has finished by `now` onto the wire, at the time it
    /// finished (not at `now`), so a late call does not add delay.
    fn advance(&mut self, now: Instant) {
        let Some(rate) = self.cfg.rate_bps else {
            return;
        };
        while let Some(done) = self.head_done.filter(|&d| d <= now) {
            let Some(p) = self.queue.pop_front() else {
                self.head_done = None;
                break;
            };
            self.stats.queue_bytes -= p.len();
            self.stats.queue_packets -= 1;
            self.head_done = self.queue.front().map(|n| done + tx_time(n.len(), rate));
            self.on_wire(done, p);
        }
    }

    /// The packet leaves the bottleneck at `t`: loss, duplication, then propagation.
    fn on_wire(&mut self, t: Instant, packet: Vec<u8>) {
        if self.cfg.loss > 0.0 && self.rng.random::<f64>() < self.cfg.loss {
            self.stats.dropped_random += 1;
            return;
        }
        if let Some(ge) = self.cfg.burst_loss {
            let flip = if self.ge_bad { ge.r } else { ge.p };
            if self.rng.random::<f64>() < flip {
                self.ge_bad = !self.ge_bad;
            }
            let loss = if self.ge_bad {
                ge.loss_bad
            } else {
                ge.loss_good
            };
            if loss > 0.0 && self.rng.random::<f64>() < loss {
                self.stats.dropped_burst += 1;
                return;
            }
        }
        if self.cfg.duplicate > 0.0 && self.rng.random::<f64>() < self.cfg.duplicate {
            self.stats.duplicated += 1;
            self.propagate(t, packet.clone());
        }
        self.propagate(t, packet);
    }

    fn propagate(&mut self, t: Instant, data: Vec<u8>) {
        let mut at = t + self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            let j = self.cfg.jitter.as_nanos() as i64;
            let sample = self.rng.random_range(-j..=j);
            at = if sample >= 0 {
                at + Duration::from_nanos(sample as u64)
            } else {
                // Never earlier than the packet left the bottleneck.
                at.checked_sub(Duration::from_nanos(sample.unsigned_abs()))
                    .unwrap_or(t)
                    .max(t)
            };
        }
        if self.cfg.reorder > 0.0 && self.rng.random::<f64>() < self.cfg.reorder {
            // Held back outside the in-order chain, so the packets after it overtake.
            self.stats.reordered += 1;
            at += self.cfg.reorder_delay;
        } else if !self.cfg.jitter_reorders {
            if let Some(last) = self.last_release {
                at = at.max(last);
            }
            self.last_release = Some(at);
        }
        self.seq += 1;
        self.delayed.push(Reverse(Delayed {
            at,
            seq: self.seq,
            data,
        }));
    }
}

/// Time to send `len` bytes at `rate` bit/s, to the nanosecond.
fn tx_time(len: usize, rate: u64) -> Duration {
    Duration::from_nanos((len as u128 * 8_000_000_000 / rate as u128) as u64)
}

#[cfg(test)]
mod tests;
