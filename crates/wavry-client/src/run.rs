//! A client session from connection to close, on three threads:
//!
//! - the session's own I/O thread (wavry-transport);
//! - a **decode thread**: takes frames from the session, decodes them, and leaves the newest
//!   picture in a one-slot mailbox (an older one not yet shown is replaced: showing it would
//!   only add latency), then wakes the window with a `PictureReady` event;
//! - the **window thread** (the caller's): blocks on SDL events, so input is read and sent the
//!   moment it happens, and pictures are shown as soon as they are decoded.
//!
//! The host's cursor arrives as control messages (shape chunks and positions, decoded on the
//! decode thread) and is drawn by the window over the video: a pointer move redraws the last
//! picture with the cursor at its new place, without waiting for a frame.

use crate::stats::{Snapshot, Stage};
use crate::window::{CursorImage, OwnedI420, PictureReady, VideoWindow, WindowError};
use rift_core::connection::Event;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use wavry_control::{Codec, ControlMessage, Cursor, CursorAssembler, PROTOCOL_VERSION};
use wavry_input::{monotonic_us, Timed, MAX_EVENT_LEN};
use wavry_media::codec::{open_decoder, DecoderConfig, VideoDecoder};
use wavry_media::convert::YuvLayout;
use wavry_transport::session::CloseReason;
use wavry_transport::thread::{SessionEvent, SessionSender, SessionThread, StatsHandle};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("window: {0}")]
    Window(#[from] WindowError),
    #[error("the decode thread could not start: {0}")]
    Thread(String),
}

/// Receives each second's figures.
pub type Reporter = Box<dyn FnMut(&Snapshot) + Send>;

pub struct RunOptions {
    /// Window title.
    pub title: String,
    /// Initial window size.
    pub width: u32,
    pub height: u32,
    /// Show the stats overlay from the start.
    pub overlay: bool,
    /// Called with each second's figures (print them, write JSON lines…).
    pub report: Option<Reporter>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Try hardware decoders first.
    pub hardware_decode: bool,
    /// How decoded pictures reach the screen.
    pub present: crate::window::PresentMode,
    /// How this client names itself to the host.
    pub client_name: String,
    /// Set from outside (Ctrl-C) to end the session.
    pub stop: Arc<AtomicBool>,
}

/// What the session came to.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub duration: Duration,
    pub frames_decoded: u64,
    pub frames_shown: u64,
    pub frames_lost: u64,
    pub close: Option<CloseReason>,
    /// The last interval's figures.
    pub last: Option<Snapshot>,
}

/// A decoded picture owned by the mailbox.
#[derive(Default)]
struct Picture {
    pic: OwnedI420,
    decoded_at: Option<Instant>,
}

/// The newest picture waiting to be shown, and a spare buffer to decode the next into.
#[derive(Default)]
struct Mailbox {
    ready: Option<Picture>,
    spare: Vec<Picture>,
}

/// The host's cursor as last heard, for the window thread to apply.
#[derive(Default)]
struct CursorMailbox {
    /// A shape put together and not yet made a texture.
    shape: Option<Cursor>,
    /// The latest position not yet applied: (x, y, visible, shape serial).
    position: Option<(i32, i32, bool, u32)>,
}

/// Figures gathered over one interval.
#[derive(Default)]
struct Interval {
    decode: Vec<Duration>,
    network: Vec<Duration>,
    present: Vec<Duration>,
    shown: u64,
    bytes: u64,
    host: Option<(wavry_control::StageStat, u32)>,
    stream: Option<(Codec, u32, u32)>,
}

struct Shared {
    mailbox: Mutex<Mailbox>,
    interval: Mutex<Interval>,
    decoded: std::sync::atomic::AtomicU64,
    lost: std::sync::atomic::AtomicU64,
    closed: Mutex<Option<CloseReason>>,
    done: AtomicBool,
    /// The host's monitors (ids in its order) and the one streamed (`None`: whole screen).
    monitors: Mutex<(Vec<u32>, Option<u32>)>,
    cursor: Mutex<CursorMailbox>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn decoder_for(codec: Codec, hardware: bool) -> Option<Box<dyn VideoDecoder>> {
    let media = match codec {
        Codec::H264 => wavry_media::Codec::H264,
        Codec::Hevc => wavry_media::Codec::Hevc,
        Codec::Av1 => wavry_media::Codec::Av1,
    };
    let mut cfg = DecoderConfig::new(media);
    cfg.hardware = hardware;
    match open_decoder(&cfg) {
        Ok(d) => {
            tracing::info!(decoder = d.name(), %media, "decoder open");
            Some(d)
        }
        Err(e) => {
            tracing::error!(error = %e, "no decoder for the stream");
            None
        }
    }
}

/// The decode thread's body.
fn decode_loop(
    events: Receiver<SessionEvent>,
    tx: SessionSender,
    shared: Arc<Shared>,
    stats: StatsHandle,
    hardware: bool,
    wake: impl Fn(),
) {
    // Before the decoder opens: its slice threads inherit this.
    wavry_transport::priority::raise_current_thread(wavry_transport::priority::Role::Media);
    let mut decoder: Option<Box<dyn VideoDecoder>> = None;
    let mut pts = 0i64;
    let mut cursor_shapes = CursorAssembler::default();
    // A frame that could not be decoded (no decoder yet, or missing references) asks the host
    // for a keyframe, at most this often.
    let mut last_request: Option<Instant> = None;
    let mut ask_keyframe = |frame_id: u32| {
        if last_request.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
            last_request = Some(Instant::now());
            let _ = tx.request_keyframe(rift_core::wire::STREAM_VIDEO, frame_id);
        }
    };
    for ev in events.iter() {
        match ev {
            SessionEvent::Connection(Event::Control(bytes)) => match ControlMessage::decode(&bytes)
            {
                Ok(ControlMessage::StreamInfo {
                    codec,
                    encoder,
                    width,
                    height,
                    ..
                }) => {
                    tracing::info!(%encoder, width, height, ?codec, "stream info");
                    decoder = decoder_for(codec, hardware);
                    lock(&shared.interval).stream = Some((codec, width, height));
                }
                Ok(ControlMessage::HostStats {
                    capture_encode,
                    loss_permille,
                    ..
                }) => lock(&shared.interval).host = Some((capture_encode, loss_permille)),
                Ok(ControlMessage::Monitors { monitors, selected }) => {
                    for m in &monitors {
                        tracing::info!(id = m.id, name = %m.name, w = m.width, h = m.height, "host monitor");
                    }
                    tracing::info!(?selected, "streaming");
                    *lock(&shared.monitors) = (monitors.iter().map(|m| m.id).collect(), selected);
                }
                Ok(ControlMessage::Error { message }) => tracing::warn!(%message, "host error"),
                Ok(ControlMessage::CursorShape(chunk)) => match cursor_shapes.push(chunk) {
                    Ok(Some(shape)) => {
                        lock(&shared.cursor).shape = Some(shape);
                        wake();
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "cursor shape refused"),
                },
                Ok(ControlMessage::CursorPosition {
                    x,
                    y,
                    visible,
                    serial,
                }) => {
                    lock(&shared.cursor).position = Some((x, y, visible, serial));
                    wake();
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "control message refused"),
            },
            SessionEvent::Frame(f) => {
                let Some(dec) = decoder.as_mut() else {
                    // Frames before the stream's description: ask for a fresh start.
                    ask_keyframe(f.frame_id);
                    continue;
                };
                if let Err(e) = dec.send(&f.data, pts) {
                    tracing::debug!(error = %e, frame = f.frame_id, "frame did not decode");
                    ask_keyframe(f.frame_id);
                    continue;
                }
                pts += 1;
                let pic = match dec.receive() {
                    Ok(Some(p)) => p,
                    Ok(None) => {
                        ask_keyframe(f.frame_id);
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "no picture");
                        ask_keyframe(f.frame_id);
                        continue;
                    }
                };
                if pic.layout() != YuvLayout::I420 {
                    tracing::warn!("decoder gave NV12 pictures; only I420 is shown for now");
                    continue;
                }
                // A reference to the decoder's picture, not a copy: the decoder writes the
                // next one elsewhere.
                let mut out = lock(&shared.mailbox).spare.pop().unwrap_or_default();
                out.pic.share(pic);
                let now = Instant::now();
                out.decoded_at = Some(now);
                shared.decoded.fetch_add(1, Ordering::Relaxed);
                {
                    let mut iv = lock(&shared.interval);
                    iv.decode
                        .push(now.saturating_duration_since(f.completed_at));
                    iv.network
                        .push(stats.get().rtt / 2 + (f.completed_at - f.first_packet_at));
                    iv.bytes += f.data.len() as u64;
                }
                let mut mb = lock(&shared.mailbox);
                if let Some(stale) = mb.ready.replace(out) {
                    mb.spare.push(stale);
                }
                drop(mb);
                wake();
            }
            SessionEvent::Connection(Event::FrameLost { .. }) => {
                shared.lost.fetch_add(1, Ordering::Relaxed);
            }
            SessionEvent::Closed(r) => {
                *lock(&shared.closed) = Some(r);
                break;
            }
            _ => {}
        }
    }
    shared.done.store(true, Ordering::Relaxed);
    wake();
}

/// The RIFT connection a client runs. It sends no video, so its controller only paces what
/// little it sends (input, feedback, control).
pub fn connection_factory() -> wavry_transport::session::ConnectionFactory {
    Box::new(|local, remote, now| {
        rift_core::connection::Connection::new(
            rift_core::connection::ConnectionConfig::new(local, remote, false),
            Box::new(rift_core::delta::FixedRate::new(1_000_000, 60.0)),
            now,
        )
    })
}

/// Start a session from a socket bound to `bind` to the host at `host`, with `verify` judging
/// the host's key, on an I/O thread of its own. Its first event says how the handshake went
/// (`Established` or `Closed`).
pub fn connect(
    bind: std::net::SocketAddr,
    host: std::net::SocketAddr,
    identity: &rift_crypto::identity::Identity,
    verify: rift_crypto::handshake::Verifier,
) -> std::io::Result<SessionThread> {
    use wavry_transport::session::{Session, SessionConfig};
    let mut driver = wavry_transport::udp::UdpDriver::bind(bind)?;
    let mut session = Session::connect(
        SessionConfig::default(),
        identity,
        verify,
        host,
        connection_factory(),
        Instant::now(),
    )
    .map_err(std::io::Error::other)?;
    driver.flush(&mut session, Instant::now())?;
    SessionThread::spawn(driver, session)
}

fn send_control(tx: &SessionSender, msg: &ControlMessage) {
    if let Ok(b) = msg.encode() {
        let _ = tx.send_control(b);
    }
}

/// Run the client on an established (or establishing) session until it closes, the user
/// quits, `opts.stop` is set or `opts.duration` passes.
pub fn run(mut session: SessionThread, mut opts: RunOptions) -> Result<RunSummary, ClientError> {
    let started = Instant::now();
    let tx = session.sender();
    // This (the caller's) thread reads input and presents pictures.
    wavry_transport::priority::raise_current_thread(wavry_transport::priority::Role::Input);
    let mut window = VideoWindow::open(&opts.title, opts.width, opts.height, opts.present)?;
    window.set_overlay_visible(opts.overlay)?;
    let shared = Arc::new(Shared {
        mailbox: Mutex::new(Mailbox::default()),
        interval: Mutex::new(Interval::default()),
        decoded: Default::default(),
        lost: Default::default(),
        closed: Mutex::new(None),
        done: AtomicBool::new(false),
        monitors: Mutex::new((Vec::new(), None)),
        cursor: Mutex::new(CursorMailbox::default()),
    });
    let events = session.take_events();
    let decoder = {
        let (shared, tx) = (shared.clone(), tx.clone());
        let stats = session.stats_handle();
        let sender = window.event_sender();
        let hw = opts.hardware_decode;
        std::thread::Builder::new()
            .name("client-decode".into())
            .spawn(move || {
                decode_loop(events, tx, shared, stats, hw, move || {
                    let _ = sender.push_custom_event(PictureReady);
                })
            })
            .map_err(|e| ClientError::Thread(e.to_string()))?
    };
    send_control(
        &tx,
        &ControlMessage::Hello {
            version: PROTOCOL_VERSION,
            client: opts.client_name.clone(),
            decoders: vec![Codec::H264, Codec::Hevc, Codec::Av1],
        },
    );

    let mut inputs = Vec::new();
    let mut buf = [0u8; MAX_EVENT_LEN];
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut last_bytes_at = Instant::now();
    let mut summary = RunSummary::default();
    let mut quit = false;
    // The serial of the cursor shape the window holds, and the host's last position.
    let mut cursor_serial: Option<u32> = None;
    let mut cursor_position: Option<(i32, i32, bool, u32)> = None;
    while !quit && !shared.done.load(Ordering::Relaxed) {
        if opts.stop.load(Ordering::Relaxed)
            || opts.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        if let Some(ev) = window.wait_event(Duration::from_millis(20)) {
            if ev.as_user_event_type::<PictureReady>().is_some() {
                let cursor_moved = apply_cursor(
                    &shared,
                    &mut window,
                    &mut cursor_serial,
                    &mut cursor_position,
                );
                let pic = lock(&shared.mailbox).ready.take();
                if pic.is_none() && cursor_moved {
                    window.redraw()?;
                }
                if let Some(Picture { pic, decoded_at }) = pic {
                    // The window keeps the picture for redraws and hands back another buffer.
                    let spare = window.present_owned(pic)?;
                    let now = Instant::now();
                    let mut iv = lock(&shared.interval);
                    if let Some(d) = decoded_at {
                        iv.present.push(now - d);
                    }
                    iv.shown += 1;
                    drop(iv);
                    summary.frames_shown += 1;
                    lock(&shared.mailbox).spare.push(Picture {
                        pic: spare,
                        decoded_at: None,
                    });
                }
            } else {
                quit = window.handle(ev, &mut inputs)?;
                if window.take_monitor_request() {
                    let (ids, selected) = lock(&shared.monitors).clone();
                    let id = next_monitor(&ids, selected);
                    tracing::info!(?id, "asking the host for another monitor");
                    send_control(&tx, &ControlMessage::SelectMonitor { id });
                }
            }
        }
        for e in inputs.drain(..) {
            let n = Timed {
                t_us: monotonic_us(),
                event: e,
            }
            .encode(&mut buf);
            let _ = tx.send_input(&buf[..n]);
        }
        if Instant::now() >= next_report {
            let secs = last_bytes_at.elapsed().as_secs_f64();
            last_bytes_at = Instant::now();
            next_report += Duration::from_secs(1);
            let snap = snapshot(&shared, &session.stats(), started, secs);
            window.set_overlay(&snap.lines())?;
            if window.overlay_on() {
                window.redraw()?;
            }
            if let Some(report) = opts.report.as_mut() {
                report(&snap);
            }
            summary.last = Some(snap);
        }
    }
    let _ = tx.close(rift_core::wire::CLOSE_NORMAL, "client closed");
    let _ = decoder.join();
    summary.duration = started.elapsed();
    summary.frames_decoded = shared.decoded.load(Ordering::Relaxed);
    summary.frames_lost = shared.lost.load(Ordering::Relaxed);
    summary.close = lock(&shared.closed).clone();
    Ok(summary)
}

/// Give the window what the decode thread heard of the host's cursor; true when what it draws
/// changed. The cursor is drawn only while the host says it is visible and the window holds
/// the shape the host names.
fn apply_cursor(
    shared: &Shared,
    window: &mut VideoWindow,
    serial: &mut Option<u32>,
    position: &mut Option<(i32, i32, bool, u32)>,
) -> bool {
    let (shape, moved) = {
        let mut c = lock(&shared.cursor);
        (c.shape.take(), c.position.take())
    };
    if shape.is_none() && moved.is_none() {
        return false;
    }
    if let Some(s) = shape {
        let img = CursorImage {
            width: u32::from(s.width),
            height: u32::from(s.height),
            hotspot_x: u32::from(s.hotspot_x),
            hotspot_y: u32::from(s.hotspot_y),
            bgra: &s.bgra,
        };
        // A cursor that cannot be shown is not worth ending the session for: draw none.
        *serial = match window.set_cursor_shape(&img) {
            Ok(()) => Some(s.serial),
            Err(e) => {
                tracing::warn!(error = %e, "cursor shape not shown");
                None
            }
        };
    }
    if moved.is_some() {
        *position = moved;
    }
    let at = position
        .and_then(|(x, y, visible, want)| (visible && *serial == Some(want)).then_some((x, y)));
    window.set_cursor_position(at);
    true
}

/// After monitor `selected`, the next in `ids`; after the last, the whole screen (`None`);
/// after the whole screen, the first.
pub fn next_monitor(ids: &[u32], selected: Option<u32>) -> Option<u32> {
    match selected.and_then(|s| ids.iter().position(|&i| i == s)) {
        None => ids.first().copied(),
        Some(i) => ids.get(i + 1).copied(),
    }
}

fn snapshot(
    shared: &Shared,
    stats: &wavry_transport::thread::Stats,
    started: Instant,
    secs: f64,
) -> Snapshot {
    let mut iv = lock(&shared.interval);
    let rx = stats.video_rx.unwrap_or_default();
    let (codec, width, height) = iv
        .stream
        .map_or((String::new(), 0, 0), |(c, w, h)| (format!("{c:?}"), w, h));
    let (host, loss) = iv
        .host
        .map_or((Stage::default(), 0.0), |(h, loss_permille)| {
            (
                Stage {
                    mean_ms: h.mean_us as f64 / 1e3,
                    p95_ms: h.p95_us as f64 / 1e3,
                },
                loss_permille as f64 / 10.0,
            )
        });
    let snap = Snapshot {
        t_s: started.elapsed().as_secs_f64(),
        width,
        height,
        codec,
        fps: iv.shown as f64 / secs.max(1e-3),
        video_mbps: iv.bytes as f64 * 8.0 / secs.max(1e-3) / 1e6,
        rtt_ms: stats.rtt.as_secs_f64() * 1e3,
        loss_pct: loss,
        fec_recovered: rx.fec_recovered_packets,
        frames_lost: rx.frames_lost,
        host,
        network: Stage::of(&mut iv.network),
        decode: Stage::of(&mut iv.decode),
        present: Stage::of(&mut iv.present),
    };
    iv.decode.clear();
    iv.network.clear();
    iv.present.clear();
    iv.shown = 0;
    iv.bytes = 0;
    snap
}

#[cfg(test)]
mod tests {
    use super::next_monitor;

    #[test]
    fn monitors_cycle_through_the_whole_screen() {
        let ids = [7, 9];
        assert_eq!(next_monitor(&ids, None), Some(7));
        assert_eq!(next_monitor(&ids, Some(7)), Some(9));
        assert_eq!(next_monitor(&ids, Some(9)), None);
        assert_eq!(next_monitor(&ids, Some(42)), Some(7), "unknown: start over");
        assert_eq!(next_monitor(&[], None), None);
    }
}
