//! Media frames over RIFT: the sender's packetizer (fragments, FEC parity, retransmissions on
//! NACK) and the receiver's reassembler (FEC recovery, NACK generation, in-order delivery,
//! loss reports that gate decoding until a keyframe or recovery point).
//!
//! Both sides keep a fixed number of frame slots whose buffers are reused, so a running stream
//! makes no heap allocation per packet once the slots have grown to the stream's frame sizes.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::bitset::BitSet;
use crate::fec::{self, FecDecoder, FecEncoder, FrameShards};
use crate::wire::{Body, EncodeError, FecScheme, MediaFields, MediaHeader, DEFAULT_MEDIA_PAYLOAD};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Default largest frame a receiver accepts.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("empty frame")]
    EmptyFrame,
    #[error("frame needs {0} fragments, more than 65535")]
    TooManyFragments(usize),
    #[error("packet disagrees with earlier packets of frame {0}")]
    Inconsistent(u32),
    #[error("packet for stream {got}, this receiver handles stream {want}")]
    WrongStream { got: u8, want: u8 },
    #[error(transparent)]
    Fec(#[from] fec::FecError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Wrapping frame-id order: `a` comes after `b`.
pub fn frame_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// How a frame is protected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecPlan {
    pub scheme: FecScheme,
    /// Parity packets per data packet, 0.0 to 1.0.
    pub ratio: f64,
}

impl FecPlan {
    pub const NONE: FecPlan = FecPlan {
        scheme: FecScheme::None,
        ratio: 0.0,
    };
}

/// A frame handed to the sender.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingFrame<'a> {
    pub data: &'a [u8],
    pub keyframe: bool,
    pub recovery_point: bool,
    pub capture_us: u64,
}

#[derive(Debug, Clone)]
pub struct MediaSenderConfig {
    pub stream: u8,
    /// Frame bytes per data packet.
    pub payload: usize,
    /// Frames kept for retransmission.
    pub history: usize,
    pub max_frame_len: usize,
}

impl Default for MediaSenderConfig {
    fn default() -> Self {
        MediaSenderConfig {
            stream: crate::wire::STREAM_VIDEO,
            payload: DEFAULT_MEDIA_PAYLOAD,
            history: 16,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

#[derive(Default)]
struct SentFrame {
    header: Option<MediaHeader>,
    data: Vec<u8>,
    parity: Vec<u8>,
    /// Next data fragment, then parity packet, still to send for the first time.
    next: u32,
    /// Last retransmission time per fragment, for NACK dedupe.
    retx_at: Vec<Option<Instant>>,
}

impl SentFrame {
    /// The payload of data packet `h` (at its index) of this frame.
    fn fragment(&self, h: &MediaHeader) -> Result<&[u8], EncodeError> {
        let off = MediaHeader::fragment_offset(h.frame_len(), h.frag_count(), h.index());
        let len = MediaHeader::fragment_len(h.frame_len(), h.frag_count(), h.index());
        self.data.get(off..off + len).ok_or(EncodeError::Invalid {
            field: "media.data",
            reason: "fragment beyond the frame",
        })
    }

    /// The payload of parity packet `h` (at its index) of this frame.
    fn parity_shard(&self, h: &MediaHeader) -> Result<&[u8], EncodeError> {
        let shard = h.parity_len();
        let off = h.index() as usize * shard;
        self.parity
            .get(off..off + shard)
            .ok_or(EncodeError::Invalid {
                field: "media.parity",
                reason: "parity beyond the frame's",
            })
    }
}

/// What a sender transmitted, for the caller's accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTransmit {
    pub len: usize,
    pub frame_id: u32,
    pub retransmission: bool,
    pub parity: bool,
}

/// Packetizer for one media stream.
pub struct MediaSender {
    cfg: MediaSenderConfig,
    fec: FecEncoder,
    /// Frames in flight, oldest first; at most `history`, whose buffers the newest reuses.
    frames: VecDeque<SentFrame>,
    history: usize,
    next_frame_id: u32,
    last_keyframe: Option<u32>,
    retx: VecDeque<(u32, u16)>,
    queued_bytes: usize,
    pub stats: MediaSenderStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaSenderStats {
    pub frames: u64,
    pub data_packets: u64,
    pub parity_packets: u64,
    pub retransmissions: u64,
    pub nacks_ignored: u64,
    pub superseded_packets: u64,
}

impl MediaSender {
    pub fn new(mut cfg: MediaSenderConfig) -> Self {
        // A data packet must fit a datagram with its headers and tag.
        cfg.payload = cfg
            .payload
            .clamp(1, crate::wire::MAX_BODY - crate::wire::MEDIA_HEADER_LEN);
        let history = cfg.history.max(2);
        MediaSender {
            frames: VecDeque::with_capacity(history),
            history,
            cfg,
            fec: FecEncoder::new(),
            next_frame_id: 0,
            last_keyframe: None,
            retx: VecDeque::new(),
            queued_bytes: 0,
            stats: MediaSenderStats::default(),
        }
    }

    pub fn stream(&self) -> u8 {
        self.cfg.stream
    }

    /// Id the next pushed frame will get.
    pub fn next_frame_id(&self) -> u32 {
        self.next_frame_id
    }

    /// Id of the newest keyframe pushed.
    pub fn last_keyframe(&self) -> Option<u32> {
        self.last_keyframe
    }

    /// Bytes of packets queued for first transmission (frame data and parity).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn has_pending(&self) -> bool {
        self.queued_bytes > 0 || !self.retx.is_empty()
    }

    /// Packetize a frame and compute its parity; its packets then come out of `poll_transmit`.
    /// A keyframe drops the unsent packets of older frames: nothing can use them any more.
    pub fn push_frame(
        &mut self,
        frame: OutgoingFrame<'_>,
        plan: FecPlan,
    ) -> Result<u32, MediaError> {
        let len = frame.data.len();
        if len == 0 {
            return Err(MediaError::EmptyFrame);
        }
        if len > self.cfg.max_frame_len || len > u32::MAX as usize {
            return Err(MediaError::FrameTooLarge {
                len,
                max: self.cfg.max_frame_len,
            });
        }
        let frag_count = len.div_ceil(self.cfg.payload.max(1));
        let frag_count: u16 = frag_count
            .try_into()
            .map_err(|_| MediaError::TooManyFragments(frag_count))?;
        let fec_count = fec::parity_count(plan.scheme, frag_count, plan.ratio);
        let scheme = if fec_count == 0 {
            FecScheme::None
        } else {
            plan.scheme
        };
        // Validated before any state changes: a layout the wire cannot carry is refused here.
        let header = MediaHeader::new(MediaFields {
            stream: self.cfg.stream,
            keyframe: frame.keyframe,
            recovery_point: frame.recovery_point,
            fec: scheme,
            frame_id: self.next_frame_id,
            frame_len: len as u32,
            capture_us: frame.capture_us,
            frag_count,
            fec_count,
            index: 0,
        })?;
        if frame.keyframe {
            for f in &mut self.frames {
                let left = Self::unsent_bytes(f);
                if left > 0 {
                    self.stats.superseded_packets += Self::unsent_packets(f) as u64;
                    self.queued_bytes -= left;
                    f.next = u32::MAX;
                }
            }
            self.retx.clear();
        }
        // Reuse the oldest frame's buffers once the history is full.
        let mut f = if self.frames.len() >= self.history {
            let old = self.frames.pop_front().unwrap_or_default();
            let left = Self::unsent_bytes(&old);
            if left > 0 {
                self.stats.superseded_packets += Self::unsent_packets(&old) as u64;
                self.queued_bytes -= left;
            }
            old
        } else {
            SentFrame::default()
        };
        self.fec.encode(scheme, frame.data, frag_count, fec_count)?;
        let frame_id = self.next_frame_id;
        self.next_frame_id = frame_id.wrapping_add(1);
        if frame.keyframe {
            self.last_keyframe = Some(frame_id);
        }
        f.header = Some(header);
        f.data.clear();
        f.data.extend_from_slice(frame.data);
        f.parity.clear();
        for i in 0..fec_count as usize {
            if let Some(p) = self.fec.parity(i) {
                f.parity.extend_from_slice(p);
            }
        }
        f.next = 0;
        f.retx_at.clear();
        f.retx_at.resize(frag_count as usize, None);
        self.queued_bytes += len + f.parity.len();
        self.frames.push_back(f);
        self.stats.frames += 1;
        Ok(frame_id)
    }

    /// Bytes the last pushed frame takes on the wire: data, parity, and per-packet headers,
    /// AEAD tag and UDP/IP headers.
    pub fn last_frame_wire_bytes(&self) -> Option<usize> {
        let f = self.frames.back()?;
        let h = f.header?;
        let packets = h.frag_count() as usize + h.fec_count() as usize;
        let per_packet = crate::wire::HEADER_LEN
            + crate::wire::MEDIA_HEADER_LEN
            + crate::wire::TAG_LEN
            + crate::wire::UDP_IP_OVERHEAD;
        Some(f.data.len() + f.parity.len() + packets * per_packet)
    }

    fn unsent_packets(f: &SentFrame) -> usize {
        match f.header {
            Some(h) if f.next != u32::MAX => {
                (h.frag_count() as usize + h.fec_count() as usize).saturating_sub(f.next as usize)
            }
            _ => 0,
        }
    }

    fn unsent_bytes(f: &SentFrame) -> usize {
        let Some(h) = f.header else { return 0 };
        if f.next == u32::MAX {
            return 0;
        }
        let n = h.frag_count() as u32;
        let data_left = if f.next < n {
            f.data.len()
                - MediaHeader::fragment_offset(h.frame_len(), h.frag_count(), f.next as u16)
        } else {
            0
        };
        let shard = h.parity_len();
        let parity_sent = f.next.saturating_sub(n) as usize;
        data_left + f.parity.len().saturating_sub(parity_sent * shard)
    }

    fn is_frame(f: &SentFrame, frame_id: u32) -> bool {
        f.header.map(|h| h.frame_id()) == Some(frame_id)
    }

    /// Queue retransmissions of NACKed fragments; a fragment already retransmitted within the
    /// last `rtt` is not sent again (its first retransmission may still be in flight).
    pub fn on_nack(
        &mut self,
        now: Instant,
        frame_id: u32,
        indices: impl Iterator<Item = u16>,
        rtt: Duration,
    ) {
        let Some(f) = self.frames.iter_mut().find(|f| Self::is_frame(f, frame_id)) else {
            self.stats.nacks_ignored += 1;
            return;
        };
        let Some(h) = f.header else { return };
        for i in indices {
            if i >= h.frag_count() || (f.next != u32::MAX && (i as u32) >= f.next) {
                continue; // not sent yet, or bogus
            }
            let Some(at) = f.retx_at.get_mut(i as usize) else {
                continue; // one per fragment: not reached
            };
            if at.is_some_and(|t| now.saturating_duration_since(t) < rtt) {
                self.stats.nacks_ignored += 1;
                continue;
            }
            *at = Some(now);
            self.retx.push_back((frame_id, i));
        }
    }

    /// Encode the next media body (retransmissions first, then frames in order) into `out`.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<MediaTransmit>, MediaError> {
        while let Some((frame_id, index)) = self.retx.pop_front() {
            let Some(f) = self.frames.iter().find(|f| Self::is_frame(f, frame_id)) else {
                continue;
            };
            let Some(h) = f.header else { continue };
            let h = h.with_index(index)?;
            let payload = f.fragment(&h)?;
            let len = Body::MediaData { header: h, payload }.encode(out)?;
            self.stats.retransmissions += 1;
            return Ok(Some(MediaTransmit {
                len,
                frame_id,
                retransmission: true,
                parity: false,
            }));
        }
        for f in &mut self.frames {
            let Some(h) = f.header else { continue };
            let n = h.frag_count() as u32;
            let total = n + h.fec_count() as u32;
            if f.next >= total {
                continue;
            }
            let (body, parity, sent) = if f.next < n {
                let h = h.with_index(f.next as u16)?;
                let payload = f.fragment(&h)?;
                (Body::MediaData { header: h, payload }, false, payload.len())
            } else {
                let h = h.with_index((f.next - n) as u16)?;
                let payload = f.parity_shard(&h)?;
                (
                    Body::MediaParity { header: h, payload },
                    true,
                    payload.len(),
                )
            };
            let len = body.encode(out)?;
            f.next += 1;
            self.queued_bytes -= sent;
            if parity {
                self.stats.parity_packets += 1;
            } else {
                self.stats.data_packets += 1;
            }
            return Ok(Some(MediaTransmit {
                len,
                frame_id: h.frame_id(),
                retransmission: false,
                parity,
            }));
        }
        Ok(None)
    }
}

#[derive(Debug, Clone)]
pub struct MediaReceiverConfig {
    pub stream: u8,
    pub max_frame_len: usize,
    /// Frames reassembled at once; the oldest incomplete one is given up when a newer needs a slot.
    pub slots: usize,
    /// How long after a later frame starts arriving a missing packet is still awaited as reordered.
    pub reorder_wait: Duration,
    /// NACK only while the RTT is at most this: beyond it a retransmission comes too late to beat
    /// a keyframe request.
    pub max_nack_rtt: Duration,
    /// NACK rounds per frame.
    pub max_nack_rounds: u8,
}

impl Default for MediaReceiverConfig {
    fn default() -> Self {
        MediaReceiverConfig {
            stream: crate::wire::STREAM_VIDEO,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            slots: 8,
            reorder_wait: Duration::from_millis(3),
            max_nack_rtt: Duration::from_millis(40),
            max_nack_rounds: 2,
        }
    }
}

#[derive(Default)]
struct Slot {
    active: bool,
    complete: bool,
    header: Option<MediaHeader>,
    buf: Vec<u8>,
    have: BitSet,
    parity: Vec<u8>,
    parity_have: BitSet,
    first_at: Option<Instant>,
    /// When the frame's last packet in send order arrived: anything missing before it is lost
    /// or reordered.
    tail_at: Option<Instant>,
    completed_at: Option<Instant>,
    recovered: usize,
    nack_rounds: u8,
    last_nack: Option<Instant>,
}

impl Slot {
    fn shards(&mut self, h: &MediaHeader) -> FrameShards<'_> {
        FrameShards {
            scheme: h.fec(),
            frame_len: h.frame_len(),
            frag_count: h.frag_count(),
            fec_count: h.fec_count(),
            frame: &mut self.buf,
            have: &mut self.have,
            parity: &self.parity,
            parity_have: &self.parity_have,
        }
    }
}

/// Something the receiver wants the connection to tell the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// Ask for these fragments again.
    Nack { frame_id: u32, indices: Vec<u16> },
    /// `frame_id` could not be rebuilt in time: decoding waits for a keyframe or recovery point.
    FrameLost {
        frame_id: u32,
        last_good: Option<u32>,
    },
    /// Complete frame `frame_id` was dropped while decoding waits for a keyframe that no loss
    /// asked for: nothing has been delivered yet (the stream's first keyframe never reached
    /// us, e.g. it was sent before this end was ready). Ask for one.
    NeedKeyframe { frame_id: u32 },
}

/// A complete frame, borrowed from the receiver until its next call.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedFrame<'a> {
    pub stream: u8,
    pub frame_id: u32,
    pub keyframe: bool,
    pub recovery_point: bool,
    pub capture_us: u64,
    pub data: &'a [u8],
    pub first_packet_at: Instant,
    pub completed_at: Instant,
    /// Fragments rebuilt by FEC.
    pub recovered: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaReceiverStats {
    pub packets: u64,
    pub duplicate_packets: u64,
    pub late_packets: u64,
    pub rejected_packets: u64,
    pub frames_delivered: u64,
    pub frames_lost: u64,
    pub frames_superseded: u64,
    /// Complete frames not delivered because decoding waited for a keyframe.
    pub frames_gated: u64,
    pub fec_recovered_packets: u64,
    pub nacked_packets: u64,
}

/// Reassembler for one media stream.
pub struct MediaReceiver {
    cfg: MediaReceiverConfig,
    slots: Vec<Slot>,
    next_deliver: Option<u32>,
    last_good: Option<u32>,
    gated: bool,
    lent: Option<usize>,
    fec: FecDecoder,
    rtt: Duration,
    events: VecDeque<MediaEvent>,
    pub stats: MediaReceiverStats,
}

impl MediaReceiver {
    pub fn new(cfg: MediaReceiverConfig) -> Self {
        MediaReceiver {
            slots: (0..cfg.slots.max(2)).map(|_| Slot::default()).collect(),
            cfg,
            next_deliver: None,
            last_good: None,
            gated: true,
            lent: None,
            fec: FecDecoder::new(),
            rtt: Duration::from_millis(100),
            events: VecDeque::new(),
            stats: MediaReceiverStats::default(),
        }
    }

    pub fn stream(&self) -> u8 {
        self.cfg.stream
    }

    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// Whether decoding waits for a keyframe or recovery point.
    pub fn gated(&self) -> bool {
        self.gated
    }

    fn release_lent(&mut self) {
        if let Some(s) = self.lent.take().and_then(|i| self.slots.get_mut(i)) {
            s.active = false;
        }
    }

    fn find(&self, frame_id: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.active && s.header.is_some_and(|h| h.frame_id() == frame_id))
    }

    /// Handle a media data or parity packet.
    pub fn on_packet(
        &mut self,
        now: Instant,
        header: &MediaHeader,
        payload: &[u8],
        parity: bool,
    ) -> Result<(), MediaError> {
        self.release_lent();
        if header.stream() != self.cfg.stream {
            self.stats.rejected_packets += 1;
            return Err(MediaError::WrongStream {
                got: header.stream(),
                want: self.cfg.stream,
            });
        }
        // The header's layout is valid by construction; whether this payload and index fit it
        // as data or parity is the packet's, checked by decode but not carried by the types.
        if !header.fits(payload, parity) {
            self.stats.rejected_packets += 1;
            return Err(MediaError::Inconsistent(header.frame_id()));
        }
        if header.frame_len() as usize > self.cfg.max_frame_len {
            self.stats.rejected_packets += 1;
            return Err(MediaError::FrameTooLarge {
                len: header.frame_len() as usize,
                max: self.cfg.max_frame_len,
            });
        }
        if self
            .next_deliver
            .is_some_and(|d| frame_after(d, header.frame_id()))
        {
            self.stats.late_packets += 1;
            return Ok(());
        }
        self.stats.packets += 1;
        let i = match self.find(header.frame_id()) {
            Some(i) => i,
            None => self.open_slot(now, header),
        };
        let Some(slot) = self.slots.get_mut(i) else {
            return Ok(());
        };
        let Some(h) = slot.header else { return Ok(()) };
        let same_layout = |a: &MediaHeader, b: &MediaHeader| {
            (
                a.frame_len(),
                a.frag_count(),
                a.fec(),
                a.fec_count(),
                a.keyframe(),
            ) == (
                b.frame_len(),
                b.frag_count(),
                b.fec(),
                b.fec_count(),
                b.keyframe(),
            )
        };
        if !same_layout(&h, header) {
            self.stats.rejected_packets += 1;
            return Err(MediaError::Inconsistent(header.frame_id()));
        }
        if slot.complete {
            self.stats.duplicate_packets += 1;
            return Ok(());
        }
        // The payload fits the header, whose layout is the slot's: the slot's buffers, sized by
        // that layout, hold it.
        let (dst, have) = if parity {
            let off = header.index() as usize * payload.len();
            (
                slot.parity.get_mut(off..off + payload.len()),
                &mut slot.parity_have,
            )
        } else {
            let off = MediaHeader::fragment_offset(h.frame_len(), h.frag_count(), header.index());
            (slot.buf.get_mut(off..off + payload.len()), &mut slot.have)
        };
        let Some(dst) = dst else {
            self.stats.rejected_packets += 1;
            return Err(MediaError::Inconsistent(header.frame_id()));
        };
        let fresh = have.set(header.index() as usize);
        if fresh {
            dst.copy_from_slice(payload);
        }
        if !fresh {
            self.stats.duplicate_packets += 1;
            return Ok(());
        }
        let last = if h.fec_count() == 0 {
            !parity && header.index() + 1 == h.frag_count()
        } else {
            parity && header.index() + 1 == h.fec_count()
        };
        if last {
            slot.tail_at.get_or_insert(now);
        }
        self.try_complete(now, i)
    }

    fn open_slot(&mut self, now: Instant, header: &MediaHeader) -> usize {
        let i = match self.slots.iter().position(|s| !s.active) {
            Some(i) => i,
            None => {
                // Give up the oldest frame in progress.
                let (i, old) = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.header.is_some())
                    .min_by(|(_, a), (_, b)| {
                        let (a, b) = (
                            a.header.map_or(0, |h| h.frame_id()),
                            b.header.map_or(0, |h| h.frame_id()),
                        );
                        if frame_after(a, b) {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    })
                    .map(|(i, s)| (i, s.header.map(|h| h.frame_id())))
                    .unwrap_or((0, None));
                if let Some(id) = old {
                    if self.next_deliver.is_none_or(|d| !frame_after(d, id)) {
                        self.declare_lost(id);
                    }
                }
                i
            }
        };
        let Some(s) = self.slots.get_mut(i) else {
            return i;
        };
        s.active = true;
        s.complete = false;
        s.header = Some(*header);
        s.buf.clear();
        s.buf.resize(header.frame_len() as usize, 0);
        s.have.reset(header.frag_count() as usize);
        s.parity.clear();
        s.parity
            .resize(header.fec_count() as usize * header.parity_len(), 0);
        s.parity_have.reset(header.fec_count() as usize);
        s.first_at = Some(now);
        s.tail_at = None;
        s.completed_at = None;
        s.recovered = 0;
        s.nack_rounds = 0;
        s.last_nack = None;
        i
    }

    fn try_complete(&mut self, now: Instant, i: usize) -> Result<(), MediaError> {
        let Some(slot) = self.slots.get_mut(i) else {
            return Ok(());
        };
        let Some(h) = slot.header else { return Ok(()) };
        let n = h.frag_count() as usize;
        if slot.have.count() < n && slot.have.count() + slot.parity_have.count() >= n {
            let mut shards = slot.shards(&h);
            if shards.recoverable() {
                let r = self.fec.recover(&mut shards)?;
                slot.recovered += r;
                self.stats.fec_recovered_packets += r as u64;
            }
        }
        if slot.have.count() == n {
            slot.complete = true;
            slot.completed_at = Some(now);
        }
        Ok(())
    }

    fn declare_lost(&mut self, frame_id: u32) {
        if let Some(s) = self.find(frame_id).and_then(|i| self.slots.get_mut(i)) {
            s.active = false;
        }
        self.stats.frames_lost += 1;
        self.gated = true;
        self.next_deliver = Some(frame_id.wrapping_add(1));
        self.events.push_back(MediaEvent::FrameLost {
            frame_id,
            last_good: self.last_good,
        });
    }

    /// Run timers: NACK missing fragments and give up frames that cannot arrive in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release_lent();
        loop {
            let Some(d) = self.next_deliver.or_else(|| self.oldest_active()) else {
                return;
            };
            let Some(evidence) = self.gap_evidence(d) else {
                return;
            };
            let wait_from = evidence + self.cfg.reorder_wait;
            let Some(i) = self.find(d) else {
                // Nothing of `d` arrived at all, nor of any frame up to the next one seen:
                // report the gap once and skip to that frame (ids may jump arbitrarily far).
                if now >= wait_from && self.next_deliver.is_some() {
                    let next = self
                        .slots
                        .iter()
                        .filter(|s| s.active)
                        .filter_map(|s| s.header.map(|h| h.frame_id()))
                        .filter(|&id| frame_after(id, d))
                        .reduce(|a, b| if frame_after(a, b) { b } else { a });
                    self.declare_lost(d);
                    if let Some(next) = next {
                        self.stats.frames_lost += u64::from(next.wrapping_sub(d)).saturating_sub(1);
                        self.next_deliver = Some(next);
                    }
                    continue;
                }
                return;
            };
            let Some(slot) = self.slots.get(i) else {
                return;
            };
            if slot.complete || now < wait_from {
                return;
            }
            let nack_ok = self.rtt <= self.cfg.max_nack_rtt;
            let since_nack = slot.last_nack.map(|t| now.saturating_duration_since(t));
            let nack_due = since_nack.is_none_or(|s| s >= self.rtt + self.cfg.reorder_wait);
            if nack_ok && slot.nack_rounds < self.cfg.max_nack_rounds && nack_due {
                let Some(slot) = self.slots.get_mut(i) else {
                    return;
                };
                let Some(h) = slot.header else { return };
                let shards = slot.shards(&h);
                let mut indices = Vec::new();
                shards.needed(|i| indices.push(i));
                indices.truncate(crate::wire::MAX_NACK_ENTRIES);
                slot.nack_rounds += 1;
                slot.last_nack = Some(now);
                self.stats.nacked_packets += indices.len() as u64;
                self.events.push_back(MediaEvent::Nack {
                    frame_id: d,
                    indices,
                });
                return;
            }
            if nack_ok && !nack_due {
                return;
            }
            self.declare_lost(d);
        }
    }

    /// Since when frame `d` has had all its chances to arrive: its last packet in send order
    /// arrived, or a later frame started arriving.
    fn gap_evidence(&self, d: u32) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| {
                let id = s.header?.frame_id();
                if frame_after(id, d) {
                    s.first_at
                } else if id == d {
                    s.tail_at
                } else {
                    None
                }
            })
            .min()
    }

    fn oldest_active(&self) -> Option<u32> {
        self.slots
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| s.header.map(|h| h.frame_id()))
            .reduce(|a, b| if frame_after(a, b) { b } else { a })
    }

    /// When `handle_timeout` next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        let d = self.next_deliver.or_else(|| self.oldest_active())?;
        let wait_from = self.gap_evidence(d)? + self.cfg.reorder_wait;
        match self.find(d).and_then(|i| self.slots.get(i)) {
            Some(s) if s.complete => None,
            Some(s) => Some(match s.last_nack {
                Some(t) => (t + self.rtt + self.cfg.reorder_wait).max(wait_from),
                None => wait_from,
            }),
            None => Some(wait_from),
        }
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next frame in order, if it is complete. Frames before a complete keyframe are
    /// superseded; while gated, frames other than keyframes and recovery points are dropped.
    pub fn poll_frame(&mut self) -> Option<ReceivedFrame<'_>> {
        self.release_lent();
        // A complete keyframe ahead makes everything before it useless.
        let newest_key = self
            .slots
            .iter()
            .filter(|s| s.active && s.complete && s.header.is_some_and(|h| h.keyframe()))
            .filter_map(|s| s.header.map(|h| h.frame_id()))
            .reduce(|a, b| if frame_after(a, b) { a } else { b });
        if let Some(k) = newest_key {
            if self.next_deliver.is_none_or(|d| frame_after(k, d)) {
                for s in self.slots.iter_mut().filter(|s| s.active) {
                    if s.header.is_some_and(|h| frame_after(k, h.frame_id())) {
                        s.active = false;
                        self.stats.frames_superseded += 1;
                    }
                }
                self.next_deliver = Some(k);
            }
        }
        loop {
            let d = match self.next_deliver {
                Some(d) => d,
                None => {
                    // Nothing delivered yet: start at the oldest frame seen, complete or not,
                    // so a first keyframe still being repaired is waited for (or reported
                    // lost) instead of skipped, which would gate every later frame.
                    let first = self.oldest_active()?;
                    self.next_deliver = Some(first);
                    first
                }
            };
            let i = self.find(d)?;
            let slot = self.slots.get_mut(i)?;
            let h = slot.header?;
            if !slot.complete {
                return None;
            }
            self.next_deliver = Some(d.wrapping_add(1));
            if self.gated && !(h.keyframe() || h.recovery_point()) {
                slot.active = false;
                self.stats.frames_gated += 1;
                if self.last_good.is_none() {
                    self.events
                        .push_back(MediaEvent::NeedKeyframe { frame_id: d });
                }
                continue;
            }
            self.gated = false;
            self.last_good = Some(d);
            self.stats.frames_delivered += 1;
            self.lent = Some(i);
            let slot = self.slots.get(i)?;
            let first = slot.first_at?;
            return Some(ReceivedFrame {
                stream: h.stream(),
                frame_id: d,
                keyframe: h.keyframe(),
                recovery_point: h.recovery_point(),
                capture_us: h.capture_us(),
                data: &slot.buf,
                first_packet_at: first,
                completed_at: slot.completed_at.unwrap_or(first),
                recovered: slot.recovered,
            });
        }
    }
}
