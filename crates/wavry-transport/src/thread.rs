//! A session on a dedicated I/O thread: the thread owns the socket and the session, sends every
//! datagram at its paced time (waits end within microseconds, see `socket`), and talks to the
//! rest of the program through channels.
//!
//! Input never waits behind video, at either end:
//! - outgoing input events have their own channel, drained first on every turn and sent before
//!   anything else is packetized; the session's own priority order (input > control > small >
//!   media) then holds on the wire;
//! - incoming input events have their own channel too, so a host's injection thread blocks on
//!   input alone and is woken the moment an input packet is decrypted.
//!
//! Every send wakes the thread through an eventfd, so a command waits for no timer.

use crate::session::{CloseReason, Session, SessionStats};
use crate::socket::{precise_timers, SocketStats, Wake};
use crate::udp::UdpDriver;
use nix::sys::eventfd::{EfdFlags, EventFd};
use rift_core::connection::{ConnectionStats, Event, InputEvent};
use rift_core::delta::RateDecision;
use rift_core::media::{MediaReceiverStats, OutgoingFrame};
use rift_core::wire::{STREAM_AUDIO, STREAM_VIDEO};
use rift_crypto::identity::PublicKey;
use std::io;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Frame buffers kept for reuse ([`SessionSender::frame_buffer`]): one being filled, one
/// queued, one being sent, one spare.
const SPARE_FRAME_BUFFERS: usize = 4;

/// Buffers of frames the session has packetized, handed back to the producer so a stream
/// does not allocate (and regrow) a `Vec` per frame.
type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// How often the thread publishes its statistics.
const STATS_INTERVAL: Duration = Duration::from_millis(100);

/// A frame received whole (or rebuilt by FEC), owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: u8,
    pub frame_id: u32,
    pub keyframe: bool,
    pub recovery_point: bool,
    /// The sender's capture timestamp (µs, its clock).
    pub capture_us: u64,
    pub data: Vec<u8>,
    pub first_packet_at: Instant,
    pub completed_at: Instant,
    /// Fragments rebuilt by FEC.
    pub recovered: usize,
}

/// What the session thread reports: the connection's own events, wrapped, and what the thread
/// adds around them (establishment, reassembled frames, the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The handshake finished and the peer was heard under the new keys (for a client: the
    /// host accepted it); the peer proved `remote_key`.
    Established {
        remote_key: Option<PublicKey>,
    },
    /// An event of the connection: a control message (in order, exactly once), a keyframe
    /// request, a lost frame, the control channel's failure. Never `Event::Input` (input
    /// events have their own channel) nor `Event::Closed` (a peer's Close ends the session
    /// and arrives as [`SessionEvent::Closed`]).
    Connection(Event),
    Frame(Frame),
    /// The session ended; the thread has stopped. Always the last event.
    Closed(CloseReason),
}

/// A snapshot of the session's counters and DELTA's decision, published every 100 ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub connection: ConnectionStats,
    pub session: SessionStats,
    pub socket: SocketStats,
    pub rate: Option<RateDecision>,
    pub rtt: Duration,
    /// Loss of what this end sends, from the peer's feedback (0..=1).
    pub loss_rate: f64,
    /// This end's video receiver (frames, FEC recoveries, NACKs), when it receives video.
    pub video_rx: Option<MediaReceiverStats>,
    /// Datagrams that were not RIFT or that the session refused.
    pub dropped: u64,
}

/// Reads a session thread's published statistics from any thread.
#[derive(Clone)]
pub struct StatsHandle(Arc<Mutex<Stats>>);

impl StatsHandle {
    pub fn get(&self) -> Stats {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("the session is closed")]
    Closed,
    #[error("an input event of {0} bytes is longer than RIFT carries")]
    TooLong(usize),
}

enum Command {
    Frame {
        stream: u8,
        data: Vec<u8>,
        keyframe: bool,
        recovery_point: bool,
        capture_us: u64,
    },
    Control(Vec<u8>),
    KeyframeRequest {
        stream: u8,
        after: u32,
    },
    Close {
        code: u16,
        reason: String,
    },
}

/// Sends into a session thread; cheap to clone, one per producing thread.
#[derive(Clone)]
pub struct SessionSender {
    commands: Sender<Command>,
    input: Sender<InputEvent>,
    waker: Arc<EventFd>,
    spares: Spares,
}

impl SessionSender {
    fn push<T>(&self, ch: &Sender<T>, v: T) -> Result<(), SendError> {
        ch.send(v).map_err(|_| SendError::Closed)?;
        // A full counter (2^64 − 2 wakes pending) cannot happen: the thread reads it each turn.
        let _ = self.waker.write(1);
        Ok(())
    }

    /// An empty buffer for the next frame: one a sent frame left behind (keeping its
    /// capacity), or a new one when none is back yet. Fill it and pass it to `send_frame`.
    pub fn frame_buffer(&self) -> Vec<u8> {
        self.spares
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_default()
    }

    /// Queue an encoded frame; the session packetizes and paces it (copying it into its
    /// packets), then keeps `data` for [`SessionSender::frame_buffer`].
    pub fn send_frame(
        &self,
        stream: u8,
        data: Vec<u8>,
        keyframe: bool,
        recovery_point: bool,
        capture_us: u64,
    ) -> Result<(), SendError> {
        self.push(
            &self.commands,
            Command::Frame {
                stream,
                data,
                keyframe,
                recovery_point,
                capture_us,
            },
        )
    }

    /// Queue a control message (reliable, ordered).
    pub fn send_control(&self, message: Vec<u8>) -> Result<(), SendError> {
        self.push(&self.commands, Command::Control(message))
    }

    /// Send an input event ahead of everything else.
    pub fn send_input(&self, event: &[u8]) -> Result<(), SendError> {
        // A fixed-size copy: the input path allocates nothing.
        let ev = InputEvent::new(0, event).ok_or(SendError::TooLong(event.len()))?;
        self.push(&self.input, ev)
    }

    /// Ask the peer for a keyframe of `stream` newer than frame `after` (the application could
    /// not decode what it got).
    pub fn request_keyframe(&self, stream: u8, after: u32) -> Result<(), SendError> {
        self.push(&self.commands, Command::KeyframeRequest { stream, after })
    }

    /// Close the session with `code` and `reason`; the peer is told.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        self.push(
            &self.commands,
            Command::Close {
                code,
                reason: reason.to_owned(),
            },
        )
    }
}

/// A running session thread.
pub struct SessionThread {
    sender: SessionSender,
    /// Frames, control messages and the rest, in order; ends with `Closed`.
    pub events: Receiver<SessionEvent>,
    /// Input events from the peer, as they arrive.
    pub input: Receiver<InputEvent>,
    stats: Arc<Mutex<Stats>>,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl SessionThread {
    /// Move `driver` and `session` (connecting or accepted) onto a new I/O thread.
    pub fn spawn(driver: UdpDriver, session: Session) -> io::Result<Self> {
        let waker = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (input_tx, input_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (in_ev_tx, in_ev_rx) = mpsc::channel();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let spares: Spares = Arc::new(Mutex::new(Vec::with_capacity(SPARE_FRAME_BUFFERS)));
        let worker = Worker {
            spares: spares.clone(),
            driver,
            session,
            waker: waker.clone(),
            commands: cmd_rx,
            input: input_rx,
            events: ev_tx,
            input_events: in_ev_tx,
            stats: stats.clone(),
            established: false,
            early_control: Vec::new(),
            next_stats: Instant::now(),
        };
        let join = std::thread::Builder::new()
            .name("rift-io".into())
            .spawn(move || worker.run())?;
        Ok(SessionThread {
            sender: SessionSender {
                commands: cmd_tx,
                input: input_tx,
                waker,
                spares,
            },
            events: ev_rx,
            input: in_ev_rx,
            stats,
            join: Some(join),
        })
    }

    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// Take the event receiver, to drain it in a thread of its own; `events` is left empty.
    pub fn take_events(&mut self) -> Receiver<SessionEvent> {
        std::mem::replace(&mut self.events, mpsc::channel().1)
    }

    /// Take the input receiver, to block on it in a thread of its own (an injector); `input`
    /// is left empty.
    pub fn take_input(&mut self) -> Receiver<InputEvent> {
        std::mem::replace(&mut self.input, mpsc::channel().1)
    }

    /// The latest published statistics.
    pub fn stats(&self) -> Stats {
        self.stats_handle().get()
    }

    /// A handle to the published statistics for another thread (an encoder following DELTA).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.stats.clone())
    }

    /// Wait for the thread to end (after a close from either side, or an I/O error).
    pub fn join(mut self) -> io::Result<()> {
        self.join_inner()
    }

    fn join_inner(&mut self) -> io::Result<()> {
        match self.join.take() {
            Some(j) => j
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the session thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for SessionThread {
    fn drop(&mut self) {
        if self.join.is_some() {
            let _ = self.sender.close(rift_core::wire::CLOSE_NORMAL, "closed");
            let _ = self.join_inner();
        }
    }
}

struct Worker {
    driver: UdpDriver,
    session: Session,
    waker: Arc<EventFd>,
    commands: Receiver<Command>,
    input: Receiver<InputEvent>,
    events: Sender<SessionEvent>,
    input_events: Sender<InputEvent>,
    stats: Arc<Mutex<Stats>>,
    established: bool,
    /// Control messages sent before the handshake finished.
    early_control: Vec<Vec<u8>>,
    next_stats: Instant,
    spares: Spares,
}

impl Worker {
    fn run(mut self) -> io::Result<()> {
        precise_timers();
        crate::priority::raise_current_thread(crate::priority::Role::Io);
        let r = self.turns();
        self.publish_stats();
        let reason = match (&r, self.session.close_reason()) {
            (_, Some(reason)) => reason.clone(),
            (Err(e), None) => CloseReason::HandshakeFailed(format!("I/O error: {e}")),
            (Ok(()), None) => CloseReason::Local,
        };
        let _ = self.events.send(SessionEvent::Closed(reason));
        r
    }

    fn turns(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if self.take_input(now) {
                // Input goes out before any frame is packetized.
                self.driver.flush(&mut self.session, now)?;
            }
            if !self.take_commands(now) {
                // Every sender is gone: nobody can use the session any more.
                self.session
                    .close(rift_core::wire::CLOSE_NORMAL, "application ended");
            }
            self.driver.receive(&mut self.session)?;
            let now = Instant::now();
            if self.session.poll_timeout().is_some_and(|t| t <= now) {
                self.session.handle_timeout(now);
            }
            self.deliver();
            self.driver.flush(&mut self.session, now)?;
            if now >= self.next_stats {
                self.publish_stats();
                self.next_stats = now + STATS_INTERVAL;
            }
            if self.session.close_reason().is_some() {
                return Ok(());
            }
            let wake = self
                .session
                .poll_timeout()
                .map_or(self.next_stats, |t| t.min(self.next_stats));
            if self.driver.wait(Some(wake), Some(self.waker.as_fd()))? == Wake::Woken {
                // Reset the counter; the channels are drained at the top of the loop.
                let _ = self.waker.read();
            }
        }
    }

    /// Hand queued input events to the session; true when there were any.
    fn take_input(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Ok(ev) = self.input.try_recv() {
            if let Some(c) = self.session.connection() {
                if let Err(e) = c.send_input(now, ev.data()) {
                    tracing::warn!(error = %e, "input event dropped");
                }
            }
            any = true;
        }
        any
    }

    /// Apply queued commands; false once every sender is gone.
    fn take_commands(&mut self, now: Instant) -> bool {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::Close { code, reason } => self.session.close(code, &reason),
                Command::KeyframeRequest { stream, after } => {
                    if let Some(c) = self.session.connection() {
                        c.request_keyframe(stream, after);
                    }
                }
                Command::Control(m) => match self.session.connection() {
                    Some(c) => {
                        if let Err(e) = c.send_control(&m) {
                            tracing::warn!(error = %e, "control message dropped");
                        }
                    }
                    // Still handshaking (a host starts streaming as soon as it accepted):
                    // control is reliable, so keep it for the established session.
                    None => self.early_control.push(m),
                },
                Command::Frame {
                    stream,
                    mut data,
                    keyframe,
                    recovery_point,
                    capture_us,
                } => {
                    if let Some(c) = self.session.connection() {
                        let frame = OutgoingFrame {
                            data: &data,
                            keyframe,
                            recovery_point,
                            capture_us,
                        };
                        if let Err(e) = c.send_frame(now, stream, frame) {
                            tracing::warn!(error = %e, "frame dropped");
                        }
                    }
                    // Packetized (copied into packets): the buffer goes back to the producer.
                    data.clear();
                    if let Ok(mut spares) = self.spares.lock() {
                        if spares.len() < SPARE_FRAME_BUFFERS {
                            spares.push(data);
                        }
                    }
                }
            }
        }
    }

    /// Pass what the session produced to the application.
    fn deliver(&mut self) {
        if !self.early_control.is_empty() {
            if let Some(c) = self.session.connection() {
                for m in self.early_control.drain(..) {
                    if let Err(e) = c.send_control(&m) {
                        tracing::warn!(error = %e, "control message dropped");
                    }
                }
            }
        }
        if !self.established && self.session.is_confirmed() {
            self.established = true;
            let _ = self.events.send(SessionEvent::Established {
                remote_key: self.session.remote_key(),
            });
        }
        let Some(c) = self.session.connection() else {
            return;
        };
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::Input(i) => {
                    let _ = self.input_events.send(i);
                }
                // The session turns a peer's Close into its close reason, reported last.
                Event::Closed { .. } => {}
                ev => {
                    let _ = self.events.send(SessionEvent::Connection(ev));
                }
            }
        }
        for stream in [STREAM_VIDEO, STREAM_AUDIO] {
            while let Some(f) = c.poll_frame(stream) {
                let _ = self.events.send(SessionEvent::Frame(Frame {
                    stream: f.stream,
                    frame_id: f.frame_id,
                    keyframe: f.keyframe,
                    recovery_point: f.recovery_point,
                    capture_us: f.capture_us,
                    data: f.data.to_vec(),
                    first_packet_at: f.first_packet_at,
                    completed_at: f.completed_at,
                    recovered: f.recovered,
                }));
            }
        }
    }

    fn publish_stats(&mut self) {
        let mut s = Stats {
            session: self.session.stats,
            socket: self.driver.socket_stats(),
            dropped: self.driver.dropped,
            ..Stats::default()
        };
        if let Some(c) = self.session.connection() {
            s.connection = c.stats;
            s.rate = Some(c.rate());
            s.rtt = c.rtt();
            s.loss_rate = c.last_report().map_or(0.0, |r| r.loss_rate);
            s.video_rx = c.receiver(STREAM_VIDEO).map(|r| r.stats);
        }
        if let Ok(mut shared) = self.stats.lock() {
            *shared = s;
        }
    }
}
