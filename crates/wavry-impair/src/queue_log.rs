//! The queue log: one CSV row per direction every interval, for plotting the bottleneck.
//!
//! ```text
//! t_ms,dir,queue_bytes,queue_packets,dropped_total
//! 10.000,a2b,15000,10,0
//! 10.000,b2a,0,0,0
//! ```
//! `t_ms` counts from the start of the log, `dropped_total` is cumulative (queue, random and
//! burst drops).

use crate::model::LinkStats;
use std::io::{self, Write};
use std::time::{Duration, Instant};

pub struct QueueLog<W: Write> {
    out: W,
    start: Instant,
    interval: Duration,
    next: Instant,
}

impl<W: Write> QueueLog<W> {
    pub const HEADER: &'static str = "t_ms,dir,queue_bytes,queue_packets,dropped_total";

    /// Writes the header; the first row is due one `interval` after `start`.
    pub fn new(mut out: W, start: Instant, interval: Duration) -> io::Result<Self> {
        writeln!(out, "{}", Self::HEADER)?;
        let interval = interval.max(Duration::from_micros(100));
        Ok(QueueLog {
            out,
            start,
            interval,
            next: start + interval,
        })
    }

    /// When the next row is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Write a row per direction if one is due at `now`. Rows missed while the caller was late
    /// are skipped rather than repeated.
    pub fn sample(&mut self, now: Instant, dirs: &[(&str, LinkStats)]) -> io::Result<()> {
        if now < self.next {
            return Ok(());
        }
        let t = (now - self.start).as_secs_f64() * 1e3;
        for (name, s) in dirs {
            writeln!(
                self.out,
                "{t:.3},{name},{},{},{}",
                s.queue_bytes,
                s.queue_packets,
                s.dropped_total()
            )?;
        }
        while self.next <= now {
            self.next += self.interval;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Link, LinkConfig};

    #[test]
    fn rows_at_the_interval_with_occupancy_and_drops() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut link = Link::new(
            LinkConfig {
                rate_bps: Some(8_000_000),
                queue_bytes: Some(3000),
                ..LinkConfig::default()
            },
            1,
        )
        .unwrap();
        let mut log = QueueLog::new(Vec::new(), t0, 10 * ms).unwrap();
        for _ in 0..5 {
            link.push(t0, vec![0; 1000]);
        }
        log.sample(t0 + 5 * ms, &[("a2b", link.stats())]).unwrap();
        log.sample(t0 + 10 * ms, &[("a2b", link.stats())]).unwrap();
        while link.poll(t0 + 15 * ms).is_some() {}
        // Late: the 20 ms row comes at 25 ms, the 30 ms one is next.
        log.sample(
            t0 + 25 * ms,
            &[("a2b", link.stats()), ("b2a", LinkStats::default())],
        )
        .unwrap();
        assert_eq!(log.next_due(), t0 + 30 * ms);
        let text = String::from_utf8(log.into_inner()).unwrap();
        assert_eq!(
            text,
            "t_ms,dir,queue_bytes,queue_packets,dropped_total\n\
             10.000,a2b,3000,3,2\n\
             25.000,a2b,0,0,2\n\
             25.000,b2a,0,0,0\n"
        );
    }
}
