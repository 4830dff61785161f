//! The input channel: lowest latency, with loss covered by repetition instead of retransmission.
//!
//! Waiting an RTT for a retransmitted key press is worse than sending every event several
//! times: each Input packet carries the newest event plus the few before it, so a lost packet is
//! covered by the next one. After the last event of a burst the latest packet is re-sent a few
//! times on a short schedule, so the final event (often a key-up) survives a loss even though no
//! further input follows. The receiver delivers each event once, in order, and never waits for a
//! gap: an event that was lost in every copy is counted, not awaited.
//!
//! Events are opaque byte records (the event model lives in another crate). Sequence numbers are
//! u32 and wrap.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::wire::{Body, InputEvents, MAX_BODY, MAX_INPUT_EVENTS, MAX_INPUT_EVENT_LEN};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Bytes of an Input body before the event records: `first_seq: u32`, `count: u8`.
const INPUT_BODY_HEADER: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    /// Events per packet: the newest plus up to `repeat - 1` before it. A loss burst shorter than
    /// this many packets costs nothing. Clamped to `1..=MAX_INPUT_EVENTS`; packets also stop
    /// short when the records would not fit in one body.
    pub repeat: usize,
    /// Re-sends of the latest packet after the last event, as offsets from that event's first
    /// transmission.
    pub tail_resends: Vec<Duration>,
    /// Events the sender holds (recent ones for repetition plus ones not yet sent); `push` fails
    /// when all of them are still unsent. Raised to at least `repeat`.
    pub capacity: usize,
    /// Sequence number of the first event; the protocol starts at 0 and the receiver must agree.
    pub initial_seq: u32,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            repeat: 8,
            tail_resends: [2, 8, 25].map(Duration::from_millis).to_vec(),
            capacity: 2 * MAX_INPUT_EVENTS,
            initial_seq: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("input event of {0} bytes exceeds the {MAX_INPUT_EVENT_LEN}-byte limit")]
    EventTooLong(usize),
    #[error("input queue full: {0} events not yet sent")]
    QueueFull(usize),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputSenderStats {
    /// Events accepted by `push`.
    pub events: u64,
    /// Packets carrying at least one never-sent event.
    pub packets: u64,
    /// Tail re-sends of the latest packet.
    pub tail_packets: u64,
}

/// One event, stored inline so pushing allocates nothing.
#[derive(Debug, Clone, Copy)]
struct Record {
    len: u8,
    bytes: [u8; MAX_INPUT_EVENT_LEN],
}

impl Record {
    const EMPTY: Record = Record {
        len: 0,
        bytes: [0; MAX_INPUT_EVENT_LEN],
    };

    /// The record of `event`, if it is at most `MAX_INPUT_EVENT_LEN` bytes.
    fn new(event: &[u8]) -> Option<Record> {
        let mut r = Record::EMPTY;
        r.bytes.get_mut(..event.len())?.copy_from_slice(event);
        r.len = event.len() as u8;
        Some(r)
    }

    fn data(&self) -> &[u8] {
        // `new` keeps `len` within `bytes`.
        self.bytes.get(..self.len as usize).unwrap_or_default()
    }

    /// Encoded size: length byte plus the bytes.
    fn wire_len(&self) -> usize {
        1 + self.len as usize
    }
}

/// Sends input events, numbering them and repeating recent ones in every packet.
#[derive(Debug)]
pub struct InputSender {
    repeat: usize,
    tail: Vec<Duration>,
    /// The events `oldest .. oldest + ring.len()`, oldest first; at most `capacity`, so the
    /// ring never grows past its first allocation.
    ring: VecDeque<Record>,
    capacity: usize,
    oldest: u32,
    /// First event never transmitted; `oldest + len` when everything went out.
    next_unsent: u32,
    /// Push time of the oldest unsent event: a packet is due from then on.
    pending_since: Option<Instant>,
    /// First transmission of the newest event, which anchors the tail re-sends.
    tail_anchor: Option<Instant>,
    /// Next entry of `tail` to send.
    tail_next: usize,
    /// Encoded event records of the packet being built.
    scratch: Box<[u8]>,
    stats: InputSenderStats,
}

impl InputSender {
    pub fn new(cfg: InputConfig) -> Self {
        let repeat = cfg.repeat.clamp(1, MAX_INPUT_EVENTS);
        let capacity = cfg.capacity.max(repeat);
        let mut tail = cfg.tail_resends;
        tail.sort();
        InputSender {
            repeat,
            tail,
            ring: VecDeque::with_capacity(capacity),
            capacity,
            oldest: cfg.initial_seq,
            next_unsent: cfg.initial_seq,
            pending_since: None,
            tail_anchor: None,
            tail_next: 0,
            scratch: vec![0; MAX_BODY].into_boxed_slice(),
            stats: InputSenderStats::default(),
        }
    }

    /// Sequence number the next pushed event gets.
    fn end(&self) -> u32 {
        self.oldest.wrapping_add(self.ring.len() as u32)
    }

    /// The record of event `seq`, if the ring holds it.
    fn record(&self, seq: u32) -> Option<&Record> {
        ring_record(&self.ring, self.oldest, seq)
    }

    /// Queue an event and return its sequence number; a packet is due at once.
    pub fn push(&mut self, now: Instant, event: &[u8]) -> Result<u32, InputError> {
        let Some(record) = Record::new(event) else {
            return Err(InputError::EventTooLong(event.len()));
        };
        if self.ring.len() == self.capacity {
            // Full: forget the oldest event if it already went out; it is the least useful
            // repetition. Never drop one that was not sent.
            if self.oldest == self.next_unsent {
                return Err(InputError::QueueFull(self.ring.len()));
            }
            self.oldest = self.oldest.wrapping_add(1);
            self.ring.pop_front();
        }
        let seq = self.end();
        self.ring.push_back(record);
        self.pending_since.get_or_insert(now);
        self.stats.events += 1;
        Ok(seq)
    }

    /// Encode the next Input body into `out` and return its length, or `None` if nothing is due
    /// at `now`. New events go first (a burst larger than one packet takes several), each packet
    /// filled up with the events before them; otherwise a due tail re-send repeats the newest
    /// events. `out` should hold `MAX_BODY` bytes; a smaller buffer carries fewer events.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let fresh = self.next_unsent != self.end();
        let tail_due = !fresh && self.tail_deadline().is_some_and(|t| t <= now);
        if !fresh && !tail_due {
            return None;
        }
        let budget = out.len().min(MAX_BODY).checked_sub(INPUT_BODY_HEADER)?;
        let mut count = 0usize;
        let mut bytes = 0usize;
        // `start .. stop` is the packet's range of events.
        let (mut start, mut stop) = if fresh {
            (self.next_unsent, self.next_unsent)
        } else {
            (self.end(), self.end())
        };
        // New events first, oldest unsent onward.
        while fresh && stop != self.end() && count < self.repeat {
            let l = self.record(stop)?.wire_len();
            if bytes + l > budget {
                break;
            }
            bytes += l;
            count += 1;
            stop = stop.wrapping_add(1);
        }
        // Then repetitions of the events before them, newest first.
        while start != self.oldest && count < self.repeat {
            let l = self.record(start.wrapping_sub(1))?.wire_len();
            if bytes + l > budget {
                break;
            }
            bytes += l;
            count += 1;
            start = start.wrapping_sub(1);
        }
        if count == 0 || (fresh && stop == self.next_unsent) {
            return None;
        }
        let (ring, oldest) = (&self.ring, self.oldest);
        // The ring holds `start .. stop`: each was found above.
        let records = (0..count as u32)
            .map_while(|i| ring_record(ring, oldest, start.wrapping_add(i)).map(Record::data));
        // Cannot fail: counts, lengths and the byte budget were checked above.
        let (n, used) = InputEvents::encode(records, &mut self.scratch).ok()?;
        let events = InputEvents::from_encoded(n, self.scratch.get(..used)?).ok()?;
        let written = Body::Input {
            first_seq: start,
            events,
        }
        .encode(out)
        .ok()?;
        if fresh {
            self.next_unsent = stop;
            self.stats.packets += 1;
            if stop == self.end() {
                self.pending_since = None;
                self.tail_anchor = Some(now);
                self.tail_next = 0;
            }
        } else {
            self.stats.tail_packets += 1;
            // Deadlines that passed while we were not polled are covered by this one packet.
            while self.tail_deadline().is_some_and(|t| t <= now) {
                self.tail_next += 1;
            }
        }
        Some(written)
    }

    fn tail_deadline(&self) -> Option<Instant> {
        let anchor = self.tail_anchor?;
        anchor.checked_add(*self.tail.get(self.tail_next)?)
    }

    /// When `poll_transmit` next has something to send: at once while events are unsent, else
    /// at the next tail re-send.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending_since.or_else(|| self.tail_deadline())
    }

    pub fn stats(&self) -> InputSenderStats {
        self.stats
    }
}

/// The record of event `seq` in a ring whose oldest event is `oldest`, if it holds it.
fn ring_record(ring: &VecDeque<Record>, oldest: u32, seq: u32) -> Option<&Record> {
    ring.get(seq.wrapping_sub(oldest) as usize)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Events handed to the application.
    pub delivered: u64,
    /// Copies of events already delivered (the repetitions doing their job), or too old to tell.
    pub duplicates: u64,
    /// Events skipped because a later event arrived first and none of their copies had.
    pub lost: u64,
    /// Skipped (and counted lost) events whose copy arrived afterwards, by reordering; dropped.
    pub late: u64,
}

/// Receives input events: each delivered once, in order, without waiting for gaps.
#[derive(Debug, Clone, Default)]
pub struct InputReceiver {
    /// Next sequence number to deliver; anything before it was delivered or given up.
    next: u32,
    /// Bit `i` set: event `next - 1 - i` was delivered (to tell duplicates from late events).
    history: u64,
    stats: InputStats,
}

impl InputReceiver {
    /// A receiver whose peer numbers its first event `initial_seq` (0 in the protocol).
    pub fn new(initial_seq: u32) -> Self {
        InputReceiver {
            next: initial_seq,
            ..Default::default()
        }
    }

    /// Feed a received Input body; calls `deliver(seq, event)` once for each event not seen
    /// before, in sequence order. Events older than one already delivered are dropped and
    /// counted; gaps are skipped and counted lost, never waited for.
    pub fn on_input(
        &mut self,
        first_seq: u32,
        events: &InputEvents<'_>,
        mut deliver: impl FnMut(u32, &[u8]),
    ) {
        for (i, ev) in events.iter().enumerate() {
            let seq = first_seq.wrapping_add(i as u32);
            let ahead = seq.wrapping_sub(self.next) as i32;
            if ahead >= 0 {
                let gap = ahead as u32;
                self.stats.lost += u64::from(gap);
                let shift = u64::from(gap) + 1;
                self.history = if shift >= 64 {
                    0
                } else {
                    self.history << shift
                } | 1;
                self.next = seq.wrapping_add(1);
                self.stats.delivered += 1;
                deliver(seq, ev);
            } else {
                // `next - 1 - seq`, how far behind the newest delivered event this one is.
                let age = self.next.wrapping_sub(seq).wrapping_sub(1);
                if age < 64 && self.history & (1 << age) == 0 {
                    self.stats.late += 1;
                } else {
                    self.stats.duplicates += 1;
                }
            }
        }
    }

    /// Sequence number of the next event to be delivered.
    pub fn next_seq(&self) -> u32 {
        self.next
    }

    pub fn stats(&self) -> InputStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PacketType;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    const MS: Duration = Duration::from_millis(1);

    fn event(seq: u32) -> Vec<u8> {
        let mut e = seq.to_be_bytes().to_vec();
        e.resize(4 + (seq % 20) as usize, 0xEE);
        e
    }

    /// Decode a sent body and feed it to the receiver, collecting deliveries.
    fn receive(rx: &mut InputReceiver, body: &[u8], got: &mut Vec<(u32, Vec<u8>)>) {
        match Body::decode(PacketType::Input, body).expect("sender produces valid bodies") {
            Body::Input { first_seq, events } => {
                rx.on_input(first_seq, &events, |s, e| got.push((s, e.to_vec())))
            }
            other => panic!("not an input body: {other:?}"),
        }
    }

    fn decode(body: &[u8]) -> (u32, Vec<Vec<u8>>) {
        match Body::decode(PacketType::Input, body).expect("valid") {
            Body::Input { first_seq, events } => {
                (first_seq, events.iter().map(<[u8]>::to_vec).collect())
            }
            other => panic!("not an input body: {other:?}"),
        }
    }

    /// Delivered `(seq, event)`s, receiver stats, and the seqs `push` returned.
    type Outcome = (Vec<(u32, Vec<u8>)>, InputStats, Vec<u32>);

    /// Push `n` events 5 ms apart starting at `initial_seq`, running tail re-sends in between;
    /// `lose(packet_index)` decides which packets the path drops.
    fn run(cfg: InputConfig, n: u32, mut lose: impl FnMut(usize) -> bool) -> Outcome {
        let initial = cfg.initial_seq;
        let mut tx = InputSender::new(cfg);
        let mut rx = InputReceiver::new(initial);
        let mut got = vec![];
        let mut pushed = vec![];
        let mut buf = [0u8; MAX_BODY];
        let t0 = Instant::now();
        let mut packet = 0usize;
        let end = t0 + MS * (5 * n + 100);
        let mut next_push = t0;
        let mut now = t0;
        let mut pushed_count = 0;
        while now <= end {
            if pushed_count < n && now >= next_push {
                let seq = initial.wrapping_add(pushed_count);
                pushed.push(tx.push(now, &event(seq)).expect("room"));
                pushed_count += 1;
                next_push += MS * 5;
            }
            while let Some(len) = tx.poll_transmit(now, &mut buf) {
                if !lose(packet) {
                    receive(&mut rx, &buf[..len], &mut got);
                }
                packet += 1;
            }
            let mut next = tx.next_timeout().unwrap_or(end + MS);
            if pushed_count < n {
                next = next.min(next_push);
            }
            now = next.max(now + Duration::from_micros(100));
        }
        (got, rx.stats(), pushed)
    }

    fn check_exactly_once(got: &[(u32, Vec<u8>)], pushed: &[u32]) {
        let seqs: Vec<u32> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, pushed, "every event exactly once, in order");
        for (s, e) in got {
            assert_eq!(*e, event(*s));
        }
    }

    #[test]
    fn delivered_exactly_once_in_order_at_20_percent_loss() {
        for seed in 0..20 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let repeat = InputConfig::default().repeat;
            let mut run_len = 0;
            let mut lost_packets = 0;
            // 20 % random loss, with runs capped below the repeat window so it covers every gap.
            let lose = |_| {
                let l = rng.random_bool(0.2) && run_len + 1 < repeat;
                run_len = if l { run_len + 1 } else { 0 };
                lost_packets += usize::from(l);
                l
            };
            let (got, stats, pushed) = run(InputConfig::default(), 2000, lose);
            check_exactly_once(&got, &pushed);
            assert_eq!(stats.lost, 0);
            assert_eq!(stats.late, 0);
            assert_eq!(stats.delivered, 2000);
            assert!(stats.duplicates > 0);
            assert!(lost_packets > 0);
        }
    }

    #[test]
    fn lost_count_when_burst_exceeds_window() {
        let cfg = InputConfig {
            repeat: 4,
            tail_resends: vec![],
            ..Default::default()
        };
        let mut tx = InputSender::new(cfg);
        let mut rx = InputReceiver::default();
        let mut got = vec![];
        let mut buf = [0u8; MAX_BODY];
        let t0 = Instant::now();
        for i in 0..20u32 {
            let now = t0 + MS * i;
            assert_eq!(tx.push(now, &event(i)), Ok(i));
            let len = tx.poll_transmit(now, &mut buf).expect("due");
            assert_eq!(tx.poll_transmit(now, &mut buf), None);
            // The packets of events 5..=12 are lost; the one of 13 carries 10..=13.
            if !(5..=12).contains(&i) {
                receive(&mut rx, &buf[..len], &mut got);
            }
        }
        let seqs: Vec<u32> = got.iter().map(|(s, _)| *s).collect();
        let want: Vec<u32> = (0..20).filter(|s| !(5..10).contains(s)).collect();
        assert_eq!(seqs, want);
        let stats = rx.stats();
        assert_eq!(stats.lost, 5);
        assert_eq!(stats.delivered, 15);
    }

    #[test]
    fn tail_resends_at_configured_times() {
        let mut tx = InputSender::new(InputConfig::default());
        let mut buf = [0u8; MAX_BODY];
        let t0 = Instant::now();
        assert_eq!(tx.next_timeout(), None);
        tx.push(t0, b"down").unwrap();
        tx.push(t0, b"up").unwrap();
        assert_eq!(tx.next_timeout(), Some(t0));
        let len = tx.poll_transmit(t0, &mut buf).unwrap();
        let first = buf[..len].to_vec();
        assert_eq!(decode(&first), (0, vec![b"down".to_vec(), b"up".to_vec()]));
        for offset in [2, 8, 25] {
            let at = t0 + MS * offset;
            assert_eq!(tx.next_timeout(), Some(at));
            assert_eq!(
                tx.poll_transmit(at - Duration::from_micros(1), &mut buf),
                None
            );
            let len = tx.poll_transmit(at, &mut buf).unwrap();
            assert_eq!(
                buf[..len],
                first[..],
                "tail re-send repeats the latest packet"
            );
            assert_eq!(tx.poll_transmit(at, &mut buf), None);
        }
        assert_eq!(tx.next_timeout(), None);
        assert_eq!(
            tx.poll_transmit(t0 + Duration::from_secs(1), &mut buf),
            None
        );
        assert_eq!(tx.stats().tail_packets, 3);

        // A new event restarts the schedule from its own transmission.
        let t1 = t0 + Duration::from_secs(2);
        tx.push(t1, b"x").unwrap();
        tx.poll_transmit(t1 + MS, &mut buf).unwrap();
        assert_eq!(tx.next_timeout(), Some(t1 + MS * 3));
        // Polled late: one packet covers every deadline that passed.
        assert!(tx.poll_transmit(t1 + MS * 20, &mut buf).is_some());
        assert_eq!(tx.next_timeout(), Some(t1 + MS * 26));
        assert_eq!(tx.stats().tail_packets, 4);
    }

    #[test]
    fn new_event_preempts_tail() {
        let mut tx = InputSender::new(InputConfig::default());
        let mut buf = [0u8; MAX_BODY];
        let t0 = Instant::now();
        tx.push(t0, b"a").unwrap();
        tx.poll_transmit(t0, &mut buf).unwrap();
        tx.push(t0 + MS, b"b").unwrap();
        assert_eq!(tx.next_timeout(), Some(t0 + MS));
        let len = tx.poll_transmit(t0 + MS, &mut buf).unwrap();
        assert_eq!(decode(&buf[..len]), (0, vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(tx.next_timeout(), Some(t0 + MS * 3));
    }

    #[test]
    fn wraps_around_u32_max() {
        let initial = u32::MAX - 5;
        let cfg = InputConfig {
            initial_seq: initial,
            ..Default::default()
        };
        let (got, stats, pushed) = run(cfg.clone(), 12, |_| false);
        assert_eq!(pushed[5], u32::MAX);
        assert_eq!(pushed[6], 0);
        check_exactly_once(&got, &pushed);
        assert_eq!(stats.lost, 0);
        // Lose the packets around the wrap; repetition still covers them.
        let (got, stats, pushed) = run(cfg, 12, |p| (4..9).contains(&p));
        check_exactly_once(&got, &pushed);
        assert_eq!(stats.lost, 0);
        // A stale packet from before the wrap is recognised as old, not as far ahead.
        let mut rx = InputReceiver::new(2);
        let mut scratch = [0u8; 64];
        let (n, used) = InputEvents::encode([&b"old"[..]], &mut scratch).unwrap();
        let events = InputEvents::from_encoded(n, &scratch[..used]).unwrap();
        rx.on_input(u32::MAX, &events, |_, _| panic!("must not deliver"));
        assert_eq!(rx.stats().late, 1);
        assert_eq!(rx.next_seq(), 2);
    }

    #[test]
    fn burst_larger_than_a_packet_is_sent_completely() {
        let cfg = InputConfig {
            repeat: MAX_INPUT_EVENTS,
            capacity: 200,
            ..Default::default()
        };
        let mut tx = InputSender::new(cfg);
        let mut rx = InputReceiver::default();
        let t0 = Instant::now();
        let big = [0xAB; MAX_INPUT_EVENT_LEN];
        for i in 0..100u32 {
            assert_eq!(tx.push(t0, &big), Ok(i));
        }
        let mut buf = [0u8; MAX_BODY];
        let mut got = vec![];
        let mut packets = 0;
        while let Some(len) = tx.poll_transmit(t0, &mut buf) {
            assert!(len <= MAX_BODY);
            receive(&mut rx, &buf[..len], &mut got);
            packets += 1;
        }
        // 65-byte records: 22 fit in one body.
        assert_eq!(
            packets,
            100usize.div_ceil((MAX_BODY - INPUT_BODY_HEADER) / 65)
        );
        assert_eq!(got.len(), 100);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (s, e))| *s == i as u32 && e[..] == big));
        assert_eq!(rx.stats().lost, 0);
        // The next packet repeats previous events as far as the byte budget allows: the
        // 2-byte record of "k" plus 22 of the 65-byte ones.
        tx.push(t0, b"k").unwrap();
        let len = tx.poll_transmit(t0, &mut buf).unwrap();
        assert!(len <= MAX_BODY);
        let (first, events) = decode(&buf[..len]);
        assert_eq!(events.len(), 23);
        assert_eq!(first, 100 - 22);
        assert_eq!(events[22], b"k");
    }

    #[test]
    fn small_buffer_carries_fewer_events() {
        let mut tx = InputSender::new(InputConfig::default());
        let t0 = Instant::now();
        for _ in 0..3 {
            tx.push(t0, &[1; 10]).unwrap();
        }
        let mut small = [0u8; INPUT_BODY_HEADER + 22];
        let len = tx.poll_transmit(t0, &mut small).unwrap();
        assert_eq!(decode(&small[..len]).1.len(), 2);
        let mut tiny = [0u8; INPUT_BODY_HEADER + 5];
        assert_eq!(tx.poll_transmit(t0, &mut tiny), None);
        let mut buf = [0u8; MAX_BODY];
        let len = tx.poll_transmit(t0, &mut buf).unwrap();
        assert_eq!(decode(&buf[..len]), (0, vec![vec![1; 10]; 3]));
    }

    #[test]
    fn push_errors() {
        let mut tx = InputSender::new(InputConfig {
            repeat: 2,
            capacity: 3,
            ..Default::default()
        });
        let t0 = Instant::now();
        assert_eq!(
            tx.push(t0, &[0; MAX_INPUT_EVENT_LEN + 1]),
            Err(InputError::EventTooLong(MAX_INPUT_EVENT_LEN + 1))
        );
        for i in 0..3 {
            assert_eq!(tx.push(t0, &[i as u8]), Ok(i));
        }
        assert_eq!(tx.push(t0, b"x"), Err(InputError::QueueFull(3)));
        let mut buf = [0u8; MAX_BODY];
        while tx.poll_transmit(t0, &mut buf).is_some() {}
        // Sent events make room again.
        assert_eq!(tx.push(t0, b"x"), Ok(3));
        let len = tx.poll_transmit(t0, &mut buf).unwrap();
        assert_eq!(decode(&buf[..len]), (2, vec![vec![2], b"x".to_vec()]));
    }

    #[test]
    fn duplicates_and_late_events_are_counted() {
        let mut rx = InputReceiver::default();
        let mut scratch = [0u8; 64];
        let mut feed = |rx: &mut InputReceiver, first: u32, n: usize| {
            let evs: Vec<[u8; 1]> = (0..n).map(|i| [i as u8]).collect();
            let (c, used) = InputEvents::encode(evs.iter().map(|e| &e[..]), &mut scratch).unwrap();
            let events = InputEvents::from_encoded(c, &scratch[..used]).unwrap();
            let mut seqs = vec![];
            rx.on_input(first, &events, |s, _| seqs.push(s));
            seqs
        };
        assert_eq!(feed(&mut rx, 0, 2), [0, 1]);
        assert_eq!(feed(&mut rx, 4, 2), [4, 5]);
        assert_eq!(rx.stats().lost, 2);
        // 1 is a duplicate, 2 and 3 arrive late, 4 and 5 are duplicates, 6 is new.
        assert_eq!(feed(&mut rx, 1, 6), [6]);
        assert_eq!(
            rx.stats(),
            InputStats {
                delivered: 5,
                duplicates: 3,
                lost: 2,
                late: 2
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the loss pattern, the receiver never delivers twice or out of order, payloads
        /// match their sequence numbers, and every skipped event is counted lost.
        #[test]
        fn receiver_invariants_under_any_loss(
            seed in any::<u64>(),
            loss in 0.0f64..0.9,
            repeat in 1usize..=MAX_INPUT_EVENTS,
            initial in prop_oneof![Just(0u32), Just(u32::MAX - 50), any::<u32>()],
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let cfg = InputConfig { repeat, initial_seq: initial, ..Default::default() };
            let (got, stats, pushed) = run(cfg, 300, |_| rng.random_bool(loss));
            let pos = |s: u32| s.wrapping_sub(initial);
            prop_assert!(got.windows(2).all(|w| pos(w[0].0) < pos(w[1].0)));
            for (s, e) in &got {
                prop_assert_eq!(e, &event(*s));
            }
            prop_assert_eq!(stats.delivered, got.len() as u64);
            prop_assert_eq!(stats.late, 0);
            if let Some((last, _)) = got.last() {
                prop_assert_eq!(stats.delivered + stats.lost, u64::from(pos(*last)) + 1);
            }
            prop_assert_eq!(pushed.len(), 300);
        }
    }
}
