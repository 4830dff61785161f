//! Control messages between a host and a client, carried one per RIFT control message
//! (reliable, ordered, at most `MAX_CONTROL_MESSAGE` bytes), encoded with postcard.
//!
//! The client speaks first with `Hello`; the host answers with `Monitors` and `StreamInfo`
//! and sends `StreamInfo` again whenever the stream restarts (new monitor, new size).

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
    },
    /// Either way: something the peer asked for cannot be done.
    Error { message: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("control message does not fit in {MAX_CONTROL_MESSAGE} bytes")]
    TooLarge,
    #[error("malformed control message: {0}")]
    Malformed(String),
}

impl ControlMessage {
    /// Encode into a RIFT control message.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
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
        Ok(msg)
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
            },
            ControlMessage::Error {
                message: "no such monitor".into(),
            },
        ]
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
