//! Cisco's openh264 (built from the crate's bundled source), the fallback H.264 codec for a
//! machine without FFmpeg's libx264: slower (see docs/MEDIA.md) but with no system package.

use super::{CodecError, EncodedPacket, EncoderConfig, VideoDecoder, VideoEncoder};
use crate::convert::{YuvFrame, YuvLayout};
use crate::frame::PixelSize;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig as H264Config, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

pub(super) struct OpenH264Encoder {
    enc: Encoder,
    cfg: EncoderConfig,
    ready: Option<(bool, i64)>,
    buf: Vec<u8>,
}

impl OpenH264Encoder {
    pub fn open(cfg: &EncoderConfig) -> Result<Self, CodecError> {
        let bitrate = u32::try_from(cfg.bitrate).unwrap_or(u32::MAX);
        let config = H264Config::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
            .usage_type(UsageType::ScreenContentRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            // 0: an IDR only at the start (and on request).
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .vui(VuiConfig::bt709());
        let enc = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(Self {
            enc,
            cfg: cfg.clone(),
            ready: None,
            buf: Vec::new(),
        })
    }
}

/// Our I420 frame as openh264's picture source.
struct Source<'a>(&'a YuvFrame);

impl YUVSource for Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        let s = self.0.size();
        (s.width as usize, s.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.plane(0).1, self.0.plane(1).1, self.0.plane(2).1)
    }
    fn y(&self) -> &[u8] {
        self.0.plane(0).0
    }
    fn u(&self) -> &[u8] {
        self.0.plane(1).0
    }
    fn v(&self) -> &[u8] {
        self.0.plane(2).0
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn name(&self) -> &'static str {
        "openh264"
    }

    fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    fn input_layout(&self) -> YuvLayout {
        YuvLayout::I420
    }

    fn send(&mut self, frame: &mut YuvFrame) -> Result<(), CodecError> {
        if frame.size() != self.cfg.size || frame.layout() != YuvLayout::I420 {
            return Err(CodecError::FrameMismatch {
                name: "openh264",
                want: self.cfg.size,
                want_layout: YuvLayout::I420,
                got: frame.size(),
                got_layout: frame.layout(),
            });
        }
        let bits = self.enc.encode(&Source(frame))?;
        self.buf.clear();
        bits.write_vec(&mut self.buf);
        let key = bits.frame_type() == FrameType::IDR;
        self.ready = Some((key, frame.pts().unwrap_or(0)));
        Ok(())
    }

    fn receive(&mut self, out: &mut EncodedPacket) -> Result<bool, CodecError> {
        match self.ready.take() {
            // A skipped frame produces no bytes: nothing to send.
            Some((key, pts)) if !self.buf.is_empty() => {
                out.fill(&self.buf, key, pts);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn request_keyframe(&mut self) {
        self.enc.force_intra_frame();
    }

    fn set_bitrate(&mut self, _bitrate: u64) -> Result<(), CodecError> {
        // The safe wrapper offers no ENCODER_OPTION_BITRATE; the pool reopens instead.
        Err(CodecError::BitrateUnsupported("openh264"))
    }

    fn restart(&mut self) {
        self.enc.force_intra_frame();
    }
}

pub(super) struct OpenH264Decoder {
    dec: Decoder,
    out: Option<YuvFrame>,
    ready: bool,
}

impl OpenH264Decoder {
    pub fn open() -> Result<Self, CodecError> {
        Ok(Self {
            dec: Decoder::with_api_config(OpenH264API::from_source(), Default::default())?,
            out: None,
            ready: false,
        })
    }
}

impl VideoDecoder for OpenH264Decoder {
    fn name(&self) -> &'static str {
        "openh264"
    }

    fn send(&mut self, data: &[u8], pts: i64) -> Result<(), CodecError> {
        self.ready = false;
        let Some(pic) = self.dec.decode(data)? else {
            return Ok(());
        };
        let (w, h) = pic.dimensions();
        let size = PixelSize::new(w as u32, h as u32);
        // Reallocate only when the stream's size changes, or when the last picture is still
        // shared (`YuvFrame::share`): a picture handed out is never written again.
        if !self
            .out
            .as_mut()
            .is_some_and(|f| f.size() == size && f.writable())
        {
            self.out = None;
        }
        let out = self
            .out
            .get_or_insert_with(|| YuvFrame::new(YuvLayout::I420, size));
        let (sy, su, sv) = pic.strides();
        let src = [(pic.y(), sy), (pic.u(), su), (pic.v(), sv)];
        for (i, (plane, stride)) in src.into_iter().enumerate() {
            let (rows, width) = if i == 0 {
                (h, w)
            } else {
                (h.div_ceil(2), w.div_ceil(2))
            };
            let dst_stride = out.frame.stride(i);
            let dst = out.frame.data_mut(i);
            for r in 0..rows {
                dst[r * dst_stride..r * dst_stride + width]
                    .copy_from_slice(&plane[r * stride..r * stride + width]);
            }
        }
        out.set_pts(pts);
        self.ready = true;
        Ok(())
    }

    fn receive(&mut self) -> Result<Option<&YuvFrame>, CodecError> {
        if !std::mem::take(&mut self.ready) {
            return Ok(None);
        }
        Ok(self.out.as_ref())
    }
}
