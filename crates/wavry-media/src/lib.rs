//! wavry-media: everything between the host's pixels and the client's decoded picture, and
//! nothing that touches the network.
//!
//! - `frame`: the picture types every stage hands to the next.
//! - `buffer_pool`: fixed sets of reused buffers (no allocation per frame).
//! - `capture`: screen capture behind the `Capturer` trait (X11 backend).
//! - `convert`: BGRA → I420/NV12 (BT.709 limited range, SIMD) into pooled frames.
//! - `codec`: video encoders and decoders (FFmpeg, optional openh264), hardware probing, and
//!   the encoder pool.
//! - `pattern`: a synthetic desktop-like picture for tests and benchmarks.
//! - `testing` (feature `test-support`): Xvfb displays and drawing helpers for tests.

pub mod buffer_pool;
pub mod capture;
pub mod codec;
pub mod convert;
pub mod frame;
pub mod pattern;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod to_bgra;

pub use codec::{
    open_decoder, open_encoder, Codec, CodecError, DecoderConfig, EncodedPacket, EncoderConfig,
    EncoderPool, VideoDecoder, VideoEncoder,
};
pub use convert::{convert, ConvertError, FramePool, PooledFrame, YuvFrame, YuvLayout};
pub use frame::{BgraView, PixelSize};

/// FFmpeg's one-time set-up; its own logging is silenced but for fatal errors (ours goes
/// through tracing).
pub(crate) fn init_ffmpeg() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // `init` only registers devices and cannot fail in FFmpeg ≥ 4.
        let _ = ffmpeg_next::init();
        // Fatal only: hardware probing makes FFmpeg print errors for every missing driver
        // (no libcuda, no VA-API device); the probe reports each skip itself, and other
        // failures come back as error codes.
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
