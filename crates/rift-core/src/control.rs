//! The reliable, ordered control channel: one per connection, both directions in one struct.
//!
//! Control traffic (session setup, codec changes, clipboard, ...) is rare and must arrive intact
//! and in order, so unlike media and input it is retransmitted until acknowledged. The sender keeps
//! at most [`WINDOW`] messages in flight because that is all a 64-bit SACK can describe; the
//! receiver buffers out-of-order messages within that window, so buffered bytes are bounded by
//! `WINDOW * MAX_CONTROL_MESSAGE`.
//!
//! Sequence numbers start at 0 and compare with wrapping (serial number) arithmetic.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::rtt::RttEstimator;
use crate::wire::MAX_CONTROL_MESSAGE;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Width of the receive window and of the SACK bitmap: the receiver accepts
/// `next_expected ..= next_expected + WINDOW`; SACK bit `i` stands for `next_expected + 1 + i`.
pub const WINDOW: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unacknowledged messages allowed in flight; clamped to `1..=WINDOW` because the receiver
    /// window and the SACK cover no more.
    pub max_in_flight: usize,
    /// Messages held by the sender (in flight plus waiting); `send` fails beyond this so a stalled
    /// peer cannot make us buffer without bound.
    pub max_queued: usize,
    /// Lower bound of the retransmission timeout; keeps a tiny RTT from causing spurious resends.
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout, backoff included.
    pub max_rto: Duration,
    /// Timeout before any RTT sample exists.
    pub initial_rto: Duration,
    /// Retransmissions of one message before the channel declares the path dead.
    pub max_retransmits: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            max_in_flight: WINDOW,
            max_queued: 1024,
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(2),
            initial_rto: Duration::from_millis(200),
            max_retransmits: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ControlError {
    #[error("control message of {0} bytes exceeds the {MAX_CONTROL_MESSAGE}-byte limit")]
    MessageTooLong(usize),
    #[error("control send queue is full ({0} messages)")]
    QueueFull(usize),
    #[error("control channel failed: a message went unacknowledged after {0} retransmissions")]
    Failed(u32),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Messages transmitted for the first time.
    pub sent: u64,
    /// Retransmissions after an expired timeout.
    pub retransmitted: u64,
    /// Our messages the peer acknowledged.
    pub acked: u64,
    /// Peer messages made available, in order, to `poll_message`.
    pub delivered: u64,
    /// Received packets carrying a message we already had.
    pub duplicates: u64,
    /// Received packets too far ahead of the receive window, dropped unbuffered.
    pub out_of_window: u64,
}

/// Wrapping sequence order: `a` comes before `b`.
fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[derive(Debug, Clone, Copy)]
struct Transmission {
    /// Latest (re)transmission.
    at: Instant,
    /// When the retransmission timer of this message expires.
    deadline: Instant,
    retransmits: u32,
}

#[derive(Debug)]
struct Outgoing {
    data: Vec<u8>,
    /// `None` until first sent.
    tx: Option<Transmission>,
    /// Selectively acknowledged while an earlier message is still missing.
    acked: bool,
}

#[derive(Debug)]
pub struct ControlChannel {
    cfg: ControlConfig,
    // Sender.
    /// Seq of `outgoing[0]`, the oldest message not yet known to be acknowledged.
    send_base: u32,
    /// Messages from `send_base` on; the first `sent_count` have been transmitted, in order.
    outgoing: VecDeque<Outgoing>,
    sent_count: usize,
    failed: bool,
    // Receiver.
    next_expected: u32,
    /// Out-of-order messages `next_expected + 1 ..= next_expected + WINDOW`, at `seq % WINDOW`
    /// (distinct within that range; `next_expected` itself is never buffered).
    reorder: [Option<(u32, Vec<u8>)>; WINDOW],
    ready: VecDeque<Vec<u8>>,
    ack_due: bool,
    stats: ControlStats,
}

impl ControlChannel {
    pub fn new(mut cfg: ControlConfig) -> Self {
        cfg.max_in_flight = cfg.max_in_flight.clamp(1, WINDOW);
        cfg.max_rto = cfg.max_rto.max(cfg.min_rto);
        ControlChannel {
            cfg,
            send_base: 0,
            outgoing: VecDeque::new(),
            sent_count: 0,
            failed: false,
            next_expected: 0,
            reorder: std::array::from_fn(|_| None),
            ready: VecDeque::new(),
            ack_due: false,
            stats: ControlStats::default(),
        }
    }

    /// Queue a message (at most `MAX_CONTROL_MESSAGE` bytes) for reliable in-order delivery and
    /// return its sequence number.
    pub fn send(&mut self, message: &[u8]) -> Result<u32, ControlError> {
        if message.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::MessageTooLong(message.len()));
        }
        if self.failed {
            return Err(ControlError::Failed(self.cfg.max_retransmits));
        }
        if self.outgoing.len() >= self.cfg.max_queued {
            return Err(ControlError::QueueFull(self.outgoing.len()));
        }
        let seq = self.send_base.wrapping_add(self.outgoing.len() as u32);
        self.outgoing.push_back(Outgoing {
            data: message.to_vec(),
            tx: None,
            acked: false,
        });
        Ok(seq)
    }

    /// Current base retransmission timeout from the connection's RTT estimate: `srtt + 4 *
    /// rttvar` (or `initial_rto` before any sample) clamped to `[min_rto, max_rto]`.
    pub fn rto(&self, rtt: &RttEstimator) -> Duration {
        let base = rtt.rto_base().unwrap_or(self.cfg.initial_rto);
        base.max(self.cfg.min_rto).min(self.cfg.max_rto)
    }

    /// Timeout for a message retransmitted `retransmits` times: the RTO doubled per
    /// retransmission (so a congested or dead path is not hammered), capped at `max_rto`.
    fn backoff(&self, rtt: &RttEstimator, retransmits: u32) -> Duration {
        self.rto(rtt)
            .saturating_mul(2u32.saturating_pow(retransmits))
            .min(self.cfg.max_rto)
    }

    /// The next Control body to transmit at `now`: a retransmission whose timer expired (oldest
    /// deadline first, since it blocks in-order delivery), else a new message if the window
    /// allows. The caller encodes `Body::Control { seq, message }`. Timers run on `rtt`, the
    /// connection's RTT estimate.
    pub fn poll_transmit(&mut self, now: Instant, rtt: &RttEstimator) -> Option<(u32, &[u8])> {
        if self.failed {
            return None;
        }
        let due = self
            .outgoing
            .iter()
            .take(self.sent_count)
            .enumerate()
            .filter(|(_, o)| !o.acked)
            .filter_map(|(i, o)| o.tx.map(|t| (t.deadline, i, t.retransmits)))
            .filter(|&(deadline, _, _)| deadline <= now)
            .min();
        // Message `i` of `outgoing` goes out for the `retransmits`th time.
        let (i, retransmits) = if let Some((_, i, retransmits)) = due {
            if retransmits >= self.cfg.max_retransmits {
                self.failed = true;
                return None;
            }
            self.stats.retransmitted += 1;
            (i, retransmits + 1)
        } else if self.sent_count < self.outgoing.len() && self.sent_count < self.cfg.max_in_flight
        {
            self.sent_count += 1;
            self.stats.sent += 1;
            (self.sent_count - 1, 0)
        } else {
            return None;
        };
        let timeout = self.backoff(rtt, retransmits);
        // `i` is below `sent_count`, at most `outgoing.len()`.
        let o = self.outgoing.get_mut(i)?;
        o.tx = Some(Transmission {
            at: now,
            deadline: now + timeout,
            retransmits,
        });
        let seq = self.send_base.wrapping_add(i as u32);
        Some((seq, &o.data))
    }

    /// Handle a received Control packet. In-order messages become available through
    /// `poll_message`; an ack becomes due even for duplicates (our previous ack may have been
    /// lost). Messages more than `WINDOW` ahead are dropped: a conforming sender never sends them.
    pub fn on_control(
        &mut self,
        _now: Instant,
        seq: u32,
        message: &[u8],
    ) -> Result<(), ControlError> {
        if message.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::MessageTooLong(message.len()));
        }
        self.ack_due = true;
        let offset = seq.wrapping_sub(self.next_expected);
        if seq_before(seq, self.next_expected) {
            self.stats.duplicates += 1;
        } else if offset as usize > WINDOW {
            self.stats.out_of_window += 1;
        } else if offset == 0 {
            self.deliver(message.to_vec());
            self.drain_reorder();
        } else if let Some(slot) = self.reorder.get_mut(seq as usize % WINDOW) {
            match slot {
                Some((s, _)) if *s == seq => self.stats.duplicates += 1,
                _ => *slot = Some((seq, message.to_vec())),
            }
        }
        Ok(())
    }

    fn deliver(&mut self, message: Vec<u8>) {
        self.ready.push_back(message);
        self.next_expected = self.next_expected.wrapping_add(1);
        self.stats.delivered += 1;
    }

    fn drain_reorder(&mut self) {
        loop {
            let next = self.next_expected;
            let Some((_, m)) = self
                .reorder
                .get_mut(next as usize % WINDOW)
                .and_then(|slot| slot.take_if(|(s, _)| *s == next))
            else {
                return;
            };
            self.deliver(m);
        }
    }

    fn sack(&self) -> u64 {
        (0..WINDOW).fold(0u64, |sack, i| {
            let seq = self.next_expected.wrapping_add(1 + i as u32);
            match self.reorder.get(seq as usize % WINDOW) {
                Some(Some((s, _))) if *s == seq => sack | (1 << i),
                _ => sack,
            }
        })
    }

    /// The ControlAck `(next_expected, sack)` to send, if one is due.
    pub fn poll_ack(&mut self) -> Option<(u32, u64)> {
        if !self.ack_due {
            return None;
        }
        self.ack_due = false;
        Some((self.next_expected, self.sack()))
    }

    /// Handle a received ControlAck. Stale (reordered) acks still contribute their SACK bits;
    /// acks claiming messages we never sent are ignored. The ack's RTT sample, if it gives one,
    /// goes into `rtt`, the connection's estimate.
    pub fn on_ack(&mut self, now: Instant, next_expected: u32, sack: u64, rtt: &mut RttEstimator) {
        let ahead = next_expected.wrapping_sub(self.send_base);
        if !seq_before(next_expected, self.send_base) && ahead as usize > self.sent_count {
            return;
        }
        // Karn's rule: only never-retransmitted messages give unambiguous RTT samples.
        let mut sample_from: Option<Instant> = None;
        for (i, o) in self.outgoing.iter_mut().take(self.sent_count).enumerate() {
            if o.acked {
                continue;
            }
            let seq = self.send_base.wrapping_add(i as u32);
            let acked = if seq_before(seq, next_expected) {
                true
            } else {
                let off = seq.wrapping_sub(next_expected).wrapping_sub(1) as usize;
                seq != next_expected && off < WINDOW && sack & (1 << off) != 0
            };
            if acked {
                o.acked = true;
                self.stats.acked += 1;
                if let Some(t) = o.tx.filter(|t| t.retransmits == 0) {
                    sample_from = Some(sample_from.map_or(t.at, |s| s.max(t.at)));
                }
            }
        }
        if let Some(at) = sample_from {
            rtt.on_sample(now.saturating_duration_since(at));
        }
        while self.outgoing.front().is_some_and(|o| o.acked) {
            self.outgoing.pop_front();
            self.sent_count -= 1;
            self.send_base = self.send_base.wrapping_add(1);
        }
    }

    /// The next in-order message from the peer.
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Earliest time a retransmission timer expires (`poll_transmit` then has something to send,
    /// or the channel fails). New messages and acks are ready at once: see `wants_transmit`.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.outgoing
            .iter()
            .take(self.sent_count)
            .filter(|o| !o.acked)
            .filter_map(|o| o.tx.map(|t| t.deadline))
            .min()
    }

    /// Whether something can be sent right now without waiting for a timer: an ack is due, or a
    /// queued message fits in the window. (`send` takes no time, so `next_timeout` cannot report
    /// new messages.)
    pub fn wants_transmit(&self) -> bool {
        self.ack_due
            || (!self.failed
                && self.sent_count < self.outgoing.len()
                && self.sent_count < self.cfg.max_in_flight)
    }

    /// Run the timers due at `now` without transmitting: marks the channel failed if a message
    /// exhausted its retransmissions, so `failed` is accurate before `poll_transmit` is called.
    pub fn handle_timeout(&mut self, now: Instant) {
        let max = self.cfg.max_retransmits;
        let exhausted = self
            .outgoing
            .iter()
            .take(self.sent_count)
            .filter(|o| !o.acked)
            .filter_map(|o| o.tx)
            .any(|t| t.retransmits >= max && t.deadline <= now);
        self.failed |= exhausted;
    }

    /// A message went unacknowledged through `max_retransmits` retransmissions: the connection
    /// should be closed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Messages sent but not yet known to be acknowledged.
    pub fn in_flight(&self) -> usize {
        self.outgoing
            .iter()
            .take(self.sent_count)
            .filter(|o| !o.acked)
            .count()
    }

    /// Messages held by the sender: in flight plus not yet sent.
    pub fn queued(&self) -> usize {
        self.outgoing.len()
    }

    pub fn stats(&self) -> ControlStats {
        self.stats
    }

    /// Start both directions at `seq` instead of 0, to exercise wrap-around in tests.
    #[cfg(test)]
    fn with_initial_seq(mut self, seq: u32) -> Self {
        self.send_base = seq;
        self.next_expected = seq;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> ControlConfig {
        ControlConfig::default()
    }

    /// Packets in flight between the two ends of the simulated path.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Pkt {
        Control(u32, Vec<u8>),
        Ack(u32, u64),
    }

    /// A path that loses, delays by a random amount (so reorders) and duplicates packets.
    struct Path {
        rng: Xoshiro256PlusPlus,
        loss: f64,
        queue: BinaryHeap<Reverse<(Instant, u64, Pkt)>>,
        id: u64,
    }

    impl Path {
        fn send(&mut self, now: Instant, p: Pkt) {
            let copies = if self.rng.random_bool(0.05) { 2 } else { 1 };
            for _ in 0..copies {
                if self.rng.random_bool(self.loss) {
                    continue;
                }
                let delay = MS * self.rng.random_range(5..60);
                self.id += 1;
                self.queue.push(Reverse((now + delay, self.id, p.clone())));
            }
        }

        fn pop_due(&mut self, now: Instant) -> Option<Pkt> {
            if self
                .queue
                .peek()
                .is_some_and(|Reverse((t, _, _))| *t <= now)
            {
                self.queue.pop().map(|Reverse((_, _, p))| p)
            } else {
                None
            }
        }

        fn next(&self) -> Option<Instant> {
            self.queue.peek().map(|Reverse((t, _, _))| *t)
        }
    }

    fn message(side: u8, i: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
        let len = rng.random_range(0..=MAX_CONTROL_MESSAGE);
        let mut m = vec![side; len];
        for (k, b) in m.iter_mut().enumerate().take(8) {
            *b = (i >> (8 * k)) as u8;
        }
        m
    }

    /// Pump everything both ends want to send at `now` onto the paths.
    fn pump(
        now: Instant,
        ends: &mut [ControlChannel; 2],
        rtts: &[RttEstimator; 2],
        paths: &mut [Path; 2],
    ) {
        for ((end, rtt), path) in ends.iter_mut().zip(rtts).zip(paths.iter_mut()) {
            if let Some((ne, sack)) = end.poll_ack() {
                path.send(now, Pkt::Ack(ne, sack));
            }
            while let Some((seq, m)) = end.poll_transmit(now, rtt) {
                path.send(now, Pkt::Control(seq, m.to_vec()));
            }
            assert!(end.in_flight() <= WINDOW);
            assert!(!end.wants_transmit());
        }
    }

    /// Run both directions over a lossy, reordering, duplicating path until every message
    /// arrived, and check each end received exactly what the other sent.
    fn simulate(seed: u64, loss: f64, counts: [usize; 2], initial_seq: u32) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let cfg = ControlConfig {
            max_retransmits: 1000,
            max_queued: 2000,
            ..cfg()
        };
        let mut ends =
            [0, 1].map(|_| ControlChannel::new(cfg.clone()).with_initial_seq(initial_seq));
        let mut rtts = [RttEstimator::default(); 2];
        // paths[k] carries what end k sends to the other end.
        let mut paths = [0, 1].map(|k| Path {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ (k + 1)),
            loss,
            queue: BinaryHeap::new(),
            id: 0,
        });
        let mut sent: [Vec<Vec<u8>>; 2] = [vec![], vec![]];
        for (k, end) in ends.iter_mut().enumerate() {
            for i in 0..counts[k] {
                let m = message(k as u8, i, &mut rng);
                let seq = end.send(&m).expect("queue has room");
                assert_eq!(seq, initial_seq.wrapping_add(i as u32));
                sent[k].push(m);
            }
        }
        let mut received: [Vec<Vec<u8>>; 2] = [vec![], vec![]];
        let t0 = Instant::now();
        let mut now = t0;
        for _ in 0..1_000_000 {
            for k in 0..2 {
                while let Some(p) = paths[k].pop_due(now) {
                    let rx = &mut ends[1 - k];
                    match p {
                        Pkt::Control(seq, m) => rx.on_control(now, seq, &m).expect("valid"),
                        Pkt::Ack(ne, sack) => rx.on_ack(now, ne, sack, &mut rtts[1 - k]),
                    }
                }
            }
            for (end, got) in ends.iter_mut().zip(received.iter_mut()) {
                while let Some(m) = end.poll_message() {
                    got.push(m);
                }
            }
            pump(now, &mut ends, &rtts, &mut paths);
            let done = (0..2).all(|k| received[1 - k].len() == counts[k] && ends[k].queued() == 0);
            if done {
                break;
            }
            let next = [
                paths[0].next(),
                paths[1].next(),
                ends[0].next_timeout(),
                ends[1].next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something is pending while messages are outstanding");
            now = next.max(now);
        }
        for end in &ends {
            assert!(!end.failed());
        }
        assert_eq!(ends[1].stats().delivered, counts[0] as u64);
        assert_eq!(ends[0].stats().delivered, counts[1] as u64);
        // What end 0 sent is exactly what end 1 received, in order, and vice versa.
        assert!(
            received[1] == sent[0],
            "end 1 received a different sequence"
        );
        assert!(
            received[0] == sent[1],
            "end 0 received a different sequence"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn delivers_in_order_exactly_once_over_lossy_path(seed in any::<u64>(), loss in 0.0f64..0.30) {
            simulate(seed, loss, [1000, 200], 0);
        }
    }

    #[test]
    fn delivers_across_sequence_wrap() {
        simulate(7, 0.2, [300, 300], u32::MAX - 100);
    }

    #[test]
    fn delivers_over_lossless_path() {
        simulate(1, 0.0, [1000, 1000], 0);
    }

    #[test]
    fn rto_backoff_doubles_per_retransmission_up_to_max() {
        let rtt = RttEstimator::default();
        let mut c = ControlChannel::new(cfg());
        let t0 = Instant::now();
        c.send(b"hello").unwrap();
        assert_eq!(c.poll_transmit(t0, &rtt), Some((0, &b"hello"[..])));
        let mut t = t0;
        for timeout_ms in [200, 400, 800, 1600, 2000, 2000] {
            let deadline = t + MS * timeout_ms;
            assert_eq!(c.next_timeout(), Some(deadline));
            assert_eq!(c.poll_transmit(deadline - MS, &rtt), None);
            assert_eq!(c.poll_transmit(deadline, &rtt), Some((0, &b"hello"[..])));
            assert_eq!(c.poll_transmit(deadline, &rtt), None);
            t = deadline;
        }
        assert_eq!(c.stats().retransmitted, 6);
        assert_eq!(c.stats().sent, 1);
    }

    #[test]
    fn rto_follows_rtt_estimate() {
        let mut rtt = RttEstimator::default();
        let c = ControlChannel::new(cfg());
        assert_eq!(c.rto(&rtt), MS * 200);
        rtt.on_sample(MS * 40);
        // srtt 40, rttvar 20: 40 + 80.
        assert_eq!(c.rto(&rtt), MS * 120);
        let mut rtt = RttEstimator::default();
        rtt.on_sample(Duration::from_micros(100));
        assert_eq!(c.rto(&rtt), MS * 20, "clamped to min_rto");
        rtt.on_sample(Duration::MAX);
        assert_eq!(
            c.rto(&rtt),
            Duration::from_secs(2),
            "clamped to max_rto, no overflow"
        );
    }

    #[test]
    fn karn_samples_only_unretransmitted_messages() {
        let mut rtt = RttEstimator::default();
        let mut c = ControlChannel::new(cfg());
        let t0 = Instant::now();
        c.send(b"a").unwrap();
        c.send(b"b").unwrap();
        c.poll_transmit(t0, &rtt).unwrap();
        // Message 0 times out and is retransmitted; its ack must not produce a sample.
        c.poll_transmit(t0 + MS * 200, &rtt).unwrap();
        c.on_ack(t0 + MS * 210, 1, 0, &mut rtt);
        assert_eq!(
            c.rto(&rtt),
            MS * 200,
            "no sample from a retransmitted message"
        );
        c.poll_transmit(t0 + MS * 300, &rtt).unwrap();
        c.on_ack(t0 + MS * 340, 2, 0, &mut rtt);
        assert_eq!(c.rto(&rtt), MS * 120, "sample of 40 ms");
    }

    #[test]
    fn fails_after_max_retransmits() {
        let rtt = RttEstimator::default();
        let mut c = ControlChannel::new(ControlConfig {
            max_retransmits: 3,
            ..cfg()
        });
        let t0 = Instant::now();
        c.send(b"x").unwrap();
        c.poll_transmit(t0, &rtt).unwrap();
        let mut retransmissions = 0;
        while let Some(t) = c.next_timeout() {
            if c.poll_transmit(t, &rtt).is_some() {
                retransmissions += 1;
            }
            assert!(retransmissions <= 3);
        }
        assert_eq!(retransmissions, 3);
        assert!(c.failed());
        assert_eq!(c.next_timeout(), None);
        assert_eq!(c.poll_transmit(t0 + Duration::from_secs(100), &rtt), None);
        assert_eq!(c.send(b"y"), Err(ControlError::Failed(3)));
    }

    #[test]
    fn handle_timeout_detects_failure_without_transmitting() {
        let rtt = RttEstimator::default();
        let mut c = ControlChannel::new(ControlConfig {
            max_retransmits: 1,
            ..cfg()
        });
        let t0 = Instant::now();
        c.send(b"x").unwrap();
        c.poll_transmit(t0, &rtt).unwrap();
        c.handle_timeout(t0 + MS * 200);
        assert!(!c.failed(), "one retransmission is still allowed");
        c.poll_transmit(t0 + MS * 200, &rtt).unwrap();
        let last = c.next_timeout().unwrap();
        assert_eq!(last, t0 + MS * 600);
        c.handle_timeout(last - MS);
        assert!(!c.failed());
        c.handle_timeout(last);
        assert!(c.failed());
        assert_eq!(c.poll_transmit(last, &rtt), None);
    }

    #[test]
    fn ack_before_failure_keeps_channel_alive() {
        let mut rtt = RttEstimator::default();
        let mut c = ControlChannel::new(ControlConfig {
            max_retransmits: 1,
            ..cfg()
        });
        let t0 = Instant::now();
        c.send(b"x").unwrap();
        c.poll_transmit(t0, &rtt).unwrap();
        c.poll_transmit(t0 + MS * 200, &rtt).unwrap();
        c.on_ack(t0 + MS * 250, 1, 0, &mut rtt);
        assert_eq!(c.next_timeout(), None);
        assert_eq!(c.poll_transmit(t0 + Duration::from_secs(10), &rtt), None);
        assert!(!c.failed());
        assert_eq!(c.stats().acked, 1);
    }

    #[test]
    fn window_limits_messages_in_flight() {
        let mut rtt = RttEstimator::default();
        for max_in_flight in [8, 64, 1000] {
            let mut c = ControlChannel::new(ControlConfig {
                max_in_flight,
                ..cfg()
            });
            let limit = max_in_flight.min(WINDOW);
            let t0 = Instant::now();
            for i in 0..100u32 {
                assert_eq!(c.send(&i.to_be_bytes()), Ok(i));
            }
            let mut seqs = vec![];
            while let Some((seq, m)) = c.poll_transmit(t0, &rtt) {
                assert_eq!(m, seq.to_be_bytes());
                seqs.push(seq);
            }
            assert_eq!(seqs, (0..limit as u32).collect::<Vec<_>>());
            assert!(!c.wants_transmit());
            // Acking the first 5 opens exactly 5 slots.
            c.on_ack(t0 + MS, 5, 0, &mut rtt);
            let more: Vec<u32> =
                std::iter::from_fn(|| c.poll_transmit(t0 + MS, &rtt).map(|(s, _)| s)).collect();
            assert_eq!(more, (limit as u32..limit as u32 + 5).collect::<Vec<_>>());
            // A selective ack does not open the window: seq 5 is still outstanding.
            c.on_ack(t0 + MS, 5, 0b1110, &mut rtt);
            assert_eq!(c.poll_transmit(t0 + MS, &rtt), None);
            assert_eq!(c.in_flight(), limit - 3);
        }
    }

    #[test]
    fn sacked_messages_are_not_retransmitted() {
        let mut rtt = RttEstimator::default();
        let mut c = ControlChannel::new(cfg());
        let t0 = Instant::now();
        for _ in 0..4 {
            c.send(b"m").unwrap();
        }
        while c.poll_transmit(t0, &rtt).is_some() {}
        // 1 and 3 arrived (bits 0 and 2 above next_expected 0).
        c.on_ack(t0 + MS * 10, 0, 0b101, &mut rtt);
        let resent: Vec<u32> =
            std::iter::from_fn(|| c.poll_transmit(t0 + MS * 200, &rtt).map(|(s, _)| s)).collect();
        assert_eq!(resent, vec![0, 2]);
    }

    #[test]
    fn bogus_ack_for_unsent_messages_is_ignored() {
        let mut rtt = RttEstimator::default();
        let mut c = ControlChannel::new(cfg());
        let t0 = Instant::now();
        c.send(b"a").unwrap();
        c.send(b"b").unwrap();
        c.poll_transmit(t0, &rtt).unwrap();
        c.on_ack(t0, 2, 0, &mut rtt);
        assert_eq!(c.in_flight(), 1);
        assert_eq!(c.queued(), 2);
        // Sack bits for unsent messages are ignored too.
        c.on_ack(t0, 0, u64::MAX, &mut rtt);
        assert_eq!(c.stats().acked, 0);
        assert_eq!(c.poll_transmit(t0, &rtt), Some((1, &b"b"[..])));
    }

    #[test]
    fn oversize_message_rejected() {
        let mut c = ControlChannel::new(cfg());
        let big = vec![0u8; MAX_CONTROL_MESSAGE + 1];
        assert_eq!(
            c.send(&big),
            Err(ControlError::MessageTooLong(MAX_CONTROL_MESSAGE + 1))
        );
        assert_eq!(c.send(&big[..MAX_CONTROL_MESSAGE]), Ok(0));
        assert_eq!(
            c.on_control(Instant::now(), 0, &big),
            Err(ControlError::MessageTooLong(MAX_CONTROL_MESSAGE + 1))
        );
        assert_eq!(c.poll_ack(), None);
    }

    #[test]
    fn queue_full_rejected() {
        let mut rtt = RttEstimator::default();
        let mut c = ControlChannel::new(ControlConfig {
            max_queued: 3,
            ..cfg()
        });
        for i in 0..3 {
            assert_eq!(c.send(b""), Ok(i));
        }
        assert_eq!(c.send(b""), Err(ControlError::QueueFull(3)));
        let t0 = Instant::now();
        c.poll_transmit(t0, &rtt).unwrap();
        c.on_ack(t0, 1, 0, &mut rtt);
        assert_eq!(c.send(b""), Ok(3));
    }

    #[test]
    fn receiver_reorders_acks_and_drops_out_of_window() {
        let mut c = ControlChannel::new(cfg());
        let t = Instant::now();
        assert_eq!(c.poll_ack(), None);
        c.on_control(t, 2, b"two").unwrap();
        assert_eq!(c.poll_ack(), Some((0, 0b10)));
        assert_eq!(c.poll_ack(), None);
        assert_eq!(c.poll_message(), None);
        c.on_control(t, 64, b"edge").unwrap();
        assert_eq!(c.poll_ack(), Some((0, 0b10 | 1 << 63)));
        c.on_control(t, 65, b"beyond").unwrap();
        assert_eq!(c.stats().out_of_window, 1);
        assert_eq!(
            c.poll_ack(),
            Some((0, 0b10 | 1 << 63)),
            "out-of-window still acked"
        );
        c.on_control(t, 2, b"two").unwrap();
        assert_eq!(c.stats().duplicates, 1);
        c.on_control(t, 0, b"zero").unwrap();
        assert_eq!(c.poll_message().as_deref(), Some(&b"zero"[..]));
        assert_eq!(c.poll_message(), None);
        c.on_control(t, 1, b"one").unwrap();
        assert_eq!(c.poll_message().as_deref(), Some(&b"one"[..]));
        assert_eq!(c.poll_message().as_deref(), Some(&b"two"[..]));
        assert_eq!(c.poll_message(), None);
        // next_expected 3; seq 64 is bit 64 - 3 - 1.
        assert_eq!(c.poll_ack(), Some((3, 1 << 60)));
        // A duplicate of an already delivered message is re-acked, not re-delivered.
        c.on_control(t, 0, b"zero").unwrap();
        assert_eq!(c.poll_ack(), Some((3, 1 << 60)));
        assert_eq!(c.poll_message(), None);
        assert_eq!(c.stats().duplicates, 2);
        assert_eq!(c.stats().delivered, 3);
    }

    #[test]
    fn receiver_window_wraps() {
        let mut c = ControlChannel::new(cfg()).with_initial_seq(u32::MAX - 1);
        let t = Instant::now();
        c.on_control(t, 1, b"c").unwrap();
        c.on_control(t, 0, b"b").unwrap();
        assert_eq!(c.poll_ack(), Some((u32::MAX - 1, 0b110)));
        c.on_control(t, u32::MAX, b"z").unwrap();
        c.on_control(t, u32::MAX - 1, b"y").unwrap();
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| c.poll_message()).collect();
        assert_eq!(got, [b"y", b"z", b"b", b"c"].map(|m| m.to_vec()));
        assert_eq!(c.poll_ack(), Some((2, 0)));
    }
}
