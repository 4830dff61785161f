//! Frame buffers come back: a producer that takes each frame's buffer from
//! `SessionSender::frame_buffer` and hands it to `send_frame` gets, after a warm-up, only
//! buffers that already have a frame's capacity, so a stream grows no `Vec` per frame.
//!
//! The counting allocator measures the producer's thread over 200 frames: no reallocation
//! (no buffer regrows) and no allocation but the standard channel's: `std::sync::mpsc`
//! allocates one block per 31 messages queued to the session thread.
//! `NO_ALLOC_BACKTRACE=1 cargo test -p wavry-transport --test it frame_buffers -- --nocapture`
//! shows where each one comes from.

use alloc_counter::{measure, Scope};
use rift_core::wire::STREAM_VIDEO;
use std::time::Duration;
use wavry_transport::testing::{established, Threads};

const FRAME: usize = 20_000;
const WARMUP: usize = 20;
const MEASURED: usize = 200;
/// std's channel allocates a block of 31 slots as it fills them.
const CHANNEL_BLOCK: usize = 31;

#[test]
fn frame_buffers_are_recycled() {
    let _serial = crate::common::real_time();
    let p = Threads::spawn(40_000_000, |h| h);
    established(&p.client, Duration::from_secs(2)).unwrap();
    established(&p.host, Duration::from_secs(2)).unwrap();
    let tx = p.host.sender();
    let source = vec![0x5au8; FRAME];
    // Returns how many buffers came without a frame's capacity.
    let sent = std::cell::Cell::new(0usize);
    let send = |n: usize| {
        let mut fresh = 0;
        for _ in 0..n {
            // The receiver drops frames until its first keyframe.
            let keyframe = sent.replace(sent.get() + 1) == 0;
            let mut buf = tx.frame_buffer();
            if buf.capacity() < FRAME {
                fresh += 1;
            }
            assert!(buf.is_empty());
            buf.extend_from_slice(&source);
            tx.send_frame(STREAM_VIDEO, buf, keyframe, false, 0)
                .unwrap();
            // About 60 fps: the session thread packetizes each frame before the next.
            std::thread::sleep(Duration::from_millis(5));
        }
        fresh
    };
    let warm = send(WARMUP);
    assert!(warm >= 1, "the first buffer is new");
    let (fresh, counts) = measure(Scope::ThisThread, || send(MEASURED));
    println!("after {WARMUP} frames: {fresh} new buffers in {MEASURED} frames, {counts:?}");
    assert_eq!(fresh, 0, "every buffer came back with its capacity");
    assert_eq!(counts.reallocs, 0);
    assert!(
        counts.allocs <= MEASURED / CHANNEL_BLOCK + 1,
        "{counts:?}: more than the channel's blocks"
    );
    // The client got the frames.
    let events: Vec<_> = p.client.events.try_iter().collect();
    let frames = events
        .iter()
        .filter(|e| matches!(e, wavry_transport::thread::SessionEvent::Frame(_)))
        .count();
    println!("the client got {frames} of {} frames", WARMUP + MEASURED);
    assert!(frames > MEASURED, "{frames}");
}
