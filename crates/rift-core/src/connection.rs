//! One RIFT connection after the handshake, sans-IO: every channel, feedback and congestion
//! control wired together. The transport feeds it decrypted packets and timeouts, and sends what
//! `poll_transmit` produces (after sealing the body with the header as associated data).
//!
//! Send order per call: input, then control and the small protocol packets (acks, feedback,
//! NACKs, keyframe requests), then media when the pacer allows. Input never waits behind video.

use crate::control::{ControlChannel, ControlConfig, ControlError};
use crate::delta::{CongestionController, RateDecision};
use crate::feedback::{FeedbackAnalyzer, FeedbackRecorder, FeedbackReport};
use crate::input::{InputConfig, InputError, InputReceiver, InputSender};
use crate::media::{
    MediaError, MediaEvent, MediaReceiver, MediaReceiverConfig, MediaSender, MediaSenderConfig,
    OutgoingFrame, ReceivedFrame,
};
use crate::pacer::Pacer;
use crate::rtt::RttEstimator;
use crate::wire::{
    self, Body, DecodeError, EncodeError, Header, Packet, PacketType, Priority, RecoveryKind,
    HEADER_LEN, MAX_INPUT_EVENT_LEN,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConnectionError {
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("packet for connection {got:#010x}, this is {want:#010x}")]
    WrongConnection { got: u32, want: u32 },
    #[error("{0:?} packet is not valid on an established connection")]
    Unexpected(PacketType),
    #[error("no sender or receiver for media stream {0}")]
    UnknownStream(u8),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Connection id the peer puts on packets to us.
    pub local_cid: u32,
    /// Connection id we put on packets to the peer.
    pub remote_cid: u32,
    /// How often the receiver reports arrivals.
    pub feedback_interval: Duration,
    /// Media streams this end sends.
    pub send_streams: Vec<MediaSenderConfig>,
    /// Media streams this end receives.
    pub recv_streams: Vec<MediaReceiverConfig>,
    pub control: ControlConfig,
    pub input: InputConfig,
    /// Shortest wait before repeating an unanswered keyframe request.
    pub keyframe_retry: Duration,
}

impl ConnectionConfig {
    /// A connection that sends video (`sender`) or receives it.
    pub fn new(local_cid: u32, remote_cid: u32, sender: bool) -> Self {
        ConnectionConfig {
            local_cid,
            remote_cid,
            feedback_interval: Duration::from_millis(25),
            send_streams: if sender {
                vec![MediaSenderConfig::default()]
            } else {
                vec![]
            },
            recv_streams: if sender {
                vec![]
            } else {
                vec![MediaReceiverConfig::default()]
            },
            control: ControlConfig::default(),
            input: InputConfig::default(),
            keyframe_retry: Duration::from_millis(100),
        }
    }
}

/// A datagram ready to go: `len` bytes at the start of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub len: usize,
    pub priority: Priority,
    pub packet_number: u64,
}

/// An input event, copied out of the packet so the caller owns it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub seq: u32,
    len: u8,
    bytes: [u8; MAX_INPUT_EVENT_LEN],
}

impl InputEvent {
    /// An event holding a copy of `data`; `None` when it exceeds `MAX_INPUT_EVENT_LEN`.
    pub fn new(seq: u32, data: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; MAX_INPUT_EVENT_LEN];
        bytes.get_mut(..data.len())?.copy_from_slice(data);
        Some(InputEvent {
            seq,
            len: data.len() as u8,
            bytes,
        })
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A control message, in order.
    Control(Vec<u8>),
    Input(InputEvent),
    /// The peer lost a frame: send a keyframe, or a frame referencing only `last_good_frame`.
    KeyframeRequested {
        stream: u8,
        kind: RecoveryKind,
        first_lost_frame: u32,
        last_good_frame: u32,
    },
    /// A frame of ours could not be rebuilt; we asked the peer for recovery.
    FrameLost {
        stream: u8,
        frame_id: u32,
    },
    /// The peer closed the connection.
    Closed {
        code: u16,
        reason: String,
    },
    /// The control channel gave up retransmitting: the path is gone.
    ControlFailed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub media_bytes_sent: u64,
    pub rejected_packets: u64,
    pub keyframe_requests_sent: u64,
}

struct RecvStream {
    rx: MediaReceiver,
    /// Waiting for a keyframe since this loss; the request is repeated until one arrives.
    /// The newest frame declared lost, and when the last request went out.
    pending_request: Option<(u32, Instant)>,
}

/// A small protocol packet waiting to be sent.
enum Small {
    Nack {
        stream: u8,
        frame_id: u32,
        indices: Vec<u16>,
    },
    KeyframeRequest {
        stream: u8,
        kind: RecoveryKind,
        first_lost: u32,
        last_good: u32,
    },
    Ping(u64),
    Pong(u64),
    Close {
        code: u16,
        reason: String,
    },
    Rekey {
        step: u8,
        noise: Vec<u8>,
    },
}

pub struct Connection {
    cfg: ConnectionConfig,
    next_pn: u64,
    senders: Vec<MediaSender>,
    receivers: Vec<RecvStream>,
    control: ControlChannel,
    input_tx: InputSender,
    input_rx: InputReceiver,
    recorder: FeedbackRecorder,
    analyzer: FeedbackAnalyzer,
    /// The one RTT estimate: fed by feedback reports and control acks, read by the control
    /// channel's retransmission timer, NACK repair, keyframe-request retries and DELTA.
    rtt: RttEstimator,
    cc: Box<dyn CongestionController>,
    pacer: Pacer,
    small: VecDeque<Small>,
    events: VecDeque<Event>,
    /// Wire bytes per frame byte (FEC parity, headers, tags), smoothed over recent frames, so
    /// the encoder's bitrate plus everything added to it meets the controller's target.
    media_overhead: Option<f64>,
    /// Latest time the caller gave us; "now" for work that is due immediately.
    last_now: Instant,
    pub stats: ConnectionStats,
}

impl Connection {
    /// `epoch` anchors the arrival times this end reports; any fixed instant will do.
    pub fn new(cfg: ConnectionConfig, cc: Box<dyn CongestionController>, epoch: Instant) -> Self {
        let decision = cc.decision();
        Connection {
            senders: cfg
                .send_streams
                .iter()
                .cloned()
                .map(MediaSender::new)
                .collect(),
            receivers: cfg
                .recv_streams
                .iter()
                .cloned()
                .map(|c| RecvStream {
                    rx: MediaReceiver::new(c),
                    pending_request: None,
                })
                .collect(),
            control: ControlChannel::new(cfg.control.clone()),
            input_tx: InputSender::new(cfg.input.clone()),
            input_rx: InputReceiver::default(),
            recorder: FeedbackRecorder::new(epoch, cfg.feedback_interval),
            analyzer: FeedbackAnalyzer::new(epoch),
            rtt: RttEstimator::default(),
            pacer: Pacer::new(decision.pacer_bps),
            cc,
            small: VecDeque::new(),
            events: VecDeque::new(),
            media_overhead: None,
            last_now: epoch,
            next_pn: 0,
            cfg,
            stats: ConnectionStats::default(),
        }
    }

    /// The congestion controller's current decision: encoder bitrate, FEC, frame rate. The
    /// encoder bitrate accounts for the overhead recent frames actually had.
    pub fn rate(&self) -> RateDecision {
        let mut d = self.cc.decision();
        if let Some(o) = self.media_overhead {
            d.encoder_bps = (d.target_bps as f64 / o) as u64;
        }
        d
    }

    /// The smoothed RTT.
    pub fn rtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// The connection's RTT estimator, which every timer and DELTA read.
    pub fn rtt_estimator(&self) -> &RttEstimator {
        &self.rtt
    }

    pub fn last_report(&self) -> Option<&FeedbackReport> {
        self.analyzer.last_report()
    }

    pub fn sender(&self, stream: u8) -> Option<&MediaSender> {
        self.senders.iter().find(|s| s.stream() == stream)
    }

    pub fn receiver(&self, stream: u8) -> Option<&MediaReceiver> {
        self.receivers
            .iter()
            .find(|r| r.rx_stream() == stream)
            .map(|r| &r.rx)
    }

    /// Queue a frame; it goes out paced, protected as the congestion controller decides.
    pub fn send_frame(
        &mut self,
        now: Instant,
        stream: u8,
        frame: OutgoingFrame<'_>,
    ) -> Result<u32, ConnectionError> {
        let plan = self.cc.decision().fec;
        let s = self
            .senders
            .iter_mut()
            .find(|s| s.stream() == stream)
            .ok_or(ConnectionError::UnknownStream(stream))?;
        let id = s.push_frame(frame, plan)?;
        if let Some(cost) = s.last_frame_wire_bytes() {
            let o = cost as f64 / frame.data.len() as f64;
            self.media_overhead = Some(self.media_overhead.map_or(o, |m| 0.9 * m + 0.1 * o));
            self.cc.on_frame(now, cost);
        }
        Ok(id)
    }

    pub fn send_control(&mut self, message: &[u8]) -> Result<u32, ConnectionError> {
        Ok(self.control.send(message)?)
    }

    pub fn send_input(&mut self, now: Instant, event: &[u8]) -> Result<u32, ConnectionError> {
        Ok(self.input_tx.push(now, event)?)
    }

    /// Queue a Ping (a keepalive; the peer answers with a Pong).
    pub fn send_ping(&mut self, id: u64) {
        self.small.push_back(Small::Ping(id));
    }

    /// Queue one message of a rekey handshake (the transport runs the handshake; RIFT.md §3).
    pub fn send_rekey(&mut self, step: u8, noise: &[u8]) {
        self.small.push_back(Small::Rekey {
            step,
            noise: noise.to_vec(),
        });
    }

    pub fn close(&mut self, code: u16, reason: &str) {
        let mut r = reason.to_owned();
        r.truncate(wire::MAX_CLOSE_REASON);
        while !r.is_char_boundary(r.len()) {
            r.pop();
        }
        self.small.push_back(Small::Close { code, reason: r });
    }

    /// Handle one decrypted datagram (header followed by plaintext body).
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) -> Result<(), ConnectionError> {
        self.handle_packet_stamped(now, None, datagram)
    }

    /// [`Connection::handle_packet`] for a datagram read at `now` that reached the socket at
    /// `socket` (the kernel's receive stamp, when the transport has one). The feedback reports
    /// both: the peer's DELTA measures train dispersion on the socket time and queuing delay
    /// on the read time.
    pub fn handle_packet_stamped(
        &mut self,
        now: Instant,
        socket: Option<Instant>,
        datagram: &[u8],
    ) -> Result<(), ConnectionError> {
        let packet = match Packet::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.rejected_packets += 1;
                return Err(e.into());
            }
        };
        if packet.header.connection_id != self.cfg.local_cid {
            self.stats.rejected_packets += 1;
            return Err(ConnectionError::WrongConnection {
                got: packet.header.connection_id,
                want: self.cfg.local_cid,
            });
        }
        self.last_now = now;
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        self.recorder
            .on_packet_stamped(now, socket, packet.header.packet_number);
        match packet.body {
            Body::HandshakeInit(_)
            | Body::HandshakeResponse(_)
            | Body::HandshakeFinish(_)
            | Body::VersionNegotiation(_)
            | Body::Retry { .. } => {
                return Err(ConnectionError::Unexpected(packet.header.packet_type))
            }
            Body::Close { code, reason } => self.events.push_back(Event::Closed {
                code,
                reason: reason.to_owned(),
            }),
            Body::Ping { id } => self.small.push_back(Small::Pong(id)),
            // The transport reads rekey messages (it holds the keys); here they are just packets
            // that arrived, counted in the feedback like any other.
            Body::Pong { .. } | Body::Rekey { .. } => {}
            Body::Control { seq, message } => {
                self.control.on_control(now, seq, message)?;
                while let Some(m) = self.control.poll_message() {
                    self.events.push_back(Event::Control(m));
                }
            }
            Body::ControlAck {
                next_expected,
                sack,
            } => {
                self.control.on_ack(now, next_expected, sack, &mut self.rtt);
                self.rtt_updated();
            }
            Body::Input { first_seq, events } => {
                let out = &mut self.events;
                self.input_rx.on_input(first_seq, &events, |seq, data| {
                    // The wire caps an event at MAX_INPUT_EVENT_LEN, so this always holds.
                    if let Some(ev) = InputEvent::new(seq, data) {
                        out.push_back(Event::Input(ev));
                    }
                });
            }
            Body::MediaData { header, payload } | Body::MediaParity { header, payload } => {
                let parity = matches!(packet.body, Body::MediaParity { .. });
                let r = self
                    .receivers
                    .iter_mut()
                    .find(|r| r.rx_stream() == header.stream())
                    .ok_or(ConnectionError::UnknownStream(header.stream()))?;
                r.rx.on_packet(now, &header, payload, parity)?;
            }
            Body::Feedback(fb) => {
                if let Some(report) = self.analyzer.on_feedback(now, &fb, &mut self.rtt) {
                    self.cc.on_feedback(&report);
                    self.pacer.set_rate(self.cc.decision().pacer_bps);
                    self.rtt_updated();
                }
            }
            Body::Nack {
                stream,
                frame_id,
                indices,
            } => {
                let rtt = self.rtt.srtt();
                if let Some(s) = self.senders.iter_mut().find(|s| s.stream() == stream) {
                    s.on_nack(now, frame_id, wire::nack_indices(indices), rtt);
                }
            }
            Body::KeyframeRequest {
                stream,
                kind,
                first_lost_frame,
                last_good_frame,
            } => {
                // A keyframe sent after the lost frame already answers the request (it
                // crossed the request in flight); another would only flood the link.
                let answered = self
                    .senders
                    .iter()
                    .find(|s| s.stream() == stream)
                    .is_some_and(|s| {
                        s.last_keyframe()
                            .is_some_and(|k| crate::media::frame_after(k, first_lost_frame))
                    });
                if !answered {
                    self.events.push_back(Event::KeyframeRequested {
                        stream,
                        kind,
                        first_lost_frame,
                        last_good_frame,
                    });
                }
            }
        }
        self.collect_media_events(now);
        Ok(())
    }

    /// The RTT estimate moved: the receivers time their repairs by it.
    fn rtt_updated(&mut self) {
        let rtt = self.rtt.srtt();
        for r in &mut self.receivers {
            r.rx.set_rtt(rtt);
        }
    }

    fn collect_media_events(&mut self, now: Instant) {
        for r in &mut self.receivers {
            let stream = r.rx_stream();
            while let Some(ev) = r.rx.poll_event() {
                match ev {
                    MediaEvent::Nack { frame_id, indices } => {
                        if !indices.is_empty() {
                            self.small.push_back(Small::Nack {
                                stream,
                                frame_id,
                                indices,
                            })
                        }
                    }
                    MediaEvent::NeedKeyframe { frame_id } => match &mut r.pending_request {
                        None => {
                            r.pending_request = Some((frame_id, now));
                            self.small
                                .push_back(keyframe_request(stream, frame_id, None));
                            self.stats.keyframe_requests_sent += 1;
                        }
                        Some(p) => p.0 = frame_id,
                    },
                    MediaEvent::FrameLost {
                        frame_id,
                        last_good,
                    } => {
                        self.events.push_back(Event::FrameLost { stream, frame_id });
                        match &mut r.pending_request {
                            None => {
                                r.pending_request = Some((frame_id, now));
                                self.small
                                    .push_back(keyframe_request(stream, frame_id, last_good));
                                self.stats.keyframe_requests_sent += 1;
                            }
                            // Already asking; a retry names the newest loss, so a lost keyframe
                            // is not mistaken by the sender for an answer.
                            Some(p) => p.0 = frame_id,
                        }
                    }
                }
            }
            if !r.rx.gated() {
                r.pending_request = None;
            }
        }
    }

    /// Ask the peer for a keyframe of `stream` sent after frame `after`: the application
    /// could not use what arrived (a decoder that started late or failed on frame `after`).
    /// Transport-detected losses ask by themselves.
    pub fn request_keyframe(&mut self, stream: u8, after: u32) {
        self.small.push_back(keyframe_request(stream, after, None));
        self.stats.keyframe_requests_sent += 1;
    }

    /// The next complete frame of `stream`, in order.
    pub fn poll_frame(&mut self, stream: u8) -> Option<ReceivedFrame<'_>> {
        let r = self
            .receivers
            .iter_mut()
            .find(|r| r.rx_stream() == stream)?;
        let frame = r.rx.poll_frame();
        if frame.is_some() {
            r.pending_request = None;
        }
        frame
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Run timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.control.handle_timeout(now);
        for r in &mut self.receivers {
            r.rx.handle_timeout(now);
        }
        self.collect_media_events(now);
        let retry = self.cfg.keyframe_retry.max(self.rtt.srtt() * 2);
        for r in &mut self.receivers {
            if let Some((frame_id, at)) = r.pending_request {
                if r.rx.gated() && now.saturating_duration_since(at) >= retry {
                    // Unanswered: ask again, for a keyframe this time.
                    r.pending_request = Some((frame_id, now));
                    self.small
                        .push_back(keyframe_request(r.rx_stream(), frame_id, None));
                    self.stats.keyframe_requests_sent += 1;
                }
            }
        }
        if self.control.failed() && !self.events.contains(&Event::ControlFailed) {
            self.events.push_back(Event::ControlFailed);
        }
    }

    /// Earliest instant at which `handle_timeout` or `poll_transmit` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let media_pending = self.senders.iter().any(|s| s.has_pending());
        let retry = self.cfg.keyframe_retry.max(self.rtt.srtt() * 2);
        let urgent =
            (!self.small.is_empty() || self.control.wants_transmit()).then_some(self.last_now);
        [
            urgent,
            self.recorder.next_timeout(),
            self.control.next_timeout(),
            self.input_tx.next_timeout(),
            media_pending.then(|| self.pacer.ready_at()).flatten(),
        ]
        .into_iter()
        .chain(self.receivers.iter().map(|r| r.rx.next_timeout()))
        .chain(
            self.receivers
                .iter()
                .map(|r| r.pending_request.map(|(_, at)| at + retry)),
        )
        .flatten()
        .min()
    }

    fn header(&mut self, t: PacketType) -> Header {
        let pn = self.next_pn;
        self.next_pn += 1;
        Header {
            packet_type: t,
            flags: 0,
            connection_id: self.cfg.remote_cid,
            packet_number: pn,
        }
    }

    /// Write the next packet (header + plaintext body) into `out`, if one may be sent at `now`.
    /// `out` must hold at least `wire::MAX_DATAGRAM` bytes.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, ConnectionError> {
        self.last_now = now;
        let Some((t, body_len, train)) = self.next_body(now, &mut out[HEADER_LEN..])? else {
            return Ok(None);
        };
        let tag = if t.is_encrypted() { wire::TAG_LEN } else { 0 };
        if HEADER_LEN + body_len + tag > wire::MAX_DATAGRAM {
            return Err(EncodeError::TooLong(HEADER_LEN + body_len + tag).into());
        }
        let header = self.header(t);
        header.encode(out)?;
        let len = HEADER_LEN + body_len;
        // Sizes as the link carries them (tag, UDP and IP headers included), for rate accounting.
        let wire_len = len + tag + wire::UDP_IP_OVERHEAD;
        self.analyzer
            .on_sent(header.packet_number, now, wire_len, train);
        if t.priority() == Priority::Media {
            self.pacer.on_sent(now, wire_len);
            self.stats.media_bytes_sent += wire_len as u64;
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += wire_len as u64;
        Ok(Some(Transmit {
            len,
            priority: t.priority(),
            packet_number: header.packet_number,
        }))
    }

    fn next_body(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<(PacketType, usize, u32)>, ConnectionError> {
        if let Some(n) = self.input_tx.poll_transmit(now, out) {
            return Ok(Some((PacketType::Input, n, 0)));
        }
        if let Some((next_expected, sack)) = self.control.poll_ack() {
            let n = Body::ControlAck {
                next_expected,
                sack,
            }
            .encode(out)?;
            return Ok(Some((PacketType::ControlAck, n, 0)));
        }
        if let Some((seq, message)) = self.control.poll_transmit(now, &self.rtt) {
            let n = Body::Control { seq, message }.encode(out)?;
            return Ok(Some((PacketType::Control, n, 0)));
        }
        if let Some(small) = self.small.pop_front() {
            let mut idx = [0u8; 2 * wire::MAX_NACK_ENTRIES];
            let (t, body) = match &small {
                Small::Nack {
                    stream,
                    frame_id,
                    indices,
                } => {
                    let k = indices.len().min(wire::MAX_NACK_ENTRIES);
                    for (i, v) in indices.iter().take(k).enumerate() {
                        idx[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
                    }
                    (
                        PacketType::Nack,
                        Body::Nack {
                            stream: *stream,
                            frame_id: *frame_id,
                            indices: &idx[..2 * k],
                        },
                    )
                }
                Small::KeyframeRequest {
                    stream,
                    kind,
                    first_lost,
                    last_good,
                } => (
                    PacketType::KeyframeRequest,
                    Body::KeyframeRequest {
                        stream: *stream,
                        kind: *kind,
                        first_lost_frame: *first_lost,
                        last_good_frame: *last_good,
                    },
                ),
                Small::Ping(id) => (PacketType::Ping, Body::Ping { id: *id }),
                Small::Pong(id) => (PacketType::Pong, Body::Pong { id: *id }),
                Small::Close { code, reason } => (
                    PacketType::Close,
                    Body::Close {
                        code: *code,
                        reason,
                    },
                ),
                Small::Rekey { step, noise } => {
                    (PacketType::Rekey, Body::Rekey { step: *step, noise })
                }
            };
            let n = body.encode(out)?;
            return Ok(Some((t, n, 0)));
        }
        if let Some(n) = self.recorder.poll_transmit(now, out)? {
            return Ok(Some((PacketType::Feedback, n, 0)));
        }
        if self.pacer.can_send(now) {
            for s in &mut self.senders {
                if let Some(tx) = s.poll_transmit(out)? {
                    let t = if tx.parity {
                        PacketType::MediaParity
                    } else {
                        PacketType::MediaData
                    };
                    // A frame's first transmission is a train the bottleneck may spread out.
                    let train = if tx.retransmission {
                        0
                    } else {
                        tx.frame_id.wrapping_add(1).max(1)
                    };
                    return Ok(Some((t, tx.len, train)));
                }
            }
        }
        Ok(None)
    }
}

fn keyframe_request(stream: u8, frame_id: u32, last_good: Option<u32>) -> Small {
    match last_good {
        Some(g) => Small::KeyframeRequest {
            stream,
            kind: RecoveryKind::InvalidateReferences,
            first_lost: frame_id,
            last_good: g,
        },
        None => Small::KeyframeRequest {
            stream,
            kind: RecoveryKind::Keyframe,
            first_lost: frame_id,
            last_good: 0,
        },
    }
}

impl RecvStream {
    fn rx_stream(&self) -> u8 {
        self.rx.stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{Delta, DeltaConfig};

    const MS: Duration = Duration::from_millis(1);

    fn pair(t0: Instant) -> (Connection, Connection) {
        let end = |local, remote, sender| {
            Connection::new(
                ConnectionConfig::new(local, remote, sender),
                Box::new(Delta::new(DeltaConfig::default())),
                t0,
            )
        };
        (end(1, 2, true), end(2, 1, false))
    }

    /// Deliver everything `from` sends at `sent` to `to`, arriving at `arrive`, but packets of
    /// the types in `drop`.
    fn deliver_but(
        from: &mut Connection,
        to: &mut Connection,
        sent: Instant,
        arrive: Instant,
        drop: &[PacketType],
    ) {
        let mut buf = vec![0u8; wire::MAX_DATAGRAM];
        while let Some(tx) = from.poll_transmit(sent, &mut buf).unwrap() {
            let t = Packet::decode(&buf[..tx.len]).unwrap().header.packet_type;
            if !drop.contains(&t) {
                to.handle_packet(arrive, &buf[..tx.len]).unwrap();
            }
        }
    }

    fn deliver(from: &mut Connection, to: &mut Connection, sent: Instant, arrive: Instant) {
        deliver_but(from, to, sent, arrive, &[]);
    }

    fn control_rto(c: &Connection) -> Duration {
        c.control.rto(&c.rtt)
    }

    #[test]
    fn a_control_ack_moves_the_shared_rtt_and_the_rto() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        assert_eq!(control_rto(&a), a.cfg.control.initial_rto);
        a.send_control(b"hello").unwrap();
        deliver(&mut a, &mut b, t0, t0 + 20 * MS);
        // B acks at once; the ack takes 20 ms back: a 40 ms sample. (B's feedback is lost.)
        deliver_but(
            &mut b,
            &mut a,
            t0 + 20 * MS,
            t0 + 40 * MS,
            &[PacketType::Feedback],
        );
        assert!(a.last_report().is_none(), "no feedback yet: the ack alone");
        assert_eq!(a.rtt(), 40 * MS);
        assert_eq!(a.rtt_estimator().min_rtt(), 40 * MS);
        // srtt 40 + 4 * rttvar 20.
        assert_eq!(control_rto(&a), 120 * MS);
        // What DELTA reads comes from the same estimator: the next report's srtt includes it.
        a.send_ping(1);
        deliver(&mut a, &mut b, t0 + 40 * MS, t0 + 60 * MS);
        deliver(&mut b, &mut a, t0 + 100 * MS, t0 + 120 * MS);
        let report = *a.last_report().expect("a feedback report");
        let sample = report.rtt_sample.expect("an RTT sample");
        assert_eq!(report.srtt, (7 * 40 * MS + sample) / 8);
        assert_eq!(report.min_rtt, sample.min(40 * MS));
        assert_eq!(a.rtt(), report.srtt);
    }

    #[test]
    fn a_feedback_sample_moves_the_shared_rtt_and_the_rto() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        a.send_ping(1);
        deliver(&mut a, &mut b, t0, t0 + 30 * MS);
        // B reports the ping at once; the report takes 30 ms back: a 60 ms sample.
        deliver(&mut b, &mut a, t0 + 30 * MS, t0 + 60 * MS);
        let report = *a.last_report().expect("a feedback report");
        assert_eq!(report.rtt_sample, Some(60 * MS));
        assert_eq!(a.rtt(), 60 * MS);
        assert_eq!(report.srtt, 60 * MS);
        // The control channel's timer runs on the same estimate: 60 + 4 * 30.
        assert_eq!(control_rto(&a), 180 * MS);
        // And a later control ack moves it on (B's feedback is lost this time).
        a.send_control(b"x").unwrap();
        deliver(&mut a, &mut b, t0 + 100 * MS, t0 + 110 * MS);
        deliver_but(
            &mut b,
            &mut a,
            t0 + 110 * MS,
            t0 + 120 * MS,
            &[PacketType::Feedback],
        );
        assert_eq!(a.rtt(), (7 * 60 * MS + 20 * MS) / 8);
        assert_eq!(a.rtt_estimator().min_rtt(), 20 * MS);
        assert_eq!(control_rto(&a), a.rtt() + 4 * a.rtt_estimator().rttvar());
    }
}
