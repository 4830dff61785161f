//! X11 capture: MIT-SHM grabs driven by XDamage, cursor through XFixes, monitors from RandR.
//!
//! Two connections to the server:
//! - the control connection (x11rb): extension set-up, RandR monitors and their change
//!   events, XFixes cursor shapes, attaching the SHM segments;
//! - the [`wire`] connection: the per-frame traffic (damage events, DamageSubtract,
//!   ShmGetImage, QueryPointer) with fixed buffers, so a running capture does not allocate.
//!
//! Resource ids are global in an X server, so the wire connection grabs into segments the
//! control connection attached.

mod shm;
mod wire;

use super::{
    CaptureError, CapturePacer, CaptureTarget, Capturer, CursorPosition, CursorShape, Frame,
    Monitor, MonitorId, PacerConfig, PacerDecision, PixelMemory, Rect,
};
use crate::buffer_pool::BufferPool;
use crate::frame::PixelSize;
use shm::{protocol, ShmBuffer};
use std::os::fd::AsFd;
use std::time::Instant;
use wire::{Packet, Wire, REPLY_TIMEOUT};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat};
use x11rb::protocol::{damage, randr, shm as xshm, xfixes, Event};
use x11rb::reexports::x11rb_protocol::id_allocator::IdAllocator;
use x11rb::reexports::x11rb_protocol::x11_utils::TryParse;
use x11rb::rust_connection::RustConnection;

/// Capture buffers: one being filled, one being encoded, one spare.
pub const POOL_SIZE: usize = 3;

/// How to open an [`X11Capturer`].
#[derive(Clone, Debug, Default)]
pub struct X11Config {
    /// Display name (`:0`); `None` uses `$DISPLAY`.
    pub display: Option<String>,
    pub pacer: PacerConfig,
    pub target: CaptureTarget,
}

/// Extension numbers learnt from the server.
struct Extensions {
    shm_opcode: u8,
    damage_opcode: u8,
    damage_event: u8,
}

/// The serialized per-frame requests (built when the capture is configured).
struct Requests {
    subtract: Vec<u8>,
    /// ShmGetImage of the current area; the segment id is patched in per frame.
    grab: [u8; 32],
    pointer: Vec<u8>,
}

/// Damage events read in one go: whether any touched the captured area, or only others.
#[derive(Default)]
struct DamageSeen {
    ours: bool,
    elsewhere: bool,
}

impl DamageSeen {
    fn note(&mut self, packet: Packet, damage_event: u8, area: Rect) {
        match packet {
            Packet::Event(p) if p[0] & 0x7f == damage_event => {
                let Ok((e, _)) = damage::NotifyEvent::try_parse(&p) else {
                    return;
                };
                let r = Rect {
                    x: i32::from(e.area.x),
                    y: i32::from(e.area.y),
                    width: u32::from(e.area.width),
                    height: u32::from(e.area.height),
                };
                if r.intersects(&area) {
                    self.ours = true;
                } else {
                    self.elsewhere = true;
                }
            }
            Packet::Event(_) | Packet::Reply => {}
            Packet::Error(p) => {
                tracing::warn!(
                    code = p[1],
                    major = p[10],
                    "X error on the capture connection"
                )
            }
        }
    }
}

/// Byte offset of the `shmseg` field in a ShmGetImage request.
const GRAB_SHMSEG: usize = 24;

/// Screen capture of an X11 display.
pub struct X11Capturer {
    conn: RustConnection,
    wire: Wire,
    root: xproto::Window,
    ext: Extensions,
    screen: Rect,
    monitors: Vec<Monitor>,
    target: CaptureTarget,
    area: Rect,
    pool: BufferPool<Box<dyn PixelMemory>>,
    /// Bytes each pool buffer holds.
    buffer_len: usize,
    /// Segments of the current pool, detached from the server when the pool is replaced.
    segments: Vec<xshm::Seg>,
    requests: Requests,
    pacer: CapturePacer,
    cursor: Option<CursorShape>,
    /// Serial of the shape shown now (may be ahead of `cursor` until it is fetched).
    cursor_serial: u32,
    frames: u64,
}

impl X11Capturer {
    pub fn open(config: X11Config) -> Result<Self, CaptureError> {
        let display = config.display.as_deref();
        let (conn, screen_num) =
            x11rb::connect(display).map_err(|e| CaptureError::Connect(e.to_string()))?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| CaptureError::Connect(format!("no screen {screen_num}")))?;
        let root = screen.root;
        check_pixel_format(conn.setup(), screen.root_depth)?;

        let ext = Extensions::query(&conn)?;
        let shm_version = xshm::query_version(&conn)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        if (shm_version.major_version, shm_version.minor_version) < (1, 2) {
            return Err(CaptureError::Unsupported(format!(
                "MIT-SHM 1.2 (fd passing); the server has {}.{}",
                shm_version.major_version, shm_version.minor_version
            )));
        }
        let randr_version = randr::query_version(&conn, 1, 5)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        if (randr_version.major_version, randr_version.minor_version) < (1, 5) {
            return Err(CaptureError::Unsupported("RandR 1.5 (monitors)".into()));
        }
        xfixes::query_version(&conn, 4, 0)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        randr::select_input(
            &conn,
            root,
            randr::NotifyMask::SCREEN_CHANGE
                | randr::NotifyMask::CRTC_CHANGE
                | randr::NotifyMask::OUTPUT_CHANGE
                | randr::NotifyMask::RESOURCE_CHANGE,
        )
        .map_err(protocol)?;
        xfixes::select_cursor_input(&conn, root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(protocol)?;
        // Adding or removing a RandR 1.5 monitor (`xrandr --setmonitor`) raises no RandR event,
        // only a ConfigureNotify on the root window.
        conn.change_window_attributes(
            root,
            &xproto::ChangeWindowAttributesAux::new()
                .event_mask(xproto::EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(protocol)?;

        let mut wire = Wire::connect(display, REPLY_TIMEOUT)?;
        let damage = create_damage(&mut wire, &ext, root)?;
        let pointer = bytes(xproto::QueryPointerRequest { window: root }.serialize());
        let subtract = bytes(
            damage::SubtractRequest {
                damage,
                repair: x11rb::NONE,
                parts: x11rb::NONE,
            }
            .serialize(ext.damage_opcode),
        );

        let mut capturer = Self {
            conn,
            wire,
            root,
            ext,
            screen: Rect::default(),
            monitors: Vec::new(),
            target: config.target,
            area: Rect::default(),
            pool: BufferPool::new(Vec::new()),
            buffer_len: 0,
            segments: Vec::new(),
            requests: Requests {
                subtract,
                grab: [0; 32],
                pointer,
            },
            pacer: CapturePacer::new(config.pacer),
            cursor: None,
            cursor_serial: 0,
            frames: 0,
        };
        capturer.reconfigure()?;
        // A monitor that goes away later falls back to the whole screen; one that never
        // existed is the caller's mistake.
        if let CaptureTarget::Monitor(id) = config.target {
            if capturer.target != config.target {
                return Err(CaptureError::NoSuchMonitor(id));
            }
        }
        capturer.fetch_cursor()?;
        Ok(capturer)
    }

    /// Re-read the screen size and monitors, resolve the target, and size the buffers.
    fn reconfigure(&mut self) -> Result<(), CaptureError> {
        let geometry = self
            .conn
            .get_geometry(self.root)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        self.screen = Rect {
            x: 0,
            y: 0,
            width: u32::from(geometry.width),
            height: u32::from(geometry.height),
        };
        self.monitors = query_monitors(&self.conn, self.root)?;
        if let CaptureTarget::Monitor(id) = self.target {
            if !self.monitors.iter().any(|m| m.id == id) {
                tracing::warn!(
                    ?id,
                    "captured monitor went away; capturing the whole screen"
                );
                self.target = CaptureTarget::WholeScreen;
            }
        }
        self.capture_area(self.target_area(self.target)?)?;
        tracing::info!(
            screen = ?self.screen,
            area = ?self.area,
            monitors = self.monitors.len(),
            "X11 capture configured"
        );
        Ok(())
    }

    /// Capture `area` from the next frame on (at once), growing the buffers if it is larger.
    fn capture_area(&mut self, area: Rect) -> Result<(), CaptureError> {
        let len = area.width as usize * area.height as usize * 4;
        if len > self.buffer_len {
            self.replace_pool(len)?;
        }
        self.area = area;
        self.requests.grab = grab_request(&self.ext, self.root, area)?;
        self.pacer.on_damage();
        Ok(())
    }

    fn target_area(&self, target: CaptureTarget) -> Result<Rect, CaptureError> {
        let wanted = match target {
            CaptureTarget::WholeScreen => self.screen,
            CaptureTarget::Monitor(id) => {
                self.monitors
                    .iter()
                    .find(|m| m.id == id)
                    .ok_or(CaptureError::NoSuchMonitor(id))?
                    .geometry
            }
        };
        // GetImage fails for any pixel outside the screen: clip to it.
        let x0 = wanted.x.clamp(0, self.screen.width as i32);
        let y0 = wanted.y.clamp(0, self.screen.height as i32);
        let x1 = (wanted.x + wanted.width as i32).clamp(x0, self.screen.width as i32);
        let y1 = (wanted.y + wanted.height as i32).clamp(y0, self.screen.height as i32);
        if x1 == x0 || y1 == y0 {
            return Err(CaptureError::Protocol(format!(
                "capture area {wanted:?} lies outside the screen {:?}",
                self.screen
            )));
        }
        Ok(Rect {
            x: x0,
            y: y0,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }

    fn replace_pool(&mut self, len: usize) -> Result<(), CaptureError> {
        let mut buffers: Vec<Box<dyn PixelMemory>> = Vec::with_capacity(POOL_SIZE);
        let mut segments = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let b = ShmBuffer::new(&self.conn, len)?;
            segments.push(b.seg);
            buffers.push(Box::new(b));
        }
        // Frames still out keep their memory mapped; the server only drops its mapping.
        for seg in std::mem::replace(&mut self.segments, segments) {
            xshm::detach(&self.conn, seg).map_err(protocol)?;
        }
        self.pool = BufferPool::new(buffers);
        self.buffer_len = len;
        Ok(())
    }

    /// Handle the control connection's queued events without blocking.
    fn pump_control(&mut self) -> Result<(), CaptureError> {
        // Handling an event waits for replies, and x11rb queues events read meanwhile:
        // repeat until the queue is empty, so `wait` never sleeps on a queued event.
        loop {
            let mut changed = false;
            let mut cursor = false;
            while let Some(event) = self.conn.poll_for_event().map_err(protocol)? {
                match event {
                    Event::RandrScreenChangeNotify(_) | Event::RandrNotify(_) => changed = true,
                    Event::ConfigureNotify(e) if e.window == self.root => changed = true,
                    Event::XfixesCursorNotify(e) => {
                        self.cursor_serial = e.cursor_serial;
                        cursor = true;
                    }
                    _ => {}
                }
            }
            if !changed && !cursor {
                return Ok(());
            }
            if changed {
                self.reconfigure()?;
            }
            if cursor {
                self.fetch_cursor()?;
            }
        }
    }

    fn fetch_cursor(&mut self) -> Result<(), CaptureError> {
        let image = xfixes::get_cursor_image(&self.conn)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        self.cursor_serial = image.cursor_serial;
        self.cursor = Some(CursorShape {
            serial: image.cursor_serial,
            width: image.width,
            height: image.height,
            hotspot_x: image.xhot,
            hotspot_y: image.yhot,
            // ARGB words: little-endian bytes are B, G, R, A.
            bgra: image
                .cursor_image
                .iter()
                .flat_map(|p| p.to_le_bytes())
                .collect(),
        });
        Ok(())
    }

    /// Read the wire connection's queued events without blocking.
    fn pump_wire(&mut self) -> Result<(), CaptureError> {
        let mut seen = DamageSeen::default();
        while let Some(p) = self.wire.poll_packet()? {
            seen.note(Packet::from(p), self.ext.damage_event, self.area);
        }
        self.on_damage(seen)
    }

    /// Wait for the wire's reply to request `seq`, handling events that come first.
    fn wire_reply(&mut self, seq: u64) -> Result<[u8; 32], CaptureError> {
        let mut seen = DamageSeen::default();
        let (event, area) = (self.ext.damage_event, self.area);
        let reply = self
            .wire
            .reply(seq, Instant::now() + REPLY_TIMEOUT, &mut |p| {
                seen.note(p, event, area)
            })?;
        self.on_damage(seen)?;
        Ok(reply)
    }

    fn on_damage(&mut self, seen: DamageSeen) -> Result<(), CaptureError> {
        if seen.ours {
            self.pacer.on_damage();
        } else if seen.elsewhere {
            // Only damage elsewhere (another monitor): clear it so the bounding box the
            // server reports against does not grow over our area and hide our changes.
            self.wire.send(&self.requests.subtract)?;
        }
        Ok(())
    }

    fn grab(&mut self, repeat: bool) -> Result<Frame, CaptureError> {
        let buffer = self.pool.take().ok_or(CaptureError::PoolExhausted)?;
        let captured_at = Instant::now();
        self.pacer.on_capture(captured_at);
        // Clear the damage first: whatever changes after this point raises a new event.
        self.wire.send(&self.requests.subtract)?;
        self.requests.grab[GRAB_SHMSEG..GRAB_SHMSEG + 4]
            .copy_from_slice(&buffer.handle().to_ne_bytes());
        let grab = self.wire.send(&self.requests.grab)?;
        let pointer = self.wire.send(&self.requests.pointer)?;
        let reply = self.wire_reply(grab)?;
        let (image, _) = xshm::GetImageReply::try_parse(&reply).map_err(protocol)?;
        let size = self.area.size();
        let stride = size.width as usize * 4;
        if image.size as usize != stride * size.height as usize {
            return Err(CaptureError::Protocol(format!(
                "ShmGetImage returned {} bytes for {}x{}",
                image.size, size.width, size.height
            )));
        }
        let reply = self.wire_reply(pointer)?;
        let cursor = self.pointer_from(&reply)?;
        let index = self.frames;
        self.frames += 1;
        Ok(Frame {
            buffer,
            size: PixelSize::new(size.width, size.height),
            stride,
            captured_at,
            repeat,
            index,
            area: self.area,
            cursor,
        })
    }

    fn pointer_from(&self, reply: &[u8; 32]) -> Result<CursorPosition, CaptureError> {
        let (p, _) = xproto::QueryPointerReply::try_parse(reply).map_err(protocol)?;
        let (x, y) = (i32::from(p.root_x), i32::from(p.root_y));
        Ok(CursorPosition {
            x: x - self.area.x,
            y: y - self.area.y,
            inside: p.same_screen && self.area.contains(x, y),
            shape_serial: self.cursor_serial,
        })
    }

    /// Wait until either connection has something to read, or until `until`.
    fn wait(&mut self, until: Instant) -> Result<(), CaptureError> {
        // x11rb may hold events it has read already: never sleep on a buffered event.
        self.conn.flush().map_err(protocol)?;
        let timeout = until.saturating_duration_since(Instant::now());
        wire::poll_readable(self.wire.fd(), Some(self.conn.stream().as_fd()), timeout)?;
        Ok(())
    }
}

impl Capturer for X11Capturer {
    fn monitors(&self) -> &[Monitor] {
        &self.monitors
    }

    fn select(&mut self, target: CaptureTarget) -> Result<(), CaptureError> {
        let area = self.target_area(target)?;
        self.target = target;
        self.capture_area(area)
    }

    fn target(&self) -> CaptureTarget {
        self.target
    }

    fn next_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, CaptureError> {
        let mut retried = false;
        loop {
            self.pump_control()?;
            self.pump_wire()?;
            let now = Instant::now();
            match self.pacer.poll(now) {
                PacerDecision::Capture { repeat } => match self.grab(repeat) {
                    // The screen shrank under the grab before its RandR event arrived: read
                    // the new configuration and capture again.
                    Err(CaptureError::X { .. }) if !retried => {
                        tracing::debug!("grab failed; re-reading the screen configuration");
                        retried = true;
                        self.reconfigure()?;
                    }
                    result => return result.map(Some),
                },
                PacerDecision::WaitUntil(due) => {
                    if now >= deadline {
                        return Ok(None);
                    }
                    let until = due.map_or(deadline, |due| due.min(deadline));
                    self.wait(until)?;
                }
            }
        }
    }

    fn cursor_shape(&self) -> Option<&CursorShape> {
        self.cursor.as_ref()
    }

    fn cursor_position(&mut self) -> Result<CursorPosition, CaptureError> {
        self.pump_control()?;
        let seq = self.wire.send(&self.requests.pointer)?;
        let reply = self.wire_reply(seq)?;
        self.pointer_from(&reply)
    }
}

impl Extensions {
    fn query(conn: &RustConnection) -> Result<Self, CaptureError> {
        let info = |name: &'static str| {
            conn.extension_information(name)
                .map_err(protocol)?
                .ok_or_else(|| CaptureError::Unsupported(format!("the {name} extension")))
        };
        let shm = info(xshm::X11_EXTENSION_NAME)?;
        let damage = info(damage::X11_EXTENSION_NAME)?;
        info(randr::X11_EXTENSION_NAME)?;
        info(xfixes::X11_EXTENSION_NAME)?;
        Ok(Self {
            shm_opcode: shm.major_opcode,
            damage_opcode: damage.major_opcode,
            damage_event: damage.first_event + damage::NOTIFY_EVENT,
        })
    }
}

/// Grabs are ZPixmap reads into a 32-bit buffer: depth 24 or 32 stored as 32 bits per pixel.
fn check_pixel_format(setup: &xproto::Setup, depth: u8) -> Result<(), CaptureError> {
    let format = setup.pixmap_formats.iter().find(|f| f.depth == depth);
    match format {
        Some(f) if f.bits_per_pixel == 32 && matches!(depth, 24 | 32) => Ok(()),
        _ => Err(CaptureError::Unsupported(format!(
            "a 32-bit pixel format (root depth is {depth})"
        ))),
    }
}

/// Announce the Damage version on the wire connection (the server requires it before any
/// other Damage request) and watch the root window there.
fn create_damage(
    wire: &mut Wire,
    ext: &Extensions,
    root: xproto::Window,
) -> Result<damage::Damage, CaptureError> {
    let version = damage::QueryVersionRequest {
        client_major_version: 1,
        client_minor_version: 1,
    };
    let seq = wire.send(&bytes(version.serialize(ext.damage_opcode)))?;
    wire.reply(seq, Instant::now() + REPLY_TIMEOUT, &mut |_| {})?;
    let setup = &wire.setup;
    let mut ids =
        IdAllocator::new(setup.resource_id_base, setup.resource_id_mask).map_err(protocol)?;
    let id = ids
        .generate_id()
        .ok_or_else(|| protocol("no X resource id left"))?;
    // Bounding-box reports: one event each time the damaged area grows, so a burst of drawing
    // costs a few events, and damage on another monitor is told apart by its rectangle.
    let create = damage::CreateRequest {
        damage: id,
        drawable: root,
        level: damage::ReportLevel::BOUNDING_BOX,
    };
    wire.send(&bytes(create.serialize(ext.damage_opcode)))?;
    Ok(id)
}

fn grab_request(
    ext: &Extensions,
    root: xproto::Window,
    area: Rect,
) -> Result<[u8; 32], CaptureError> {
    let request = xshm::GetImageRequest {
        drawable: root,
        x: area.x as i16,
        y: area.y as i16,
        width: area.width as u16,
        height: area.height as u16,
        plane_mask: !0,
        format: ImageFormat::Z_PIXMAP.into(),
        shmseg: 0,
        offset: 0,
    };
    bytes(request.serialize(ext.shm_opcode))
        .try_into()
        .map_err(|_| protocol("ShmGetImage request is not 32 bytes"))
}

/// A serialized request as one byte string.
fn bytes<const N: usize>(
    (parts, _fds): (
        [std::borrow::Cow<'static, [u8]>; N],
        Vec<x11rb::utils::RawFdContainer>,
    ),
) -> Vec<u8> {
    parts.concat()
}

fn query_monitors(
    conn: &RustConnection,
    root: xproto::Window,
) -> Result<Vec<Monitor>, CaptureError> {
    let reply = randr::get_monitors(conn, root, true)
        .map_err(protocol)?
        .reply()
        .map_err(protocol)?;
    let resources = randr::get_screen_resources_current(conn, root)
        .map_err(protocol)?
        .reply()
        .map_err(protocol)?;
    let mut monitors = Vec::with_capacity(reply.monitors.len());
    for m in reply.monitors {
        let name = conn
            .get_atom_name(m.name)
            .map_err(protocol)?
            .reply()
            .map_err(protocol)?;
        let refresh_hz = match m.outputs.first() {
            Some(&output) => output_refresh(conn, output, &resources)?,
            None => None,
        };
        monitors.push(Monitor {
            id: MonitorId(m.name),
            name: String::from_utf8_lossy(&name.name).into_owned(),
            geometry: Rect {
                x: i32::from(m.x),
                y: i32::from(m.y),
                width: u32::from(m.width),
                height: u32::from(m.height),
            },
            primary: m.primary,
            refresh_hz,
        });
    }
    Ok(monitors)
}

/// The refresh rate of the mode an output shows, if it drives one with known timings.
fn output_refresh(
    conn: &RustConnection,
    output: randr::Output,
    resources: &randr::GetScreenResourcesCurrentReply,
) -> Result<Option<f64>, CaptureError> {
    let info = randr::get_output_info(conn, output, resources.config_timestamp)
        .map_err(protocol)?
        .reply()
        .map_err(protocol)?;
    if info.crtc == x11rb::NONE {
        return Ok(None);
    }
    let crtc = randr::get_crtc_info(conn, info.crtc, resources.config_timestamp)
        .map_err(protocol)?
        .reply()
        .map_err(protocol)?;
    Ok(resources
        .modes
        .iter()
        .find(|mode| mode.id == crtc.mode)
        .and_then(|mode| {
            let pixels = f64::from(mode.htotal) * f64::from(mode.vtotal);
            (mode.dot_clock > 0 && pixels > 0.0).then(|| f64::from(mode.dot_clock) / pixels)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grab_request_segment_sits_where_it_is_patched() {
        let ext = Extensions {
            shm_opcode: 130,
            damage_opcode: 0,
            damage_event: 0,
        };
        let area = Rect {
            x: 10,
            y: 20,
            width: 640,
            height: 480,
        };
        let mut patched = grab_request(&ext, 0x123, area).unwrap();
        patched[GRAB_SHMSEG..GRAB_SHMSEG + 4].copy_from_slice(&0xabcdefu32.to_ne_bytes());
        let direct = xshm::GetImageRequest {
            drawable: 0x123,
            x: 10,
            y: 20,
            width: 640,
            height: 480,
            plane_mask: !0,
            format: ImageFormat::Z_PIXMAP.into(),
            shmseg: 0xabcdef,
            offset: 0,
        };
        assert_eq!(patched.to_vec(), bytes(direct.serialize(130)));
    }
}
