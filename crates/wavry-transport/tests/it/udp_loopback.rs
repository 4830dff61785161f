//! Real UDP sockets on loopback: handshake, then synthetic 20 Mbit/s video for
//! `WAVRY_LOOPBACK_SECONDS` (default 60) with every delivered frame verified byte for byte.

use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use rift_sim::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use std::time::{Duration, Instant};
use wavry_transport::testing;
use wavry_transport::udp::UdpDriver;

const VIDEO_BPS: u64 = 20_000_000;

#[test]
fn encrypted_video_over_loopback_arrives_intact() {
    let _serial = crate::common::real_time();
    let secs: u64 = std::env::var("WAVRY_LOOPBACK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (host_end, client_end) = testing::ends();
    let mut host_driver = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = host_driver.local_addr().unwrap();

    let host = std::thread::spawn(move || {
        // Room above the video rate for FEC and headers.
        let mut session = host_end.accept(&mut host_driver, || {
            testing::fixed_rate(true, VIDEO_BPS * 13 / 10)
        });
        testing::drive_until_established(&mut host_driver, &mut session, Duration::from_secs(2));
        let started = Instant::now();
        let end = started + Duration::from_secs(secs);
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), VIDEO_BPS, started);
        let mut buf = Vec::new();
        let (mut frames, mut bytes) = (0u64, 0u64);
        while Instant::now() < end {
            host_driver
                .drive(&mut session, enc.next_frame_time().min(end))
                .unwrap();
            if let Some(f) = enc.poll(Instant::now()) {
                frame_payload(f.frame_id, f.size, &mut buf);
                let conn = session.connection().unwrap();
                while let Some(ev) = conn.poll_event() {
                    if let rift_core::connection::Event::KeyframeRequested { .. } = ev {
                        enc.request_keyframe();
                    }
                }
                conn.send_frame(
                    Instant::now(),
                    STREAM_VIDEO,
                    OutgoingFrame {
                        data: &buf,
                        keyframe: f.keyframe,
                        recovery_point: false,
                        capture_us: 0,
                    },
                )
                .unwrap();
                frames += 1;
                bytes += f.size as u64;
            }
        }
        // Let the tail drain.
        host_driver
            .drive(&mut session, Instant::now() + Duration::from_millis(500))
            .unwrap();
        if let Some(c) = session.connection() {
            println!(
                "host: {:?} sender {:?} rate {:?}",
                c.stats,
                c.sender(STREAM_VIDEO).map(|s| s.stats),
                c.rate()
            );
        }
        (frames, bytes, started.elapsed(), host_driver.dropped)
    });

    let mut client_driver = UdpDriver::bind("127.0.0.1:0").unwrap();
    let mut session = client_end.connect(
        &mut client_driver,
        host_addr,
        testing::fixed_rate(false, 1_000_000),
    );
    let (mut delivered, mut corrupt, mut delivered_bytes, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(secs + 4);
    while Instant::now() < deadline && !host.is_finished() {
        client_driver
            .drive(&mut session, Instant::now() + Duration::from_millis(5))
            .unwrap();
        if let Some(conn) = session.connection() {
            while let Some(f) = conn.poll_frame(STREAM_VIDEO) {
                delivered += 1;
                delivered_bytes += f.data.len() as u64;
                if !verify_payload(f.frame_id, f.data) {
                    corrupt += 1;
                }
            }
            while let Some(ev) = conn.poll_event() {
                if let rift_core::connection::Event::FrameLost { .. } = ev {
                    lost += 1;
                }
            }
        }
    }
    let (sent, sent_bytes, elapsed, host_dropped) = host.join().unwrap();
    if let Some(c) = session.connection() {
        println!(
            "receiver: {:?}; connection: {:?}",
            c.receiver(STREAM_VIDEO).map(|r| r.stats),
            c.stats
        );
    }
    println!(
        "protection: {:?}; session: {:?}",
        session.protection_stats(),
        session.stats
    );
    println!(
        "{sent} frames ({:.1} Mbit/s of video) sent in {:.1} s (with the drain); {delivered} delivered intact ({:.1} Mbit/s), {corrupt} corrupt, {lost} reported lost; \
         datagrams dropped: host {host_dropped}, client {}",
        sent_bytes as f64 * 8.0 / secs as f64 / 1e6,
        elapsed.as_secs_f64(),
        delivered_bytes as f64 * 8.0 / secs as f64 / 1e6,
        client_driver.dropped
    );
    assert_eq!(corrupt, 0);
    assert!(
        delivered + lost >= sent - 2,
        "frames unaccounted for: sent {sent}, delivered {delivered}, lost {lost}"
    );
    assert!(
        delivered as f64 >= 0.99 * sent as f64,
        "delivered {delivered} of {sent}"
    );
}
