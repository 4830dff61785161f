//! The UDP socket under a RIFT endpoint: batched sends and receives, a DiffServ mark per
//! datagram, and waits that end within microseconds of their deadline.
//!
//! - Sends go out in batches of whatever is due at once. A run of equal-sized datagrams to one
//!   peer with one mark is a single `sendmsg` with UDP GSO (`UDP_SEGMENT`, Linux ≥ 4.18) where
//!   the kernel accepts it; otherwise the batch goes through `sendmmsg`; a lone datagram is a
//!   plain `sendto`.
//! - In batches the DSCP rides on each datagram as an `IP_TOS` / `IPV6_TCLASS` control
//!   message, so input, control and video can interleave; a lone datagram uses the mark set
//!   on the socket when the class changes (cheaper per packet).
//! - Receives drain up to [`BATCH`] datagrams per `recvmmsg`, each with the kernel's receive
//!   stamp (`SO_TIMESTAMPNS`) when it has one: when the datagram reached the socket, as
//!   opposed to when the thread read it (the feedback reports both; see docs/TRANSPORT.md).
//! - [`RiftSocket::wait`] sleeps in `ppoll` (timer slack lowered to 1 ns for the thread) until
//!   just before the deadline and spins the rest: measured here, a plain `ppoll` wakes 70–110 µs
//!   late, and 20–60 µs late with the lowered slack; the spin closes that gap so the pacer's
//!   gaps of a few hundred microseconds hold.
//!
//! Why not quinn-udp: its `Transmit` always writes an `IP_TOS` control message carrying only
//! the ECN bits, which clears the DSCP we mark input and control with.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{
    recvmmsg, sendmmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned,
    MsgFlags, MultiHeaders, SockaddrStorage,
};
use nix::sys::time::TimeSpec;
use rift_core::wire::{Priority, MAX_DATAGRAM};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant, SystemTime};

/// Datagrams per send or receive batch.
pub const BATCH: usize = 32;
/// Bytes per receive slot: larger than any RIFT datagram, so an oversized one is seen whole
/// (and refused) rather than truncated into something that might parse.
const RX_SLOT: usize = 2048;
/// Wake this long before a deadline and spin the rest (see the module notes).
const SPIN_MARGIN: Duration = Duration::from_micros(80);
/// A kernel stamp further back than this is a clock step, not a datagram that waited.
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

/// The DSCP per send class, so routers that honour DiffServ forward input and control ahead
/// of video: input EF (46), control AF41 (34), media AF42 (36).
pub fn dscp(priority: Priority) -> u8 {
    match priority {
        Priority::Input => 46,
        Priority::Control => 34,
        Priority::Media => 36,
    }
}

/// The TOS / traffic-class byte (DSCP in the upper six bits, ECN bits zero).
pub fn tos(priority: Priority) -> u8 {
    dscp(priority) << 2
}

/// What the socket did, for benchmarks and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SocketStats {
    pub datagrams_sent: u64,
    /// `sendmsg`/`sendmmsg` calls made.
    pub send_calls: u64,
    /// Of those, GSO sends (each several datagrams).
    pub gso_sends: u64,
    /// Datagrams the kernel refused because its buffer was full (dropped, as a network would).
    pub send_dropped: u64,
    pub datagrams_received: u64,
    /// Of those, datagrams that carried a kernel receive stamp.
    pub datagrams_stamped: u64,
    pub recv_calls: u64,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Datagrams are waiting.
    Readable,
    /// The waker fd was signalled.
    Woken,
    /// The deadline passed.
    Deadline,
}

/// A datagram queued in a [`SendBatch`].
#[derive(Debug, Clone, Copy)]
struct Queued {
    len: usize,
    to: SocketAddr,
    tos: u8,
}

/// Up to [`BATCH`] datagrams waiting to be sent together.
pub struct SendBatch {
    buf: Box<[u8]>,
    queued: Vec<Queued>,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            buf: vec![0u8; BATCH * MAX_DATAGRAM].into_boxed_slice(),
            queued: Vec::with_capacity(BATCH),
        }
    }
}

impl SendBatch {
    pub fn is_full(&self) -> bool {
        self.queued.len() == BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The slot for the next datagram (`MAX_DATAGRAM` bytes); `None` when the batch is full.
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let i = self.queued.len();
        (i < BATCH).then(|| &mut self.buf[i * MAX_DATAGRAM..(i + 1) * MAX_DATAGRAM])
    }

    /// Commit `len` bytes written into the slot from [`SendBatch::next_slot`].
    pub fn commit(&mut self, len: usize, to: SocketAddr, priority: Priority) {
        debug_assert!(len <= MAX_DATAGRAM && !self.is_full());
        self.queued.push(Queued {
            len,
            to,
            tos: tos(priority),
        });
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.buf[i * MAX_DATAGRAM..i * MAX_DATAGRAM + self.queued[i].len]
    }
}

/// A received datagram, borrowed from the socket's receive slots.
pub struct Received<'a> {
    pub from: SocketAddr,
    pub data: &'a mut [u8],
    /// When it reached the socket (the kernel's stamp, on this process's monotonic clock);
    /// `None` when the kernel gave none (stamping starts a moment after it is enabled).
    pub arrived: Option<Instant>,
}

/// nix's preallocated `mmsghdr` array, made `Send`.
struct Headers(MultiHeaders<SockaddrStorage>);

// SAFETY: `MultiHeaders` holds raw pointers only into buffers it owns (boxed addresses and
// control-message space) and, during a call, into the caller's iovecs; it is never shared, and
// moving the owner to another thread moves those boxes with it.
unsafe impl Send for Headers {}

pub struct RiftSocket {
    socket: UdpSocket,
    /// GSO allowed (cleared for good when the kernel or the device refuses it).
    gso: bool,
    /// The mark set on the socket itself (for lone datagrams; batches carry theirs).
    socket_tos: Option<u8>,
    rx: Box<[[u8; RX_SLOT]; BATCH]>,
    rx_meta: Vec<(usize, SocketAddr, Option<Instant>)>,
    rx_headers: Headers,
    tx_headers: Headers,
    pub stats: SocketStats,
}

impl RiftSocket {
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::from_socket(UdpSocket::bind(addr)?)
    }

    pub fn from_socket(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        // Room for a burst of video while the thread is busy elsewhere.
        let s = socket2::SockRef::from(&socket);
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        // Best effort: without stamps, read times stand for arrival times.
        let _ = setsockopt(&socket, sockopt::ReceiveTimestampns, &true);
        Ok(RiftSocket {
            socket,
            gso: cfg!(target_os = "linux"),
            socket_tos: None,
            rx: Box::new([[0u8; RX_SLOT]; BATCH]),
            rx_meta: Vec::with_capacity(BATCH),
            rx_headers: Headers(MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(TimeSpec)),
            )),
            tx_headers: Headers(MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(libc::c_int)),
            )),
            stats: SocketStats::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether sends still use GSO.
    pub fn gso_enabled(&self) -> bool {
        self.gso
    }

    /// Send and empty `batch`. A full kernel buffer drops datagrams (counted), as a network
    /// would; other errors are returned after the rest of the batch was tried.
    pub fn send(&mut self, batch: &mut SendBatch) -> io::Result<()> {
        let mut first_err = None;
        let mut i = 0;
        let n = batch.queued.len();
        while i < n {
            let q = batch.queued[i];
            // A run: same peer, same mark, equal sizes; the last datagram may be shorter.
            let mut end = i + 1;
            while end < n
                && batch.queued[end].to == q.to
                && batch.queued[end].tos == q.tos
                && batch.queued[end - 1].len == q.len
                && batch.queued[end].len <= q.len
            {
                end += 1;
            }
            let r = if end - i == 1 {
                self.send_one(batch, i)
            } else if self.gso {
                match self.send_gso(batch, i, end) {
                    Err(e) if matches!(e, Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT) => {
                        // The device or kernel cannot segment: never try again.
                        tracing::debug!(error = %e, "UDP GSO refused; sending with sendmmsg");
                        self.gso = false;
                        self.send_mmsg(batch, i, end)
                    }
                    r => r,
                }
            } else {
                self.send_mmsg(batch, i, end)
            };
            if let Err(e) = r {
                if e == Errno::EAGAIN || e == Errno::ENOBUFS {
                    self.stats.send_dropped += (end - i) as u64;
                } else if first_err.is_none() {
                    first_err = Some(io::Error::from(e));
                }
            }
            i = end;
        }
        batch.queued.clear();
        first_err.map_or(Ok(()), Err)
    }

    /// A lone datagram: a plain `sendto` with the mark set on the socket when the class
    /// changes (cheaper per packet than a control message, and this is the common case: the
    /// pacer releases one packet at a time).
    fn send_one(&mut self, batch: &SendBatch, i: usize) -> Result<(), Errno> {
        let q = batch.queued[i];
        if self.socket_tos != Some(q.tos) {
            let s = socket2::SockRef::from(&self.socket);
            let r = match q.to {
                SocketAddr::V4(_) => s.set_tos_v4(q.tos as u32),
                SocketAddr::V6(_) => s.set_tclass_v6(q.tos as u32),
            };
            match r {
                Ok(()) => self.socket_tos = Some(q.tos),
                Err(e) => tracing::debug!(error = %e, "cannot set the socket's mark"),
            }
        }
        self.socket
            .send_to(batch.datagram(i), q.to)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        self.stats.send_calls += 1;
        self.stats.datagrams_sent += 1;
        Ok(())
    }

    fn send_gso(&mut self, batch: &SendBatch, start: usize, end: usize) -> Result<(), Errno> {
        let q = batch.queued[start];
        let mut iov = [IoSlice::new(&[]); BATCH];
        for (slot, i) in iov.iter_mut().zip(start..end) {
            *slot = IoSlice::new(batch.datagram(i));
        }
        let seg = q.len as u16;
        let tos = q.tos;
        let tclass = q.tos as i32;
        let cmsgs = [
            ControlMessage::UdpGsoSegments(&seg),
            match q.to {
                SocketAddr::V4(_) => ControlMessage::Ipv4Tos(&tos),
                SocketAddr::V6(_) => ControlMessage::Ipv6TClass(&tclass),
            },
        ];
        let addr = SockaddrStorage::from(q.to);
        sendmsg(
            self.socket.as_raw_fd(),
            &iov[..end - start],
            &cmsgs,
            MsgFlags::empty(),
            Some(&addr),
        )?;
        self.stats.send_calls += 1;
        self.stats.gso_sends += 1;
        self.stats.datagrams_sent += (end - start) as u64;
        Ok(())
    }

    /// Datagrams `start..end` share one mark (a run), so one control message serves them all.
    fn send_mmsg(&mut self, batch: &SendBatch, start: usize, end: usize) -> Result<(), Errno> {
        let q = batch.queued[start];
        let mut iovs = [[IoSlice::new(&[])]; BATCH];
        let mut addrs = [None; BATCH];
        for (k, i) in (start..end).enumerate() {
            iovs[k] = [IoSlice::new(batch.datagram(i))];
            addrs[k] = Some(SockaddrStorage::from(batch.queued[i].to));
        }
        let tos = q.tos;
        let tclass = q.tos as i32;
        let cmsg = [match q.to {
            SocketAddr::V4(_) => ControlMessage::Ipv4Tos(&tos),
            SocketAddr::V6(_) => ControlMessage::Ipv6TClass(&tclass),
        }];
        let count = end - start;
        let mut sent = 0;
        while sent < count {
            let r = sendmmsg(
                self.socket.as_raw_fd(),
                &mut self.tx_headers.0,
                iovs[sent..count].iter(),
                &addrs[sent..count],
                cmsg,
                MsgFlags::empty(),
            )?;
            self.stats.send_calls += 1;
            let k = r.count();
            if k == 0 {
                break;
            }
            sent += k;
            self.stats.datagrams_sent += k as u64;
        }
        Ok(())
    }

    /// Receive what is waiting, up to [`BATCH`] datagrams, without blocking.
    pub fn recv(&mut self) -> io::Result<impl Iterator<Item = Received<'_>>> {
        self.rx_meta.clear();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            self.rx.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
        match recvmmsg(
            self.socket.as_raw_fd(),
            &mut self.rx_headers.0,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => {
                // Kernel stamps are wall-clock; moved onto the monotonic clock by their age.
                let (mono, wall) = (Instant::now(), SystemTime::now());
                for r in results {
                    let arrived = r.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|c| match c {
                            ControlMessageOwned::ScmTimestampns(t) => Some(t),
                            _ => None,
                        })
                    });
                    let arrived = arrived.and_then(|t| monotonic(t, mono, wall));
                    if let Some(from) = r.address.as_ref().and_then(to_std) {
                        self.stats.datagrams_stamped += arrived.is_some() as u64;
                        self.rx_meta.push((r.bytes, from, arrived));
                    }
                }
            }
            Err(Errno::EAGAIN) => {}
            // An ICMP error from an earlier send (port unreachable): not this socket's fault.
            Err(Errno::ECONNREFUSED) => {}
            Err(e) => return Err(e.into()),
        }
        self.stats.recv_calls += 1;
        self.stats.datagrams_received += self.rx_meta.len() as u64;
        let meta = &self.rx_meta;
        Ok(self
            .rx
            .iter_mut()
            .zip(meta.iter())
            .map(|(slot, &(n, from, arrived))| Received {
                from,
                arrived,
                // More than a slot means the datagram was truncated: hand the slot over whole;
                // it is oversized for RIFT and the decoder refuses it.
                data: &mut slot[..n.min(RX_SLOT)],
            }))
    }

    /// Wait until a datagram arrives, `waker` is signalled, or `deadline` passes (within a
    /// few microseconds). `None` waits for traffic or the waker only.
    pub fn wait(
        &self,
        deadline: Option<Instant>,
        waker: Option<BorrowedFd<'_>>,
    ) -> io::Result<Wake> {
        loop {
            let now = Instant::now();
            let remaining = deadline.map(|d| d.saturating_duration_since(now));
            let sleep = match remaining {
                Some(r) if r.is_zero() => return Ok(Wake::Deadline),
                // Close to the deadline: poll without sleeping.
                Some(r) if r <= SPIN_MARGIN => Some(Duration::ZERO),
                Some(r) => Some(r - SPIN_MARGIN),
                None => None,
            };
            let mut fds = [
                PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(waker.unwrap_or(self.socket.as_fd()), PollFlags::POLLIN),
            ];
            let nfds = if waker.is_some() { 2 } else { 1 };
            let timeout = sleep.map(nix::sys::time::TimeSpec::from_duration);
            match nix::poll::ppoll(&mut fds[..nfds], timeout, None) {
                Ok(0) => {
                    if sleep == Some(Duration::ZERO) {
                        std::hint::spin_loop();
                    }
                }
                Ok(_) => {
                    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                    if ready(&fds[0]) {
                        return Ok(Wake::Readable);
                    }
                    if nfds == 2 && ready(&fds[1]) {
                        return Ok(Wake::Woken);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

/// Lower this thread's timer slack to 1 ns, so sleeps end when asked (the default 50 µs slack
/// lets the kernel batch wake-ups). Affects only the calling thread.
pub fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// A wall-clock kernel stamp as an instant on the monotonic clock, given one reading of each
/// clock taken together: its age on the wall clock is its age on the monotonic one. A stamp
/// from "the future" (the wall clock stepped back) counts as now; a very old one (stepped
/// forward) as no stamp.
fn monotonic(stamp: TimeSpec, mono: Instant, wall: SystemTime) -> Option<Instant> {
    let stamp = Duration::new(
        u64::try_from(stamp.tv_sec()).ok()?,
        u32::try_from(stamp.tv_nsec()).ok()?,
    );
    let wall = wall.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let age = wall.saturating_sub(stamp);
    (age <= MAX_STAMP_AGE)
        .then(|| mono.checked_sub(age))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(sizes: &[(usize, Priority)], to: SocketAddr) -> SendBatch {
        let mut b = SendBatch::default();
        for (k, &(len, p)) in sizes.iter().enumerate() {
            let slot = b.next_slot().unwrap();
            slot[..len].fill(k as u8);
            b.commit(len, to, p);
        }
        b
    }

    fn drain(rx: &mut RiftSocket, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < want && Instant::now() < deadline {
            rx.wait(Some(deadline), None).unwrap();
            got.extend(rx.recv().unwrap().map(|r| r.data.to_vec()));
        }
        got
    }

    #[test]
    fn batches_arrive_as_separate_datagrams_in_order() {
        let mut a = RiftSocket::bind("127.0.0.1:0").unwrap();
        let mut b = RiftSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        // Two GSO runs (equal sizes with a short tail), then a lone input datagram.
        let sizes = [
            (1200, Priority::Media),
            (1200, Priority::Media),
            (1200, Priority::Media),
            (700, Priority::Media),
            (1200, Priority::Media),
            (60, Priority::Input),
        ];
        let mut batch = batch_of(&sizes, to);
        a.send(&mut batch).unwrap();
        assert!(batch.is_empty());
        let got = drain(&mut b, sizes.len());
        assert_eq!(got.len(), sizes.len());
        for (k, (d, &(len, _))) in got.iter().zip(&sizes).enumerate() {
            assert_eq!(d.len(), len, "datagram {k}");
            assert!(d.iter().all(|&x| x == k as u8), "datagram {k} content");
        }
        assert_eq!(a.stats.datagrams_sent, 6);
        if a.gso_enabled() {
            assert_eq!(a.stats.gso_sends, 1, "the first four form one GSO send");
            assert_eq!(a.stats.send_calls, 3);
        }
    }

    /// The mark of each datagram as the receiver sees it (IP_RECVTOS / IPV6_RECVTCLASS).
    fn received_marks(rx: &UdpSocket, want: usize) -> Vec<(usize, u8)> {
        use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned};
        match rx.local_addr().unwrap() {
            SocketAddr::V4(_) => setsockopt(rx, sockopt::IpRecvTos, &true).unwrap(),
            SocketAddr::V6(_) => setsockopt(rx, sockopt::Ipv6RecvTClass, &true).unwrap(),
        }
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = vec![];
        let mut buf = [0u8; 2048];
        for _ in 0..want {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(libc::c_int);
            let m = recvmsg::<SockaddrStorage>(
                rx.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )
            .unwrap();
            let mark = m.cmsgs().unwrap().find_map(|c| match c {
                ControlMessageOwned::Ipv4Tos(t) => Some(t),
                ControlMessageOwned::Ipv6TClass(t) => Some(t as u8),
                _ => None,
            });
            out.push((m.bytes, mark.expect("a TOS control message")));
        }
        out
    }

    #[test]
    fn every_datagram_carries_its_class_mark_on_v4_and_v6() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(rx) = UdpSocket::bind(bind) else {
                println!("skipping {bind}: cannot bind (no IPv6 loopback?)");
                continue;
            };
            let mut tx = RiftSocket::bind(bind).unwrap();
            let to = rx.local_addr().unwrap();
            let sizes = [
                (1200, Priority::Media),
                (1200, Priority::Media),
                (80, Priority::Input),
                (300, Priority::Control),
                (1200, Priority::Media),
            ];
            tx.send(&mut batch_of(&sizes, to)).unwrap();
            let got = received_marks(&rx, sizes.len());
            let want: Vec<(usize, u8)> = sizes.iter().map(|&(n, p)| (n, tos(p))).collect();
            assert_eq!(got, want, "{bind}");
        }
    }

    #[test]
    fn kernel_receive_stamps_are_read_when_present() {
        let mut tx = RiftSocket::bind("127.0.0.1:0").unwrap();
        let mut rx = RiftSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        // The kernel turns stamping on a moment (≈ 100 ms, a deferred static key) after the
        // first socket asks: until then datagrams come without a stamp. Send until one has.
        let give_up = Instant::now() + Duration::from_secs(5);
        let stamped = loop {
            let sent = Instant::now();
            tx.send(&mut batch_of(&[(100, Priority::Media)], to))
                .unwrap();
            rx.wait(Some(Instant::now() + Duration::from_secs(1)), None)
                .unwrap();
            let got: Vec<_> = rx.recv().unwrap().map(|r| r.arrived).collect();
            let read = Instant::now();
            assert_eq!(got.len(), 1);
            if let Some(at) = got[0] {
                break (sent, at, read);
            }
            assert!(Instant::now() < give_up, "no kernel receive stamp in 5 s");
            std::thread::sleep(Duration::from_millis(10));
        };
        let (sent, at, read) = stamped;
        // On the monotonic clock, between the send and the read (a little slack for the
        // wall-clock conversion).
        let slack = Duration::from_millis(2);
        assert!(
            at + slack >= sent && at <= read + slack,
            "{at:?} not in {sent:?}..{read:?}"
        );
        assert_eq!(rx.stats.datagrams_stamped, 1);
    }

    #[test]
    fn stamps_convert_by_their_wall_clock_age() {
        let (mono, wall) = (Instant::now(), SystemTime::now());
        let since_epoch = wall.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let stamp = |d: Duration| TimeSpec::from_duration(d);
        let at = monotonic(stamp(since_epoch - Duration::from_micros(250)), mono, wall);
        assert_eq!(at, Some(mono - Duration::from_micros(250)));
        // From the future (the wall clock stepped back): now. Too old (stepped forward): none.
        let future = stamp(since_epoch + Duration::from_millis(5));
        assert_eq!(monotonic(future, mono, wall), Some(mono));
        let old = stamp(since_epoch - Duration::from_secs(2));
        assert_eq!(monotonic(old, mono, wall), None);
    }

    #[test]
    fn wait_ends_near_its_deadline() {
        precise_timers();
        let s = RiftSocket::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(3);
        assert_eq!(s.wait(Some(deadline), None).unwrap(), Wake::Deadline);
        // Never early; lateness is measured by the benchmark, not asserted here.
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn waker_interrupts_a_wait() {
        let s = RiftSocket::bind("127.0.0.1:0").unwrap();
        let efd = nix::sys::eventfd::EventFd::new().unwrap();
        efd.write(1).unwrap();
        let w = s
            .wait(
                Some(Instant::now() + Duration::from_secs(5)),
                Some(efd.as_fd()),
            )
            .unwrap();
        assert_eq!(w, Wake::Woken);
    }
}
