//! Sliding replay window over packet numbers: every packet number is accepted at most once, and
//! numbers more than `REPLAY_WINDOW` behind the highest seen are refused as too old.

use thiserror::Error;

/// Packets this far behind the newest are still accepted (once). UDP reorders; a few thousand
/// packets cover any sane reordering at gigabit rates.
pub const REPLAY_WINDOW: u64 = 4096;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    #[error("packet {0} was already received")]
    Duplicate(u64),
    #[error("packet {pn} is more than {REPLAY_WINDOW} behind the newest ({highest})")]
    TooOld { pn: u64, highest: u64 },
}

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `pn % REPLAY_WINDOW` set: `pn` (within the window) was received.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            highest: None,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    fn bit(pn: u64) -> (usize, u64) {
        let i = pn % REPLAY_WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Whether `pn` may be accepted. Check before the (costlier) decryption, accept after it.
    pub fn check(&self, pn: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if pn > highest {
            return Ok(());
        }
        if highest - pn >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld { pn, highest });
        }
        let (w, m) = Self::bit(pn);
        if self.bits[w] & m != 0 {
            return Err(ReplayError::Duplicate(pn));
        }
        Ok(())
    }

    /// Record `pn` as received (after it authenticated).
    pub fn accept(&mut self, pn: u64) -> Result<(), ReplayError> {
        self.check(pn)?;
        match self.highest {
            Some(h) if pn <= h => {}
            Some(h) => {
                // Forget the numbers the window slides past.
                if pn - h >= REPLAY_WINDOW {
                    self.bits = [0; WORDS];
                } else {
                    for old in h + 1..=pn {
                        let (w, m) = Self::bit(old);
                        self.bits[w] &= !m;
                    }
                }
                self.highest = Some(pn);
            }
            None => self.highest = Some(pn),
        }
        let (w, m) = Self::bit(pn);
        self.bits[w] |= m;
        Ok(())
    }

    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_and_old_packets_are_refused() {
        let mut w = ReplayWindow::default();
        w.accept(10).unwrap();
        assert_eq!(w.accept(10), Err(ReplayError::Duplicate(10)));
        w.accept(5).unwrap();
        assert_eq!(w.check(5), Err(ReplayError::Duplicate(5)));
        w.accept(10 + REPLAY_WINDOW).unwrap();
        assert_eq!(
            w.check(10),
            Err(ReplayError::TooOld {
                pn: 10,
                highest: 10 + REPLAY_WINDOW
            })
        );
        // Just inside the window and never seen: accepted once.
        w.accept(11).unwrap();
        assert!(w.check(11).is_err());
        w.accept(u64::MAX).unwrap();
        assert!(w.check(u64::MAX - REPLAY_WINDOW + 1).is_ok());
        assert!(w.check(u64::MAX - REPLAY_WINDOW).is_err());
    }

    proptest! {
        /// Against a model (a set of everything accepted): every packet number in the window is
        /// accepted exactly once, whatever the arrival order.
        #[test]
        fn matches_a_set_model(pns in prop::collection::vec(0u64..20_000, 1..2000)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::HashSet::new();
            let mut highest = None::<u64>;
            for pn in pns {
                let fresh = !seen.contains(&pn);
                let in_window = highest.is_none_or(|h| pn > h || h - pn < REPLAY_WINDOW);
                let got = w.accept(pn).is_ok();
                prop_assert_eq!(got, fresh && in_window, "pn {}", pn);
                if got {
                    seen.insert(pn);
                    highest = Some(highest.map_or(pn, |h| h.max(pn)));
                }
            }
        }
    }
}
