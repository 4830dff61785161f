//! A synthetic, rate-controlled video encoder: frame sizes and timing only, no pixels.
//!
//! Congestion-control scenarios need a sender that behaves like x264/NVENC in low-latency CBR
//! mode: frames arrive on a fixed clock, their sizes scatter around `bitrate / 8 / fps`, a
//! keyframe is several times larger, and the rate controller pays the keyframe's excess back
//! over the next fraction of a second (a VBV-style bit budget) so the bitrate measured over
//! ~1 s stays on target. Frame payloads are a cheap deterministic function of the frame id
//! ([`frame_payload`]) so a receiver can verify reassembly byte for byte without the encoder.
//!
//! Deterministic and sans-IO: time comes in as `Instant`s, randomness from one
//! `Xoshiro256PlusPlus` seeded from [`EncoderConfig::seed`].

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Time constant of the bit-budget payback. With a proportional payback of `debt / (fps *
/// PAYBACK_SECS)` per frame, a keyframe's excess is ~98 % repaid after 4 time constants (1 s),
/// matching the ~1 s VBV windows low-latency encoders are tuned with.
const PAYBACK_SECS: f64 = 0.25;

/// Cap on the bit-budget debt, in seconds of the current bitrate, like a finite VBV buffer: an
/// impossible target (`min_frame_bytes` above the per-frame budget) or a large bitrate drop
/// right after a keyframe must not starve the stream for long.
const MAX_DEBT_SECS: f64 = 1.0;

/// A P-frame never shrinks below this share of the average frame while paying back debt; real
/// encoders cannot make a frame arbitrarily small (they raise QP until it saturates).
const MIN_P_SHARE: f64 = 0.15;

/// Parameters of a [`SyntheticEncoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// Frames per second (clamped to `[0.1, 1000]`).
    pub fps: f64,
    /// Keyframe size as a multiple of the average frame.
    pub keyframe_factor: f64,
    /// Relative standard deviation of P-frame sizes (lognormal).
    pub size_jitter: f64,
    /// Smallest frame produced, in bytes.
    pub min_frame_bytes: usize,
    /// Largest frame produced, in bytes.
    pub max_frame_bytes: usize,
    /// Seed of the size randomness.
    pub seed: u64,
}

impl Default for EncoderConfig {
    /// 60 fps, keyframes 6× an average frame, P-frame sizes ±20 %, frames in [64 B, 4 MiB].
    fn default() -> Self {
        EncoderConfig {
            fps: 60.0,
            keyframe_factor: 6.0,
            size_jitter: 0.2,
            min_frame_bytes: 64,
            max_frame_bytes: 4 << 20,
            seed: 0,
        }
    }
}

/// One encoded frame: what the packetizer needs to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedFrame {
    pub frame_id: u32,
    pub keyframe: bool,
    pub size: usize,
    /// The frame's scheduled capture time; glass-to-glass latency is measured from here.
    pub capture: Instant,
}

/// A synthetic encoder producing frames on a fixed clock at a target bitrate.
pub struct SyntheticEncoder {
    cfg: EncoderConfig,
    rng: Xoshiro256PlusPlus,
    bitrate_bps: u64,
    fps: f64,
    /// Lognormal shape for `size_jitter`, cached.
    sigma: f64,
    /// Frame `k` of the current clock is due at `epoch + k / fps`; computing each due time
    /// from the epoch (rather than adding a rounded interval) keeps the timing exact forever.
    epoch: Instant,
    next_index: u64,
    next_frame_id: u32,
    keyframe_pending: bool,
    /// Bytes produced above the budget so far (negative: below), paid back gradually.
    debt: f64,
    frames: u64,
    bytes: u64,
    skipped: u64,
}

impl SyntheticEncoder {
    /// An encoder whose first frame (a keyframe) is due at `now`.
    pub fn new(cfg: EncoderConfig, initial_bitrate_bps: u64, now: Instant) -> Self {
        let fps = clamp_fps(cfg.fps);
        let jitter = if cfg.size_jitter.is_finite() {
            cfg.size_jitter.max(0.0)
        } else {
            0.0
        };
        SyntheticEncoder {
            rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
            sigma: (1.0 + jitter * jitter).ln().sqrt(),
            cfg,
            bitrate_bps: initial_bitrate_bps,
            fps,
            epoch: now,
            next_index: 0,
            next_frame_id: 0,
            keyframe_pending: true,
            debt: 0.0,
            frames: 0,
            bytes: 0,
            skipped: 0,
        }
    }

    /// Change the target bitrate. Takes effect on the next frame without a keyframe, as
    /// congestion control expects from a real encoder's reconfigure.
    pub fn set_bitrate(&mut self, bps: u64) {
        self.bitrate_bps = bps;
    }

    /// Current target bitrate.
    pub fn bitrate(&self) -> u64 {
        self.bitrate_bps
    }

    /// Change the frame rate (clamped to `[0.1, 1000]`). The frame already scheduled keeps its
    /// due time; the ones after it follow the new rate.
    pub fn set_fps(&mut self, fps: f64) {
        self.epoch = self.next_frame_time();
        self.next_index = 0;
        self.fps = clamp_fps(fps);
    }

    /// Current frame rate.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Make the next frame a keyframe (e.g. after the receiver reported an unrecoverable loss).
    pub fn request_keyframe(&mut self) {
        self.keyframe_pending = true;
    }

    /// Time the next frame is due.
    pub fn next_frame_time(&self) -> Instant {
        self.due(self.next_index)
    }

    /// If a frame is due at `now`, produce it.
    ///
    /// If the caller fell behind by more than one frame interval, the missed frames are skipped
    /// (counted in [`SyntheticEncoder::frames_skipped`]) and the returned frame carries the
    /// latest due capture time, like a screen capturer that only ever hands out the newest
    /// image. Frame ids stay consecutive over produced frames.
    pub fn poll(&mut self, now: Instant) -> Option<EncodedFrame> {
        let due = self.due(self.next_index);
        if now < due {
            return None;
        }
        let index = self.latest_due_index(now);
        self.skipped += index - self.next_index;
        self.next_index = index + 1;
        let capture = self.due(index);

        let keyframe = std::mem::take(&mut self.keyframe_pending);
        let size = self.frame_size(keyframe);
        let frame_id = self.next_frame_id;
        self.next_frame_id = self.next_frame_id.wrapping_add(1);
        self.frames += 1;
        self.bytes += size as u64;
        Some(EncodedFrame {
            frame_id,
            keyframe,
            size,
            capture,
        })
    }

    /// Fill `buf` with `frame`'s payload (see [`frame_payload`]).
    pub fn fill(&self, frame: &EncodedFrame, buf: &mut Vec<u8>) {
        frame_payload(frame.frame_id, frame.size, buf);
    }

    /// Frames produced so far.
    pub fn frames_produced(&self) -> u64 {
        self.frames
    }

    /// Bytes produced so far.
    pub fn bytes_produced(&self) -> u64 {
        self.bytes
    }

    /// Frames skipped because `poll` was called late.
    pub fn frames_skipped(&self) -> u64 {
        self.skipped
    }

    /// Due time of frame `index`, rounded to the nanosecond from the epoch (so 60 fps gives
    /// exactly `round(k * 1e9 / 60)` ns, with no accumulated drift).
    fn due(&self, index: u64) -> Instant {
        let nanos = (index as f64 * 1e9 / self.fps).round();
        self.epoch + Duration::from_nanos(nanos as u64)
    }

    /// Largest frame index whose due time is at or before `now` (at least `next_index`).
    fn latest_due_index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_secs_f64();
        // The float estimate can be off by one either way at exact boundaries; fix it up
        // against the same `due` function used for scheduling.
        let mut index = ((elapsed * self.fps).floor() as u64).max(self.next_index);
        while index > self.next_index && self.due(index) > now {
            index -= 1;
        }
        while self.due(index + 1) <= now {
            index += 1;
        }
        index
    }

    /// Size of the next frame under the bit budget, and the budget update.
    fn frame_size(&mut self, keyframe: bool) -> usize {
        let avg = self.bitrate_bps as f64 / 8.0 / self.fps;
        // Always draw, so the size sequence does not depend on when keyframes were requested.
        let noise = self.lognormal();
        let target = if keyframe {
            avg * self.cfg.keyframe_factor.max(0.0)
        } else {
            let payback_frames = (self.fps * PAYBACK_SECS).max(1.0);
            (avg * noise - self.debt / payback_frames).max(avg * MIN_P_SHARE)
        };
        let min = self.cfg.min_frame_bytes.min(self.cfg.max_frame_bytes);
        let size = (target.round() as usize).clamp(min, self.cfg.max_frame_bytes);
        let cap = self.bitrate_bps as f64 / 8.0 * MAX_DEBT_SECS;
        self.debt = (self.debt + size as f64 - avg).clamp(-cap, cap);
        size
    }

    /// Lognormal sample with mean 1 and relative standard deviation `size_jitter`
    /// (Box-Muller; `rand_distr` is not worth a dependency for one distribution).
    fn lognormal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1], so ln is finite
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (self.sigma * z - self.sigma * self.sigma / 2.0).exp()
    }
}

fn clamp_fps(fps: f64) -> f64 {
    if fps.is_finite() {
        fps.clamp(0.1, 1000.0)
    } else {
        60.0
    }
}

/// SplitMix64 stream seeded by the frame id: a few cycles per 8 bytes, no allocation beyond
/// `buf`, and different for every frame so misplaced fragments are caught.
struct PayloadStream(u64);

impl PayloadStream {
    fn new(frame_id: u32) -> Self {
        PayloadStream(u64::from(frame_id) ^ 0x5249_4654_5349_4d00) // "RIFTSIM\0"
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()
    }
}

/// Replace `buf`'s contents with the `size`-byte payload of frame `frame_id`. Depends only on
/// the id and size, so the receiver can regenerate it to check a reassembled frame.
pub fn frame_payload(frame_id: u32, size: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.reserve(size);
    let mut stream = PayloadStream::new(frame_id);
    for _ in 0..size / 8 {
        buf.extend_from_slice(&stream.next_word());
    }
    let rest = size % 8;
    if rest > 0 {
        buf.extend_from_slice(&stream.next_word()[..rest]);
    }
}

/// Whether `data` is exactly the payload [`frame_payload`] produces for `frame_id` at
/// `data.len()` bytes. Compares in place, without allocating.
pub fn verify_payload(frame_id: u32, data: &[u8]) -> bool {
    let mut stream = PayloadStream::new(frame_id);
    data.chunks(8)
        .all(|chunk| chunk == &stream.next_word()[..chunk.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the encoder on its own clock for `secs` seconds; returns the frames.
    fn run(enc: &mut SyntheticEncoder, until: Instant) -> Vec<EncodedFrame> {
        let mut frames = Vec::new();
        while enc.next_frame_time() < until {
            let t = enc.next_frame_time();
            assert_eq!(enc.poll(t - Duration::from_nanos(1)), None);
            frames.extend(enc.poll(t));
            assert_eq!(enc.poll(t), None, "one frame per due time");
        }
        frames
    }

    fn bits(frames: &[EncodedFrame]) -> f64 {
        frames.iter().map(|f| f.size as f64 * 8.0).sum()
    }

    #[test]
    fn mean_bitrate_matches_target() {
        let t0 = Instant::now();
        for (bps, fps) in [
            (300_000, 30.0),
            (2_000_000, 60.0),
            (10_000_000, 60.0),
            (50_000_000, 120.0),
        ] {
            let cfg = EncoderConfig {
                fps,
                seed: bps,
                ..EncoderConfig::default()
            };
            let mut enc = SyntheticEncoder::new(cfg, bps, t0);
            let frames = run(&mut enc, t0 + Duration::from_secs(10));
            assert_eq!(frames.len(), (fps * 10.0) as usize);
            let rate = bits(&frames) / 10.0;
            assert!(
                (rate - bps as f64).abs() < 0.03 * bps as f64,
                "{bps} bit/s @ {fps} fps: got {rate}"
            );
            // Every 1 s window, keyframe included, is on target too (VBV-like payback).
            let per_sec = fps as usize;
            for w in frames.chunks(per_sec) {
                let r = bits(w);
                assert!(
                    (r - bps as f64).abs() < 0.05 * bps as f64,
                    "window {r} vs {bps}"
                );
            }
            assert_eq!(enc.bytes_produced() * 8, bits(&frames) as u64);
        }
    }

    #[test]
    fn keyframes_first_and_on_request() {
        let t0 = Instant::now();
        let bps = 6_000_000;
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), bps, t0);
        let avg = bps as f64 / 8.0 / 60.0;
        let frames = run(&mut enc, t0 + Duration::from_secs(1));
        assert!(frames[0].keyframe);
        assert_eq!(frames[0].size, (avg * 6.0).round() as usize);
        assert!(frames[1..].iter().all(|f| !f.keyframe));
        // The frames right after the keyframe pay its excess back.
        assert!(frames[1..5].iter().all(|f| (f.size as f64) < avg));
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.frame_id, i as u32);
        }

        enc.request_keyframe();
        let t = enc.next_frame_time();
        let kf = enc.poll(t).expect("frame due");
        assert!(kf.keyframe);
        assert_eq!(kf.frame_id, 60);
        let rest = run(&mut enc, t + Duration::from_secs(1));
        assert!(rest.iter().all(|f| !f.keyframe));
    }

    #[test]
    fn bitrate_change_takes_effect_within_a_few_frames() {
        let t0 = Instant::now();
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), 10_000_000, t0);
        let switch = t0 + Duration::from_secs(2);
        run(&mut enc, switch);
        enc.set_bitrate(4_000_000);
        assert_eq!(enc.bitrate(), 4_000_000);
        let frames = run(&mut enc, switch + Duration::from_secs(2));
        assert!(frames.iter().all(|f| !f.keyframe));
        let new_avg = 4_000_000.0 / 8.0 / 60.0;
        let old_avg = 10_000_000.0 / 8.0 / 60.0;
        // Immediately nearer the new size than the old one.
        assert!(frames[..3]
            .iter()
            .all(|f| (f.size as f64) < (new_avg + old_avg) / 2.0));
        // From the 4th frame on, the 1 s average is on the new target.
        let second = &frames[3..63];
        let mean = second.iter().map(|f| f.size as f64).sum::<f64>() / second.len() as f64;
        assert!(
            (mean - new_avg).abs() < 0.05 * new_avg,
            "{mean} vs {new_avg}"
        );

        // Going up works the same way.
        enc.set_bitrate(20_000_000);
        let up = run(&mut enc, switch + Duration::from_secs(3));
        let up_avg = 20_000_000.0 / 8.0 / 60.0;
        let mean = up[3..].iter().map(|f| f.size as f64).sum::<f64>() / (up.len() - 3) as f64;
        assert!((mean - up_avg).abs() < 0.05 * up_avg, "{mean} vs {up_avg}");
    }

    #[test]
    fn frame_timing_is_exact() {
        let t0 = Instant::now();
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), 1_000_000, t0);
        assert_eq!(enc.next_frame_time(), t0);
        let frames = run(&mut enc, t0 + Duration::from_secs(10));
        assert_eq!(frames.len(), 600);
        for (k, f) in frames.iter().enumerate() {
            let nanos = (k as u64 * 1_000_000_000 + 30) / 60;
            assert_eq!(f.capture, t0 + Duration::from_nanos(nanos), "frame {k}");
        }
        assert_eq!(enc.next_frame_time(), t0 + Duration::from_secs(10));

        // Switching to 30 fps keeps the scheduled frame and spaces the rest at 1/30 s.
        let switch = enc.next_frame_time();
        enc.set_fps(30.0);
        assert_eq!(enc.fps(), 30.0);
        assert_eq!(enc.next_frame_time(), switch);
        let frames = run(&mut enc, switch + Duration::from_secs(2));
        assert_eq!(frames.len(), 60);
        for (k, f) in frames.iter().enumerate() {
            let nanos = (k as u64 * 1_000_000_000 + 15) / 30;
            assert_eq!(f.capture, switch + Duration::from_nanos(nanos));
        }
        // The bitrate holds at the new frame rate: frames are twice as big.
        let rate = bits(&frames[1..]) / (59.0 / 30.0);
        assert!((rate - 1e6).abs() < 0.05e6, "{rate}");
    }

    #[test]
    fn late_poll_skips_to_latest_frame() {
        let t0 = Instant::now();
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), 1_000_000, t0);
        assert!(enc.poll(t0).is_some());
        // Frames 1..=6 were due by 100 ms (frame 6 exactly at 100 ms).
        let late = t0 + Duration::from_millis(100);
        let f = enc.poll(late).expect("frame due");
        assert_eq!(f.frame_id, 1);
        assert_eq!(f.capture, late);
        assert_eq!(enc.frames_skipped(), 5);
        assert_eq!(enc.frames_produced(), 2);
        assert_eq!(enc.poll(late), None);
        assert_eq!(
            enc.next_frame_time(),
            t0 + Duration::from_nanos(116_666_667)
        );
    }

    #[test]
    fn sizes_are_clamped() {
        let t0 = Instant::now();
        let cfg = EncoderConfig {
            min_frame_bytes: 5_000,
            max_frame_bytes: 10_000,
            ..EncoderConfig::default()
        };
        let mut big = SyntheticEncoder::new(cfg.clone(), 50_000_000, t0);
        let mut small = SyntheticEncoder::new(cfg, 100_000, t0);
        let until = t0 + Duration::from_secs(3);
        for f in run(&mut big, until)
            .into_iter()
            .chain(run(&mut small, until))
        {
            assert!((5_000..=10_000).contains(&f.size), "{}", f.size);
        }
        // Nonsense configs degrade instead of panicking.
        let weird = EncoderConfig {
            fps: f64::NAN,
            keyframe_factor: -1.0,
            size_jitter: f64::INFINITY,
            min_frame_bytes: 100,
            max_frame_bytes: 10,
            seed: 0,
        };
        let mut enc = SyntheticEncoder::new(weird, 0, t0);
        assert_eq!(enc.fps(), 60.0);
        let f = enc.poll(t0).expect("first frame");
        assert_eq!(f.size, 10);
        enc.set_fps(0.0);
        assert_eq!(enc.fps(), 0.1);
    }

    #[test]
    fn deterministic_per_seed() {
        let t0 = Instant::now();
        let sizes = |seed| {
            let cfg = EncoderConfig {
                seed,
                ..EncoderConfig::default()
            };
            let mut enc = SyntheticEncoder::new(cfg, 8_000_000, t0);
            run(&mut enc, t0 + Duration::from_secs(2))
                .iter()
                .map(|f| f.size)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(1), sizes(1));
        assert_ne!(sizes(1), sizes(2));
        // P-frame sizes really vary, by about `size_jitter`.
        let s = sizes(3);
        let p = &s[60..];
        let mean = p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64;
        let var = p.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / p.len() as f64;
        let rel = var.sqrt() / mean;
        assert!((0.12..0.3).contains(&rel), "relative std-dev {rel}");
    }

    #[test]
    fn payload_is_reproducible_and_checkable() {
        let t0 = Instant::now();
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), 5_000_000, t0);
        let f = enc.poll(t0).expect("first frame");
        let mut a = Vec::new();
        let mut b = vec![1, 2, 3];
        enc.fill(&f, &mut a);
        frame_payload(f.frame_id, f.size, &mut b);
        assert_eq!(a.len(), f.size);
        assert_eq!(a, b);
        assert!(verify_payload(f.frame_id, &a));
        assert!(!verify_payload(f.frame_id + 1, &a));
        a[f.size / 2] ^= 1;
        assert!(!verify_payload(f.frame_id, &a));
        // Sizes that are not a multiple of 8, and the empty frame.
        for size in [0, 1, 7, 9, 1203] {
            frame_payload(42, size, &mut a);
            assert_eq!(a.len(), size);
            assert!(verify_payload(42, &a));
            let mut longer = Vec::new();
            frame_payload(42, size + 8, &mut longer);
            assert_eq!(&longer[..size], &a[..], "prefix-stable");
        }
    }
}
