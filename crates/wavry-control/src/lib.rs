//! wavry-control: the messages on a session's RIFT control channel between a host and a client
//! (docs/CONTROL.md), carried one per RIFT control message (reliable, ordered, at most
//! `MAX_CONTROL_MESSAGE` bytes), encoded with postcard.
//!
//! The client speaks first with `Hello`; the host answers with `Monitors` and `StreamInfo`
//! and sends `StreamInfo` again whenever the stream restarts (new monitor, new size).
//!
//! The gateway's HTTP and WebSocket bodies are not here but in wavry-proto: the gateway does not
//! build the RIFT stack, and host and client do not build the gateway API.

// Parses bytes from the network: no panics on them (docs/ARCHITECTURE.md, "Lints").
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![forbid(unsafe_code)]

use rift_core::wire::MAX_CONTROL_MESSAGE;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of this message set; a host refuses a `Hello` with another major version.
pub const PROTOCOL_VERSION: u16 = 1;

/// A video coding format on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
}

/// A monitor the host can stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorInfo {
    pub id: u32,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    /// Refresh rate in millihertz, when known.
    pub refresh_mhz: Option<u32>,
    pub primary: bool,
}

/// Largest cursor carried, pixels each way: a 64-pixel cursor at 2x scale. Bigger shapes are
/// refused (`ControlError::CursorTooLarge`), never cropped silently.
pub const MAX_CURSOR_SIDE: u16 = 128;

/// Pixel bytes per `CursorShape` chunk: with the chunk's header (at most 16 bytes) the message
/// stays under RIFT's 1200-byte cap. A 32x32 cursor is 4 chunks, the largest 64.
pub const CURSOR_CHUNK_BYTES: usize = 1024;

/// One piece of a cursor image (`ControlMessage::CursorShape`). A shape of `width × height`
/// pixels (B, G, R, A bytes, alpha premultiplied, rows top to bottom, no padding) is cut into
/// `chunks` pieces of `CURSOR_CHUNK_BYTES` (the last one shorter), sent in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorChunk {
    /// Changes whenever the shape does; `CursorPosition::serial` names the shape to draw.
    pub serial: u32,
    pub width: u16,
    pub height: u16,
    /// The pixel of the image that sits at the pointer position.
    pub hotspot_x: u16,
    pub hotspot_y: u16,
    /// This piece's index, from 0.
    pub chunk: u16,
    pub chunks: u16,
    /// Bytes `chunk * CURSOR_CHUNK_BYTES ..` of the image.
    pub bgra: Vec<u8>,
}

/// A whole cursor image, as cut into chunks by [`Cursor::chunks`] and put together again by
/// [`CursorAssembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub serial: u32,
    pub width: u16,
    pub height: u16,
    pub hotspot_x: u16,
    pub hotspot_y: u16,
    /// `width × height × 4` bytes: B, G, R, A, alpha premultiplied.
    pub bgra: Vec<u8>,
}

/// Checks the geometry of a shape; returns its image size in bytes and its number of chunks.
fn cursor_geometry(
    width: u16,
    height: u16,
    hotspot_x: u16,
    hotspot_y: u16,
) -> Result<(usize, u16), ControlError> {
    if width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
        return Err(ControlError::CursorTooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(ControlError::InvalidCursor("empty image"));
    }
    if hotspot_x >= width || hotspot_y >= height {
        return Err(ControlError::InvalidCursor("hotspot outside the image"));
    }
    let len = usize::from(width) * usize::from(height) * 4;
    // At most 128 * 128 * 4 / 1024 = 64: fits a u16.
    Ok((len, len.div_ceil(CURSOR_CHUNK_BYTES) as u16))
}

impl CursorChunk {
    /// Whether the chunk is consistent on its own: sizes within limits, index within the
    /// count, count and length those of the image.
    pub fn validate(&self) -> Result<(), ControlError> {
        let (len, chunks) =
            cursor_geometry(self.width, self.height, self.hotspot_x, self.hotspot_y)?;
        if self.chunks != chunks || self.chunk >= chunks {
            return Err(ControlError::InvalidCursor("chunk index or count"));
        }
        let start = usize::from(self.chunk) * CURSOR_CHUNK_BYTES;
        if self.bgra.len() != (len - start).min(CURSOR_CHUNK_BYTES) {
            return Err(ControlError::InvalidCursor("chunk length"));
        }
        Ok(())
    }
}

impl Cursor {
    /// The shape as `CursorShape` messages, in order; refused when it is larger than
    /// `MAX_CURSOR_SIDE`, empty, or its pixels do not match its size.
    pub fn chunks(&self) -> Result<Vec<ControlMessage>, ControlError> {
        let (len, chunks) =
            cursor_geometry(self.width, self.height, self.hotspot_x, self.hotspot_y)?;
        if self.bgra.len() != len {
            return Err(ControlError::InvalidCursor("pixels do not match the size"));
        }
        Ok(self
            .bgra
            .chunks(CURSOR_CHUNK_BYTES)
            .enumerate()
            .map(|(i, piece)| {
                ControlMessage::CursorShape(CursorChunk {
                    serial: self.serial,
                    width: self.width,
                    height: self.height,
                    hotspot_x: self.hotspot_x,
                    hotspot_y: self.hotspot_y,
                    chunk: i as u16,
                    chunks,
                    bgra: piece.to_vec(),
                })
            })
            .collect())
    }

    /// Whether any pixel is not fully transparent (an application "hides" the pointer with a
    /// transparent cursor).
    pub fn is_visible(&self) -> bool {
        // Alpha is byte 3 of each BGRA pixel.
        self.bgra.iter().skip(3).step_by(4).any(|&a| a != 0)
    }
}

/// Puts a cursor shape together from its chunks (which arrive in order on the reliable
/// control channel). Memory is bounded by one image of `MAX_CURSOR_SIDE`.
#[derive(Debug, Default)]
pub struct CursorAssembler {
    partial: Option<(CursorChunk, Vec<u8>)>,
}

impl CursorAssembler {
    /// Take the next chunk; returns the shape once its last chunk is in. A chunk out of
    /// sequence drops the shape being assembled (and is an error); a chunk 0 starts anew.
    pub fn push(&mut self, mut chunk: CursorChunk) -> Result<Option<Cursor>, ControlError> {
        chunk.validate()?;
        let pixels = std::mem::take(&mut chunk.bgra);
        let (index, count) = (chunk.chunk, chunk.chunks);
        if index == 0 {
            let total = usize::from(chunk.width) * usize::from(chunk.height) * 4;
            self.partial = Some((chunk, Vec::with_capacity(total)));
        } else {
            let same = |a: &CursorChunk| {
                (a.serial, a.width, a.height, a.hotspot_x, a.hotspot_y)
                    == (
                        chunk.serial,
                        chunk.width,
                        chunk.height,
                        chunk.hotspot_x,
                        chunk.hotspot_y,
                    )
            };
            let follows = self.partial.as_ref().is_some_and(|(first, data)| {
                same(first) && data.len() == usize::from(index) * CURSOR_CHUNK_BYTES
            });
            if !follows {
                self.partial = None;
                return Err(ControlError::InvalidCursor("chunk out of sequence"));
            }
        }
        let Some((_, data)) = self.partial.as_mut() else {
            return Ok(None);
        };
        data.extend_from_slice(&pixels);
        if index + 1 < count {
            return Ok(None);
        }
        Ok(self.partial.take().map(|(first, bgra)| Cursor {
            serial: first.serial,
            width: first.width,
            height: first.height,
            hotspot_x: first.hotspot_x,
            hotspot_y: first.hotspot_y,
            bgra,
        }))
    }
}

/// Mean and 95th percentile of a latency stage, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStat {
    pub mean_us: u32,
    pub p95_us: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlMessage {
    /// Client → host, first: who it is and what it can decode (most preferred first).
    Hello {
        version: u16,
        client: String,
        decoders: Vec<Codec>,
    },
    /// Host → client: the stream as it is now (sent on start and on every restart).
    StreamInfo {
        codec: Codec,
        encoder: String,
        width: u32,
        height: u32,
        fps: u32,
        /// The monitor streamed; `None` for the whole screen.
        monitor: Option<u32>,
    },
    /// Client → host: send `Monitors`.
    ListMonitors,
    /// Host → client: the monitors and which one is streamed (`None`: the whole screen).
    Monitors {
        monitors: Vec<MonitorInfo>,
        selected: Option<u32>,
    },
    /// Client → host: stream this monitor (`None`: the whole screen).
    SelectMonitor { id: Option<u32> },
    /// Host → client, once a second: the host's side of the latency, for the stats overlay.
    HostStats {
        /// From the screen grab to the encoded frame handed to the transport.
        capture_encode: StageStat,
        /// Encoder bitrate DELTA asked for, bit/s.
        bitrate: u64,
        /// Frames encoded in the last second.
        fps: u32,
        /// Loss of the host's packets on the way to the client, per mille (from feedback).
        loss_permille: u32,
        /// The host's encoder pool this session: encoders opened, and stream (re)starts served
        /// by a running encoder (reuse rate = reused / (opened + reused)).
        encoders_opened: u32,
        encoders_reused: u32,
    },
    /// Either way: something the peer asked for cannot be done.
    Error { message: String },
    /// Host → client: a piece of the cursor image, sent when the shape changes (and once at
    /// the start); see [`CursorChunk`].
    CursorShape(CursorChunk),
    /// Host → client: where the pointer is, in pixels of the streamed picture (the hotspot's
    /// position; it may lie outside the picture), sent when it moves or the shape changes.
    CursorPosition {
        x: i32,
        y: i32,
        /// False while the pointer is outside the streamed area or its shape is fully
        /// transparent: draw nothing.
        visible: bool,
        /// The shape to draw (`CursorChunk::serial`).
        serial: u32,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("control message does not fit in {MAX_CONTROL_MESSAGE} bytes")]
    TooLarge,
    #[error("malformed control message: {0}")]
    Malformed(String),
    #[error("cursor of {width}x{height} is larger than {MAX_CURSOR_SIDE}x{MAX_CURSOR_SIDE}")]
    CursorTooLarge { width: u16, height: u16 },
    #[error("invalid cursor shape: {0}")]
    InvalidCursor(&'static str),
}

impl ControlMessage {
    /// Encode into a RIFT control message.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        self.validate()?;
        let mut buf = [0u8; MAX_CONTROL_MESSAGE];
        let used = postcard::to_slice(self, &mut buf).map_err(|e| match e {
            postcard::Error::SerializeBufferFull => ControlError::TooLarge,
            e => ControlError::Malformed(e.to_string()),
        })?;
        Ok(used.to_vec())
    }

    /// Decode a RIFT control message; from the network, so anything may arrive.
    pub fn decode(bytes: &[u8]) -> Result<Self, ControlError> {
        if bytes.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::TooLarge);
        }
        let (msg, rest) = postcard::take_from_bytes::<ControlMessage>(bytes)
            .map_err(|e| ControlError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ControlError::Malformed(format!(
                "{} bytes after the message",
                rest.len()
            )));
        }
        msg.validate()?;
        Ok(msg)
    }

    /// Checks beyond the encoding itself (a cursor chunk's sizes and index).
    fn validate(&self) -> Result<(), ControlError> {
        match self {
            ControlMessage::CursorShape(c) => c.validate(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<ControlMessage> {
        vec![
            ControlMessage::Hello {
                version: PROTOCOL_VERSION,
                client: "laptop".into(),
                decoders: vec![Codec::Av1, Codec::H264],
            },
            ControlMessage::StreamInfo {
                codec: Codec::H264,
                encoder: "libx264".into(),
                width: 1920,
                height: 1080,
                fps: 60,
                monitor: Some(7),
            },
            ControlMessage::ListMonitors,
            ControlMessage::Monitors {
                monitors: vec![MonitorInfo {
                    id: 7,
                    name: "HDMI-1".into(),
                    x: 1920,
                    y: 0,
                    width: 2560,
                    height: 1440,
                    refresh_mhz: Some(143_998),
                    primary: false,
                }],
                selected: None,
            },
            ControlMessage::SelectMonitor { id: None },
            ControlMessage::HostStats {
                capture_encode: StageStat {
                    mean_us: 4100,
                    p95_us: 6000,
                },
                bitrate: 18_000_000,
                fps: 60,
                loss_permille: 12,
                encoders_opened: 1,
                encoders_reused: 2,
            },
            ControlMessage::Error {
                message: "no such monitor".into(),
            },
            ControlMessage::CursorPosition {
                x: -3,
                y: 1079,
                visible: true,
                serial: 42,
            },
        ]
        .into_iter()
        .chain(cursor(32, 32).chunks().unwrap())
        .collect()
    }

    fn cursor(width: u16, height: u16) -> Cursor {
        Cursor {
            serial: 42,
            width,
            height,
            hotspot_x: width / 2,
            hotspot_y: 0,
            bgra: (0..usize::from(width) * usize::from(height) * 4)
                .map(|i| (i * 7) as u8)
                .collect(),
        }
    }

    #[test]
    fn cursor_shapes_are_chunked_within_the_cap_and_reassembled() {
        for (w, h) in [(1, 1), (16, 16), (32, 32), (24, 48), (127, 3), (128, 128)] {
            let c = cursor(w, h);
            let msgs = c.chunks().unwrap();
            let len = usize::from(w) * usize::from(h) * 4;
            assert_eq!(msgs.len(), len.div_ceil(CURSOR_CHUNK_BYTES));
            let mut asm = CursorAssembler::default();
            let mut out = None;
            for (i, m) in msgs.iter().enumerate() {
                let bytes = m.encode().unwrap();
                assert!(bytes.len() <= MAX_CONTROL_MESSAGE);
                let ControlMessage::CursorShape(chunk) = ControlMessage::decode(&bytes).unwrap()
                else {
                    panic!("not a cursor chunk")
                };
                let r = asm.push(chunk).unwrap();
                assert_eq!(r.is_some(), i + 1 == msgs.len());
                out = out.or(r);
            }
            assert_eq!(out, Some(c));
        }
        // 32x32: 4 KiB in 4 messages of 1024 pixel bytes each.
        let msgs = cursor(32, 32).chunks().unwrap();
        assert_eq!(msgs.len(), 4);
        // The largest message: a full piece with every header field at its longest varint.
        let mut largest = cursor(128, 128);
        largest.serial = u32::MAX;
        (largest.hotspot_x, largest.hotspot_y) = (127, 127);
        let biggest = largest
            .chunks()
            .unwrap()
            .iter()
            .map(|m| m.encode().unwrap().len())
            .max();
        assert_eq!(biggest, Some(CURSOR_CHUNK_BYTES + 16));
    }

    #[test]
    fn bad_cursor_shapes_are_refused() {
        assert_eq!(
            cursor(129, 4).chunks(),
            Err(ControlError::CursorTooLarge {
                width: 129,
                height: 4
            })
        );
        assert!(matches!(
            cursor(0, 4).chunks(),
            Err(ControlError::InvalidCursor(_))
        ));
        let mut c = cursor(8, 8);
        c.hotspot_y = 8;
        assert!(c.chunks().is_err());
        let mut c = cursor(8, 8);
        c.bgra.pop();
        assert!(c.chunks().is_err());

        let good = || match cursor(32, 32).chunks().unwrap().remove(1) {
            ControlMessage::CursorShape(c) => c,
            _ => unreachable!(),
        };
        type Break = fn(&mut CursorChunk);
        let breaks: [Break; 7] = [
            |c| c.chunk = 4,
            |c| c.chunks = 5,
            |c| c.bgra.push(0),
            |c| c.bgra.clear(),
            |c| c.width = 200,
            |c| c.hotspot_x = 40,
            |c| c.height = 0,
        ];
        for b in breaks {
            let mut c = good();
            b(&mut c);
            // Refused when sent, and when such bytes arrive.
            let msg = ControlMessage::CursorShape(c.clone());
            assert!(msg.encode().is_err(), "{c:?}");
            let raw = postcard::to_allocvec(&msg).unwrap();
            assert!(ControlMessage::decode(&raw).is_err(), "{c:?}");
            assert!(CursorAssembler::default().push(c).is_err());
        }
    }

    #[test]
    fn cursor_chunks_out_of_sequence_drop_the_shape() {
        let chunk = |m: ControlMessage| match m {
            ControlMessage::CursorShape(c) => c,
            _ => unreachable!(),
        };
        let a: Vec<_> = cursor(32, 32)
            .chunks()
            .unwrap()
            .into_iter()
            .map(chunk)
            .collect();
        let mut other = cursor(32, 32);
        other.serial = 43;
        let b: Vec<_> = other.chunks().unwrap().into_iter().map(chunk).collect();
        let mut asm = CursorAssembler::default();
        // A middle chunk first, a skipped chunk, another shape's chunk: refused.
        assert!(asm.push(a[1].clone()).is_err());
        assert_eq!(asm.push(a[0].clone()), Ok(None));
        assert!(asm.push(a[2].clone()).is_err());
        assert!(asm.push(a[3].clone()).is_err(), "the shape was dropped");
        assert_eq!(asm.push(a[0].clone()), Ok(None));
        assert!(asm.push(b[1].clone()).is_err());
        // A new chunk 0 starts over; the shape then completes.
        for c in &b {
            let _ = asm.push(c.clone());
        }
        assert_eq!(asm.push(a[0].clone()), Ok(None));
        let done = a[1..].iter().map(|c| asm.push(c.clone()).unwrap()).last();
        assert_eq!(done, Some(Some(cursor(32, 32))));
    }

    #[test]
    fn cursor_position_encoding_is_as_documented() {
        let m = ControlMessage::CursorPosition {
            x: 10,
            y: 20,
            visible: true,
            serial: 5,
        };
        // docs/CONTROL.md, "Cursor".
        assert_eq!(m.encode().unwrap(), [0x08, 0x14, 0x28, 0x01, 0x05]);
    }

    #[test]
    fn transparent_cursor_is_not_visible() {
        let mut c = cursor(4, 4);
        assert!(c.is_visible());
        c.bgra.iter_mut().for_each(|b| *b = 0);
        assert!(!c.is_visible());
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let b = m.encode().unwrap();
            assert_eq!(ControlMessage::decode(&b), Ok(m));
        }
    }

    #[test]
    fn trailing_truncated_and_oversized_input_is_refused() {
        let mut b = samples()[1].encode().unwrap();
        assert!(ControlMessage::decode(&b[..b.len() - 1]).is_err());
        b.push(0);
        assert!(matches!(
            ControlMessage::decode(&b),
            Err(ControlError::Malformed(_))
        ));
        assert_eq!(
            ControlMessage::decode(&vec![0u8; MAX_CONTROL_MESSAGE + 1]),
            Err(ControlError::TooLarge)
        );
        let huge = ControlMessage::Error {
            message: "x".repeat(2000),
        };
        assert_eq!(huge.encode(), Err(ControlError::TooLarge));
        // A length prefix claiming far more than is there does not allocate or panic.
        assert!(ControlMessage::decode(&[0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
