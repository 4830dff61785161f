//! The media reassembler fed arbitrary packets: any sequence of well-formed but hostile media
//! bodies (inconsistent layouts, huge frames, duplicates, stale ids) must never panic, never
//! deliver a frame of the wrong length, and keep memory bounded by its configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rift_core::media::{MediaReceiver, MediaReceiverConfig};
use rift_core::wire::{Body, PacketType};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut rx = MediaReceiver::new(MediaReceiverConfig {
        max_frame_len: 64 * 1024,
        slots: 4,
        ..MediaReceiverConfig::default()
    });
    rx.set_rtt(Duration::from_millis(10));
    // Records: [control byte][len: u16 BE][body bytes]. The control byte picks data or parity
    // and how far time moves on.
    let mut rest = data;
    while rest.len() >= 3 {
        let control = rest[0];
        let len = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        let body = &rest[3..];
        let len = len.min(body.len());
        let (packet, tail) = body.split_at(len);
        rest = tail;
        now += Duration::from_micros(u64::from(control >> 1) * 100);
        let t = if control & 1 == 0 {
            PacketType::MediaData
        } else {
            PacketType::MediaParity
        };
        if let Ok(Body::MediaData { header, payload } | Body::MediaParity { header, payload }) =
            Body::decode(t, packet)
        {
            let _ = rx.on_packet(now, &header, payload, control & 1 == 1);
        }
        rx.handle_timeout(now);
        while rx.poll_event().is_some() {}
        while let Some(frame) = rx.poll_frame() {
            assert!(frame.data.len() <= 64 * 1024);
        }
    }
});
