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

/// Splits the byte stream from the server into packets (sans-IO).
struct Packets {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes still to discard from the payload of the last packet.
    skip: usize,
}

impl Packets {
    fn new() -> Self {
        Self {
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            skip: 0,
        }
    }

    /// The next whole packet received, its payload beyond 32 bytes discarded (no reply on
    /// this connection has any).
    fn next(&mut self) -> Option<[u8; PACKET]> {
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

    /// Room for more bytes (call after `next` returned `None`: never empty then, since less
    /// than a packet is left unparsed).
    fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were written to the start of `space()`.
    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

pub(super) struct Wire {
    stream: DefaultStream,
    packets: Packets,
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
            packets: Packets::new(),
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
    pub(super) fn poll_packet(&mut self) -> Result<Option<[u8; PACKET]>, CaptureError> {
        loop {
            if let Some(p) = self.packets.next() {
                return Ok(Some(p));
            }
            match self.stream.read(self.packets.space(), &mut Vec::new()) {
                Ok(0) => {
                    return Err(CaptureError::Io(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the X server closed the capture connection",
                    )))
                }
                Ok(n) => self.packets.filled(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, seq: u16, extra_words: u32) -> Vec<u8> {
        let mut p = vec![0u8; PACKET + extra_words as usize * 4];
        p[0] = kind;
        p[2..4].copy_from_slice(&seq.to_ne_bytes());
        if matches!(kind, REPLY | GENERIC_EVENT) {
            p[4..8].copy_from_slice(&extra_words.to_ne_bytes());
        }
        p
    }

    /// Feed `stream` in chunks of `chunk` bytes and collect (kind, seq) of every packet.
    fn split(stream: &[u8], chunk: usize) -> Vec<(u8, u16)> {
        let mut packets = Packets::new();
        let mut out = Vec::new();
        for part in stream.chunks(chunk) {
            let space = packets.space();
            space[..part.len()].copy_from_slice(part);
            packets.filled(part.len());
            while let Some(p) = packets.next() {
                out.push((p[0], u16::from_ne_bytes([p[2], p[3]])));
            }
        }
        out
    }

    #[test]
    fn packets_are_split_whatever_the_read_sizes() {
        let mut stream = Vec::new();
        stream.extend(packet(REPLY, 1, 0));
        stream.extend(packet(85, 2, 0)); // an event
        stream.extend(packet(GENERIC_EVENT, 3, 5)); // 20 payload bytes to skip
        stream.extend(packet(REPLY, 4, 3000)); // a payload larger than the read buffer's tail
        stream.extend(packet(ERROR, 5, 0));
        stream.extend(packet(REPLY | 0x80, 6, 0));
        let want = vec![
            (REPLY, 1),
            (85, 2),
            (GENERIC_EVENT, 3),
            (REPLY, 4),
            (ERROR, 5),
            (REPLY | 0x80, 6),
        ];
        for chunk in [1, 7, 31, 32, 33, 100, 4096] {
            assert_eq!(split(&stream, chunk), want, "reads of {chunk} bytes");
        }
    }
}
