//! When to capture: as soon as the screen changes, at most once per frame interval, and a
//! repeat now and then while it is still. Sans-IO: damage and time go in, decisions come out.

use std::time::{Duration, Instant};

/// Frame-rate cap and repeat policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacerConfig {
    /// Shortest time between two captures (1 / target frame rate).
    pub min_interval: Duration,
    /// While nothing changes, capture a repeat after this long (`None`: never). Repeats let a
    /// receiver that lost a frame catch up and let the encoder refine a still picture.
    pub repeat_after: Option<Duration>,
}

impl PacerConfig {
    /// `fps` frames per second at most, a repeat after `repeat_after` of stillness.
    pub fn new(fps: u32, repeat_after: Option<Duration>) -> Self {
        Self {
            min_interval: Duration::from_secs(1) / fps.max(1),
            repeat_after,
        }
    }
}

impl Default for PacerConfig {
    /// 60 fps, a repeat every second.
    fn default() -> Self {
        Self::new(60, Some(Duration::from_secs(1)))
    }
}

/// What the capturer should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacerDecision {
    /// Capture now; `repeat` when nothing changed since the last capture.
    Capture { repeat: bool },
    /// Wait for damage until the given time (then ask again); `None`: wait for damage only.
    WaitUntil(Option<Instant>),
}

/// Decides when to capture from damage notifications and the time of the last capture.
#[derive(Clone, Debug)]
pub struct CapturePacer {
    config: PacerConfig,
    last: Option<Instant>,
    dirty: bool,
}

impl CapturePacer {
    /// A pacer that captures at once (the first frame is always fresh).
    pub fn new(config: PacerConfig) -> Self {
        Self {
            config,
            last: None,
            dirty: true,
        }
    }

    pub fn config(&self) -> PacerConfig {
        self.config
    }

    /// The screen (or the part being captured) changed.
    pub fn on_damage(&mut self) {
        self.dirty = true;
    }

    /// Whether damage is pending.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    pub fn poll(&self, now: Instant) -> PacerDecision {
        let Some(last) = self.last else {
            return PacerDecision::Capture { repeat: false };
        };
        let due = if self.dirty {
            last + self.config.min_interval
        } else {
            match self.config.repeat_after {
                Some(after) => last + after.max(self.config.min_interval),
                None => return PacerDecision::WaitUntil(None),
            }
        };
        if now >= due {
            PacerDecision::Capture {
                repeat: !self.dirty,
            }
        } else {
            PacerDecision::WaitUntil(Some(due))
        }
    }

    /// A capture started at `at`: damage seen before now is covered by it.
    pub fn on_capture(&mut self, at: Instant) {
        self.last = Some(at);
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_frame_at_once_then_only_on_damage_or_repeat() {
        let t0 = Instant::now();
        let mut p = CapturePacer::new(PacerConfig::new(50, Some(ms(1000))));
        assert_eq!(p.poll(t0), PacerDecision::Capture { repeat: false });
        p.on_capture(t0);
        // Still screen: wait until the repeat is due, then repeat.
        assert_eq!(
            p.poll(t0 + ms(5)),
            PacerDecision::WaitUntil(Some(t0 + ms(1000)))
        );
        assert_eq!(
            p.poll(t0 + ms(1000)),
            PacerDecision::Capture { repeat: true }
        );
        p.on_capture(t0 + ms(1000));
        // Damage long after the last frame: capture at once, fresh.
        p.on_damage();
        assert_eq!(
            p.poll(t0 + ms(1500)),
            PacerDecision::Capture { repeat: false }
        );
    }

    #[test]
    fn damage_is_capped_at_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = CapturePacer::new(PacerConfig::new(50, None));
        p.on_capture(t0);
        p.on_damage();
        // 50 fps: 20 ms between frames.
        assert_eq!(
            p.poll(t0 + ms(3)),
            PacerDecision::WaitUntil(Some(t0 + ms(20)))
        );
        assert_eq!(
            p.poll(t0 + ms(20)),
            PacerDecision::Capture { repeat: false }
        );
        p.on_capture(t0 + ms(21));
        // No repeats configured: a still screen waits for damage only.
        assert_eq!(p.poll(t0 + ms(5000)), PacerDecision::WaitUntil(None));
    }

    #[test]
    fn repeat_is_never_faster_than_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = CapturePacer::new(PacerConfig::new(10, Some(ms(1))));
        p.on_capture(t0);
        assert_eq!(
            p.poll(t0 + ms(50)),
            PacerDecision::WaitUntil(Some(t0 + ms(100)))
        );
    }
}
