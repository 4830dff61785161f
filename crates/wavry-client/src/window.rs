//! The client's window: decoded I420 pictures uploaded straight into an IYUV streaming texture
//! (the GPU, or SDL's software renderer, converts to RGB while scaling; no CPU RGB pass),
//! letterboxed to the window, with the host's cursor and the stats overlay on top.
//!
//! Vsync is off: a picture is presented as soon as it is decoded, trading a possible tear for
//! up to a frame of latency.

use crate::input_map::{letterbox, Action, InputMapper};
use crate::overlay;
use sdl2::controller::GameController;
use sdl2::event::{Event, WindowEvent};
use sdl2::pixels::PixelFormatEnum;
use sdl2::rect::Rect;
use sdl2::render::{BlendMode, Canvas, Texture, TextureCreator};
use sdl2::video::{FullscreenType, Window, WindowContext};
use sdl2::{EventPump, EventSubsystem, GameControllerSubsystem, Sdl};
use std::collections::HashMap;
use thiserror::Error;
use wavry_input::InputEvent;

#[derive(Debug, Error)]
pub enum WindowError {
    #[error("SDL: {0}")]
    Sdl(String),
    #[error("picture planes do not match {0}x{1}")]
    Planes(u32, u32),
    #[error("cursor image does not match {0}x{1}")]
    Cursor(u32, u32),
}

fn sdl<T>(r: Result<T, impl ToString>) -> Result<T, WindowError> {
    r.map_err(|e| WindowError::Sdl(e.to_string()))
}

/// Pushed by the decoding thread when a picture waits to be shown.
#[derive(Debug, Clone, Copy)]
pub struct PictureReady;

/// One plane of a picture: bytes and the distance between rows.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A decoded I420 picture (Y full size, U and V half size each way).
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    pub width: u32,
    pub height: u32,
    pub y: Plane<'a>,
    pub u: Plane<'a>,
    pub v: Plane<'a>,
}

impl I420<'_> {
    fn check(&self) -> bool {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let fits = |p: &Plane, pw: usize, ph: usize| {
            p.stride >= pw && ph > 0 && p.data.len() >= p.stride * (ph - 1) + pw
        };
        w > 0 && h > 0 && fits(&self.y, w, h) && fits(&self.u, cw, ch) && fits(&self.v, cw, ch)
    }
}

/// A cursor image for [`VideoWindow::set_cursor_shape`]: `width × height` pixels of B, G, R,
/// A bytes with premultiplied alpha (as the host sends them), drawn with the pixel
/// (`hotspot_x`, `hotspot_y`) at the pointer position.
#[derive(Debug, Clone, Copy)]
pub struct CursorImage<'a> {
    pub width: u32,
    pub height: u32,
    pub hotspot_x: u32,
    pub hotspot_y: u32,
    pub bgra: &'a [u8],
}

/// The host's cursor as a texture, drawn over the video.
struct CursorTexture {
    texture: Texture,
    width: u32,
    height: u32,
    hotspot: (i64, i64),
}

/// The SDL window and what it draws. SDL wants its window used from the thread that made it.
pub struct VideoWindow {
    _sdl: Sdl,
    canvas: Canvas<Window>,
    creator: TextureCreator<WindowContext>,
    events: EventPump,
    controllers: GameControllerSubsystem,
    event_subsystem: EventSubsystem,
    open_pads: HashMap<u32, GameController>,
    video: Option<(Texture, u32, u32)>,
    overlay: Option<(Texture, u32, u32)>,
    overlay_on: bool,
    monitor_requested: bool,
    pub input: InputMapper,
    cursor: Option<CursorTexture>,
    /// Where the host's pointer is, in video pixels (`None`: hidden).
    cursor_at: Option<(i32, i32)>,
}

impl VideoWindow {
    /// Open a window titled `title` of `width`×`height` (resizable).
    pub fn open(title: &str, width: u32, height: u32) -> Result<Self, WindowError> {
        // Keep the compositor out of the way and let the host drive the cursor.
        sdl2::hint::set("SDL_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR", "1");
        // Our pictures are BT.709 limited range (docs/MEDIA.md); SDL's automatic mode would
        // take BT.601 for pictures up to 576 lines and shift their colours.
        // SAFETY: sets a global mode; takes a plain enum value.
        unsafe {
            sdl2::sys::SDL_SetYUVConversionMode(
                sdl2::sys::SDL_YUV_CONVERSION_MODE::SDL_YUV_CONVERSION_BT709,
            )
        };
        let ctx = sdl(sdl2::init())?;
        let video = sdl(ctx.video())?;
        let controllers = sdl(ctx.game_controller())?;
        let window = sdl(video
            .window(title, width, height)
            .resizable()
            .position_centered()
            .build())?;
        let canvas = sdl(window.into_canvas().build())?;
        tracing::info!(
            renderer = canvas.info().name,
            "window open (vsync off, YUV textures)"
        );
        let creator = canvas.texture_creator();
        let event_subsystem = sdl(ctx.event())?;
        sdl(event_subsystem.register_custom_event::<PictureReady>())?;
        let events = sdl(ctx.event_pump())?;
        Ok(VideoWindow {
            _sdl: ctx,
            canvas,
            creator,
            events,
            controllers,
            event_subsystem,
            open_pads: HashMap::new(),
            video: None,
            overlay: None,
            overlay_on: false,
            monitor_requested: false,
            input: InputMapper::new((width, height), (width, height)),
            cursor: None,
            cursor_at: None,
        })
    }

    /// Show `pic` now (scaled into the window, aspect kept) with the overlay if it is on.
    pub fn present(&mut self, pic: &I420<'_>) -> Result<(), WindowError> {
        if !pic.check() {
            return Err(WindowError::Planes(pic.width, pic.height));
        }
        let stale = !matches!(&self.video, Some((_, w, h)) if (*w, *h) == (pic.width, pic.height));
        if stale {
            let tex = sdl(self.creator.create_texture_streaming(
                PixelFormatEnum::IYUV,
                pic.width,
                pic.height,
            ))?;
            if let Some((old, _, _)) = self.video.replace((tex, pic.width, pic.height)) {
                // SAFETY: the canvas that made it is alive (unsafe_textures leaves freeing to us).
                unsafe { old.destroy() };
            }
            self.input.set_video_size(pic.width, pic.height);
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
        ))?;
        self.redraw()
    }

    /// Draw the last picture again (after a resize or an overlay change).
    pub fn redraw(&mut self) -> Result<(), WindowError> {
        let (ww, wh) = self.canvas.output_size().map_err(WindowError::Sdl)?;
        self.canvas.set_draw_color(sdl2::pixels::Color::BLACK);
        self.canvas.clear();
        if let Some((tex, w, h)) = &self.video {
            let r = letterbox((ww, wh), (*w, *h));
            sdl(self.canvas.copy(tex, None, Rect::new(r.x, r.y, r.w, r.h)))?;
        }
        self.draw_cursor((ww, wh))?;
        if self.overlay_on {
            if let Some((tex, w, h)) = &self.overlay {
                sdl(self.canvas.copy(tex, None, Rect::new(8, 8, *w, *h)))?;
            }
        }
        self.canvas.present();
        Ok(())
    }

    /// Draw the host's cursor over the video, scaled with it and clipped to it.
    fn draw_cursor(&mut self, window: (u32, u32)) -> Result<(), WindowError> {
        let (Some((_, vw, vh)), Some(c), Some((x, y))) =
            (&self.video, &self.cursor, self.cursor_at)
        else {
            return Ok(());
        };
        let r = letterbox(window, (*vw, *vh));
        // Video pixels → window pixels, the same mapping as the picture's.
        let map = |v: i64, origin: i32, shown: u32, size: u32| {
            i64::from(origin) + v * i64::from(shown) / i64::from(size.max(1))
        };
        let left = map(i64::from(x) - c.hotspot.0, r.x, r.w, *vw);
        let top = map(i64::from(y) - c.hotspot.1, r.y, r.h, *vh);
        let right = map(
            i64::from(x) - c.hotspot.0 + i64::from(c.width),
            r.x,
            r.w,
            *vw,
        );
        let bottom = map(
            i64::from(y) - c.hotspot.1 + i64::from(c.height),
            r.y,
            r.h,
            *vh,
        );
        let fits = |v: i64| i32::try_from(v).ok();
        let (Some(left), Some(top)) = (fits(left), fits(top)) else {
            return Ok(());
        };
        let (w, h) = (
            (right - i64::from(left)).max(1),
            (bottom - i64::from(top)).max(1),
        );
        self.canvas
            .set_clip_rect(Some(Rect::new(r.x, r.y, r.w, r.h)));
        let drawn = self.canvas.copy(
            &c.texture,
            None,
            Rect::new(left, top, w.min(4096) as u32, h.min(4096) as u32),
        );
        self.canvas.set_clip_rect(None);
        sdl(drawn)
    }

    /// Replace the host's cursor image (shown at the position last given to
    /// [`VideoWindow::set_cursor_position`] from the next redraw).
    pub fn set_cursor_shape(&mut self, img: &CursorImage<'_>) -> Result<(), WindowError> {
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 || img.bgra.len() != w as usize * h as usize * 4 {
            return Err(WindowError::Cursor(w, h));
        }
        // SDL's blending wants straight alpha; the host's pixels are premultiplied.
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
        // ARGB8888 is B, G, R, A in memory on little-endian machines.
        let mut texture = sdl(self
            .creator
            .create_texture_static(PixelFormatEnum::ARGB8888, w, h))?;
        sdl(texture.update(None, &straight, w as usize * 4))?;
        texture.set_blend_mode(BlendMode::Blend);
        let new = CursorTexture {
            texture,
            width: w,
            height: h,
            hotspot: (i64::from(img.hotspot_x), i64::from(img.hotspot_y)),
        };
        if let Some(old) = self.cursor.replace(new) {
            // SAFETY: as in `present`.
            unsafe { old.texture.destroy() };
        }
        Ok(())
    }

    /// Where the host's pointer is, in pixels of the video (`None`: draw no cursor). While the
    /// host's cursor is drawn, the local one is hidden over the window: two pointers, one of
    /// them late, would confuse. Takes effect at the next redraw.
    pub fn set_cursor_position(&mut self, at: Option<(i32, i32)>) {
        if at.is_some() != self.cursor_at.is_some() {
            self._sdl.mouse().show_cursor(at.is_none());
        }
        self.cursor_at = at;
    }

    /// Replace the overlay's text.
    pub fn set_overlay(&mut self, lines: &[String]) -> Result<(), WindowError> {
        let img = overlay::render(lines, 2);
        if img.width == 0 || img.height == 0 {
            self.overlay = None;
            return Ok(());
        }
        let (w, h) = (img.width as u32, img.height as u32);
        let mut tex = sdl(self
            .creator
            .create_texture_static(PixelFormatEnum::ABGR8888, w, h))?;
        sdl(tex.update(None, &img.pixels, img.width * 4))?;
        tex.set_blend_mode(BlendMode::Blend);
        if let Some((old, _, _)) = self.overlay.replace((tex, w, h)) {
            // SAFETY: as in `present`.
            unsafe { old.destroy() };
        }
        Ok(())
    }

    /// Whether the user asked for the host's next monitor since the last call.
    pub fn take_monitor_request(&mut self) -> bool {
        std::mem::take(&mut self.monitor_requested)
    }

    pub fn overlay_on(&self) -> bool {
        self.overlay_on
    }

    /// Show or hide the overlay (the hotkey toggles it too).
    pub fn set_overlay_visible(&mut self, on: bool) -> Result<(), WindowError> {
        self.overlay_on = on;
        self.redraw()
    }

    /// A handle other threads use to wake [`VideoWindow::wait_event`] with a
    /// [`PictureReady`] event.
    pub fn event_sender(&self) -> sdl2::event::EventSender {
        self.event_subsystem.event_sender()
    }

    /// Wait up to `timeout` for the next event (input, window, or a [`PictureReady`]).
    pub fn wait_event(&mut self, timeout: std::time::Duration) -> Option<Event> {
        self.events
            .wait_event_timeout(timeout.as_millis().clamp(1, u32::MAX as u128) as u32)
    }

    /// Handle what SDL has queued without waiting (see [`VideoWindow::handle`]).
    pub fn pump(&mut self, send: &mut Vec<InputEvent>) -> Result<bool, WindowError> {
        let mut quit = false;
        while let Some(ev) = self.events.poll_event() {
            quit |= self.handle(ev, send)?;
        }
        Ok(quit)
    }

    /// Handle one event: input for the host goes into `send`; hotkeys (fullscreen, overlay,
    /// pointer lock) act here. Returns whether the user asked to quit.
    pub fn handle(&mut self, ev: Event, send: &mut Vec<InputEvent>) -> Result<bool, WindowError> {
        let mut actions = Vec::new();
        let mut quit = false;
        let mut redraw = false;
        match &ev {
            Event::Window {
                win_event: WindowEvent::SizeChanged(w, h),
                ..
            } => {
                self.input.set_window_size(*w as u32, *h as u32);
                redraw = true;
            }
            Event::Window {
                win_event: WindowEvent::Exposed,
                ..
            } => redraw = true,
            Event::ControllerDeviceAdded { which, .. } => match self.controllers.open(*which) {
                Ok(pad) => {
                    let id = pad.instance_id();
                    if let Some((_, added)) = self.input.add_pad(id) {
                        tracing::info!(name = %pad.name(), "game controller connected");
                        self.open_pads.insert(id, pad);
                        send.push(added);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot open a game controller"),
            },
            _ => {}
        }
        self.input.map(&ev, &mut actions);
        if let Event::ControllerDeviceRemoved { which, .. } = ev {
            self.open_pads.remove(&which);
        }
        for a in actions {
            match a {
                Action::Send(e) => send.push(e),
                Action::Quit => quit = true,
                Action::NextMonitor => self.monitor_requested = true,
                Action::ToggleOverlay => {
                    self.overlay_on = !self.overlay_on;
                    redraw = true;
                }
                Action::ToggleFullscreen => {
                    let next = match self.canvas.window().fullscreen_state() {
                        FullscreenType::Off => FullscreenType::Desktop,
                        _ => FullscreenType::Off,
                    };
                    sdl(self.canvas.window_mut().set_fullscreen(next))?;
                }
                Action::TogglePointerLock => {
                    let lock = !self.input.pointer_locked();
                    self.input.set_pointer_locked(lock);
                    self._sdl.mouse().set_relative_mouse_mode(lock);
                }
            }
        }
        if redraw {
            self.redraw()?;
        }
        Ok(quit)
    }

    /// Run rumble the host asked for on pad `pad`.
    pub fn rumble(&mut self, pad: u8, low: u16, high: u16, duration_ms: u16) {
        let Some(id) = self.input.pad_instance(pad) else {
            return;
        };
        if let Some(c) = self.open_pads.get_mut(&id) {
            if let Err(e) = c.set_rumble(low, high, duration_ms as u32) {
                tracing::debug!(error = %e, "rumble not supported by this controller");
            }
        }
    }

    /// The window's pixels as BGRA (for tests and the latency probe's reader).
    pub fn read_pixels(&self) -> Result<(u32, u32, Vec<u8>), WindowError> {
        let (w, h) = self.canvas.output_size().map_err(WindowError::Sdl)?;
        let px = sdl(self.canvas.read_pixels(None, PixelFormatEnum::ARGB8888))?;
        Ok((w, h, px))
    }
}
