//! The capture hot path's own X connection: fixed buffers, no heap allocation per request.
//!
//! x11rb's connection allocates for every request it serializes and every packet it reads,
//! so the per-frame traffic (damage events, DamageSubtract, ShmGetImage, QueryPointer) goes
//! over this second connection instead. Its requests are serialized once by x11rb-protocol
//! when the capture is configured; here they are only written, and the 32-byte replies and
//! events are read into a fixed buffer and parsed by x11rb-protocol's parsers. Everything
//! else (setup, RandR, XFixes, SHM segments) stays on the ordinary x11rb connection.

use super::super::CaptureError;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};
use x11rb::reexports::x11rb_protocol::connect::Connect;
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::reexports::x11rb_protocol::protocol::xproto::Setup;
use x11rb::reexports::x11rb_protocol::xauth::get_auth;
use x11rb::rust_connection::{DefaultStream, PollMode, Stream};

/// X11 packets are 32 bytes, plus a payload for replies and generic events.
pub(super) const PACKET: usize = 32;
const REPLY: u8 = 1;
const ERROR: u8 = 0;
const GENERIC_EVENT: u8 = 35;

/// Room for many queued events between two reads.
const READ_BUFFER: usize = 16 * 1024;

/// A received packet.
pub(super) enum Packet {
    Event([u8; PACKET]),
    /// An error for a request that expected no reply (or whose reply was not awaited).
    Error([u8; PACKET]),
    /// A reply (its content is only read by the one waiting for it).
    Reply,
}

impl From<[u8; PACKET]> for Packet {
    fn from(p: [u8; PACKET]) -> Self {
        match p[0] & 0x7f {
            REPLY => Packet::Reply,
            ERROR => Packet::Error(p),
            _ => Packet::Event(p),
        }
    }
}

pub(super) struct Wire {
    stream: DefaultStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes still to discard from the payload of the last packet.
    skip: usize,
    /// Sequence number of the last request sent (the server counts from 1).
    seq: u64,
    pub(super) setup: Setup,
}

impl Wire {
    /// Connect to `display` (or `$DISPLAY`) the way x11rb does, with the same authorization.
    pub(super) fn connect(display: Option<&str>, timeout: Duration) -> Result<Self, CaptureError> {
        let parsed = parse_display(display).map_err(|e| CaptureError::Connect(e.to_string()))?;
        let mut last_err = None;
        for addr in parsed.connect_instruction() {
            match DefaultStream::connect(&addr) {
                Ok((stream, (family, address))) => {
                    // As x11rb: without usable auth data, try without authorization.
                    let (name, data) = get_auth(family, &address, parsed.display)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    return Self::handshake(stream, name, data, timeout);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(CaptureError::Connect(match last_err {
            Some(e) => e.to_string(),
            None => "no address to connect to".into(),
        }))
    }

    fn handshake(
        stream: DefaultStream,
        name: Vec<u8>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Self, CaptureError> {
        let (mut connect, request) = Connect::with_authorization(name, data);
        let mut wire = Self {
            stream,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            skip: 0,
            seq: 0,
            setup: Setup::default(),
        };
        wire.write_all(&request)?;
        let deadline = Instant::now() + timeout;
        loop {
            match wire.stream.read(connect.buffer(), &mut Vec::new()) {
                Ok(0) => return Err(CaptureError::Connect("server closed the connection".into())),
                Ok(n) => {
                    if connect.advance(n) {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => wire.wait_readable(deadline)?,
                Err(e) => return Err(e.into()),
            }
        }
        wire.setup = connect
            .into_setup()
            .map_err(|e| CaptureError::Connect(e.to_string()))?;
        Ok(wire)
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Send one serialized request; returns its sequence number.
    pub(super) fn send(&mut self, request: &[u8]) -> Result<u64, CaptureError> {
        self.write_all(request)?;
        self.seq += 1;
        Ok(self.seq)
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), CaptureError> {
        while !bytes.is_empty() {
            // An empty Vec does not allocate: no file descriptors travel on this connection.
            match self.stream.write(bytes, &mut Vec::new()) {
                Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero).into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stream.poll(PollMode::Writable)?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The next whole packet already received, reading what the socket holds without blocking.
    /// Payload bytes beyond the first 32 are discarded (no reply on this connection has any).
    pub(super) fn poll_packet(&mut self) -> Result<Option<[u8; PACKET]>, CaptureError> {
        loop {
            if let Some(p) = self.parse() {
                return Ok(Some(p));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn parse(&mut self) -> Option<[u8; PACKET]> {
        if self.skip > 0 {
            let n = self.skip.min(self.end - self.start);
            self.start += n;
            self.skip -= n;
            if self.skip > 0 {
                return None;
            }
        }
        if self.end - self.start < PACKET {
            return None;
        }
        let mut p = [0; PACKET];
        p.copy_from_slice(&self.buf[self.start..self.start + PACKET]);
        self.start += PACKET;
        if matches!(p[0] & 0x7f, REPLY | GENERIC_EVENT) {
            self.skip = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize * 4;
        }
        Some(p)
    }

    /// Read what the socket holds; `false` when it holds nothing.
    fn fill(&mut self) -> Result<bool, CaptureError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match self.stream.read(&mut self.buf[self.end..], &mut Vec::new()) {
            Ok(0) => Err(CaptureError::Io(io::Error::new(
                ErrorKind::UnexpectedEof,
                "the X server closed the capture connection",
            ))),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait for the reply to request `seq`, handing every other packet to `other`.
    pub(super) fn reply(
        &mut self,
        seq: u64,
        deadline: Instant,
        other: &mut dyn FnMut(Packet),
    ) -> Result<[u8; PACKET], CaptureError> {
        let want = seq as u16;
        loop {
            let Some(p) = self.poll_packet()? else {
                self.wait_readable(deadline)?;
                continue;
            };
            let seq_of = u16::from_ne_bytes([p[2], p[3]]);
            match Packet::from(p) {
                Packet::Reply if seq_of == want => return Ok(p),
                Packet::Error(p) if seq_of == want => {
                    return Err(CaptureError::X {
                        code: p[1],
                        major_opcode: p[10],
                    })
                }
                packet => other(packet),
            }
        }
    }

    fn wait_readable(&self, deadline: Instant) -> Result<(), CaptureError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(CaptureError::Timeout(REPLY_TIMEOUT));
        }
        poll_readable(self.fd(), None, deadline - now)?;
        Ok(())
    }
}

/// How long a reply may take before the server is considered gone.
pub(super) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Wait until `a` or `b` is readable or `timeout` passes.
pub(super) fn poll_readable(
    a: BorrowedFd<'_>,
    b: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    // A fixed array: no allocation.
    let mut polls = [
        PollFd::from_borrowed_fd(a, PollFlags::IN),
        PollFd::from_borrowed_fd(b.unwrap_or(a), PollFlags::IN),
    ];
    let n = if b.is_some() { 2 } else { 1 };
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    match rustix::event::poll(&mut polls[..n], Some(&timeout)) {
        Ok(_) => Ok(()),
        Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
