//! How a decoded picture reaches the screen. Two paths, picked when the window opens:
//!
//! - **gpu**: an SDL renderer; the I420 planes go into a YUV streaming texture and the GPU
//!   converts to RGB while it scales. What every machine with a real GPU uses.
//! - **cpu**: no GPU worth the name (Mesa's llvmpipe or softpipe, or no OpenGL at all): a YUV
//!   texture there means the rasterizer's shader converting and scaling on the CPU, then a copy
//!   of the result to the X server. Instead, convert with SIMD (`wavry_media::to_bgra`) straight
//!   into the window's own framebuffer, which SDL shares with the X server (MIT-SHM), and
//!   hand it over. A window of another size than the picture goes through one SDL scaling
//!   blit. Measured in docs/BENCHMARKS.md (*Showing a picture*).
//!
//! `auto` (the default) takes gpu unless the OpenGL renderer is a software one.

use crate::input_map::letterbox;
use crate::overlay::Rgba;
use crate::window::{sdl, CursorImage, OwnedI420, WindowError, I420};
use sdl2::pixels::{Color, PixelFormatEnum};
use sdl2::rect::Rect;
use sdl2::render::{BlendMode, Canvas, Texture, TextureCreator};
use sdl2::surface::{Surface, SurfaceRef};
use sdl2::video::{Window, WindowContext};
use sdl2::EventPump;
use std::str::FromStr;
use wavry_media::to_bgra::{i420_to_bgra, PlaneRef};

/// Which presentation path the window takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresentMode {
    /// gpu, unless OpenGL is a software rasterizer: then cpu.
    #[default]
    Auto,
    /// YUV textures through an SDL renderer.
    Gpu,
    /// SIMD conversion into the window's framebuffer.
    Cpu,
}

impl FromStr for PresentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PresentMode::Auto),
            "gpu" => Ok(PresentMode::Gpu),
            "cpu" => Ok(PresentMode::Cpu),
            other => Err(format!(
                "unknown presentation path '{other}': auto, gpu or cpu"
            )),
        }
    }
}

/// Names of OpenGL renderers that rasterize on the CPU.
fn is_software_gl(renderer: &str) -> bool {
    let r = renderer.to_ascii_lowercase();
    ["llvmpipe", "softpipe", "swrast", "software rasterizer"]
        .iter()
        .any(|s| r.contains(s))
}

/// The `GL_RENDERER` string of the current OpenGL context, if there is one.
fn gl_renderer(window: &Window) -> Option<String> {
    const GL_RENDERER: u32 = 0x1F01;
    let f = window.subsystem().gl_get_proc_address("glGetString");
    if f.is_null() {
        return None;
    }
    // SAFETY: glGetString's C signature; the renderer just made its context current on this
    // thread, and the returned string is static for the context's life (copied at once).
    unsafe {
        let get: extern "C" fn(u32) -> *const std::os::raw::c_char = std::mem::transmute(f);
        let s = get(GL_RENDERER);
        (!s.is_null()).then(|| std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

pub(crate) struct Gpu {
    canvas: Canvas<Window>,
    creator: TextureCreator<WindowContext>,
    video: Option<(Texture, u32, u32)>,
    overlay: Option<(Texture, u32, u32)>,
    cursor: Option<(Texture, Hotspot)>,
}

pub(crate) struct Cpu {
    window: Window,
    last: Option<OwnedI420>,
    /// The picture at its own size when the window is another size, for SDL to scale.
    staging: Option<Surface<'static>>,
    overlay: Option<Surface<'static>>,
    /// The cursor's straight-alpha B, G, R, A pixels.
    cursor: Option<(Vec<u8>, Hotspot)>,
    /// The cursor scaled to the size it is drawn at (SDL's scaling blit does not blend).
    cursor_scaled: Option<Surface<'static>>,
}

/// A cursor image's size and the pixel that sits at the pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hotspot {
    width: u32,
    height: u32,
    x: i64,
    y: i64,
}

/// Where the host's pointer is, in video pixels (`None`: no cursor drawn).
pub(crate) type CursorAt = Option<(i32, i32)>;

/// The window rectangle the cursor covers (scaled with the letterboxed picture), and the
/// picture's rectangle to clip it to.
fn cursor_rect(
    window: (u32, u32),
    video: (u32, u32),
    at: (i32, i32),
    c: Hotspot,
) -> Option<(Rect, Rect)> {
    let (vw, vh) = video;
    let r = letterbox(window, video);
    // Video pixels → window pixels, the same mapping as the picture's.
    let map = |v: i64, origin: i32, shown: u32, size: u32| {
        i64::from(origin) + v * i64::from(shown) / i64::from(size.max(1))
    };
    let (x0, y0) = (i64::from(at.0) - c.x, i64::from(at.1) - c.y);
    let left = map(x0, r.x, r.w, vw);
    let top = map(y0, r.y, r.h, vh);
    let right = map(x0 + i64::from(c.width), r.x, r.w, vw);
    let bottom = map(y0 + i64::from(c.height), r.y, r.h, vh);
    let (left, top) = (i32::try_from(left).ok()?, i32::try_from(top).ok()?);
    let w = (right - i64::from(left)).clamp(1, 4096) as u32;
    let h = (bottom - i64::from(top)).clamp(1, 4096) as u32;
    Some((Rect::new(left, top, w, h), Rect::new(r.x, r.y, r.w, r.h)))
}

/// A surface of `img`'s pixels in `format`, blended when drawn.
fn blend_surface(
    width: u32,
    height: u32,
    pixels: &[u8],
    format: PixelFormatEnum,
) -> Result<Surface<'static>, WindowError> {
    let mut surf = sdl(Surface::new(width, height, format))?;
    let pitch = surf.pitch() as usize;
    let row = width as usize * 4;
    surf.with_lock_mut(|px| {
        for (dst, src) in px.chunks_mut(pitch).zip(pixels.chunks(row)) {
            dst[..src.len()].copy_from_slice(src);
        }
    });
    sdl(surf.set_blend_mode(BlendMode::Blend))?;
    Ok(surf)
}

pub(crate) enum Presenter {
    Gpu(Gpu),
    Cpu(Cpu),
}

impl Presenter {
    pub(crate) fn new(window: Window, mode: PresentMode) -> Result<Self, WindowError> {
        if mode == PresentMode::Cpu {
            return Ok(Presenter::cpu(window));
        }
        let canvas = window
            .into_canvas()
            .build()
            .map_err(|e| WindowError::Sdl(format!("no SDL renderer for the window: {e}")))?;
        let name = canvas.info().name;
        // Only an OpenGL renderer has a current GL context to ask.
        let gl = name
            .starts_with("opengl")
            .then(|| gl_renderer(canvas.window()))
            .flatten();
        let software = name == "software" || gl.as_deref().is_some_and(is_software_gl);
        if mode == PresentMode::Auto && software {
            tracing::info!(
                renderer = name,
                gl = gl.as_deref().unwrap_or("-"),
                "no hardware renderer: showing pictures by SIMD conversion into the window"
            );
            return Ok(Presenter::cpu(canvas.into_window()));
        }
        tracing::info!(
            renderer = name,
            gl = gl.as_deref().unwrap_or("-"),
            "showing pictures through YUV textures"
        );
        let creator = canvas.texture_creator();
        Ok(Presenter::Gpu(Gpu {
            canvas,
            creator,
            video: None,
            overlay: None,
            cursor: None,
        }))
    }

    fn cpu(window: Window) -> Self {
        Presenter::Cpu(Cpu {
            window,
            last: None,
            staging: None,
            overlay: None,
            cursor: None,
            cursor_scaled: None,
        })
    }

    /// "gpu (opengl)" or "cpu", for logs and benchmarks.
    pub(crate) fn name(&self) -> String {
        match self {
            Presenter::Gpu(g) => format!("gpu ({})", g.canvas.info().name),
            Presenter::Cpu(_) => "cpu".into(),
        }
    }

    pub(crate) fn window(&self) -> &Window {
        match self {
            Presenter::Gpu(g) => g.canvas.window(),
            Presenter::Cpu(c) => &c.window,
        }
    }

    pub(crate) fn window_mut(&mut self) -> &mut Window {
        match self {
            Presenter::Gpu(g) => g.canvas.window_mut(),
            Presenter::Cpu(c) => &mut c.window,
        }
    }

    /// Take `pic` as the picture to show and show it.
    pub(crate) fn present(
        &mut self,
        pic: &I420<'_>,
        overlay_on: bool,
        cursor_at: CursorAt,
        events: &EventPump,
    ) -> Result<(), WindowError> {
        match self {
            Presenter::Gpu(g) => {
                g.upload(pic)?;
                g.draw(overlay_on, cursor_at)
            }
            Presenter::Cpu(c) => {
                c.draw(Some(pic), overlay_on, cursor_at, events)?;
                // Kept for redraws, after the picture is already on screen.
                c.last.get_or_insert_with(Default::default).copy_from(pic);
                Ok(())
            }
        }
    }

    /// Show `pic` and keep it (not a copy) for redraws; returns a buffer to reuse.
    pub(crate) fn present_owned(
        &mut self,
        pic: OwnedI420,
        overlay_on: bool,
        cursor_at: CursorAt,
        events: &EventPump,
    ) -> Result<OwnedI420, WindowError> {
        match self {
            Presenter::Gpu(g) => {
                // The texture keeps the picture for redraws.
                g.upload(&pic.view())?;
                g.draw(overlay_on, cursor_at)?;
                Ok(pic)
            }
            Presenter::Cpu(c) => {
                c.draw(Some(&pic.view()), overlay_on, cursor_at, events)?;
                Ok(c.last.replace(pic).unwrap_or_default())
            }
        }
    }

    /// Draw the last picture again.
    pub(crate) fn redraw(
        &mut self,
        overlay_on: bool,
        cursor_at: CursorAt,
        events: &EventPump,
    ) -> Result<(), WindowError> {
        match self {
            Presenter::Gpu(g) => g.draw(overlay_on, cursor_at),
            Presenter::Cpu(c) => {
                let last = c.last.take();
                let pic = last.as_ref().map(|l| l.view());
                let r = c.draw(pic.as_ref(), overlay_on, cursor_at, events);
                c.last = last;
                r
            }
        }
    }

    pub(crate) fn set_overlay(&mut self, img: Rgba) -> Result<(), WindowError> {
        let empty = img.width == 0 || img.height == 0;
        match self {
            Presenter::Gpu(g) => {
                let tex = if empty {
                    None
                } else {
                    let (w, h) = (img.width as u32, img.height as u32);
                    let mut tex =
                        sdl(g
                            .creator
                            .create_texture_static(PixelFormatEnum::ABGR8888, w, h))?;
                    sdl(tex.update(None, &img.pixels, img.width * 4))?;
                    tex.set_blend_mode(BlendMode::Blend);
                    Some((tex, w, h))
                };
                if let Some((old, _, _)) = std::mem::replace(&mut g.overlay, tex) {
                    // SAFETY: the canvas that made it is alive (unsafe_textures leaves freeing
                    // to us).
                    unsafe { old.destroy() };
                }
            }
            Presenter::Cpu(c) => {
                c.overlay = if empty {
                    None
                } else {
                    // R, G, B, A bytes: ABGR8888 on a little-endian machine.
                    Some(blend_surface(
                        img.width as u32,
                        img.height as u32,
                        &img.pixels,
                        PixelFormatEnum::ABGR8888,
                    )?)
                }
            }
        }
        Ok(())
    }

    /// Replace the host's cursor image; `img.bgra` is premultiplied (as the host sends it).
    pub(crate) fn set_cursor(&mut self, img: &CursorImage<'_>) -> Result<(), WindowError> {
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 || img.bgra.len() != w as usize * h as usize * 4 {
            return Err(WindowError::Cursor(w, h));
        }
        // SDL's blending wants straight alpha.
        let straight: Vec<u8> = img
            .bgra
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u32::from(p[3]);
                let un = |c: u8| match a {
                    0 => 0,
                    _ => (u32::from(c) * 255 / a).min(255) as u8,
                };
                [un(p[0]), un(p[1]), un(p[2]), p[3]]
            })
            .collect();
        let hotspot = Hotspot {
            width: w,
            height: h,
            x: i64::from(img.hotspot_x),
            y: i64::from(img.hotspot_y),
        };
        // ARGB8888 is B, G, R, A in memory on little-endian machines.
        match self {
            Presenter::Gpu(g) => {
                let mut tex =
                    sdl(g
                        .creator
                        .create_texture_static(PixelFormatEnum::ARGB8888, w, h))?;
                sdl(tex.update(None, &straight, w as usize * 4))?;
                tex.set_blend_mode(BlendMode::Blend);
                if let Some((old, _)) = g.cursor.replace((tex, hotspot)) {
                    // SAFETY: the canvas that made it is alive.
                    unsafe { old.destroy() };
                }
            }
            Presenter::Cpu(c) => {
                c.cursor = Some((straight, hotspot));
                c.cursor_scaled = None;
            }
        }
        Ok(())
    }

    /// The window's pixels as BGRA bytes (B, G, R, A in memory), for tests.
    pub(crate) fn read_pixels(
        &self,
        events: &EventPump,
    ) -> Result<(u32, u32, Vec<u8>), WindowError> {
        match self {
            Presenter::Gpu(g) => {
                let (w, h) = sdl(g.canvas.output_size())?;
                let px = sdl(g.canvas.read_pixels(None, PixelFormatEnum::ARGB8888))?;
                Ok((w, h, px))
            }
            Presenter::Cpu(c) => {
                let surf = sdl(c.window.surface(events))?;
                let (w, h) = surf.size();
                let mut out = sdl(Surface::new(w, h, PixelFormatEnum::ARGB8888))?;
                sdl(surf.blit(None, &mut out, None))?;
                let pitch = out.pitch() as usize;
                let px = out.with_lock(|p| {
                    p.chunks(pitch)
                        .flat_map(|row| &row[..w as usize * 4])
                        .copied()
                        .collect()
                });
                Ok((w, h, px))
            }
        }
    }
}

impl Gpu {
    fn upload(&mut self, pic: &I420<'_>) -> Result<(), WindowError> {
        let stale = !matches!(&self.video, Some((_, w, h)) if (*w, *h) == (pic.width, pic.height));
        if stale {
            let tex = sdl(self.creator.create_texture_streaming(
                PixelFormatEnum::IYUV,
                pic.width,
                pic.height,
            ))?;
            if let Some((old, _, _)) = self.video.replace((tex, pic.width, pic.height)) {
                // SAFETY: the canvas that made it is alive.
                unsafe { old.destroy() };
            }
        }
        let Some((tex, _, _)) = self.video.as_mut() else {
            return Ok(());
        };
        sdl(tex.update_yuv(
            None,
            pic.y.data,
            pic.y.stride,
            pic.u.data,
            pic.u.stride,
            pic.v.data,
            pic.v.stride,
        ))
    }

    fn draw(&mut self, overlay_on: bool, cursor_at: CursorAt) -> Result<(), WindowError> {
        let (ww, wh) = sdl(self.canvas.output_size())?;
        self.canvas.set_draw_color(Color::BLACK);
        self.canvas.clear();
        if let Some((tex, w, h)) = &self.video {
            let r = letterbox((ww, wh), (*w, *h));
            sdl(self.canvas.copy(tex, None, Rect::new(r.x, r.y, r.w, r.h)))?;
            if let (Some((cursor, c)), Some(at)) = (&self.cursor, cursor_at) {
                if let Some((dst, clip)) = cursor_rect((ww, wh), (*w, *h), at, *c) {
                    self.canvas.set_clip_rect(Some(clip));
                    let drawn = self.canvas.copy(cursor, None, dst);
                    self.canvas.set_clip_rect(None);
                    sdl(drawn)?;
                }
            }
        }
        if overlay_on {
            if let Some((tex, w, h)) = &self.overlay {
                sdl(self.canvas.copy(tex, None, Rect::new(8, 8, *w, *h)))?;
            }
        }
        self.canvas.present();
        Ok(())
    }
}

/// Whether a surface's pixels are B, G, R, X bytes (what `i420_to_bgra` writes).
fn is_bgrx(f: PixelFormatEnum) -> bool {
    cfg!(target_endian = "little")
        && matches!(f, PixelFormatEnum::RGB888 | PixelFormatEnum::ARGB8888)
}

fn planes<'a>(pic: &I420<'a>) -> [PlaneRef<'a>; 3] {
    [pic.y, pic.u, pic.v].map(|p| PlaneRef {
        data: p.data,
        stride: p.stride,
    })
}

impl Cpu {
    fn draw(
        &mut self,
        pic: Option<&I420<'_>>,
        overlay_on: bool,
        cursor_at: CursorAt,
        events: &EventPump,
    ) -> Result<(), WindowError> {
        let mut surf = sdl(self.window.surface(events))?;
        let (sw, sh) = surf.size();
        let direct = is_bgrx(surf.pixel_format_enum())
            && pic.is_some_and(|p| (p.width, p.height) == (sw, sh));
        match pic {
            Some(pic) if direct => {
                let pitch = surf.pitch() as usize;
                surf.with_lock_mut(|px| {
                    i420_to_bgra(pic.width, pic.height, planes(pic), px, pitch)
                })?;
            }
            Some(pic) => {
                let fits = self
                    .staging
                    .as_ref()
                    .is_some_and(|s| s.size() == (pic.width, pic.height));
                if !fits {
                    self.staging = Some(sdl(Surface::new(
                        pic.width,
                        pic.height,
                        PixelFormatEnum::ARGB8888,
                    ))?);
                }
                let Some(staging) = self.staging.as_mut() else {
                    return Ok(());
                };
                let pitch = staging.pitch() as usize;
                staging.with_lock_mut(|px| {
                    i420_to_bgra(pic.width, pic.height, planes(pic), px, pitch)
                })?;
                let r = letterbox((sw, sh), (pic.width, pic.height));
                let dst = Rect::new(r.x, r.y, r.w, r.h);
                clear_around(&mut surf, dst)?;
                sdl(staging.blit_scaled(None, &mut surf, dst))?;
            }
            None => sdl(surf.fill_rect(None, Color::BLACK))?,
        }
        if let (Some(pic), Some((pixels, c)), Some(at)) = (pic, &self.cursor, cursor_at) {
            if let Some((dst, clip)) = cursor_rect((sw, sh), (pic.width, pic.height), at, *c) {
                let size = (dst.width(), dst.height());
                if self.cursor_scaled.as_ref().is_none_or(|s| s.size() != size) {
                    self.cursor_scaled = Some(scale_nearest(pixels, *c, size)?);
                }
                // Clipped here: sdl2 0.38's `SurfaceRef::set_clip_rect` passes SDL a pointer
                // to a value already dropped.
                if let (Some(cursor), Some(shown)) = (&self.cursor_scaled, dst.intersection(clip)) {
                    let from = Rect::new(
                        shown.x() - dst.x(),
                        shown.y() - dst.y(),
                        shown.width(),
                        shown.height(),
                    );
                    sdl(cursor.blit(from, &mut surf, shown))?;
                }
            }
        }
        if overlay_on {
            if let Some(overlay) = &self.overlay {
                let (w, h) = overlay.size();
                sdl(overlay.blit(None, &mut surf, Rect::new(8, 8, w, h)))?;
            }
        }
        sdl(surf.update_window())
    }
}

/// `c.width`×`c.height` B, G, R, A pixels scaled to `size` (nearest), as a blending surface.
fn scale_nearest(
    pixels: &[u8],
    c: Hotspot,
    size: (u32, u32),
) -> Result<Surface<'static>, WindowError> {
    let (sw, sh) = (c.width as usize, c.height as usize);
    let (dw, dh) = (size.0 as usize, size.1 as usize);
    let mut scaled = Vec::with_capacity(dw * dh * 4);
    for y in 0..dh {
        let row = &pixels[(y * sh / dh) * sw * 4..][..sw * 4];
        for x in 0..dw {
            scaled.extend_from_slice(&row[(x * sw / dw) * 4..][..4]);
        }
    }
    blend_surface(size.0, size.1, &scaled, PixelFormatEnum::ARGB8888)
}

/// Paint the window black outside `inner` (the letterbox bars).
fn clear_around(surf: &mut SurfaceRef, inner: Rect) -> Result<(), WindowError> {
    let (w, h) = surf.size();
    let (x, y, r, b) = (
        inner.x().max(0) as u32,
        inner.y().max(0) as u32,
        (inner.right().max(0) as u32).min(w),
        (inner.bottom().max(0) as u32).min(h),
    );
    let bars = [
        Rect::new(0, 0, w, y),
        Rect::new(0, b as i32, w, h - b),
        Rect::new(0, y as i32, x, b - y),
        Rect::new(r as i32, y as i32, w - r, b - y),
    ];
    let bars: Vec<Rect> = bars
        .into_iter()
        .filter(|q| q.width() > 0 && q.height() > 0)
        .collect();
    sdl(surf.fill_rects(&bars, Color::BLACK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_renderers_are_recognised() {
        assert!(is_software_gl("llvmpipe (LLVM 15.0.6, 256 bits)"));
        assert!(is_software_gl("Mesa X11 / softpipe"));
        assert!(!is_software_gl("NVIDIA GeForce RTX 3060/PCIe/SSE2"));
        assert!(!is_software_gl("Mesa Intel(R) UHD Graphics 620 (KBL GT2)"));
    }

    #[test]
    fn modes_parse() {
        assert_eq!("cpu".parse::<PresentMode>(), Ok(PresentMode::Cpu));
        assert!("vulkan".parse::<PresentMode>().is_err());
    }
}
