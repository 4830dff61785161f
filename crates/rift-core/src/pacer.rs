//! Packet pacer: releases media packets at a set rate so a frame's burst does not hit the
//! bottleneck queue all at once. (Capture pacing is wavry-media's `CapturePacer`.) Microsecond arithmetic; the caller's timer decides how precise it is.

use std::time::{Duration, Instant};

pub struct Pacer {
    rate_bps: u64,
    /// Earliest time the next packet may go.
    next: Option<Instant>,
    /// Idle time that may be spent as a burst, so timer wake-up jitter does not lower the rate.
    max_credit: Duration,
}

impl Pacer {
    pub fn new(rate_bps: u64) -> Self {
        Pacer {
            rate_bps: rate_bps.max(1),
            next: None,
            max_credit: Duration::from_micros(500),
        }
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    pub fn set_rate(&mut self, rate_bps: u64) {
        self.rate_bps = rate_bps.max(1);
    }

    /// When the next packet may be sent (`None`: now).
    pub fn ready_at(&self) -> Option<Instant> {
        self.next
    }

    pub fn can_send(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// Account for `bytes` sent at `now`.
    pub fn on_sent(&mut self, now: Instant, bytes: usize) {
        let earliest = now.checked_sub(self.max_credit).unwrap_or(now);
        let start = self.next.map_or(now, |t| t.max(earliest));
        let cost = Duration::from_nanos(bytes as u64 * 8 * 1_000_000_000 / self.rate_bps);
        self.next = Some(start + cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_packets_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(8_000_000); // 1 byte per µs
        let mut now = t0;
        let mut sent = 0;
        while now < t0 + Duration::from_millis(10) {
            if p.can_send(now) {
                p.on_sent(now, 1000);
                sent += 1;
            }
            now += Duration::from_micros(10);
        }
        // 10 ms at 1000 bytes per ms, plus the initial credit-free first packet.
        assert!((10..=11).contains(&sent), "sent {sent}");
    }

    #[test]
    fn idle_time_gives_only_a_small_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(8_000_000);
        p.on_sent(t0, 1000);
        let later = t0 + Duration::from_secs(1);
        let mut burst = 0;
        while p.can_send(later) {
            p.on_sent(later, 100);
            burst += 1;
        }
        // 500 µs of credit at 1 byte/µs is five 100-byte packets (plus the one that starts it).
        assert!((5..=6).contains(&burst), "burst {burst}");
    }
}
