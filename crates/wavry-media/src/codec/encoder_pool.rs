//! Running encoders kept for reuse: opening one costs tens of milliseconds (x264 allocates its
//! look-up tables and thread pool, hardware encoders set up sessions), so a stream that stops
//! and starts again with a compatible configuration takes an idle encoder instead.

use super::{open_encoder, CodecError, EncoderConfig, VideoEncoder};

/// How often the pool could hand out a running encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderPoolStats {
    /// Encoders opened because no idle one fitted.
    pub opened: u64,
    /// Requests served by an idle encoder.
    pub reused: u64,
}

impl EncoderPoolStats {
    /// Reused requests over all requests (0 when there were none).
    pub fn reuse_rate(&self) -> f64 {
        let total = self.opened + self.reused;
        if total == 0 {
            0.0
        } else {
            self.reused as f64 / total as f64
        }
    }
}

/// A pool of idle encoders.
pub struct EncoderPool {
    idle: Vec<Box<dyn VideoEncoder>>,
    max_idle: usize,
    stats: EncoderPoolStats,
}

impl EncoderPool {
    /// A pool keeping at most `max_idle` idle encoders (the oldest is closed beyond that).
    pub fn new(max_idle: usize) -> Self {
        Self {
            idle: Vec::with_capacity(max_idle + 1),
            max_idle,
            stats: EncoderPoolStats::default(),
        }
    }

    /// An encoder for `cfg`: an idle compatible one (restarted: its next frame is a keyframe,
    /// at `cfg`'s bitrate) or a newly opened one.
    pub fn take(&mut self, cfg: &EncoderConfig) -> Result<Box<dyn VideoEncoder>, CodecError> {
        if let Some(i) = self.idle.iter().position(|e| compatible(e.config(), cfg)) {
            let mut enc = self.idle.remove(i);
            if enc.config().bitrate == cfg.bitrate || enc.set_bitrate(cfg.bitrate).is_ok() {
                enc.restart();
                self.stats.reused += 1;
                tracing::debug!("encoder pool: reusing {} for {:?}", enc.name(), cfg.size);
                return Ok(enc);
            }
            // It cannot take the new bitrate while running: open a fresh one below.
        }
        let enc = open_encoder(cfg)?;
        self.stats.opened += 1;
        Ok(enc)
    }

    /// Return an encoder whose stream ended.
    pub fn give_back(&mut self, enc: Box<dyn VideoEncoder>) {
        self.idle.push(enc);
        if self.idle.len() > self.max_idle {
            self.idle.remove(0);
        }
    }

    pub fn stats(&self) -> EncoderPoolStats {
        self.stats
    }

    /// Idle encoders held.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

/// Everything but the bitrate must match: size, codec, frame rate, intra refresh and the
/// hardware choice are fixed when an encoder opens.
fn compatible(have: &EncoderConfig, want: &EncoderConfig) -> bool {
    have.codec == want.codec
        && have.size == want.size
        && have.fps == want.fps
        && have.intra_refresh == want.intra_refresh
        && have.hardware == want.hardware
}
