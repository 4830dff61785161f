//! The connection's round-trip time estimate: one per connection, fed by every RTT sample the
//! connection measures (feedback reports of media, acks of control messages) and read by all
//! that time by it (the control channel's retransmission timeout, NACK repair, keyframe-request
//! retries, and DELTA through the feedback reports).
//!
//! The connection owns it and lends it to the parts that sample or read it, so the state
//! machines stay sans-IO and there is only one estimate to disagree with.

use std::time::Duration;

/// RTT assumed before the first sample.
pub const INITIAL_RTT: Duration = Duration::from_millis(100);

/// Samples above this are treated as this, so the estimator arithmetic cannot overflow.
const MAX_RTT_SAMPLE: Duration = Duration::from_secs(60);

/// Smoothed RTT and variance (RFC 6298, gains 1/8 and 1/4, each update rounded once) and the
/// minimum RTT seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min: Option<Duration>,
    latest: Option<Duration>,
}

impl RttEstimator {
    /// Take one RTT measurement.
    pub fn on_sample(&mut self, sample: Duration) {
        let r = sample.min(MAX_RTT_SAMPLE);
        self.latest = Some(r);
        self.min = Some(self.min.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
    }

    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Smoothed RTT; [`INITIAL_RTT`] before the first sample.
    pub fn srtt(&self) -> Duration {
        self.srtt.unwrap_or(INITIAL_RTT)
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// `srtt + 4 * rttvar` (RFC 6298's RTO before clamping), or `None` before the first sample.
    pub fn rto_base(&self) -> Option<Duration> {
        self.srtt.map(|s| s + self.rttvar * 4)
    }

    pub fn min_rtt(&self) -> Duration {
        self.min.unwrap_or(INITIAL_RTT)
    }

    pub fn latest(&self) -> Duration {
        self.latest.unwrap_or(INITIAL_RTT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn follows_rfc_6298() {
        let mut r = RttEstimator::default();
        assert!(!r.has_sample());
        assert_eq!(r.srtt(), INITIAL_RTT);
        assert_eq!(r.rto_base(), None);
        r.on_sample(40 * MS);
        assert_eq!((r.srtt(), r.rttvar()), (40 * MS, 20 * MS));
        assert_eq!(r.rto_base(), Some(120 * MS));
        r.on_sample(80 * MS);
        // rttvar = (3 * 20 + 40) / 4, srtt = (7 * 40 + 80) / 8.
        assert_eq!((r.srtt(), r.rttvar()), (45 * MS, 25 * MS));
        assert_eq!((r.min_rtt(), r.latest()), (40 * MS, 80 * MS));
    }

    #[test]
    fn huge_samples_do_not_overflow() {
        let mut r = RttEstimator::default();
        r.on_sample(Duration::MAX);
        r.on_sample(Duration::MAX);
        assert_eq!(r.srtt(), MAX_RTT_SAMPLE);
        assert!(r.rto_base().is_some());
    }
}
