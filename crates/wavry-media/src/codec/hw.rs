//! Hardware codec plumbing: which hardware encoders exist per codec, the VA-API device and
//! frames context an encoder uploads into, and the devices hardware decoding tries.
//!
//! None of it runs on our test machines (no GPU): opening fails there, and the failure is what
//! the probe log reports. The code paths compile and are exercised up to that failure.

use super::Codec;
use ffmpeg_next::ffi::{
    av_buffer_ref, av_buffer_unref, av_hwdevice_ctx_create, av_hwframe_ctx_alloc,
    av_hwframe_ctx_init, AVBufferRef, AVHWDeviceType, AVHWFramesContext, AVPixelFormat,
};
use std::ptr;

/// Hardware encoders per codec, in order of preference. FFmpeg 5.1 has no AV1 hardware
/// encoder wrappers (av1_vaapi, av1_nvenc and av1_qsv came in 6.0+).
pub(super) fn encoders(codec: Codec) -> &'static [&'static str] {
    match codec {
        Codec::H264 => &["h264_vaapi", "h264_nvenc", "h264_qsv"],
        Codec::Hevc => &["hevc_vaapi", "hevc_nvenc", "hevc_qsv"],
        Codec::Av1 => &[],
    }
}

/// A hardware device type hardware decoding tries.
#[derive(Clone, Copy, Debug)]
pub(super) struct DecodeDevice {
    pub kind: AVHWDeviceType,
    pub name: &'static str,
}

pub(super) const DECODE_DEVICES: &[DecodeDevice] = &[
    DecodeDevice {
        kind: AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
        name: "vaapi",
    },
    DecodeDevice {
        kind: AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
        name: "nvdec",
    },
];

/// An owned reference to an FFmpeg buffer (a device or frames context).
pub(super) struct BufferRef(pub *mut AVBufferRef);

// SAFETY: AVBufferRef reference counting is atomic; the contexts are used by one thread at a
// time (the encoder or decoder owning them).
unsafe impl Send for BufferRef {}

impl BufferRef {
    /// A new reference to the same buffer, for a codec context to own.
    pub fn new_ref(&self) -> *mut AVBufferRef {
        // SAFETY: self.0 is a valid buffer reference.
        unsafe { av_buffer_ref(self.0) }
    }
}

impl Drop for BufferRef {
    fn drop(&mut self) {
        // SAFETY: we own this reference; av_buffer_unref nulls the pointer.
        unsafe { av_buffer_unref(&mut self.0) }
    }
}

/// Open a hardware device of `kind` (the default one: the first DRM render node for VA-API,
/// GPU 0 for CUDA).
pub(super) fn open_device(kind: AVHWDeviceType) -> Result<BufferRef, String> {
    let mut dev = ptr::null_mut();
    // SAFETY: out-pointer to a null buffer ref; null device string and options mean defaults.
    let r = unsafe { av_hwdevice_ctx_create(&mut dev, kind, ptr::null(), ptr::null_mut(), 0) };
    if r < 0 {
        return Err(format!(
            "no {kind:?} device ({})",
            ffmpeg_next::Error::from(r)
        ));
    }
    Ok(BufferRef(dev))
}

/// A VA-API frames context of NV12 surfaces of `width`×`height` on `device`: the encoder's
/// input pool, which each frame is uploaded into.
pub(super) fn vaapi_frames(
    device: &BufferRef,
    width: u32,
    height: u32,
) -> Result<BufferRef, String> {
    // SAFETY: `device` is a valid device context; the frames context is filled in before init.
    unsafe {
        let frames = av_hwframe_ctx_alloc(device.0);
        if frames.is_null() {
            return Err("av_hwframe_ctx_alloc failed".into());
        }
        let frames = BufferRef(frames);
        let fc = (*frames.0).data as *mut AVHWFramesContext;
        (*fc).format = AVPixelFormat::AV_PIX_FMT_VAAPI;
        (*fc).sw_format = AVPixelFormat::AV_PIX_FMT_NV12;
        (*fc).width = width as i32;
        (*fc).height = height as i32;
        // A fixed pool: VA-API encoders need their surfaces known up front.
        (*fc).initial_pool_size = 8;
        let r = av_hwframe_ctx_init(frames.0);
        if r < 0 {
            return Err(format!(
                "VA-API frames context: {}",
                ffmpeg_next::Error::from(r)
            ));
        }
        Ok(frames)
    }
}
