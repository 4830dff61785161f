//! Scheduling priority of the threads a picture or an input event waits on.
//!
//! On a busy machine (a game beside the host, or host and client sharing a small CPU) a
//! ready thread at the default priority waits for the CPU behind everything else. The
//! threads on the latency path ask for a higher share with a negative nice value — not a
//! real-time policy: the I/O thread polls the socket during short waits, and a real-time
//! thread that spins would starve the core. Raising needs `CAP_SYS_NICE` (root, or
//! `setcap cap_sys_nice+ep` on the binary) or an `RLIMIT_NICE` that allows it; without it the
//! thread stays as it was and says so once in the log. Threads started by a raised thread
//! (x264's slice threads, the conversion helper) inherit its priority.

use std::sync::atomic::{AtomicBool, Ordering};

/// What a thread does, which sets how much it is raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Injecting or sending input: short, rare bursts that must never wait behind video.
    Input,
    /// A session's socket I/O.
    Io,
    /// Capture, encoding, decoding and presenting pictures.
    Media,
}

impl Role {
    /// The nice value asked for (-20 is the highest priority, 0 the default).
    pub fn nice(self) -> i32 {
        match self {
            Role::Input => -15,
            Role::Io | Role::Media => -10,
        }
    }
}

/// Raise the calling thread (only it: on Linux a nice value belongs to a thread) for `role`.
/// Returns whether the new priority took effect.
pub fn raise_current_thread(role: Role) -> bool {
    static REFUSED_LOGGED: AtomicBool = AtomicBool::new(false);
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, role.nice())
    };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    if !REFUSED_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::info!(
            %err,
            "latency-critical threads keep the default priority (raising needs CAP_SYS_NICE)"
        );
    }
    false
}

/// The calling thread's nice value.
pub fn current_nice() -> i32 {
    // SAFETY: as above. getpriority can return -1 legitimately; errno is not needed here
    // because a failure for our own thread cannot happen.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_only_the_calling_thread() {
        let outside = current_nice();
        let (raised, inside) = std::thread::spawn(|| {
            let raised = raise_current_thread(Role::Media);
            (raised, current_nice())
        })
        .join()
        .unwrap();
        if raised {
            assert_eq!(inside, Role::Media.nice());
        } else {
            eprintln!("not permitted to raise priority (needs CAP_SYS_NICE): only checked that nothing changed");
            assert_eq!(inside, outside);
        }
        assert_eq!(
            current_nice(),
            outside,
            "the spawning thread kept its priority"
        );
    }
}
