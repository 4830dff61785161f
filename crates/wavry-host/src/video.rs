//! The video thread: capture → convert → encode → hand to the session, one frame at a time
//! (no queue anywhere: a frame the encoder cannot take yet is skipped, never buffered).
//!
//! DELTA's decision (read from the session's stats) sets the encoder bitrate; a keyframe
//! request from the client makes the next frame a keyframe; a monitor switch or a resolution
//! change restarts the stream (new encoder size, `StreamInfo` to the client, a keyframe).
//! The cursor's shape and position go out as control messages as soon as they are read
//! (`cursor`).

use crate::cursor::{self, CursorSync};
use crate::HostConfig;
use rift_core::wire::STREAM_VIDEO;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wavry_control::{ControlMessage, MonitorInfo, StageStat};
use wavry_inject::x11::Area;
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, MonitorId, PacerConfig};
use wavry_media::codec::{EncoderConfig, EncoderPool, VideoEncoder};
use wavry_media::convert::{FramePool, YuvLayout};
use wavry_media::{BgraView, EncodedPacket, PixelSize};
use wavry_transport::thread::{SessionSender, Stats};

/// What the session loop tells the video thread.
pub enum VideoCommand {
    Select(Option<u32>),
    SendMonitors,
}

/// State the video thread shares with the rest of the host.
pub struct Shared {
    pub keyframe: AtomicBool,
    pub stop: AtomicBool,
    /// The streamed area on the screen, for absolute pointer positions.
    pub area: Mutex<Area>,
    /// Frames encoded and sent, for the summary.
    pub frames: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            keyframe: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            area: Mutex::new(Area {
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            }),
            frames: Default::default(),
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// A running encoder and the frame pool that feeds it, for one picture size.
pub(crate) struct Stream {
    pub(crate) encoder: Box<dyn VideoEncoder>,
    frames: FramePool,
    size: PixelSize,
    pub(crate) bitrate: u64,
    /// When the encoder was opened or last reopened for a bitrate change.
    opened_at: Instant,
}

/// Changes under this fraction of the bitrate are ignored (each change resets the rate
/// control): 1/20 = 5 %.
const BITRATE_DEADBAND: u64 = 20;
/// An encoder that cannot change its bitrate while running is reopened when DELTA's target is
/// at least this far off (1/4 = 25 %): a reopen costs a keyframe.
const REOPEN_FRACTION: u64 = 4;
/// … and at most this often.
pub(crate) const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// What [`Stream::follow_bitrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitrateChange {
    /// Within the dead band, or refused and not worth (or not yet time for) a reopen.
    Kept,
    /// Changed on the running encoder, without a keyframe.
    Live,
    /// The encoder was reopened at the new bitrate; its next frame is a keyframe.
    Reopened,
}

impl Stream {
    /// Follow DELTA's target `want` (bit/s). x264 and NVENC change their rate on the running
    /// encoder. The others (x265, libaom, VA-API, QSV, openh264) read it only when opened: they
    /// are reopened, same implementation, when the change exceeds 25 % and the last (re)open is
    /// at least `REOPEN_INTERVAL` old, so a fluctuating target does not cost a keyframe
    /// every few frames.
    pub(crate) fn follow_bitrate(
        &mut self,
        want: u64,
        now: Instant,
    ) -> Result<BitrateChange, crate::HostError> {
        let diff = want.abs_diff(self.bitrate);
        if diff * BITRATE_DEADBAND <= self.bitrate {
            return Ok(BitrateChange::Kept);
        }
        match self.encoder.set_bitrate(want) {
            Ok(()) => {
                self.bitrate = want;
                return Ok(BitrateChange::Live);
            }
            Err(wavry_media::CodecError::BitrateUnsupported(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "bitrate change failed");
                return Ok(BitrateChange::Kept);
            }
        }
        if diff * REOPEN_FRACTION <= self.bitrate
            || now.saturating_duration_since(self.opened_at) < REOPEN_INTERVAL
        {
            return Ok(BitrateChange::Kept);
        }
        let mut cfg = self.encoder.config().clone();
        cfg.bitrate = want;
        let name = self.encoder.name();
        let mut encoder = wavry_media::codec::open_encoder_from(&cfg, &[name])?;
        encoder.request_keyframe();
        tracing::info!(
            encoder = name,
            from_kbps = self.bitrate / 1000,
            to_kbps = want / 1000,
            "encoder reopened for a bitrate change it cannot make while running (one keyframe)"
        );
        self.encoder = encoder;
        self.bitrate = want;
        self.opened_at = now;
        Ok(BitrateChange::Reopened)
    }
}

fn to_wire(c: wavry_media::Codec) -> wavry_control::Codec {
    match c {
        wavry_media::Codec::H264 => wavry_control::Codec::H264,
        wavry_media::Codec::Hevc => wavry_control::Codec::Hevc,
        wavry_media::Codec::Av1 => wavry_control::Codec::Av1,
    }
}

fn monitors(cap: &X11Capturer) -> Vec<MonitorInfo> {
    cap.monitors()
        .iter()
        .map(|m| MonitorInfo {
            id: m.id.0,
            name: m.name.clone(),
            x: m.geometry.x,
            y: m.geometry.y,
            width: m.geometry.width,
            height: m.geometry.height,
            refresh_mhz: m.refresh_hz.map(|hz| (hz * 1000.0).round() as u32),
            primary: m.primary,
        })
        .collect()
}

fn selected(cap: &X11Capturer) -> Option<u32> {
    match cap.target() {
        CaptureTarget::WholeScreen => None,
        CaptureTarget::Monitor(id) => Some(id.0),
    }
}

fn send(tx: &SessionSender, msg: &ControlMessage) {
    match msg.encode() {
        Ok(b) => {
            let _ = tx.send_control(b);
        }
        Err(e) => tracing::warn!(error = %e, "control message not sent"),
    }
}

/// Mean and p95 of `samples` (µs), emptied.
fn stage(samples: &mut Vec<u32>) -> StageStat {
    if samples.is_empty() {
        return StageStat::default();
    }
    samples.sort_unstable();
    let mean = samples.iter().map(|&v| v as u64).sum::<u64>() / samples.len() as u64;
    let p95 = samples[(samples.len() - 1) * 95 / 100];
    samples.clear();
    StageStat {
        mean_us: mean as u32,
        p95_us: p95,
    }
}

/// The video thread's body. Returns when `shared.stop` is set or capture fails for good.
pub fn run(
    cfg: &HostConfig,
    tx: SessionSender,
    stats: impl Fn() -> Stats,
    commands: Receiver<VideoCommand>,
    shared: Arc<Shared>,
) -> Result<(), crate::HostError> {
    // Before the encoder opens: its slice threads inherit this.
    wavry_transport::priority::raise_current_thread(wavry_transport::priority::Role::Media);
    let target = match cfg.monitor {
        Some(id) => CaptureTarget::Monitor(MonitorId(id)),
        None => CaptureTarget::WholeScreen,
    };
    let mut cap = X11Capturer::open(X11Config {
        display: cfg.display.clone(),
        pacer: PacerConfig::new(cfg.fps, Some(Duration::from_secs(1))),
        target,
    })?;
    send(
        &tx,
        &ControlMessage::Monitors {
            monitors: monitors(&cap),
            selected: selected(&cap),
        },
    );
    let mut pool = EncoderPool::new(1);
    let mut stream: Option<Stream> = None;
    let mut packet = EncodedPacket::default();
    let mut host_us: Vec<u32> = Vec::with_capacity(128);
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut frames_this_second = 0u32;
    let mut pts = 0i64;
    let mut cursor = CursorSync::default();
    // What the client was last told of the monitors: a monitor plugged in or removed, or the
    // selection falling back to the whole screen, is told again.
    let mut told = (cap.monitors().to_vec(), selected(&cap));

    while !shared.stop.load(Ordering::Relaxed) {
        for cmd in commands.try_iter() {
            match cmd {
                VideoCommand::Select(id) => {
                    let t = id.map_or(CaptureTarget::WholeScreen, |i| {
                        CaptureTarget::Monitor(MonitorId(i))
                    });
                    if let Err(e) = cap.select(t) {
                        send(
                            &tx,
                            &ControlMessage::Error {
                                message: format!("cannot select monitor: {e}"),
                            },
                        );
                    }
                }
                VideoCommand::SendMonitors => send(
                    &tx,
                    &ControlMessage::Monitors {
                        monitors: monitors(&cap),
                        selected: selected(&cap),
                    },
                ),
            }
        }
        // Wake at least every POSITION_INTERVAL: a pointer moving over a still screen makes
        // no frame, so its position is read between frames.
        let frame = cap.next_frame(Instant::now() + cursor::POSITION_INTERVAL)?;
        // The pointer first: it is what the user watches most closely, and costs a few bytes.
        for m in cursor.shape(cap.cursor_shape()) {
            send(&tx, &m);
        }
        let pos = match &frame {
            Some(f) => f.cursor,
            None => cap.cursor_position()?,
        };
        if let Some(m) = cursor.position(&pos, Instant::now()) {
            send(&tx, &m);
        }
        if cap.monitors() != told.0.as_slice() || selected(&cap) != told.1 {
            told = (cap.monitors().to_vec(), selected(&cap));
            send(
                &tx,
                &ControlMessage::Monitors {
                    monitors: monitors(&cap),
                    selected: told.1,
                },
            );
        }
        let Some(frame) = frame else {
            continue;
        };
        // 4:2:0 needs even sizes: drop an odd last row or column.
        let full = frame.view();
        let size = PixelSize::new(full.size.width & !1, full.size.height & !1);
        if size.width == 0 || size.height == 0 {
            continue;
        }
        let view = BgraView { size, ..full };
        let now_stats = stats();
        let rate = now_stats.rate;
        let want_bps = rate.map_or(cfg.start_bitrate, |r| r.encoder_bps.max(100_000));

        if stream.as_ref().is_none_or(|s| s.size != size) {
            if let Some(old) = stream.take() {
                pool.give_back(old.encoder);
            }
            let mut ecfg = EncoderConfig::new(cfg.codec, size, cfg.fps, want_bps);
            ecfg.hardware = cfg.hardware;
            ecfg.intra_refresh = cfg.intra_refresh;
            let mut encoder = pool.take(&ecfg)?;
            encoder.request_keyframe();
            let frames = FramePool::new(encoder.input_layout(), size, FramePool::DEFAULT_FRAMES);
            let reuse = pool.stats();
            tracing::info!(
                encoder = encoder.name(),
                width = size.width,
                height = size.height,
                encoders_opened = reuse.opened,
                encoders_reused = reuse.reused,
                reuse_rate = format_args!("{:.2}", reuse.reuse_rate()),
                "stream (re)started"
            );
            send(
                &tx,
                &ControlMessage::StreamInfo {
                    codec: to_wire(cfg.codec),
                    encoder: encoder.name().to_string(),
                    width: size.width,
                    height: size.height,
                    fps: cfg.fps,
                    monitor: selected(&cap),
                },
            );
            if let Ok(mut a) = shared.area.lock() {
                *a = Area {
                    x: frame.area.x as i16,
                    y: frame.area.y as i16,
                    width: size.width as u16,
                    height: size.height as u16,
                };
            }
            debug_assert!(matches!(
                encoder.input_layout(),
                YuvLayout::I420 | YuvLayout::Nv12
            ));
            stream = Some(Stream {
                encoder,
                frames,
                size,
                bitrate: want_bps,
                opened_at: Instant::now(),
            });
        }
        let Some(s) = stream.as_mut() else { continue };
        s.follow_bitrate(want_bps, Instant::now())?;
        if shared.keyframe.swap(false, Ordering::Relaxed) {
            s.encoder.request_keyframe();
        }
        let Some(mut yuv) = s.frames.convert(&view, pts)? else {
            tracing::debug!("encoder behind: frame skipped");
            continue;
        };
        pts += 1;
        s.encoder.send(&mut yuv)?;
        drop(yuv);
        while s.encoder.receive(&mut packet)? {
            // The capture time on the monotonic clock input events also use (RIFT's
            // capture_us), so one machine can compare it with its own clock.
            let capture_us = wavry_input::monotonic_us()
                .saturating_sub(frame.captured_at.elapsed().as_micros() as u64);
            if tx
                .send_frame(
                    STREAM_VIDEO,
                    // The session hands the buffer of an earlier frame back: no Vec grows
                    // anew per frame.
                    std::mem::replace(&mut packet.data, tx.frame_buffer()),
                    packet.keyframe,
                    // An intra-refresh wave completed: the client can resume decoding here.
                    packet.recovery_point,
                    capture_us,
                )
                .is_err()
            {
                return Ok(());
            }
            host_us.push(
                frame
                    .captured_at
                    .elapsed()
                    .as_micros()
                    .min(u32::MAX as u128) as u32,
            );
            frames_this_second += 1;
            shared.frames.fetch_add(1, Ordering::Relaxed);
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            send(
                &tx,
                &ControlMessage::HostStats {
                    capture_encode: stage(&mut host_us),
                    bitrate: s.bitrate,
                    fps: std::mem::take(&mut frames_this_second),
                    loss_permille: (now_stats.loss_rate * 1000.0).round() as u32,
                    encoders_opened: pool.stats().opened.min(u32::MAX.into()) as u32,
                    encoders_reused: pool.stats().reused.min(u32::MAX.into()) as u32,
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavry_media::codec::open_encoder_from;
    use wavry_media::pattern::Pattern;
    use wavry_media::Codec;

    const SIZE: PixelSize = PixelSize {
        width: 320,
        height: 180,
    };

    /// A stream on encoder `name`, opened at `t0`; `None` (skip) when FFmpeg lacks it.
    fn stream(codec: Codec, name: &'static str, bitrate: u64, t0: Instant) -> Option<Stream> {
        let mut cfg = EncoderConfig::new(codec, SIZE, 30, bitrate);
        cfg.hardware = false;
        let encoder = match open_encoder_from(&cfg, &[name]) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("SKIP: {e}");
                return None;
            }
        };
        let frames = FramePool::new(encoder.input_layout(), SIZE, FramePool::DEFAULT_FRAMES);
        Some(Stream {
            encoder,
            frames,
            size: SIZE,
            bitrate,
            opened_at: t0,
        })
    }

    /// Encode frames `range` of the moving pattern; (size, keyframe) of each packet.
    fn encode(
        s: &mut Stream,
        pattern: &mut Pattern,
        range: std::ops::Range<u32>,
    ) -> Vec<(usize, bool)> {
        let mut packet = EncodedPacket::default();
        let mut out = vec![];
        for n in range {
            pattern.draw(n);
            let mut yuv = s
                .frames
                .convert(&pattern.view(), n.into())
                .unwrap()
                .unwrap();
            s.encoder.send(&mut yuv).unwrap();
            drop(yuv);
            while s.encoder.receive(&mut packet).unwrap() {
                out.push((packet.data.len(), packet.keyframe));
            }
        }
        out
    }

    #[test]
    fn x265_is_reopened_for_large_bitrate_changes_at_most_every_two_seconds() {
        let t0 = Instant::now();
        let Some(mut s) = stream(Codec::Hevc, "libx265", 4_000_000, t0) else {
            return;
        };
        let mut pattern = Pattern::new(SIZE);
        let before = encode(&mut s, &mut pattern, 0..40);
        assert!(before[0].1 && before[1..].iter().all(|p| !p.1));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Too soon after opening, within the dead band, or under 25 %: kept.
        assert_eq!(
            s.follow_bitrate(1_000_000, at(500)).unwrap(),
            BitrateChange::Kept
        );
        assert_eq!(
            s.follow_bitrate(3_900_000, at(2500)).unwrap(),
            BitrateChange::Kept
        );
        assert_eq!(
            s.follow_bitrate(3_100_000, at(2500)).unwrap(),
            BitrateChange::Kept
        );
        assert_eq!(s.bitrate, 4_000_000);
        // A quarter: reopened, and the next frame is a keyframe.
        assert_eq!(
            s.follow_bitrate(1_000_000, at(2500)).unwrap(),
            BitrateChange::Reopened
        );
        assert_eq!(
            (s.bitrate, s.encoder.config().bitrate),
            (1_000_000, 1_000_000)
        );
        assert_eq!(s.encoder.name(), "libx265");
        let after = encode(&mut s, &mut pattern, 40..80);
        assert!(after[0].1, "a keyframe after the reopen");
        assert!(after[1..].iter().all(|p| !p.1));
        let mean = |p: &[(usize, bool)]| p.iter().map(|p| p.0).sum::<usize>() / p.len();
        let (m_before, m_after) = (mean(&before[10..]), mean(&after[10..]));
        eprintln!("x265 4000 → 1000 kbit/s by reopening: mean frame {m_before} B → {m_after} B");
        assert!(m_after * 2 < m_before, "{m_before} → {m_after}");
        // Back up: not within 2 s of the reopen, then yes.
        assert_eq!(
            s.follow_bitrate(4_000_000, at(4000)).unwrap(),
            BitrateChange::Kept
        );
        assert_eq!(
            s.follow_bitrate(4_000_000, at(4600)).unwrap(),
            BitrateChange::Reopened
        );
    }

    #[test]
    fn x264_changes_bitrate_live() {
        let t0 = Instant::now();
        let Some(mut s) = stream(Codec::H264, "libx264", 4_000_000, t0) else {
            return;
        };
        let mut pattern = Pattern::new(SIZE);
        encode(&mut s, &mut pattern, 0..5);
        assert_eq!(
            s.follow_bitrate(3_000_000, t0).unwrap(),
            BitrateChange::Live
        );
        assert!(encode(&mut s, &mut pattern, 5..10).iter().all(|p| !p.1));
    }
}
