//! The client's window: decoded I420 pictures shown letterboxed, with the host's cursor and the
//! stats overlay on top.
//! How a picture gets to the screen (YUV textures on a GPU, SIMD conversion into the window
//! without one) is `present`'s job.
//!
//! Vsync is off: a picture is presented as soon as it is decoded, trading a possible tear for
//! up to a frame of latency.

use crate::input_map::{Action, InputMapper};
use crate::overlay;
pub use crate::present::PresentMode;
use crate::present::Presenter;
use sdl2::controller::GameController;
use sdl2::event::{Event, WindowEvent};
use sdl2::video::FullscreenType;
use sdl2::{EventPump, EventSubsystem, GameControllerSubsystem, Sdl};
use std::collections::HashMap;
use thiserror::Error;
use wavry_input::InputEvent;
use wavry_media::convert::YuvFrame;

#[derive(Debug, Error)]
pub enum WindowError {
    #[error("SDL: {0}")]
    Sdl(String),
    #[error("picture planes do not match {0}x{1}")]
    Planes(u32, u32),
    #[error("colour conversion: {0}")]
    Convert(#[from] wavry_media::to_bgra::ToBgraError),
    #[error("cursor image does not match {0}x{1}")]
    Cursor(u32, u32),
}

pub(crate) fn sdl<T>(r: Result<T, impl ToString>) -> Result<T, WindowError> {
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

/// An I420 picture the holder owns: a decoder's picture shared by reference (the decode
/// mailbox's), or a copy in buffers of its own, reused from picture to picture (the cpu
/// presentation path's copy for redraws of a picture it was only lent).
#[derive(Default)]
pub(crate) struct OwnedI420 {
    width: u32,
    height: u32,
    /// Y, U, V: bytes and stride, when `shared` is `None`.
    planes: [(Vec<u8>, usize); 3],
    shared: Option<YuvFrame>,
}

impl OwnedI420 {
    pub(crate) fn copy_from(&mut self, pic: &I420<'_>) {
        self.shared = None;
        self.width = pic.width;
        self.height = pic.height;
        for (dst, src) in self.planes.iter_mut().zip([pic.y, pic.u, pic.v]) {
            dst.0.clear();
            dst.0.extend_from_slice(src.data);
            dst.1 = src.stride;
        }
    }

    /// Hold `pic` (an I420 decoder output) by reference: no copy.
    pub(crate) fn share(&mut self, pic: &YuvFrame) {
        self.width = pic.size().width;
        self.height = pic.size().height;
        match &mut self.shared {
            Some(f) => f.share_from(pic),
            None => self.shared = Some(pic.share()),
        }
    }

    pub(crate) fn view(&self) -> I420<'_> {
        let p = |i: usize| match &self.shared {
            Some(f) => {
                let (data, stride) = f.plane(i);
                Plane { data, stride }
            }
            None => Plane {
                data: &self.planes[i].0,
                stride: self.planes[i].1,
            },
        };
        I420 {
            width: self.width,
            height: self.height,
            y: p(0),
            u: p(1),
            v: p(2),
        }
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

/// The SDL window and what it draws. SDL wants its window used from the thread that made it.
pub struct VideoWindow {
    _sdl: Sdl,
    presenter: Presenter,
    events: EventPump,
    controllers: GameControllerSubsystem,
    event_subsystem: EventSubsystem,
    open_pads: HashMap<u32, GameController>,
    /// The size of the last picture, for mapping pointer positions.
    video_size: Option<(u32, u32)>,
    overlay_on: bool,
    monitor_requested: bool,
    pub input: InputMapper,
    /// Where the host's pointer is, in video pixels (`None`: hidden).
    cursor_at: Option<(i32, i32)>,
}

impl VideoWindow {
    /// Open a window titled `title` of `width`×`height` (resizable), showing pictures the
    /// `mode` way.
    pub fn open(
        title: &str,
        width: u32,
        height: u32,
        mode: PresentMode,
    ) -> Result<Self, WindowError> {
        // Keep the compositor out of the way and let the host drive the cursor.
        sdl2::hint::set("SDL_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR", "1");
        // The cpu path draws into the window's own framebuffer: X11's shared memory, not an
        // OpenGL texture SDL would otherwise put behind it.
        sdl2::hint::set("SDL_FRAMEBUFFER_ACCELERATION", "0");
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
        let presenter = Presenter::new(window, mode)?;
        tracing::info!(presenter = %presenter.name(), "window open (vsync off)");
        let event_subsystem = sdl(ctx.event())?;
        // Registered once per process (the sdl2 crate keeps the type's number across windows).
        static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        sdl(REGISTERED
            .get_or_init(|| event_subsystem.register_custom_event::<PictureReady>())
            .clone())?;
        let events = sdl(ctx.event_pump())?;
        Ok(VideoWindow {
            _sdl: ctx,
            presenter,
            events,
            controllers,
            event_subsystem,
            open_pads: HashMap::new(),
            video_size: None,
            overlay_on: false,
            monitor_requested: false,
            input: InputMapper::new((width, height), (width, height)),
            cursor_at: None,
        })
    }

    /// How pictures reach the screen: "gpu (opengl)", "cpu"…
    pub fn presenter(&self) -> String {
        self.presenter.name()
    }

    /// Show `pic` now (scaled into the window, aspect kept) with the overlay if it is on.
    pub fn present(&mut self, pic: &I420<'_>) -> Result<(), WindowError> {
        self.take_size(pic)?;
        self.presenter
            .present(pic, self.overlay_on, self.cursor_at, &self.events)
    }

    /// [`VideoWindow::present`] for a picture the caller gives away: the window keeps it for
    /// redraws instead of copying it, and returns a picture buffer to reuse (the one it
    /// held before, or `pic` itself when it needs none).
    pub(crate) fn present_owned(&mut self, pic: OwnedI420) -> Result<OwnedI420, WindowError> {
        self.take_size(&pic.view())?;
        self.presenter
            .present_owned(pic, self.overlay_on, self.cursor_at, &self.events)
    }

    /// Check a picture's planes and follow its size (for mapping pointer positions).
    fn take_size(&mut self, pic: &I420<'_>) -> Result<(), WindowError> {
        if !pic.check() {
            return Err(WindowError::Planes(pic.width, pic.height));
        }
        if self.video_size != Some((pic.width, pic.height)) {
            self.video_size = Some((pic.width, pic.height));
            self.input.set_video_size(pic.width, pic.height);
        }
        Ok(())
    }

    /// Draw the last picture again (after a resize or an overlay change).
    pub fn redraw(&mut self) -> Result<(), WindowError> {
        self.presenter
            .redraw(self.overlay_on, self.cursor_at, &self.events)
    }

    /// Replace the host's cursor image (shown at the position last given to
    /// [`VideoWindow::set_cursor_position`] from the next redraw).
    pub fn set_cursor_shape(&mut self, img: &CursorImage<'_>) -> Result<(), WindowError> {
        self.presenter.set_cursor(img)
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
        self.presenter.set_overlay(overlay::render(lines, 2))
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
                    let next = match self.presenter.window().fullscreen_state() {
                        FullscreenType::Off => FullscreenType::Desktop,
                        _ => FullscreenType::Off,
                    };
                    sdl(self.presenter.window_mut().set_fullscreen(next))?;
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
        self.presenter.read_pixels(&self.events)
    }
}
