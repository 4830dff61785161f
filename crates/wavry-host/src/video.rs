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
use wavry_input::inject::x11::Area;
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, MonitorId, PacerConfig};
use wavry_media::codec::{EncoderConfig, EncoderPool, VideoEncoder};
use wavry_media::convert::{FramePool, YuvLayout};
use wavry_media::{BgraView, EncodedPacket, PixelSize};
use wavry_proto::{ControlMessage, MonitorInfo, StageStat};
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
struct Stream {
    encoder: Box<dyn VideoEncoder>,
    frames: FramePool,
    size: PixelSize,
    bitrate: u64,
}

fn to_wire(c: wavry_media::Codec) -> wavry_proto::Codec {
    match c {
        wavry_media::Codec::H264 => wavry_proto::Codec::H264,
        wavry_media::Codec::Hevc => wavry_proto::Codec::Hevc,
        wavry_media::Codec::Av1 => wavry_proto::Codec::Av1,
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
            tracing::info!(
                encoder = encoder.name(),
                width = size.width,
                height = size.height,
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
            });
        }
        let Some(s) = stream.as_mut() else { continue };
        // Follow DELTA, ignoring changes under 5 % (each change resets the rate control).
        if want_bps.abs_diff(s.bitrate) * 20 > s.bitrate {
            match s.encoder.set_bitrate(want_bps) {
                Ok(()) => s.bitrate = want_bps,
                Err(e) => tracing::debug!(error = %e, "bitrate change refused"),
            }
        }
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
                    std::mem::take(&mut packet.data),
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
                },
            );
        }
    }
    Ok(())
}
