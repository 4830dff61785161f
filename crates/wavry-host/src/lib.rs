//! wavry-host: the host end of a session. For one connected client:
//!
//! - a **video thread** captures the chosen monitor, converts, encodes and hands each frame to
//!   the session (`video`);
//! - an **input thread** blocks on the session's input channel and injects each event at once
//!   (`input`);
//! - the calling thread answers control messages (monitor list and switch) and keyframe
//!   requests, until the session ends.

#![forbid(unsafe_code)]

pub mod cursor;
pub mod input;
pub mod video;

use rift_core::connection::Event;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use video::{Shared, VideoCommand};
use wavry_control::{ControlMessage, PROTOCOL_VERSION};
use wavry_transport::listen::{Listener, ListenerConfig};
use wavry_transport::session::CloseReason;
use wavry_transport::thread::{SessionEvent, SessionThread};

/// How the host streams.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// X display to capture and inject into (`None`: `$DISPLAY`).
    pub display: Option<String>,
    pub codec: wavry_media::Codec,
    /// Frame rate cap.
    pub fps: u32,
    /// Monitor to stream at start (`None`: the whole screen).
    pub monitor: Option<u32>,
    /// Try hardware encoders first.
    pub hardware: bool,
    /// Rolling intra refresh instead of keyframes after the first.
    pub intra_refresh: bool,
    /// Encoder bitrate before DELTA's first decision, bit/s.
    pub start_bitrate: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            display: None,
            codec: wavry_media::Codec::H264,
            fps: 60,
            monitor: None,
            hardware: true,
            intra_refresh: false,
            start_bitrate: 8_000_000,
        }
    }
}

#[derive(Debug, Error)]
pub enum HostError {
    #[error("capture: {0}")]
    Capture(#[from] wavry_media::capture::CaptureError),
    #[error("encoder: {0}")]
    Codec(#[from] wavry_media::CodecError),
    #[error("colour conversion: {0}")]
    Convert(#[from] wavry_media::ConvertError),
    #[error("the video thread failed: {0}")]
    Thread(String),
}

/// The RIFT connection a host runs: DELTA steering the video, starting at 8 Mbit/s (it
/// backs off within a few hundred milliseconds on a slower path).
pub fn connection_factory() -> wavry_transport::session::ConnectionFactory {
    Box::new(|local, remote, now| {
        rift_core::connection::Connection::new(
            rift_core::connection::ConnectionConfig::new(local, remote, true),
            Box::new(rift_core::delta::Delta::new(
                rift_core::delta::DeltaConfig {
                    initial_bps: 8_000_000,
                    ..Default::default()
                },
            )),
            now,
        )
    })
}

/// Wait until `deadline` for one client that `allow` accepts (authenticated and admitted: no
/// capture or encoding starts for anyone else), and move its session (and the socket) onto an
/// I/O thread of its own, ready for [`serve`].
pub fn accept_one(
    mut driver: wavry_transport::udp::UdpDriver,
    identity: &rift_crypto::identity::Identity,
    allow: impl FnMut() -> rift_crypto::handshake::Verifier + Send + 'static,
    deadline: Instant,
) -> std::io::Result<SessionThread> {
    let mut listener = Listener::new(ListenerConfig::default(), identity, allow, Instant::now())
        .map_err(std::io::Error::other)?;
    let session = driver
        .accept(&mut listener, deadline, connection_factory)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "no client connected"))?;
    SessionThread::spawn(driver, session)
}

/// What happened in a session.
#[derive(Debug, Clone)]
pub struct Summary {
    pub duration: Duration,
    pub frames: u64,
    pub close: CloseReason,
}

/// Serve the client on `session` until it closes (or `stop` is set: then the host closes).
pub fn serve(
    mut session: SessionThread,
    cfg: &HostConfig,
    stop: &std::sync::atomic::AtomicBool,
    inject_log: Option<input::InjectLog>,
) -> Result<Summary, HostError> {
    let started = Instant::now();
    let shared = Arc::new(Shared::new());
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let tx = session.sender();

    let input_thread = {
        let rx = session.take_input();
        let (display, shared) = (cfg.display.clone(), shared.clone());
        std::thread::Builder::new()
            .name("host-input".into())
            .spawn(move || input::run(display, rx, shared, inject_log))
            .map_err(|e| HostError::Thread(e.to_string()))?
    };
    // The video thread reads DELTA's decision through a stats handle of its own.
    let stats = session.stats_handle();
    let video_thread = {
        let (cfg, tx, shared) = (cfg.clone(), tx.clone(), shared.clone());
        std::thread::Builder::new()
            .name("host-video".into())
            .spawn(move || video::run(&cfg, tx, move || stats.get(), cmd_rx, shared))
            .map_err(|e| HostError::Thread(e.to_string()))?
    };

    let close = loop {
        if stop.load(Ordering::Relaxed) {
            let _ = tx.close(rift_core::wire::CLOSE_NORMAL, "host stopped");
        }
        if video_thread.is_finished() && !shared.stop.load(Ordering::Relaxed) {
            // Capture or encoding failed: tell the client why.
            let _ = tx.close(rift_core::wire::CLOSE_NORMAL, "host video stopped");
            shared.stop.store(true, Ordering::Relaxed);
        }
        let ev = match session.events.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break CloseReason::Local,
        };
        match ev {
            SessionEvent::Closed(r) => break r,
            // Frames encoded while the handshake was finishing were dropped: start with a
            // keyframe once established (the client also asks, should this one be lost).
            SessionEvent::Connection(Event::KeyframeRequested { .. })
            | SessionEvent::Established { .. } => shared.keyframe.store(true, Ordering::Relaxed),
            SessionEvent::Connection(Event::Control(bytes)) => match ControlMessage::decode(&bytes)
            {
                Ok(ControlMessage::Hello {
                    version, client, ..
                }) => {
                    tracing::info!(client, version, "client said hello");
                    if version != PROTOCOL_VERSION {
                        let msg = ControlMessage::Error {
                            message: format!(
                                "protocol version {version} not supported (host speaks {PROTOCOL_VERSION})"
                            ),
                        };
                        if let Ok(b) = msg.encode() {
                            let _ = tx.send_control(b);
                        }
                    }
                    let _ = cmd_tx.send(VideoCommand::SendMonitors);
                }
                Ok(ControlMessage::ListMonitors) => {
                    let _ = cmd_tx.send(VideoCommand::SendMonitors);
                }
                Ok(ControlMessage::SelectMonitor { id }) => {
                    let _ = cmd_tx.send(VideoCommand::Select(id));
                }
                Ok(other) => tracing::debug!(?other, "control message ignored by the host"),
                Err(e) => tracing::debug!(error = %e, "control message refused"),
            },
            _ => {}
        }
    };
    shared.stop.store(true, Ordering::Relaxed);
    let video = video_thread
        .join()
        .map_err(|_| HostError::Thread("the video thread panicked".into()))?;
    let _ = input_thread.join();
    let summary = Summary {
        duration: started.elapsed(),
        frames: shared.frames.load(Ordering::Relaxed),
        close,
    };
    video.map(|()| summary)
}
