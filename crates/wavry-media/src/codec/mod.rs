//! Video encoders and decoders behind two traits, opened by probing: hardware first (VA-API,
//! NVENC, QSV), software after (libx264, libx265, libaom for AV1 — SVT-AV1 only by name, it
//! lags frames; openh264 with the `openh264` feature), with one log line that says which one
//! runs and why each other was skipped.
//!
//! Every encoder is set up for interactive streaming: one frame in, its packet out (no
//! look-ahead, no B-frames), no periodic keyframes (a keyframe only at the start and on
//! request, or a rolling intra refresh), and a VBV buffer of one frame's budget so a single
//! frame never exceeds about `bitrate / fps` bytes. Settings and measured numbers: docs/MEDIA.md.

mod encoder_pool;
mod ffmpeg;
mod hw;
#[cfg(feature = "openh264")]
mod openh264;

pub use encoder_pool::{EncoderPool, EncoderPoolStats};

use crate::convert::{YuvFrame, YuvLayout};
use crate::frame::PixelSize;

/// A video coding format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::Hevc => "HEVC",
            Codec::Av1 => "AV1",
        })
    }
}

/// What to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    pub codec: Codec,
    pub size: PixelSize,
    /// Nominal frame rate: sets the per-frame budget (`bitrate / fps`) and the time base.
    pub fps: u32,
    /// Target bitrate in bits per second; changeable while running.
    pub bitrate: u64,
    /// Replace keyframes after the first by a column of intra blocks sweeping the picture once
    /// a second, so no single frame is large (H.264 and HEVC software encoders).
    pub intra_refresh: bool,
    /// Try hardware encoders before software ones.
    pub hardware: bool,
    /// Threads of a software H.264 encoder (libx264): each frame is cut into this many slices
    /// encoded side by side, so a frame's encode time, not only throughput, shrinks; 1 = one
    /// thread, one slice. Other encoders choose their own threading.
    pub threads: usize,
}

impl EncoderConfig {
    pub fn new(codec: Codec, size: PixelSize, fps: u32, bitrate: u64) -> Self {
        Self {
            codec,
            size,
            fps,
            bitrate,
            intra_refresh: false,
            hardware: true,
            threads: 2,
        }
    }

    /// The VBV buffer: one frame's worth of bits, so a frame never exceeds the budget by much.
    pub(crate) fn vbv_buffer_bits(&self) -> u64 {
        self.bitrate / u64::from(self.fps.max(1))
    }
}

/// An encoded frame: an Annex-B access unit for H.264/HEVC, a temporal unit of OBUs for AV1.
#[derive(Clone, Debug, Default)]
pub struct EncodedPacket {
    pub data: Vec<u8>,
    /// Decodable on its own (IDR / key frame): a decoder can start here.
    pub keyframe: bool,
    /// The start of an intra-refresh wave (H.264/HEVC recovery point, not a keyframe): a
    /// decoder that starts here shows a correct picture once the wave has swept the frame.
    pub recovery_point: bool,
    /// The pts of the frame it encodes.
    pub pts: i64,
}

impl EncodedPacket {
    /// Replace the contents, reusing the buffer (no allocation once it has grown).
    pub(crate) fn fill(&mut self, data: &[u8], keyframe: bool, pts: i64) {
        self.data.clear();
        self.data.extend_from_slice(data);
        self.keyframe = keyframe;
        self.recovery_point = false;
        self.pts = pts;
    }
}

/// Whether an Annex-B access unit holds an IDR (H.264) or IRAP (HEVC) picture: encoders flag
/// intra-refresh recovery points as "key" too, which they are not.
pub(crate) fn annexb_has_irap(codec: Codec, data: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let header = data[i + 3];
            let irap = match codec {
                Codec::H264 => header & 0x1f == 5,
                Codec::Hevc => (16..=21).contains(&((header >> 1) & 0x3f)),
                Codec::Av1 => true,
            };
            if irap {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// Why a codec operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("no {codec} encoder could be opened ({reasons})")]
    NoEncoder { codec: Codec, reasons: String },
    #[error("no {codec} decoder could be opened ({reasons})")]
    NoDecoder { codec: Codec, reasons: String },
    #[error("{name}: {source}")]
    Ffmpeg {
        name: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("{0} cannot change its bitrate while running")]
    BitrateUnsupported(&'static str),
    #[error("{name} expects {want_layout:?} {want:?} frames, got {got_layout:?} {got:?}")]
    FrameMismatch {
        name: &'static str,
        want: PixelSize,
        want_layout: YuvLayout,
        got: PixelSize,
        got_layout: YuvLayout,
    },
    #[error("{name}: decoded picture in unsupported pixel format {format:?}")]
    PixelFormat {
        name: &'static str,
        format: ffmpeg_next::format::Pixel,
    },
    #[error("{0}: hardware set-up failed: {1}")]
    Hardware(&'static str, String),
    #[cfg(feature = "openh264")]
    #[error("openh264: {0}")]
    OpenH264(#[from] ::openh264::Error),
}

/// A running video encoder.
pub trait VideoEncoder: Send {
    /// The implementation, e.g. `libx264`, `h264_vaapi`, `openh264`.
    fn name(&self) -> &'static str;
    fn config(&self) -> &EncoderConfig;
    /// The layout `send` takes (I420 for software encoders, NV12 for hardware ones).
    fn input_layout(&self) -> YuvLayout;
    /// Encode `frame` (its pts is carried to the packet). The frame is only read; it is `mut`
    /// so a keyframe request can be written into it for the call.
    fn send(&mut self, frame: &mut YuvFrame) -> Result<(), CodecError>;
    /// The next finished packet, if any (our encoders have no lag: one after each `send`).
    fn receive(&mut self, out: &mut EncodedPacket) -> Result<bool, CodecError>;
    /// Make the next frame a keyframe (IDR).
    fn request_keyframe(&mut self);
    /// Change the target bitrate (and the per-frame cap with it) without a keyframe.
    fn set_bitrate(&mut self, bitrate: u64) -> Result<(), CodecError>;
    /// Start a new stream on this running encoder: the next frame is a keyframe and pts may
    /// start again from anywhere.
    fn restart(&mut self);
}

/// A running video decoder.
pub trait VideoDecoder: Send {
    fn name(&self) -> &'static str;
    /// Decode one packet (a whole access unit / temporal unit).
    fn send(&mut self, data: &[u8], pts: i64) -> Result<(), CodecError>;
    /// The next decoded picture, if any (our decoders have no lag: one after each `send`).
    /// Valid until the next call.
    fn receive(&mut self) -> Result<Option<&YuvFrame>, CodecError>;
}

/// What to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    pub codec: Codec,
    /// Try hardware decoders (VA-API, NVDEC) before software.
    pub hardware: bool,
    /// Decoder threads (slice threads for H.264/HEVC, dav1d threads for AV1); frame
    /// threading is never used because it delays each picture by a frame per thread.
    pub threads: usize,
}

impl DecoderConfig {
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            hardware: true,
            threads: 2,
        }
    }
}

/// Software encoder candidates for a codec, in order of preference.
fn software_encoders(codec: Codec) -> &'static [&'static str] {
    match codec {
        Codec::H264 => &["libx264"],
        Codec::Hevc => &["libx265"],
        // libaom in realtime mode: one packet per frame. SVT-AV1 1.4 (Debian 12) holds two
        // frames back even in its low-delay mode, which costs more than its faster encode
        // saves; it stays available by name (`open_encoder_from`). docs/MEDIA.md: numbers.
        Codec::Av1 => &["libaom-av1"],
    }
}

/// Open the best encoder for `cfg`: hardware ones first when `cfg.hardware`, then software.
/// Logs one line naming the encoder that runs and why each earlier candidate was skipped.
pub fn open_encoder(cfg: &EncoderConfig) -> Result<Box<dyn VideoEncoder>, CodecError> {
    open_encoder_from(cfg, &candidates(cfg))
}

/// The encoder names `open_encoder` tries for `cfg`, in order.
pub fn candidates(cfg: &EncoderConfig) -> Vec<&'static str> {
    let mut list = Vec::new();
    if cfg.hardware {
        list.extend_from_slice(hw::encoders(cfg.codec));
    }
    list.extend_from_slice(software_encoders(cfg.codec));
    #[cfg(feature = "openh264")]
    if cfg.codec == Codec::H264 {
        list.push("openh264");
    }
    list
}

/// Open the first encoder of `names` that works for `cfg`.
pub fn open_encoder_from(
    cfg: &EncoderConfig,
    names: &[&'static str],
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    crate::init_ffmpeg();
    let mut skipped = Vec::new();
    for &name in names {
        match open_named(cfg, name) {
            Ok(enc) => {
                tracing::info!(
                    "video encoder: {name} for {} {}x{} @ {} fps, {} kbit/s{}{}",
                    cfg.codec,
                    cfg.size.width,
                    cfg.size.height,
                    cfg.fps,
                    cfg.bitrate / 1000,
                    if skipped.is_empty() { "" } else { "; skipped " },
                    skipped.join("; ")
                );
                return Ok(enc);
            }
            // The error names the encoder already.
            Err(e) => skipped.push(e),
        }
    }
    let reasons = skipped.join("; ");
    tracing::warn!("no {} encoder could be opened: {reasons}", cfg.codec);
    Err(CodecError::NoEncoder {
        codec: cfg.codec,
        reasons,
    })
}

fn open_named(cfg: &EncoderConfig, name: &'static str) -> Result<Box<dyn VideoEncoder>, String> {
    #[cfg(feature = "openh264")]
    if name == "openh264" {
        return openh264::OpenH264Encoder::open(cfg)
            .map(|e| Box::new(e) as Box<dyn VideoEncoder>)
            .map_err(|e| e.to_string());
    }
    ffmpeg::FfmpegEncoder::open(cfg, name)
        .map(|e| Box::new(e) as Box<dyn VideoEncoder>)
        .map_err(|e| e.to_string())
}

/// Open a decoder for `cfg`: hardware-accelerated FFmpeg decoding when `cfg.hardware` and a
/// device opens, software otherwise. Logs one line naming the decoder and what was skipped.
pub fn open_decoder(cfg: &DecoderConfig) -> Result<Box<dyn VideoDecoder>, CodecError> {
    crate::init_ffmpeg();
    let mut skipped = Vec::new();
    if cfg.hardware {
        for &dev in hw::DECODE_DEVICES {
            match ffmpeg::FfmpegDecoder::open(cfg, Some(dev)) {
                Ok(d) => {
                    log_decoder(cfg, d.name(), &skipped);
                    return Ok(Box::new(d));
                }
                Err(e) => skipped.push(e.to_string()),
            }
        }
    }
    match ffmpeg::FfmpegDecoder::open(cfg, None) {
        Ok(d) => {
            log_decoder(cfg, d.name(), &skipped);
            Ok(Box::new(d))
        }
        Err(e) => {
            skipped.push(e.to_string());
            Err(CodecError::NoDecoder {
                codec: cfg.codec,
                reasons: skipped.join("; "),
            })
        }
    }
}

/// The openh264 decoder (feature `openh264`), the fallback when FFmpeg is unavailable.
#[cfg(feature = "openh264")]
pub fn open_openh264_decoder() -> Result<Box<dyn VideoDecoder>, CodecError> {
    Ok(Box::new(openh264::OpenH264Decoder::open()?))
}

fn log_decoder(cfg: &DecoderConfig, name: &str, skipped: &[String]) {
    tracing::info!(
        "video decoder: {name} for {}{}{}",
        cfg.codec,
        if skipped.is_empty() { "" } else { "; skipped " },
        skipped.join("; ")
    );
}
