//! RIFT wire format: the packet header and every packet body.
//!
//! Decoding borrows from the datagram and never allocates; encoding writes into a caller-provided
//! buffer. docs/RIFT.md is the normative description of these layouts; keep them in step.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use thiserror::Error;

/// Protocol version spoken by this implementation. Version 2 padded `HandshakeInit`, added
/// `Retry` (address validation) and moved rekeying into the encrypted `Rekey` packet
/// (docs/RIFT.md, "Changes from version 1").
pub const VERSION: u16 = 2;
/// Versions this implementation can speak, most preferred first.
pub const SUPPORTED_VERSIONS: &[u16] = &[VERSION];

/// Largest datagram a RIFT endpoint sends or accepts (IPv4 Ethernet MTU minus IP and UDP headers).
pub const MAX_DATAGRAM: usize = 1472;
/// Length of the cleartext header that starts every RIFT packet (and is the AEAD associated data).
pub const HEADER_LEN: usize = 14;
/// Length of the AEAD tag that follows every encrypted body.
pub const TAG_LEN: usize = 16;
/// Largest body a packet can carry once header and tag are accounted for.
pub const MAX_BODY: usize = MAX_DATAGRAM - HEADER_LEN - TAG_LEN;
/// IPv4 and UDP headers in front of every datagram; links carry them too.
pub const UDP_IP_OVERHEAD: usize = 28;
/// Length of the media (data and parity) fragment header inside the body.
pub const MEDIA_HEADER_LEN: usize = 24;
/// Default number of frame bytes carried by one media data packet.
pub const DEFAULT_MEDIA_PAYLOAD: usize = 1200;
/// Largest control message carried by one control packet.
pub const MAX_CONTROL_MESSAGE: usize = 1200;
/// Largest number of input events repeated in one input packet.
pub const MAX_INPUT_EVENTS: usize = 32;
/// Largest single input event record.
pub const MAX_INPUT_EVENT_LEN: usize = 64;
/// Largest number of fragment indices in one NACK.
pub const MAX_NACK_ENTRIES: usize = 256;
/// Smallest `HandshakeInit` datagram a responder answers: no answer to it (message 2, `Retry`,
/// `VersionNegotiation`) is larger, so a spoofed source gains no amplification (RIFT.md §10).
/// It also fits the 1280-byte IPv6 minimum MTU.
pub const MIN_HANDSHAKE_INIT: usize = 1200;
/// Length of an address-validation cookie (`Retry`).
pub const COOKIE_LEN: usize = 16;
/// Length of the initiator's ephemeral-key prefix a `Retry` echoes.
pub const RETRY_ECHO_LEN: usize = 16;
/// Largest close reason text.
pub const MAX_CLOSE_REASON: usize = 256;
/// Close code: the application ended the session.
pub const CLOSE_NORMAL: u16 = 0;
/// Close code: the peer's key is not allowed here (sent by a host that refuses a client).
pub const CLOSE_REFUSED: u16 = 1;
/// Largest number of packets covered by one feedback packet.
pub const MAX_FEEDBACK_PACKETS: usize = 2048;
/// Bit pattern of the top two bits of the first byte of every RIFT packet. STUN uses `00`.
pub const RIFT_MARKER: u8 = 0b1000_0000;
const MARKER_MASK: u8 = 0b1100_0000;

/// Errors returned when a datagram is not a well-formed RIFT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes exceeds the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    #[error("packet truncated: needed {needed} bytes, had {had}")]
    Truncated { needed: usize, had: usize },
    #[error("first byte {0:#04x} is not a RIFT packet")]
    NotRift(u8),
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    #[error("connection id 0 is only valid on a handshake initiation")]
    ZeroConnectionId,
    #[error("invalid field {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{0} trailing bytes after the packet body")]
    Trailing(usize),
}

/// Errors returned when a packet cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("output buffer too small: need {needed} bytes, have {have}")]
    BufferTooSmall { needed: usize, have: usize },
    #[error("packet of {0} bytes exceeds the {MAX_DATAGRAM}-byte datagram limit")]
    TooLong(usize),
    #[error("invalid field {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// What kind of datagram arrived on a RIFT socket: the first-byte demultiplexing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    /// A STUN message (RFC 8489): top two bits 00 and the magic cookie at bytes 4..8.
    Stun,
    /// A RIFT packet (top two bits 10).
    Rift,
    /// Anything else; drop it.
    Unknown,
}

/// The STUN magic cookie (RFC 8489 §5).
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;

/// Classify a datagram by its first byte (and the STUN cookie).
pub fn demux(datagram: &[u8]) -> Demux {
    match datagram.first() {
        Some(b)
            if b & MARKER_MASK == 0
                && datagram.len() >= 20
                && datagram.get(4..8) == Some(&STUN_MAGIC_COOKIE.to_be_bytes()[..]) =>
        {
            Demux::Stun
        }
        Some(b) if b & MARKER_MASK == RIFT_MARKER => Demux::Rift,
        _ => Demux::Unknown,
    }
}

/// Packet types; the low six bits of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    HandshakeInit = 0x00,
    HandshakeResponse = 0x01,
    HandshakeFinish = 0x02,
    VersionNegotiation = 0x03,
    Retry = 0x04,
    Close = 0x08,
    Ping = 0x09,
    Pong = 0x0A,
    Rekey = 0x0B,
    Control = 0x10,
    ControlAck = 0x11,
    Input = 0x18,
    MediaData = 0x20,
    MediaParity = 0x21,
    Feedback = 0x28,
    Nack = 0x29,
    KeyframeRequest = 0x2A,
}

impl PacketType {
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        use PacketType::*;
        Ok(match v {
            0x00 => HandshakeInit,
            0x01 => HandshakeResponse,
            0x02 => HandshakeFinish,
            0x03 => VersionNegotiation,
            0x04 => Retry,
            0x08 => Close,
            0x09 => Ping,
            0x0A => Pong,
            0x0B => Rekey,
            0x10 => Control,
            0x11 => ControlAck,
            0x18 => Input,
            0x20 => MediaData,
            0x21 => MediaParity,
            0x28 => Feedback,
            0x29 => Nack,
            0x2A => KeyframeRequest,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Handshake, version negotiation and retry bodies travel in the clear (the Noise messages
    /// protect themselves); every other body is AEAD-encrypted.
    pub fn is_encrypted(self) -> bool {
        !matches!(
            self,
            PacketType::HandshakeInit
                | PacketType::HandshakeResponse
                | PacketType::HandshakeFinish
                | PacketType::VersionNegotiation
                | PacketType::Retry
        )
    }

    /// Channel priority for the transport's send queues and DSCP marking.
    pub fn priority(self) -> Priority {
        use PacketType::*;
        match self {
            Input => Priority::Input,
            MediaData | MediaParity => Priority::Media,
            _ => Priority::Control,
        }
    }
}

/// Send priority classes, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Input = 0,
    Control = 1,
    Media = 2,
}

/// The 14-byte cleartext header of every RIFT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub packet_type: PacketType,
    /// Bit 0: key phase (flips on every rekey); bit 1: rekey requested (set by the host, RIFT.md
    /// §3). Other bits are reserved: sent as 0, ignored.
    pub flags: u8,
    /// The receiver-chosen connection id; 0 only on a handshake initiation.
    pub connection_id: u32,
    /// Per-direction packet number; also the AEAD nonce. Never reused under one key.
    pub packet_number: u64,
}

pub const FLAG_KEY_PHASE: u8 = 0x01;

impl Header {
    pub fn encode(&self, out: &mut [u8]) -> Result<(), EncodeError> {
        let have = out.len();
        let out = out
            .first_chunk_mut::<HEADER_LEN>()
            .ok_or(EncodeError::BufferTooSmall {
                needed: HEADER_LEN,
                have,
            })?;
        if self.connection_id == 0 && self.packet_type != PacketType::HandshakeInit {
            return Err(EncodeError::Invalid {
                field: "header.connection_id",
                reason: "0 is only valid on a handshake initiation",
            });
        }
        out[0] = RIFT_MARKER | self.packet_type as u8;
        out[1] = self.flags;
        out[2..6].copy_from_slice(&self.connection_id.to_be_bytes());
        out[6..14].copy_from_slice(&self.packet_number.to_be_bytes());
        Ok(())
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLong(buf.len()));
        }
        let mut r = Reader::new(buf);
        let first = r.u8()?;
        if first & MARKER_MASK != RIFT_MARKER {
            return Err(DecodeError::NotRift(first));
        }
        let packet_type = PacketType::from_u8(first & !MARKER_MASK)?;
        let flags = r.u8()?;
        let connection_id = r.u32()?;
        let packet_number = r.u64()?;
        if connection_id == 0 && packet_type != PacketType::HandshakeInit {
            return Err(DecodeError::ZeroConnectionId);
        }
        Ok(Header {
            packet_type,
            flags,
            connection_id,
            packet_number,
        })
    }
}

/// A handshake message (all three Noise_XX messages share this layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// The protocol version the sender proposes (init) or accepted (response, finish).
    pub version: u16,
    /// The connection id the sender wants to be addressed with.
    pub source_connection_id: u32,
    /// The Noise handshake message.
    pub noise: &'a [u8],
}

/// Sent in reply to a handshake initiation whose version the responder does not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionNegotiation<'a> {
    /// Big-endian u16 versions; use [`VersionNegotiation::versions`].
    raw: &'a [u8],
}

impl<'a> VersionNegotiation<'a> {
    pub fn versions(&self) -> impl Iterator<Item = u16> + 'a {
        be_u16s(self.raw)
    }
}

/// Media stream ids.
pub const STREAM_VIDEO: u8 = 0;
pub const STREAM_AUDIO: u8 = 1;

/// Forward error correction scheme of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecScheme {
    None = 0,
    /// Interleaved XOR parity: parity packet `g` covers data fragments `i` with `i % fec_count == g`.
    Xor = 1,
    /// Reed-Solomon (Leopard GF(2^16), as in reed-solomon-simd) over all fragments of the frame.
    ReedSolomon = 2,
}

impl FecScheme {
    fn from_bits(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(FecScheme::None),
            1 => Ok(FecScheme::Xor),
            2 => Ok(FecScheme::ReedSolomon),
            _ => Err(DecodeError::Invalid {
                field: "media.flags",
                reason: "unknown FEC scheme",
            }),
        }
    }
}

pub const MEDIA_FLAG_KEYFRAME: u8 = 0x01;
/// The frame references only frames the receiver confirmed (a reference-invalidation answer), so
/// decoding can resume on it after a loss.
pub const MEDIA_FLAG_RECOVERY_POINT: u8 = 0x02;
const MEDIA_FEC_SHIFT: u8 = 4;
const MEDIA_FEC_MASK: u8 = 0x30;

/// The fields of a media header as a sender fills them in, unchecked. [`MediaHeader::new`]
/// turns them into a [`MediaHeader`] if they describe a valid frame layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaFields {
    pub stream: u8,
    pub keyframe: bool,
    pub recovery_point: bool,
    pub fec: FecScheme,
    pub frame_id: u32,
    /// Total length of the frame in bytes.
    pub frame_len: u32,
    /// Capture time of the frame on the sender's monotonic clock, microseconds.
    pub capture_us: u64,
    /// Number of data fragments of the frame.
    pub frag_count: u16,
    /// Number of parity packets of the frame.
    pub fec_count: u16,
    /// Data: fragment index (< frag_count). Parity: parity index (< fec_count).
    pub index: u16,
}

/// Header fields shared by media data and parity packets, validated: a `MediaHeader` comes only
/// out of decoding a packet or out of [`MediaHeader::new`], which enforce the same frame layout
/// rules (at least one fragment, no fragment empty, parity count agreeing with the FEC scheme
/// and at most one per fragment, Reed-Solomon counts it supports, index within the fragments),
/// so a receiver may size and index its frame buffers by it. Whether `index` and the payload
/// fit a data or a parity packet depends on the packet: see [`MediaHeader::fits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaHeader(MediaFields);

impl MediaHeader {
    /// A header for sending, if `fields` describe a valid frame layout (the rules decoding
    /// enforces).
    pub fn new(fields: MediaFields) -> Result<Self, EncodeError> {
        let h = MediaHeader(fields);
        h.check().map_err(|reason| EncodeError::Invalid {
            field: "media",
            reason,
        })?;
        Ok(h)
    }

    /// The same header for fragment or parity packet `index`.
    pub fn with_index(self, index: u16) -> Result<Self, EncodeError> {
        MediaHeader::new(MediaFields { index, ..self.0 })
    }

    /// The fields, to inspect or to build a changed header from (through [`MediaHeader::new`]).
    pub fn fields(&self) -> MediaFields {
        self.0
    }

    pub fn stream(&self) -> u8 {
        self.0.stream
    }

    pub fn keyframe(&self) -> bool {
        self.0.keyframe
    }

    pub fn recovery_point(&self) -> bool {
        self.0.recovery_point
    }

    pub fn fec(&self) -> FecScheme {
        self.0.fec
    }

    pub fn frame_id(&self) -> u32 {
        self.0.frame_id
    }

    /// Total length of the frame in bytes; at least `frag_count`.
    pub fn frame_len(&self) -> u32 {
        self.0.frame_len
    }

    /// Capture time of the frame on the sender's monotonic clock, microseconds.
    pub fn capture_us(&self) -> u64 {
        self.0.capture_us
    }

    /// Number of data fragments of the frame; at least 1.
    pub fn frag_count(&self) -> u16 {
        self.0.frag_count
    }

    /// Number of parity packets of the frame; at most `frag_count`, 0 exactly without FEC.
    pub fn fec_count(&self) -> u16 {
        self.0.fec_count
    }

    /// Data: fragment index (< frag_count). Parity: parity index (< fec_count).
    pub fn index(&self) -> u16 {
        self.0.index
    }

    /// Length of data fragment `index`: fragments are as equal as possible, the first
    /// `frame_len % frag_count` of them one byte longer.
    pub fn fragment_len(frame_len: u32, frag_count: u16, index: u16) -> usize {
        let (base, rem) = (frame_len / frag_count as u32, frame_len % frag_count as u32);
        (base + u32::from((index as u32) < rem)) as usize
    }

    /// Offset of data fragment `index` within the frame.
    pub fn fragment_offset(frame_len: u32, frag_count: u16, index: u16) -> usize {
        let (base, rem) = (
            (frame_len / frag_count as u32) as usize,
            (frame_len % frag_count as u32) as usize,
        );
        let i = index as usize;
        i * base + i.min(rem)
    }

    /// Whether `payload` is the one a data packet (`parity` false) or a parity packet of this
    /// header's frame carries at this header's index. Decoding and encoding require it; a
    /// receiver handed a header and a payload separately checks it before indexing.
    pub fn fits(&self, payload: &[u8], parity: bool) -> bool {
        let h = &self.0;
        if parity {
            h.fec != FecScheme::None && h.index < h.fec_count && payload.len() == self.parity_len()
        } else {
            h.index < h.frag_count
                && payload.len() == MediaHeader::fragment_len(h.frame_len, h.frag_count, h.index)
        }
    }

    /// Length of each parity payload for this frame.
    pub fn parity_len(&self) -> usize {
        crate::fec::shard_len(self.fec(), self.frame_len(), self.frag_count())
    }

    fn flags(&self) -> u8 {
        (self.keyframe() as u8 * MEDIA_FLAG_KEYFRAME)
            | (self.recovery_point() as u8 * MEDIA_FLAG_RECOVERY_POINT)
            | ((self.fec() as u8) << MEDIA_FEC_SHIFT)
    }

    /// The layout rules both encoder and decoder enforce.
    fn check(&self) -> Result<(), &'static str> {
        let h = &self.0;
        if h.frag_count == 0 {
            return Err("frag_count is 0");
        }
        if h.frame_len < h.frag_count as u32 {
            return Err("frame shorter than its fragment count");
        }
        if (h.fec == FecScheme::None) != (h.fec_count == 0) {
            return Err("fec_count disagrees with the FEC scheme");
        }
        // At most one parity packet per fragment: bounds a receiver's parity memory by the
        // frame's own size.
        if h.fec_count > h.frag_count {
            return Err("more parity packets than fragments");
        }
        if h.fec == FecScheme::ReedSolomon
            && !crate::fec::rs_supported(h.frag_count as usize, h.fec_count as usize)
        {
            return Err("Reed-Solomon shard counts out of range");
        }
        // Data indices are below frag_count, parity indices below fec_count <= frag_count.
        if h.index >= h.frag_count {
            return Err("index beyond the frame's fragments");
        }
        Ok(())
    }

    /// Valid by construction: `new` and `read` checked the layout.
    fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.0.stream)?;
        w.u8(self.flags())?;
        w.u32(self.0.frame_id)?;
        w.u32(self.0.frame_len)?;
        w.u64(self.0.capture_us)?;
        w.u16(self.0.frag_count)?;
        w.u16(self.0.fec_count)?;
        w.u16(self.0.index)
    }

    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        let stream = r.u8()?;
        let flags = r.u8()?;
        let h = MediaHeader(MediaFields {
            stream,
            keyframe: flags & MEDIA_FLAG_KEYFRAME != 0,
            recovery_point: flags & MEDIA_FLAG_RECOVERY_POINT != 0,
            fec: FecScheme::from_bits((flags & MEDIA_FEC_MASK) >> MEDIA_FEC_SHIFT)?,
            frame_id: r.u32()?,
            frame_len: r.u32()?,
            capture_us: r.u64()?,
            frag_count: r.u16()?,
            fec_count: r.u16()?,
            index: r.u16()?,
        });
        h.check().map_err(|reason| DecodeError::Invalid {
            field: "media",
            reason,
        })?;
        Ok(h)
    }
}

/// Feedback: arrival times of a contiguous range of packet numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback<'a> {
    /// Feedback sequence number, so the sender can tell a lost feedback from an idle link.
    pub seq: u32,
    /// First packet number covered.
    pub base_pn: u64,
    /// Number of packet numbers covered (`base_pn .. base_pn + count`).
    pub count: u16,
    /// Arrival time of the first received packet in the range, receiver clock, microseconds.
    pub reference_us: u64,
    /// Time from the arrival of the last received packet in the range to sending this feedback.
    pub ack_delay_us: u32,
    /// `ceil(count / 8)` bytes, bit `i % 8` of byte `i / 8` set when packet `base_pn + i` arrived.
    bitmap: &'a [u8],
    /// One zigzag LEB128 varint per received packet: arrival minus previous arrival, microseconds.
    /// The arrival time is when the receiver read the packet.
    deltas: &'a [u8],
    /// Empty, or one zigzag LEB128 varint per received packet: the time the packet reached the
    /// receiver's socket (a kernel stamp) minus the previous one, the first relative to
    /// `reference_us`. Train dispersion is measured on these; queuing delay on `deltas`.
    socket_deltas: &'a [u8],
}

/// When one reported packet arrived, receiver clock, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalTimes {
    /// When the receiving endpoint read it: what queuing delay is measured on, so a receiver
    /// that falls behind shows as delay.
    pub read_us: u64,
    /// When it reached the receiver's socket (the read time when the report carries no
    /// socket times): what train dispersion is measured on.
    pub socket_us: u64,
}

impl<'a> Feedback<'a> {
    /// Build from parts produced by [`crate::feedback::FeedbackRecorder`]; validates like decode.
    pub fn from_parts(
        seq: u32,
        base_pn: u64,
        count: u16,
        reference_us: u64,
        ack_delay_us: u32,
        bitmap: &'a [u8],
        deltas: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let fb = Feedback {
            seq,
            base_pn,
            count,
            reference_us,
            ack_delay_us,
            bitmap,
            deltas,
            socket_deltas: &[],
        };
        fb.validate()?;
        Ok(fb)
    }

    /// Add the socket arrival times (one delta per received packet, or empty for none);
    /// validates like decode.
    pub fn with_socket_deltas(mut self, socket_deltas: &'a [u8]) -> Result<Self, DecodeError> {
        if !socket_deltas.is_empty() {
            self.check_times(socket_deltas)?;
        }
        self.socket_deltas = socket_deltas;
        Ok(self)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |reason| DecodeError::Invalid {
            field: "feedback",
            reason,
        };
        let count = self.count as usize;
        if count == 0 || count > MAX_FEEDBACK_PACKETS {
            return Err(invalid("packet count out of range"));
        }
        if self.bitmap.len() != count.div_ceil(8) {
            return Err(invalid("bitmap length disagrees with count"));
        }
        // The length matches, so the last byte holds packets `count / 8 * 8 ..`.
        if count % 8 != 0 && self.bitmap.last().is_some_and(|b| b >> (count % 8) != 0) {
            return Err(invalid("bits set past the end of the range"));
        }
        if self.base_pn.checked_add(count as u64).is_none() {
            return Err(invalid("packet number range overflows"));
        }
        self.check_times(self.deltas)
    }

    /// One delta per received packet and the running time never leaves `0..2⁶⁴`.
    fn check_times(&self, section: &[u8]) -> Result<(), DecodeError> {
        let invalid = |reason| DecodeError::Invalid {
            field: "feedback",
            reason,
        };
        let mut r = Reader::new(section);
        let mut t = self.reference_us;
        for _ in 0..self.received() {
            let d = unzigzag(r.varint()?);
            t = t
                .checked_add_signed(d)
                .ok_or(invalid("arrival time overflows"))?;
        }
        if r.remaining() != 0 {
            return Err(invalid("more deltas than received packets"));
        }
        Ok(())
    }

    fn received(&self) -> u32 {
        self.bitmap.iter().map(|b| b.count_ones()).sum()
    }

    /// Split a decoded body's tail into the read-time deltas and the optional socket-time
    /// deltas that follow them.
    fn split_deltas(bitmap: &[u8], tail: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        let received: u32 = bitmap.iter().map(|b| b.count_ones()).sum();
        let mut r = Reader::new(tail);
        for _ in 0..received {
            r.varint()?;
        }
        Ok(tail.split_at(tail.len() - r.remaining()))
    }

    /// Every covered packet number with its arrival times (receiver clock, µs) or `None` if lost.
    pub fn packets(&self) -> FeedbackIter<'a> {
        FeedbackIter {
            base_pn: self.base_pn,
            count: self.count as usize,
            bitmap: self.bitmap,
            deltas: Reader::new(self.deltas),
            socket_deltas: (!self.socket_deltas.is_empty())
                .then(|| Reader::new(self.socket_deltas)),
            i: 0,
            t: self.reference_us,
            s: self.reference_us,
        }
    }

    /// Whether the report carries socket arrival times besides read times.
    pub fn has_socket_times(&self) -> bool {
        !self.socket_deltas.is_empty()
    }

    pub fn bitmap(&self) -> &'a [u8] {
        self.bitmap
    }

    pub fn deltas(&self) -> &'a [u8] {
        self.deltas
    }

    pub fn socket_deltas(&self) -> &'a [u8] {
        self.socket_deltas
    }
}

/// Iterator over a validated [`Feedback`].
pub struct FeedbackIter<'a> {
    base_pn: u64,
    count: usize,
    bitmap: &'a [u8],
    deltas: Reader<'a>,
    socket_deltas: Option<Reader<'a>>,
    i: usize,
    t: u64,
    s: u64,
}

impl Iterator for FeedbackIter<'_> {
    type Item = (u64, Option<ArrivalTimes>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.count {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let pn = self.base_pn + i as u64;
        // Validated: the bitmap has a bit for each of the `count` packets.
        if self.bitmap.get(i / 8)? & (1 << (i % 8)) == 0 {
            return Some((pn, None));
        }
        // Validated on decode, so the varint is present and the sum cannot overflow.
        let d = unzigzag(self.deltas.varint().unwrap_or(0));
        self.t = self.t.saturating_add_signed(d);
        let socket_us = match self.socket_deltas.as_mut() {
            Some(r) => {
                self.s = self
                    .s
                    .saturating_add_signed(unzigzag(r.varint().unwrap_or(0)));
                self.s
            }
            None => self.t,
        };
        Some((
            pn,
            Some(ArrivalTimes {
                read_us: self.t,
                socket_us,
            }),
        ))
    }
}

/// Kind of a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryKind {
    /// Send an intra frame.
    Keyframe = 0,
    /// Encode the next frame referencing only `last_good_frame` or earlier (reference
    /// invalidation); the sender may answer with a keyframe instead.
    InvalidateReferences = 1,
}

/// A packet body, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    HandshakeInit(Handshake<'a>),
    HandshakeResponse(Handshake<'a>),
    HandshakeFinish(Handshake<'a>),
    VersionNegotiation(VersionNegotiation<'a>),
    Close {
        code: u16,
        reason: &'a str,
    },
    Ping {
        id: u64,
    },
    Pong {
        id: u64,
    },
    /// The responder's address-validation reply to a `HandshakeInit` (cleartext): `echo` is the
    /// first 16 bytes of that initiation's Noise message (its ephemeral key, so an off-path
    /// sender cannot forge a Retry), `cookie` goes into the repeated initiation.
    Retry {
        echo: [u8; RETRY_ECHO_LEN],
        cookie: [u8; COOKIE_LEN],
    },
    /// One message of a rekey handshake (Noise XX, `step` 1 to 3), encrypted under the
    /// current keys so that nobody but the peer can start, answer or stall a rekey.
    Rekey {
        step: u8,
        noise: &'a [u8],
    },
    Control {
        seq: u32,
        message: &'a [u8],
    },
    /// `next_expected`: every seq below it arrived. Bit `i` of `sack` set: `next_expected + 1 + i` arrived.
    ControlAck {
        next_expected: u32,
        sack: u64,
    },
    /// Events `first_seq .. first_seq + n`, each a length-prefixed record (see [`InputEvents`]).
    Input {
        first_seq: u32,
        events: InputEvents<'a>,
    },
    MediaData {
        header: MediaHeader,
        payload: &'a [u8],
    },
    MediaParity {
        header: MediaHeader,
        payload: &'a [u8],
    },
    Feedback(Feedback<'a>),
    Nack {
        stream: u8,
        frame_id: u32,
        /// Big-endian u16 fragment indices; use [`nack_indices`].
        indices: &'a [u8],
    },
    KeyframeRequest {
        stream: u8,
        kind: RecoveryKind,
        /// First frame the receiver could not decode.
        first_lost_frame: u32,
        /// Last frame the receiver decoded before the loss (meaningful for reference invalidation).
        last_good_frame: u32,
    },
}

/// Decode the indices of a NACK body.
pub fn nack_indices(raw: &[u8]) -> impl Iterator<Item = u16> + '_ {
    be_u16s(raw)
}

/// The big-endian u16s of `raw`, a trailing odd byte ignored.
fn be_u16s(mut raw: &[u8]) -> impl Iterator<Item = u16> + '_ {
    std::iter::from_fn(move || {
        let (c, rest) = raw.split_first_chunk::<2>()?;
        raw = rest;
        Some(u16::from_be_bytes(*c))
    })
}

/// Input event records of an input packet: `count` records of `len: u8, bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvents<'a> {
    count: u8,
    raw: &'a [u8],
}

impl<'a> InputEvents<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut raw = self.raw;
        std::iter::from_fn(move || {
            let (&len, rest) = raw.split_first()?;
            let (ev, rest) = rest.split_at_checked(len as usize)?;
            raw = rest;
            Some(ev)
        })
    }

    /// Encode events as records; errors on too many or too long events.
    pub fn encode<'e>(
        events: impl IntoIterator<Item = &'e [u8]>,
        out: &mut [u8],
    ) -> Result<(u8, usize), EncodeError> {
        let mut w = Writer::new(out);
        let mut n = 0usize;
        for ev in events {
            if ev.len() > MAX_INPUT_EVENT_LEN || n == MAX_INPUT_EVENTS {
                return Err(EncodeError::Invalid {
                    field: "input",
                    reason: "too many or too long input events",
                });
            }
            w.u8(ev.len() as u8)?;
            w.bytes(ev)?;
            n += 1;
        }
        Ok((n as u8, w.pos))
    }

    /// Wrap already-encoded records (as produced by [`InputEvents::encode`]).
    pub fn from_encoded(count: u8, raw: &'a [u8]) -> Result<Self, DecodeError> {
        if count as usize > MAX_INPUT_EVENTS {
            return Err(DecodeError::Invalid {
                field: "input",
                reason: "more than MAX_INPUT_EVENTS events",
            });
        }
        let mut r = Reader::new(raw);
        for _ in 0..count {
            let len = r.u8()? as usize;
            if len > MAX_INPUT_EVENT_LEN {
                return Err(DecodeError::Invalid {
                    field: "input",
                    reason: "event record too long",
                });
            }
            r.take(len)?;
        }
        if r.remaining() != 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(InputEvents { count, raw })
    }
}

/// A whole packet: header plus plaintext body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub header: Header,
    pub body: Body<'a>,
}

impl<'a> Body<'a> {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Body::HandshakeInit(_) => PacketType::HandshakeInit,
            Body::HandshakeResponse(_) => PacketType::HandshakeResponse,
            Body::HandshakeFinish(_) => PacketType::HandshakeFinish,
            Body::VersionNegotiation(_) => PacketType::VersionNegotiation,
            Body::Close { .. } => PacketType::Close,
            Body::Ping { .. } => PacketType::Ping,
            Body::Pong { .. } => PacketType::Pong,
            Body::Retry { .. } => PacketType::Retry,
            Body::Rekey { .. } => PacketType::Rekey,
            Body::Control { .. } => PacketType::Control,
            Body::ControlAck { .. } => PacketType::ControlAck,
            Body::Input { .. } => PacketType::Input,
            Body::MediaData { .. } => PacketType::MediaData,
            Body::MediaParity { .. } => PacketType::MediaParity,
            Body::Feedback(_) => PacketType::Feedback,
            Body::Nack { .. } => PacketType::Nack,
            Body::KeyframeRequest { .. } => PacketType::KeyframeRequest,
        }
    }

    /// Build a version negotiation body from a list of versions (encoded into `scratch`).
    pub fn version_negotiation(
        versions: &[u16],
        scratch: &'a mut [u8],
    ) -> Result<Self, EncodeError> {
        let mut w = Writer::new(scratch);
        for v in versions {
            w.u16(*v)?;
        }
        Ok(Body::VersionNegotiation(VersionNegotiation {
            raw: w.into_written(),
        }))
    }

    /// Encode the body (without header or tag) into `out`, returning its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        match *self {
            Body::HandshakeInit(h) | Body::HandshakeResponse(h) | Body::HandshakeFinish(h) => {
                if h.source_connection_id == 0 {
                    return Err(EncodeError::Invalid {
                        field: "handshake.source_connection_id",
                        reason: "must not be 0",
                    });
                }
                w.u16(h.version)?;
                w.u32(h.source_connection_id)?;
                w.bytes(h.noise)?;
            }
            Body::VersionNegotiation(v) => {
                if v.raw.is_empty() || v.raw.len() > 2 * 255 {
                    return Err(EncodeError::Invalid {
                        field: "versions",
                        reason: "1 to 255 versions",
                    });
                }
                w.u8((v.raw.len() / 2) as u8)?;
                w.bytes(v.raw)?;
            }
            Body::Close { code, reason } => {
                if reason.len() > MAX_CLOSE_REASON {
                    return Err(EncodeError::Invalid {
                        field: "close.reason",
                        reason: "longer than 256 bytes",
                    });
                }
                w.u16(code)?;
                w.u16(reason.len() as u16)?;
                w.bytes(reason.as_bytes())?;
            }
            Body::Ping { id } | Body::Pong { id } => w.u64(id)?,
            Body::Retry { echo, cookie } => {
                w.bytes(&echo)?;
                w.bytes(&cookie)?;
            }
            Body::Rekey { step, noise } => {
                if !(1..=3).contains(&step) {
                    return Err(EncodeError::Invalid {
                        field: "rekey.step",
                        reason: "1 to 3",
                    });
                }
                w.u8(step)?;
                w.bytes(noise)?;
            }
            Body::Control { seq, message } => {
                if message.len() > MAX_CONTROL_MESSAGE {
                    return Err(EncodeError::Invalid {
                        field: "control.message",
                        reason: "longer than MAX_CONTROL_MESSAGE",
                    });
                }
                w.u32(seq)?;
                w.bytes(message)?;
            }
            Body::ControlAck {
                next_expected,
                sack,
            } => {
                w.u32(next_expected)?;
                w.u64(sack)?;
            }
            Body::Input { first_seq, events } => {
                w.u32(first_seq)?;
                w.u8(events.count)?;
                w.bytes(events.raw)?;
            }
            Body::MediaData { header, payload } => {
                if !header.fits(payload, false) {
                    return Err(EncodeError::Invalid {
                        field: "media.data",
                        reason: "index or payload length disagrees with the frame layout",
                    });
                }
                header.write(&mut w)?;
                w.bytes(payload)?;
            }
            Body::MediaParity { header, payload } => {
                if !header.fits(payload, true) {
                    return Err(EncodeError::Invalid {
                        field: "media.parity",
                        reason: "index or payload length disagrees with the frame layout",
                    });
                }
                header.write(&mut w)?;
                w.bytes(payload)?;
            }
            Body::Feedback(f) => {
                w.u32(f.seq)?;
                w.u64(f.base_pn)?;
                w.u16(f.count)?;
                w.u64(f.reference_us)?;
                w.u32(f.ack_delay_us)?;
                w.bytes(f.bitmap)?;
                w.bytes(f.deltas)?;
                w.bytes(f.socket_deltas)?;
            }
            Body::Nack {
                stream,
                frame_id,
                indices,
            } => {
                if indices.is_empty()
                    || indices.len() % 2 != 0
                    || indices.len() / 2 > MAX_NACK_ENTRIES
                {
                    return Err(EncodeError::Invalid {
                        field: "nack",
                        reason: "1 to 256 u16 indices",
                    });
                }
                w.u8(stream)?;
                w.u32(frame_id)?;
                w.u16((indices.len() / 2) as u16)?;
                w.bytes(indices)?;
            }
            Body::KeyframeRequest {
                stream,
                kind,
                first_lost_frame,
                last_good_frame,
            } => {
                w.u8(stream)?;
                w.u8(kind as u8)?;
                w.u32(first_lost_frame)?;
                w.u32(last_good_frame)?;
            }
        }
        Ok(w.pos)
    }

    /// Decode a plaintext body of type `t`. The whole of `buf` must be the body.
    pub fn decode(t: PacketType, buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let handshake = |r: &mut Reader<'a>| -> Result<Handshake<'a>, DecodeError> {
            let version = r.u16()?;
            let source_connection_id = r.u32()?;
            if source_connection_id == 0 {
                return Err(DecodeError::ZeroConnectionId);
            }
            Ok(Handshake {
                version,
                source_connection_id,
                noise: r.rest(),
            })
        };
        let body = match t {
            PacketType::HandshakeInit => Body::HandshakeInit(handshake(&mut r)?),
            PacketType::HandshakeResponse => Body::HandshakeResponse(handshake(&mut r)?),
            PacketType::HandshakeFinish => Body::HandshakeFinish(handshake(&mut r)?),
            PacketType::VersionNegotiation => {
                let n = r.u8()? as usize;
                if n == 0 {
                    return Err(DecodeError::Invalid {
                        field: "versions",
                        reason: "empty version list",
                    });
                }
                Body::VersionNegotiation(VersionNegotiation {
                    raw: r.take(2 * n)?,
                })
            }
            PacketType::Close => {
                let code = r.u16()?;
                let len = r.u16()? as usize;
                if len > MAX_CLOSE_REASON {
                    return Err(DecodeError::Invalid {
                        field: "close.reason",
                        reason: "longer than 256 bytes",
                    });
                }
                let reason =
                    std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::Invalid {
                        field: "close.reason",
                        reason: "not UTF-8",
                    })?;
                Body::Close { code, reason }
            }
            PacketType::Ping => Body::Ping { id: r.u64()? },
            PacketType::Pong => Body::Pong { id: r.u64()? },
            PacketType::Retry => Body::Retry {
                echo: r.array()?,
                cookie: r.array()?,
            },
            PacketType::Rekey => {
                let step = r.u8()?;
                if !(1..=3).contains(&step) {
                    return Err(DecodeError::Invalid {
                        field: "rekey.step",
                        reason: "1 to 3",
                    });
                }
                Body::Rekey {
                    step,
                    noise: r.rest(),
                }
            }
            PacketType::Control => {
                let seq = r.u32()?;
                let message = r.rest();
                if message.len() > MAX_CONTROL_MESSAGE {
                    return Err(DecodeError::Invalid {
                        field: "control.message",
                        reason: "longer than MAX_CONTROL_MESSAGE",
                    });
                }
                Body::Control { seq, message }
            }
            PacketType::ControlAck => Body::ControlAck {
                next_expected: r.u32()?,
                sack: r.u64()?,
            },
            PacketType::Input => {
                let first_seq = r.u32()?;
                let count = r.u8()?;
                if count as usize > MAX_INPUT_EVENTS {
                    return Err(DecodeError::Invalid {
                        field: "input",
                        reason: "more than MAX_INPUT_EVENTS events",
                    });
                }
                Body::Input {
                    first_seq,
                    events: InputEvents::from_encoded(count, r.rest())?,
                }
            }
            PacketType::MediaData => {
                let header = MediaHeader::read(&mut r)?;
                let payload = r.rest();
                if !header.fits(payload, false) {
                    return Err(DecodeError::Invalid {
                        field: "media.data",
                        reason: "index or payload length disagrees with the frame layout",
                    });
                }
                Body::MediaData { header, payload }
            }
            PacketType::MediaParity => {
                let header = MediaHeader::read(&mut r)?;
                let payload = r.rest();
                if !header.fits(payload, true) {
                    return Err(DecodeError::Invalid {
                        field: "media.parity",
                        reason: "index or payload length disagrees with the frame layout",
                    });
                }
                Body::MediaParity { header, payload }
            }
            PacketType::Feedback => {
                let seq = r.u32()?;
                let base_pn = r.u64()?;
                let count = r.u16()?;
                let reference_us = r.u64()?;
                let ack_delay_us = r.u32()?;
                let bitmap = r.take((count as usize).div_ceil(8))?;
                let (deltas, socket_deltas) = Feedback::split_deltas(bitmap, r.rest())?;
                Body::Feedback(
                    Feedback::from_parts(
                        seq,
                        base_pn,
                        count,
                        reference_us,
                        ack_delay_us,
                        bitmap,
                        deltas,
                    )?
                    .with_socket_deltas(socket_deltas)?,
                )
            }
            PacketType::Nack => {
                let stream = r.u8()?;
                let frame_id = r.u32()?;
                let n = r.u16()? as usize;
                if n == 0 || n > MAX_NACK_ENTRIES {
                    return Err(DecodeError::Invalid {
                        field: "nack",
                        reason: "1 to 256 indices",
                    });
                }
                Body::Nack {
                    stream,
                    frame_id,
                    indices: r.take(2 * n)?,
                }
            }
            PacketType::KeyframeRequest => {
                let stream = r.u8()?;
                let kind = match r.u8()? {
                    0 => RecoveryKind::Keyframe,
                    1 => RecoveryKind::InvalidateReferences,
                    _ => {
                        return Err(DecodeError::Invalid {
                            field: "keyframe_request.kind",
                            reason: "unknown kind",
                        })
                    }
                };
                Body::KeyframeRequest {
                    stream,
                    kind,
                    first_lost_frame: r.u32()?,
                    last_good_frame: r.u32()?,
                }
            }
        };
        if r.remaining() != 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(body)
    }
}

impl<'a> Packet<'a> {
    /// Encode header and plaintext body into `out`; returns the total length. An encrypting
    /// transport seals `out[HEADER_LEN..len]` with `out[..HEADER_LEN]` as associated data.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        if self.header.packet_type != self.body.packet_type() {
            return Err(EncodeError::Invalid {
                field: "header.packet_type",
                reason: "disagrees with the body",
            });
        }
        let have = out.len();
        let (header, body) =
            out.split_at_mut_checked(HEADER_LEN)
                .ok_or(EncodeError::BufferTooSmall {
                    needed: HEADER_LEN,
                    have,
                })?;
        self.header.encode(header)?;
        let n = HEADER_LEN + self.body.encode(body)?;
        let wire = n + if self.header.packet_type.is_encrypted() {
            TAG_LEN
        } else {
            0
        };
        if wire > MAX_DATAGRAM {
            return Err(EncodeError::TooLong(wire));
        }
        Ok(n)
    }

    /// Decode a plaintext packet (header followed by the decrypted body, tag removed).
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let header = Header::decode(buf)?;
        // The plaintext of an encrypted packet is its datagram less the tag.
        if header.packet_type.is_encrypted() && buf.len() + TAG_LEN > MAX_DATAGRAM {
            return Err(DecodeError::TooLong(buf.len() + TAG_LEN));
        }
        // Header::decode read HEADER_LEN bytes.
        let body = buf.get(HEADER_LEN..).ok_or(DecodeError::Truncated {
            needed: HEADER_LEN,
            had: buf.len(),
        })?;
        let body = Body::decode(header.packet_type, body)?;
        Ok(Packet { header, body })
    }
}

/// Bounds-checked big-endian reader.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    /// The bytes not read yet: a suffix of the buffer.
    unread: &'a [u8],
    /// Length of the whole buffer.
    len: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            unread: buf,
            len: buf.len(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.unread.len()
    }

    fn truncated(&self, n: usize) -> DecodeError {
        DecodeError::Truncated {
            needed: self.len - self.unread.len() + n,
            had: self.len,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let Some((s, unread)) = self.unread.split_at_checked(n) else {
            return Err(self.truncated(n));
        };
        self.unread = unread;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((a, unread)) = self.unread.split_first_chunk::<N>() else {
            return Err(self.truncated(N));
        };
        self.unread = unread;
        Ok(*a)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.unread)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array()?;
        Ok(b)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Unsigned LEB128, at most 10 bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = (b & 0x7f) as u64;
            if i == 9 && bits > 1 {
                break;
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid {
            field: "varint",
            reason: "longer than 64 bits",
        })
    }
}

/// Bounds-checked big-endian writer into a fixed buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pub(crate) pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + b.len();
        let have = self.buf.len();
        let Some(dst) = self.buf.get_mut(self.pos..end) else {
            return Err(EncodeError::BufferTooSmall { needed: end, have });
        };
        dst.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// The bytes written so far.
    pub(crate) fn into_written(self) -> &'a [u8] {
        let buf: &'a [u8] = self.buf;
        // `pos` never passes the end of `buf`.
        buf.get(..self.pos).unwrap_or_default()
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.bytes(&[v])
    }
    pub(crate) fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }
    pub(crate) fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }
    pub(crate) fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }
    pub(crate) fn varint(&mut self, mut v: u64) -> Result<(), EncodeError> {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                return self.u8(b);
            }
            self.u8(b | 0x80)?;
        }
    }
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> MediaFields {
        MediaFields {
            stream: STREAM_VIDEO,
            keyframe: true,
            recovery_point: false,
            fec: FecScheme::Xor,
            frame_id: 7,
            frame_len: 10_000,
            capture_us: 1,
            frag_count: 9,
            fec_count: 2,
            index: 0,
        }
    }

    #[test]
    fn a_media_header_is_built_only_from_a_valid_layout() {
        let h = MediaHeader::new(fields()).unwrap();
        assert_eq!(h.fields(), fields());
        for bad in [
            MediaFields {
                frag_count: 0,
                ..fields()
            },
            MediaFields {
                frame_len: 8,
                ..fields()
            },
            MediaFields {
                fec_count: 0,
                ..fields()
            },
            MediaFields {
                fec: FecScheme::None,
                ..fields()
            },
            MediaFields {
                fec_count: 10,
                ..fields()
            },
            MediaFields {
                index: 9,
                ..fields()
            },
        ] {
            assert!(MediaHeader::new(bad).is_err(), "{bad:?}");
        }
        assert!(h.with_index(8).is_ok());
        assert!(h.with_index(9).is_err());
    }

    #[test]
    fn fits_tells_data_from_parity() {
        let h = MediaHeader::new(fields()).unwrap();
        let data = vec![0u8; MediaHeader::fragment_len(10_000, 9, 0)];
        let parity = vec![0u8; h.parity_len()];
        assert!(h.fits(&data, false));
        assert!(!h.fits(&data[1..], false));
        assert!(h.fits(&parity, true));
        let h = h.with_index(2).unwrap();
        assert!(!h.fits(&parity, true), "parity index beyond fec_count");
    }
}
