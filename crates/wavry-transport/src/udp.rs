//! Drives a `Session` over a [`RiftSocket`] on the calling thread: receive, run due timers,
//! send everything the session has ready, and wait precisely for the next timer (the pacer's
//! gaps included). [`crate::thread::SessionThread`] runs the same loop on a dedicated thread.

use crate::listen::Listener;
use crate::session::{ConnectionFactory, Session};
use crate::socket::{RiftSocket, SendBatch, SocketStats, Wake};
use rift_core::wire::Demux;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::time::Instant;

pub use crate::socket::{dscp, tos};

/// Receive batches per [`UdpDriver::receive`] call (`BATCH` datagrams each). A receiver that
/// comes back to a deep socket backlog (its thread was descheduled) must not pour it all into
/// the reassembler before the application takes frames out: the reassembler's few frame slots
/// would overflow and drop frames. Left in the socket, the backlog is also what the feedback's
/// read times show the sender as queuing delay.
pub const RECEIVE_BATCHES: usize = 4;

pub struct UdpDriver {
    socket: RiftSocket,
    batch: SendBatch,
    /// Datagrams that were not RIFT or that the session refused.
    pub dropped: u64,
}

impl UdpDriver {
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(UdpDriver {
            socket: RiftSocket::bind(addr)?,
            batch: SendBatch::default(),
            dropped: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn socket_stats(&self) -> SocketStats {
        self.socket.stats
    }

    /// Host side: run `listener` until `deadline` or until it admits a client, whose session
    /// (established, the client authenticated and allowed, its connection from `factory`) is
    /// returned with its first packets sent. Handshakes still pending stay in the listener for
    /// the next call.
    pub fn accept(
        &mut self,
        listener: &mut Listener,
        deadline: Instant,
        factory: impl FnOnce() -> ConnectionFactory,
    ) -> io::Result<Option<Session>> {
        loop {
            let now = Instant::now();
            if listener.poll_timeout().is_some_and(|t| t <= now) {
                listener.handle_timeout(now);
            }
            if let Some(admitted) = listener.poll_admitted() {
                let mut s = admitted.into_session(factory()).map_err(io::Error::other)?;
                self.flush_listener(listener)?;
                self.flush(&mut s, Instant::now())?;
                return Ok(Some(s));
            }
            let wake = listener
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            if self.socket.wait(Some(wake), None)? == Wake::Deadline && Instant::now() >= deadline {
                return Ok(None);
            }
            for _ in 0..RECEIVE_BATCHES {
                let now = Instant::now();
                let mut got = 0;
                for r in self.socket.recv()? {
                    got += 1;
                    if rift_core::wire::demux(r.data) != Demux::Rift
                        || listener.handle_datagram(now, r.from, r.data).is_err()
                    {
                        self.dropped += 1;
                    }
                }
                // Answers go out between batches: a flood must not queue them unboundedly.
                self.flush_listener(listener)?;
                if got < crate::socket::BATCH {
                    break;
                }
            }
        }
    }

    /// Send the listener's answers.
    fn flush_listener(&mut self, listener: &mut Listener) -> io::Result<()> {
        loop {
            let Some(slot) = self.batch.next_slot() else {
                self.socket.send(&mut self.batch)?;
                continue;
            };
            match listener.poll_transmit(slot) {
                Some(t) => self.batch.commit(t.len, t.to, t.priority),
                None => break,
            }
        }
        if !self.batch.is_empty() {
            self.socket.send(&mut self.batch)?;
        }
        Ok(())
    }

    /// Send everything the session has ready now, in batches.
    pub fn flush(&mut self, session: &mut Session, now: Instant) -> io::Result<()> {
        loop {
            let Some(slot) = self.batch.next_slot() else {
                self.socket.send(&mut self.batch)?;
                continue;
            };
            match session.poll_transmit(now, slot) {
                Ok(Some(t)) => self.batch.commit(t.len, t.to, t.priority),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "session could not produce a packet");
                    break;
                }
            }
        }
        if !self.batch.is_empty() {
            self.socket.send(&mut self.batch)?;
        }
        Ok(())
    }

    /// Hand waiting datagrams to the session: at most [`RECEIVE_BATCHES`] batches, so the
    /// caller delivers frames between them (see there).
    pub fn receive(&mut self, session: &mut Session) -> io::Result<usize> {
        let mut n = 0;
        for _ in 0..RECEIVE_BATCHES {
            let mut got = 0;
            let now = Instant::now();
            for r in self.socket.recv()? {
                got += 1;
                if rift_core::wire::demux(r.data) != Demux::Rift
                    || session
                        .handle_datagram_stamped(now, r.arrived, r.from, r.data)
                        .is_err()
                {
                    self.dropped += 1;
                }
            }
            n += got;
            if got < crate::socket::BATCH {
                break;
            }
        }
        Ok(n)
    }

    /// One turn of the loop: receive what waits, run due timers, send what is ready, then wait
    /// until the next timer, a datagram, `waker`, or `deadline`.
    pub fn turn(
        &mut self,
        session: &mut Session,
        deadline: Instant,
        waker: Option<BorrowedFd<'_>>,
    ) -> io::Result<Wake> {
        self.receive(session)?;
        let now = Instant::now();
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        self.flush(session, now)?;
        if session.close_reason().is_some() {
            return Ok(Wake::Deadline);
        }
        let wake = session.poll_timeout().map_or(deadline, |t| t.min(deadline));
        self.wait(Some(wake), waker)
    }

    /// Wait until a datagram arrives, `waker` is signalled, or `deadline` passes (within
    /// microseconds).
    pub fn wait(
        &self,
        deadline: Option<Instant>,
        waker: Option<BorrowedFd<'_>>,
    ) -> io::Result<Wake> {
        self.socket.wait(deadline, waker)
    }

    /// Run the session until `deadline` (or until it closes). Datagrams already waiting are
    /// always read (up to [`RECEIVE_BATCHES`] batches), even when `deadline` has passed, so a
    /// caller that drives in short slices never starves the receive side.
    pub fn drive(&mut self, session: &mut Session, deadline: Instant) -> io::Result<()> {
        loop {
            self.turn(session, deadline, None)?;
            if session.close_reason().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Take in and answer what arrived during the last wait before handing back.
                self.receive(session)?;
                self.flush(session, Instant::now())?;
                return Ok(());
            }
        }
    }
}
