//! A running X11 capture makes no heap allocation per frame.
//!
//! The counting global allocator of `alloc-counter` counts every `alloc`, `alloc_zeroed`,
//! `realloc` and `dealloc` the test thread makes while it measures. Under Xvfb (1280x720),
//! another thread repaints a window as fast as it can, so frames come both from damage and, with
//! a 4 ms repeat interval, as repeats. After a warm-up of 30 frames, the test captures 200 frames
//! (at most 250 fps), reads the pointer between frames, reads every frame's pixels, and keeps the
//! last two frames alive (triple buffering: two held by the "encoder", one being captured), then
//! asserts the allocation, reallocation and deallocation counts are all exactly 0.
//!
//! Set `NO_ALLOC_BACKTRACE=1` to print a backtrace of every counted allocation:
//! `NO_ALLOC_BACKTRACE=1 cargo test -p wavry-media --test capture_no_alloc -- --nocapture`

use alloc_counter::{measure, Counts, Scope};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, Frame, PacerConfig};
use wavry_media::testing::{pixel, TestDisplay};

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

const WARMUP_FRAMES: usize = 30;
const MEASURED_FRAMES: usize = 200;

/// Frames of one run, counted without allocating.
#[derive(Debug, Default)]
struct Tally {
    fresh: usize,
    repeats: usize,
    /// Sum of one pixel per frame: the pixels are really read.
    checksum: u64,
}

/// Capture `n` frames, keeping the last two alive in a fixed ring.
fn stream(cap: &mut X11Capturer, held: &mut [Option<Frame>; 2], n: usize) -> Tally {
    let mut tally = Tally::default();
    for i in 0..n {
        let deadline = Instant::now() + Duration::from_secs(5);
        let frame = match cap.next_frame(deadline) {
            Ok(Some(f)) => f,
            Ok(None) => panic!("no frame within 5 s"),
            Err(e) => panic!("capture failed: {e}"),
        };
        if frame.repeat {
            tally.repeats += 1;
        } else {
            tally.fresh += 1;
        }
        tally.checksum += u64::from(pixel(&frame.view(), 5, 5));
        if let Err(e) = cap.cursor_position() {
            panic!("pointer: {e}");
        }
        // Replacing the older frame returns its buffer to the pool.
        held[i % 2] = Some(frame);
    }
    tally
}

#[test]
fn running_capture_does_not_allocate() {
    let Some(display) = TestDisplay::start(1280, 720) else {
        return;
    };
    let conn = display.connect();
    let win = display.paint(&conn, 0, 0, 1280, 720, 0x000000);

    // Another client keeps changing the screen (its allocations are on its own thread).
    let stop = Arc::new(AtomicBool::new(false));
    let painter = {
        let stop = Arc::clone(&stop);
        let display_name = display.name().to_owned();
        std::thread::spawn(move || {
            let (conn, _) = x11rb::connect(Some(&display_name)).expect("painter connection");
            let mut colour = 0u32;
            while !stop.load(Relaxed) {
                colour = (colour + 0x010203) & 0xffffff;
                repaint(&conn, win, colour);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // Stops the painter even when an assertion fails.
    struct StopOnDrop(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
            if let Some(h) = self.1.take() {
                let _ = h.join();
            }
        }
    }
    let _painter = StopOnDrop(stop, Some(painter));

    let mut cap = X11Capturer::open(X11Config {
        display: Some(display.name().into()),
        pacer: PacerConfig::new(250, Some(Duration::from_millis(4))),
        target: CaptureTarget::WholeScreen,
    })
    .expect("open capture");
    let mut held: [Option<Frame>; 2] = [None, None];
    stream(&mut cap, &mut held, WARMUP_FRAMES);
    let (tally, counts) = measure(Scope::ThisThread, || {
        stream(&mut cap, &mut held, MEASURED_FRAMES)
    });
    eprintln!("{MEASURED_FRAMES} frames at 1280x720: {tally:?}, {counts:?}");
    assert!(tally.fresh > 0, "no frame came from damage: {tally:?}");
    assert_eq!(
        counts,
        Counts::default(),
        "heap allocations while capturing; rerun with NO_ALLOC_BACKTRACE=1 -- --nocapture"
    );
}

fn repaint(conn: &x11rb::rust_connection::RustConnection, win: u32, rgb: u32) {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _};
    let aux = ChangeWindowAttributesAux::new().background_pixel(rgb);
    let ok = conn.change_window_attributes(win, &aux).is_ok()
        && conn.clear_area(false, win, 0, 0, 0, 0).is_ok()
        && conn.flush().is_ok();
    assert!(ok, "painter lost its connection");
}
