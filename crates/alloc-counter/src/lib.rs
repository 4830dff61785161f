//! A counting global allocator for the tests that prove a hot path makes no heap allocation.
//!
//! A test binary installs it and measures a closure:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;
//!
//! fn main() {
//!     let (_, counts) = alloc_counter::measure(alloc_counter::Scope::ThisThread, || 1 + 1);
//!     assert_eq!(counts, alloc_counter::Counts::default());
//! }
//! ```
//!
//! Every `alloc`, `alloc_zeroed`, `realloc` and `dealloc` is counted, made by the measuring
//! thread (`Scope::ThisThread`) or by any thread (`Scope::AllThreads`, for work that spreads
//! over helper threads). With `NO_ALLOC_BACKTRACE=1` in the environment each counted operation
//! prints a backtrace (printing itself is not counted). The counters are process-wide, so one
//! measurement at a time: [`measure`] serialises them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// The counting allocator (forwards to the system allocator).
pub struct Counting;

/// Whose allocations count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ThisThread,
    AllThreads,
}

/// What a measurement counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub allocs: usize,
    pub reallocs: usize,
    pub deallocs: usize,
}

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);
static DEALLOCS: AtomicUsize = AtomicUsize::new(0);
static BACKTRACE: AtomicBool = AtomicBool::new(false);
static ALL_THREADS: AtomicBool = AtomicBool::new(false);
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    static THIS_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread prints a backtrace, so printing is not counted.
    static PRINTING: Cell<bool> = const { Cell::new(false) };
}

fn record(what: &str, counter: &AtomicUsize, size: usize) {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    if PRINTING.try_with(|p| p.get()).unwrap_or(true) {
        return;
    }
    let counting = ALL_THREADS.load(Relaxed) || THIS_THREAD.try_with(|m| m.get()).unwrap_or(false);
    if !counting {
        return;
    }
    counter.fetch_add(1, Relaxed);
    if BACKTRACE.load(Relaxed) {
        PRINTING.with(|p| p.set(true));
        eprintln!(
            "counted {what} of {size} bytes on {:?} at:\n{}",
            std::thread::current().name(),
            std::backtrace::Backtrace::force_capture()
        );
        PRINTING.with(|p| p.set(false));
    }
}

// SAFETY: every call forwards to `System` with the caller's arguments; counting touches only
// atomics and thread-locals that do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record("alloc", &ALLOCS, layout.size());
        // SAFETY: the caller upholds GlobalAlloc's contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record("alloc_zeroed", &ALLOCS, layout.size());
        // SAFETY: the caller upholds GlobalAlloc's contract, which `System` shares.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record("realloc", &REALLOCS, new_size);
        // SAFETY: the caller upholds GlobalAlloc's contract, which `System` shares.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record("dealloc", &DEALLOCS, layout.size());
        // SAFETY: the caller upholds GlobalAlloc's contract, which `System` shares.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The counts so far of the measurement running now, read from any thread: the difference of
/// two readings is what the measured code did in between (e.g. a long-running thread's steady
/// state, after its start-up).
pub fn current() -> Counts {
    Counts {
        allocs: ALLOCS.load(Relaxed),
        reallocs: REALLOCS.load(Relaxed),
        deallocs: DEALLOCS.load(Relaxed),
    }
}

/// Run `f` and count the heap operations of `scope` meanwhile.
pub fn measure<R>(scope: Scope, f: impl FnOnce() -> R) -> (R, Counts) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    BACKTRACE.store(std::env::var_os("NO_ALLOC_BACKTRACE").is_some(), Relaxed);
    ALLOCS.store(0, Relaxed);
    REALLOCS.store(0, Relaxed);
    DEALLOCS.store(0, Relaxed);
    match scope {
        Scope::ThisThread => THIS_THREAD.with(|m| m.set(true)),
        Scope::AllThreads => ALL_THREADS.store(true, Relaxed),
    }
    let r = f();
    THIS_THREAD.with(|m| m.set(false));
    ALL_THREADS.store(false, Relaxed);
    let counts = Counts {
        allocs: ALLOCS.load(Relaxed),
        reallocs: REALLOCS.load(Relaxed),
        deallocs: DEALLOCS.load(Relaxed),
    };
    (r, counts)
}
