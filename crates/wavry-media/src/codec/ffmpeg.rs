//! Encoders and decoders through FFmpeg's libavcodec (ffmpeg-next on the system FFmpeg 5.1).

use super::hw::{self, BufferRef, DecodeDevice};
use super::{
    annexb_has_irap, Codec, CodecError, DecoderConfig, EncodedPacket, EncoderConfig, VideoDecoder,
    VideoEncoder,
};
use crate::convert::{set_bt709, YuvFrame, YuvLayout};
use crate::frame::PixelSize;
use ff::ffi;
use ff::util::color;
use ff::{Dictionary, Rational};
use ffmpeg_next as ff;

/// The encoder families we know how to configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    X264,
    X265,
    SvtAv1,
    Aom,
    Vaapi,
    Nvenc,
    Qsv,
}

impl Family {
    fn of(name: &str) -> Option<Family> {
        Some(match name {
            "libx264" => Family::X264,
            "libx265" => Family::X265,
            "libsvtav1" => Family::SvtAv1,
            "libaom-av1" => Family::Aom,
            n if n.ends_with("_vaapi") => Family::Vaapi,
            n if n.ends_with("_nvenc") => Family::Nvenc,
            n if n.ends_with("_qsv") => Family::Qsv,
            _ => return None,
        })
    }

    fn layout(self) -> YuvLayout {
        match self {
            Family::Vaapi | Family::Nvenc | Family::Qsv => YuvLayout::Nv12,
            _ => YuvLayout::I420,
        }
    }

    /// Whether the FFmpeg 5.1 wrapper applies a new `bit_rate` to the running encoder.
    /// libx264 compares `bit_rate`, `rc_max_rate` and `rc_buffer_size` with its parameters
    /// before every frame and calls x264_encoder_reconfig on a change (reconfig_encoder in
    /// libavcodec/libx264.c); nvenc does the same when the driver supports dynamic bitrate.
    /// libx265, SVT-AV1, libaom and VA-API read them only when opened.
    fn live_bitrate(self) -> bool {
        matches!(self, Family::X264 | Family::Nvenc)
    }
}

fn fferr(name: &'static str) -> impl Fn(ff::Error) -> CodecError {
    move |source| CodecError::Ffmpeg { name, source }
}

/// An FFmpeg encoder configured for interactive streaming.
pub(super) struct FfmpegEncoder {
    enc: ff::encoder::Video,
    name: &'static str,
    family: Family,
    cfg: EncoderConfig,
    packet: ff::Packet,
    keyframe_pending: bool,
    /// The encoder's own pts (strictly increasing across restarts) minus the caller's.
    pts_offset: i64,
    last_pts: i64,
    restarted: bool,
    /// VA-API: the frames context input is uploaded into, and the surface frame.
    vaapi: Option<(BufferRef, BufferRef, ff::frame::Video)>,
}

impl FfmpegEncoder {
    pub fn open(cfg: &EncoderConfig, name: &'static str) -> Result<Self, CodecError> {
        let err = fferr(name);
        let family = Family::of(name).ok_or(CodecError::Ffmpeg {
            name,
            source: ff::Error::EncoderNotFound,
        })?;
        let codec = ff::encoder::find_by_name(name).ok_or(CodecError::Ffmpeg {
            name,
            source: ff::Error::EncoderNotFound,
        })?;
        let fps = cfg.fps.max(1) as i32;
        let mut ctx = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(&err)?;
        ctx.set_width(cfg.size.width);
        ctx.set_height(cfg.size.height);
        ctx.set_format(family.layout().pixel());
        ctx.set_time_base(Rational::new(1, fps));
        ctx.set_frame_rate(Some(Rational::new(fps, 1)));
        ctx.set_max_b_frames(0);
        ctx.set_colorspace(color::Space::BT709);
        ctx.set_color_range(color::Range::MPEG);
        ctx.set_color_primaries(color::Primaries::BT709);
        ctx.set_color_transfer_characteristic(color::TransferCharacteristic::BT709);
        let vbv = cfg.vbv_buffer_bits();
        // SAFETY: plain fields of the codec context we own, set before it is opened.
        unsafe {
            let p = ctx.as_mut_ptr();
            set_rate(p, cfg.bitrate, vbv);
            if family == Family::X264 {
                // libx264 takes its thread count from here (FFmpeg's default is 1; the ffmpeg
                // CLI asks for "auto"). With zerolatency they are slice threads: one frame in,
                // one out, its slices encoded in parallel.
                (*p).thread_count = cfg.threads.max(1) as i32;
            }
            if family == Family::SvtAv1 {
                // SVT-AV1 rejects a max rate equal to the target and buffers under 20 ms; its
                // CBR mode keeps to the target by itself.
                (*p).rc_max_rate = 0;
                (*p).rc_buffer_size = vbv.max(cfg.bitrate / 50) as i32;
            }
            // No periodic keyframes. libx264 and libx265 get `keyint` in their own params
            // below, which their wrappers apply after (and over) gop_size.
            if !matches!(family, Family::X264 | Family::X265) {
                (*p).gop_size = i32::MAX;
            }
        }
        let mut vaapi = None;
        if family == Family::Vaapi {
            let dev = hw::open_device(ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI)
                .map_err(|e| CodecError::Hardware(name, e))?;
            let frames = hw::vaapi_frames(&dev, cfg.size.width, cfg.size.height)
                .map_err(|e| CodecError::Hardware(name, e))?;
            // SAFETY: the context takes its own reference to the frames context.
            unsafe {
                let p = ctx.as_mut_ptr();
                (*p).pix_fmt = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
                (*p).hw_frames_ctx = frames.new_ref();
            }
            vaapi = Some((dev, frames, ff::frame::Video::empty()));
        }
        let opts = options(family, cfg, vbv);
        let enc = ctx.open_as_with(codec, opts).map_err(&err)?;
        Ok(Self {
            enc,
            name,
            family,
            cfg: cfg.clone(),
            packet: ff::Packet::empty(),
            keyframe_pending: false,
            pts_offset: 0,
            last_pts: -1,
            restarted: true,
            vaapi,
        })
    }
}

/// Bitrate and the one-frame VBV buffer in the codec context (bits/s and bits).
///
/// # Safety
/// `p` points to a live codec context that nothing else accesses during the call.
unsafe fn set_rate(p: *mut ffi::AVCodecContext, bitrate: u64, vbv: u64) {
    // SAFETY: the caller guarantees `p` is a live, unshared codec context.
    unsafe {
        (*p).bit_rate = bitrate as i64;
        (*p).rc_max_rate = bitrate as i64;
        (*p).rc_buffer_size = vbv.min(i32::MAX as u64) as i32;
    }
}

/// The private options of each encoder family.
fn options(family: Family, cfg: &EncoderConfig, vbv: u64) -> Dictionary<'static> {
    let mut d = Dictionary::new();
    let kbps = cfg.bitrate / 1000;
    let vbv_kbit = (vbv / 1000).max(1);
    match family {
        Family::X264 => {
            d.set("preset", "ultrafast");
            // zerolatency: no look-ahead, no B-frames, sliced threads (one frame in, one out).
            d.set("tune", "zerolatency");
            d.set("forced-idr", "1");
            let gop = if cfg.intra_refresh {
                // The refresh wave sweeps the picture once per keyint.
                format!("keyint={}:intra-refresh=1", cfg.fps)
            } else {
                "keyint=infinite".to_string()
            };
            d.set("x264-params", &format!("{gop}:scenecut=0"));
        }
        Family::X265 => {
            d.set("preset", "ultrafast");
            d.set("tune", "zerolatency");
            d.set("forced-idr", "1");
            let gop = if cfg.intra_refresh {
                format!("keyint={}:intra-refresh=1", cfg.fps)
            } else {
                "keyint=-1".to_string()
            };
            d.set(
                "x265-params",
                &format!(
                    "{gop}:scenecut=0:bframes=0:repeat-headers=1:log-level=error:\
                     vbv-maxrate={kbps}:vbv-bufsize={vbv_kbit}"
                ),
            );
        }
        Family::SvtAv1 => {
            // 12 is the fastest preset of SVT-AV1 1.4 that FFmpeg accepts for real time;
            // pred-struct 1 is low delay (no future references), no look-ahead, no scene
            // change keyframes; rc 2 (CBR) needs low delay.
            d.set("preset", "12");
            d.set(
                "svtav1-params",
                "pred-struct=1:lookahead=0:scd=0:rc=2:enable-overlays=0",
            );
        }
        Family::Aom => {
            d.set("usage", "realtime");
            // 8 is the fastest speed libaom 3.6 accepts through FFmpeg 5.1.
            d.set("cpu-used", "8");
            d.set("lag-in-frames", "0");
            d.set("row-mt", "1");
            d.set("end-usage", "cbr");
        }
        Family::Vaapi => {
            d.set("rc_mode", "CBR");
            d.set("async_depth", "1");
        }
        Family::Nvenc => {
            d.set("preset", "p1");
            d.set("tune", "ull");
            d.set("zerolatency", "1");
            d.set("delay", "0");
            d.set("rc", "cbr");
            d.set("forced-idr", "1");
        }
        Family::Qsv => {
            d.set("preset", "veryfast");
            d.set("async_depth", "1");
            d.set("low_power", "1");
        }
    }
    d
}

impl VideoEncoder for FfmpegEncoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    fn input_layout(&self) -> YuvLayout {
        self.family.layout()
    }

    fn send(&mut self, frame: &mut YuvFrame) -> Result<(), CodecError> {
        let err = fferr(self.name);
        if frame.size() != self.cfg.size || frame.layout() != self.input_layout() {
            return Err(CodecError::FrameMismatch {
                name: self.name,
                want: self.cfg.size,
                want_layout: self.input_layout(),
                got: frame.size(),
                got_layout: frame.layout(),
            });
        }
        let pts = frame.pts().unwrap_or(self.last_pts - self.pts_offset + 1);
        if self.restarted {
            // Encoders expect increasing pts: continue where the previous stream stopped.
            self.pts_offset = self.last_pts + 1 - pts;
            self.restarted = false;
        }
        let own_pts = pts + self.pts_offset;
        self.last_pts = own_pts;
        let kind = if std::mem::take(&mut self.keyframe_pending) {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        };
        let f = &mut frame.frame;
        f.set_pts(Some(own_pts));
        f.set_kind(kind);
        let res = match &mut self.vaapi {
            None => self.enc.send_frame(f),
            Some((_, frames, surface)) => {
                // SAFETY: a new surface from our frames context, filled from the NV12 frame.
                unsafe {
                    ffi::av_frame_unref(surface.as_mut_ptr());
                    let r = ffi::av_hwframe_get_buffer(frames.0, surface.as_mut_ptr(), 0);
                    if r < 0 {
                        return Err(err(ff::Error::from(r)));
                    }
                    let r = ffi::av_hwframe_transfer_data(surface.as_mut_ptr(), f.as_ptr(), 0);
                    if r < 0 {
                        return Err(err(ff::Error::from(r)));
                    }
                }
                surface.set_pts(Some(own_pts));
                surface.set_kind(kind);
                self.enc.send_frame(surface)
            }
        };
        // Leave the caller's frame as it was.
        f.set_pts(Some(pts));
        f.set_kind(ff::picture::Type::None);
        res.map_err(err)
    }

    fn receive(&mut self, out: &mut EncodedPacket) -> Result<bool, CodecError> {
        match self.enc.receive_packet(&mut self.packet) {
            Ok(()) => {
                let pts = self.packet.pts().unwrap_or(self.last_pts) - self.pts_offset;
                let data = self.packet.data().unwrap_or(&[]);
                let flagged = self.packet.is_key();
                let key = flagged
                    && (self.cfg.codec == Codec::Av1 || annexb_has_irap(self.cfg.codec, data));
                out.fill(data, key, pts);
                out.recovery_point = flagged && !key;
                Ok(true)
            }
            Err(ff::Error::Other {
                errno: ff::error::EAGAIN,
            })
            | Err(ff::Error::Eof) => Ok(false),
            Err(e) => Err(CodecError::Ffmpeg {
                name: self.name,
                source: e,
            }),
        }
    }

    fn request_keyframe(&mut self) {
        self.keyframe_pending = true;
    }

    fn set_bitrate(&mut self, bitrate: u64) -> Result<(), CodecError> {
        if !self.family.live_bitrate() {
            return Err(CodecError::BitrateUnsupported(self.name));
        }
        self.cfg.bitrate = bitrate;
        // SAFETY: plain fields of our open codec context; the wrapper reads them before the
        // next frame.
        unsafe { set_rate(self.enc.as_mut_ptr(), bitrate, self.cfg.vbv_buffer_bits()) };
        Ok(())
    }

    fn restart(&mut self) {
        self.keyframe_pending = true;
        self.restarted = true;
    }
}

/// An FFmpeg decoder set for low delay: no frame threading, one picture per packet.
pub(super) struct FfmpegDecoder {
    dec: ff::decoder::Video,
    name: &'static str,
    /// The picture handed out by `receive`.
    out: YuvFrame,
    /// The decoder's own picture (a hardware surface when decoding on a device).
    hw_picture: Option<ff::frame::Video>,
    _device: Option<BufferRef>,
}

impl FfmpegDecoder {
    pub fn open(cfg: &DecoderConfig, device: Option<DecodeDevice>) -> Result<Self, CodecError> {
        let (id, sw_name) = match cfg.codec {
            Codec::H264 => (ff::codec::Id::H264, "h264"),
            Codec::Hevc => (ff::codec::Id::HEVC, "hevc"),
            Codec::Av1 => (ff::codec::Id::AV1, "libdav1d"),
        };
        let name = device.map_or(sw_name, |d| d.name);
        let err = fferr(name);
        // dav1d for software AV1; FFmpeg's native av1 decoder only works through hwaccel.
        let codec = match device {
            None => ff::decoder::find_by_name(sw_name),
            Some(_) => ff::decoder::find(id),
        }
        .ok_or(CodecError::Ffmpeg {
            name,
            source: ff::Error::DecoderNotFound,
        })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec);
        let dev = match device {
            Some(d) => Some(hw::open_device(d.kind).map_err(|e| CodecError::Hardware(name, e))?),
            None => None,
        };
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Slice,
            count: cfg.threads.max(1),
            ..Default::default()
        });
        // SAFETY: plain fields of the codec context we own, set before it is opened.
        unsafe {
            let p = ctx.as_mut_ptr();
            (*p).flags |= ffi::AV_CODEC_FLAG_LOW_DELAY as i32;
            if let Some(dev) = &dev {
                // FFmpeg's default get_format picks the device's format when one is given.
                (*p).hw_device_ctx = dev.new_ref();
            }
        }
        let mut opts = Dictionary::new();
        if cfg.codec == Codec::Av1 && device.is_none() {
            // One picture out per packet in; dav1d's own threads work within the frame.
            opts.set("max_frame_delay", "1");
        }
        let dec = ctx
            .decoder()
            .open_as_with(codec, opts)
            .and_then(|o| o.video())
            .map_err(&err)?;
        Ok(Self {
            dec,
            name,
            out: YuvFrame::new(YuvLayout::I420, PixelSize::new(2, 2)),
            hw_picture: device.map(|_| ff::frame::Video::empty()),
            _device: dev,
        })
    }
}

impl VideoDecoder for FfmpegDecoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send(&mut self, data: &[u8], pts: i64) -> Result<(), CodecError> {
        let size =
            i32::try_from(data.len()).map_err(|_| fferr(self.name)(ff::Error::InvalidData))?;
        // A packet borrowing `data`: FFmpeg copies what it keeps (the packet is not
        // reference counted), so the borrow ends with the call.
        // SAFETY: an all-zero AVPacket is the documented blank state.
        let mut packet: ffi::AVPacket = unsafe { std::mem::zeroed() };
        packet.data = data.as_ptr().cast_mut();
        packet.size = size;
        packet.pts = pts;
        packet.dts = ffi::AV_NOPTS_VALUE;
        packet.pos = -1;
        // SAFETY: an open decoder context and a packet valid for the call.
        let r = unsafe { ffi::avcodec_send_packet(self.dec.as_mut_ptr(), &packet) };
        if r < 0 {
            return Err(fferr(self.name)(ff::Error::from(r)));
        }
        Ok(())
    }

    fn receive(&mut self) -> Result<Option<&YuvFrame>, CodecError> {
        let target = match &mut self.hw_picture {
            Some(p) => p,
            None => &mut self.out.frame,
        };
        match self.dec.receive_frame(target) {
            Ok(()) => {}
            Err(ff::Error::Other {
                errno: ff::error::EAGAIN,
            })
            | Err(ff::Error::Eof) => return Ok(None),
            Err(e) => return Err(fferr(self.name)(e)),
        }
        if let Some(hw) = &self.hw_picture {
            // SAFETY: download the surface into our software frame (allocated by FFmpeg in
            // the surface's software format, NV12 for 8-bit 4:2:0).
            unsafe {
                ffi::av_frame_unref(self.out.frame.as_mut_ptr());
                let r = ffi::av_hwframe_transfer_data(self.out.frame.as_mut_ptr(), hw.as_ptr(), 0);
                if r < 0 {
                    return Err(fferr(self.name)(ff::Error::from(r)));
                }
                (*self.out.frame.as_mut_ptr()).pts = (*hw.as_ptr()).pts;
            }
        }
        let format = self.out.frame.format();
        if !self.out.refresh() {
            return Err(CodecError::PixelFormat {
                name: self.name,
                format,
            });
        }
        if self.out.frame.color_space() == color::Space::Unspecified {
            set_bt709(&mut self.out.frame);
        }
        Ok(Some(&self.out))
    }
}
