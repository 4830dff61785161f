//! MIT-SHM segments backed by memfd, shared with the X server by passing the descriptor
//! (MIT-SHM 1.2 `AttachFd`). Unlike SysV `shmget`, nothing outlives the process (no segment
//! left behind by a crash, no `kernel.shmmax` limit) and it works where IPC namespaces differ.

use super::super::{CaptureError, PixelMemory};
use memmap2::Mmap;
use rustix::fs::MemfdFlags;
use std::fs::File;
use std::os::fd::OwnedFd;
use x11rb::connection::Connection;
use x11rb::protocol::shm;
use x11rb::rust_connection::RustConnection;

/// One capture buffer: memory the X server writes the picture into.
pub(super) struct ShmBuffer {
    pub(super) seg: shm::Seg,
    map: Mmap,
}

impl ShmBuffer {
    /// A segment of `len` bytes attached to the server on `conn`.
    pub(super) fn new(conn: &RustConnection, len: usize) -> Result<Self, CaptureError> {
        let fd = rustix::fs::memfd_create("wavry-capture", MemfdFlags::CLOEXEC)
            .map_err(std::io::Error::from)?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(std::io::Error::from)?;
        let file = File::from(fd);
        // SAFETY: the memfd is shared only with the X server, which writes into it only while
        // it serves a ShmGetImage for this buffer; the capturer sends that only while the
        // buffer is back in its pool, never while a `Frame` lends it out for reading.
        let map = unsafe { Mmap::map(&file)? };
        let seg = conn.generate_id().map_err(protocol)?;
        shm::attach_fd(conn, seg, OwnedFd::from(file), false)
            .map_err(protocol)?
            .check()
            .map_err(protocol)?;
        Ok(Self { seg, map })
    }
}

impl PixelMemory for ShmBuffer {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn handle(&self) -> u32 {
        self.seg
    }
}

pub(super) fn protocol(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Protocol(e.to_string())
}
