//! Drives a `Session` over a real UDP socket on the calling thread: receive with a timeout set
//! by the session's next timer, run due timers, send everything the session has ready.
//!
//! Waits under 2 ms (the pacer's gaps inside a frame burst) are spent polling the socket, so
//! pacing is as fine as the loop; longer waits sleep in `recv`. A dedicated sender thread with
//! batched sends is the next step of the transport. Each datagram carries the DSCP of its class
//! (input above control above media), set on the socket when the class changes.

use crate::session::{ConnectionFactory, Session, SessionConfig};
use rift_core::wire::{Demux, Header, PacketType, Priority, MAX_DATAGRAM};
use rift_crypto::handshake::Verifier;
use rift_crypto::identity::Identity;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// IPv4 TOS byte (DSCP << 2) per send class, so routers that honour DiffServ forward input and
/// control ahead of video: input EF (46), control AF41 (34), media AF42 (36).
pub fn tos(priority: Priority) -> u32 {
    let dscp = match priority {
        Priority::Input => 46,
        Priority::Control => 34,
        Priority::Media => 36,
    };
    dscp << 2
}

/// Shortest receive timeout.
const MIN_WAIT: Duration = Duration::from_micros(50);
/// Waits shorter than this are spent polling the socket instead of sleeping in the kernel.
const SPIN_BELOW: Duration = Duration::from_millis(2);

pub struct UdpDriver {
    socket: UdpSocket,
    rx: Vec<u8>,
    tx: Vec<u8>,
    nonblocking: bool,
    /// TOS the socket currently marks with (changed only when the class changes).
    tos: Option<u32>,
    /// Datagrams that were not RIFT or that the session refused.
    pub dropped: u64,
}

impl UdpDriver {
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        Ok(UdpDriver {
            socket,
            rx: vec![0u8; 2048],
            tx: vec![0u8; MAX_DATAGRAM],
            nonblocking: false,
            tos: None,
            dropped: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn recv(&mut self, wait: Duration) -> io::Result<Option<(usize, SocketAddr)>> {
        // A kernel timer wakes the thread a millisecond or more late on a loaded machine, which
        // would stretch the pacer's microsecond gaps: for short waits, poll without sleeping.
        let nonblocking = wait < SPIN_BELOW;
        if nonblocking != self.nonblocking {
            self.socket.set_nonblocking(nonblocking)?;
            self.nonblocking = nonblocking;
        }
        if nonblocking {
            std::thread::yield_now();
        } else {
            self.socket.set_read_timeout(Some(wait.max(MIN_WAIT)))?;
        }
        match self.socket.recv_from(&mut self.rx) {
            Ok(r) => Ok(Some(r)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Host side: wait until `deadline` for a client's handshake initiation and start a session
    /// for it. Anything else that arrives is dropped and counted.
    pub fn accept(
        &mut self,
        cfg: &SessionConfig,
        identity: &Identity,
        mut allow: impl FnMut() -> Verifier,
        mut factory: impl FnMut() -> ConnectionFactory,
        deadline: Instant,
    ) -> io::Result<Option<Session>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let Some((n, from)) = self.recv(deadline - now)? else {
                continue;
            };
            let d = &self.rx[..n];
            let is_init = rift_core::wire::demux(d) == Demux::Rift
                && Header::decode(d).is_ok_and(|h| h.packet_type == PacketType::HandshakeInit);
            if !is_init {
                self.dropped += 1;
                continue;
            }
            match Session::accept(
                cfg.clone(),
                identity,
                allow(),
                d,
                from,
                factory(),
                Instant::now(),
            ) {
                Ok(mut s) => {
                    self.flush(&mut s, Instant::now())?;
                    return Ok(Some(s));
                }
                Err(e) => {
                    tracing::debug!(%from, error = %e, "refused a handshake initiation");
                    self.dropped += 1;
                }
            }
        }
    }

    /// Send everything the session has ready now.
    pub fn flush(&mut self, session: &mut Session, now: Instant) -> io::Result<()> {
        loop {
            match session.poll_transmit(now, &mut self.tx) {
                Ok(Some(t)) => {
                    self.mark(t.priority);
                    if let Err(e) = self.socket.send_to(&self.tx[..t.len], t.to) {
                        // A full socket buffer drops the packet, as the network would.
                        if e.kind() != io::ErrorKind::WouldBlock {
                            return Err(e);
                        }
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "session could not produce a packet");
                    return Ok(());
                }
            }
        }
    }

    fn mark(&mut self, priority: Priority) {
        let want = tos(priority);
        if self.tos == Some(want) {
            return;
        }
        // IPv4 only for now; on an IPv6 socket this fails and packets go unmarked.
        match socket2::SockRef::from(&self.socket).set_tos_v4(want) {
            Ok(()) => self.tos = Some(want),
            Err(e) => {
                tracing::debug!(error = %e, "cannot set the TOS byte; packets go unmarked");
                self.tos = Some(want);
            }
        }
    }

    /// The TOS byte the socket marks with now (for tests and diagnostics).
    pub fn current_tos(&self) -> io::Result<u32> {
        socket2::SockRef::from(&self.socket).tos_v4()
    }

    /// Run the session until `deadline` (or until it closes): timers, receive, send. Datagrams
    /// already waiting are always read, even when `deadline` has passed, so a caller that
    /// drives in short slices never starves the receive side.
    pub fn drive(&mut self, session: &mut Session, deadline: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
            self.flush(session, now)?;
            if session.close_reason().is_some() {
                return Ok(());
            }
            let wake = session.poll_timeout().map_or(deadline, |t| t.min(deadline));
            match self.recv(wake.saturating_duration_since(now))? {
                Some((n, from)) => {
                    let now = Instant::now();
                    let datagram = &mut self.rx[..n];
                    if rift_core::wire::demux(datagram) != Demux::Rift
                        || session.handle_datagram(now, from, datagram).is_err()
                    {
                        self.dropped += 1;
                    }
                }
                None if Instant::now() >= deadline => {
                    // Send what the last datagrams made due before handing back.
                    self.flush(session, Instant::now())?;
                    return Ok(());
                }
                None => {}
            }
        }
    }
}
