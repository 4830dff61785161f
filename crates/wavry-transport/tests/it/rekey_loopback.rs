//! Real UDP sockets on loopback: rekeys on the timer while 10 Mbit/s of synthetic video flows,
//! every frame delivered and verified byte for byte, nothing refused. The rekey interval is
//! shortened to 1 s (`SessionConfig::rekey_after`) so a short test sees several; the 120 s
//! default is covered in simulated time by `session.rs`.

use rift_core::connection::Event;
use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use rift_sim::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use std::time::{Duration, Instant};
use wavry_transport::session::ConnectionFactory;
use wavry_transport::testing;
use wavry_transport::udp::UdpDriver;

const VIDEO_BPS: u64 = 10_000_000;
const STREAM_FOR: Duration = Duration::from_secs(5);

fn factory(sender: bool) -> ConnectionFactory {
    // Room above the video for FEC and headers.
    testing::fixed_rate(sender, VIDEO_BPS * 13 / 10)
}

#[test]
fn timer_rekeys_over_loopback_while_video_flows() {
    let _serial = crate::common::real_time();
    let (host_end, mut client_end) = testing::ends();
    client_end.config.rekey_after = Duration::from_secs(1);
    let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let host = std::thread::spawn(move || {
        let mut s = host_end.accept(&mut hd, || factory(true));
        testing::drive_until_established(&mut hd, &mut s, Duration::from_secs(2));
        let started = Instant::now();
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), VIDEO_BPS, started);
        let (mut buf, mut sent) = (Vec::new(), 0u32);
        while started.elapsed() < STREAM_FOR {
            hd.drive(&mut s, enc.next_frame_time()).unwrap();
            let c = s.connection().expect("established");
            while let Some(ev) = c.poll_event() {
                if let Event::KeyframeRequested { .. } = ev {
                    enc.request_keyframe();
                }
            }
            if let Some(f) = enc.poll(Instant::now()) {
                frame_payload(f.frame_id, f.size, &mut buf);
                let out = OutgoingFrame {
                    data: &buf,
                    keyframe: f.keyframe,
                    recovery_point: false,
                    capture_us: 0,
                };
                c.send_frame(Instant::now(), STREAM_VIDEO, out)
                    .expect("frame accepted");
                sent += 1;
            }
        }
        // Let the last frames and the feedback land.
        hd.drive(&mut s, Instant::now() + Duration::from_millis(300))
            .unwrap();
        (sent, s.protection_stats().expect("established"), s.stats)
    });

    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let mut s = client_end.connect(&mut cd, host_addr, factory(false));
    let (mut delivered, mut corrupt, mut lost) = (0u32, vec![], vec![]);
    let end = Instant::now() + STREAM_FOR + Duration::from_secs(2);
    // Until the host is done, and 200 ms more for what is still on the way.
    let mut drain_until = None;
    while drain_until.is_none_or(|t| Instant::now() < t) && Instant::now() < end {
        if drain_until.is_none() && host.is_finished() {
            drain_until = Some(Instant::now() + Duration::from_millis(200));
        }
        cd.drive(&mut s, Instant::now() + Duration::from_millis(5))
            .unwrap();
        let Some(c) = s.connection() else { continue };
        while let Some(f) = c.poll_frame(STREAM_VIDEO) {
            if !verify_payload(f.frame_id, f.data) {
                corrupt.push(f.frame_id);
            }
            delivered += 1;
        }
        while let Some(ev) = c.poll_event() {
            if let Event::FrameLost { frame_id, .. } = ev {
                lost.push(frame_id);
            }
        }
    }
    let (sent, host_prot, host_stats) = host.join().unwrap();
    let prot = s.protection_stats().expect("established");
    println!(
        "{sent} frames sent, {delivered} delivered, corrupt {corrupt:?}, lost {lost:?}; rekeys: \
         client {}, host {}; refused: client {} (auth {}, expired key {}), host {} (auth {}, \
         expired key {})",
        prot.rekeys,
        host_prot.rekeys,
        s.stats.rejected,
        prot.auth_failures,
        prot.expired_key,
        host_stats.rejected,
        host_prot.auth_failures,
        host_prot.expired_key
    );
    assert!(s.close_reason().is_none(), "client: {:?}", s.close_reason());
    // About one rekey a second: the timer runs from each switch, plus a round trip.
    assert!(
        prot.rekeys >= STREAM_FOR.as_secs() - 1,
        "{} rekeys in {STREAM_FOR:?}",
        prot.rekeys
    );
    assert!(host_prot.rekeys >= prot.rekeys);
    assert_eq!(delivered, sent, "every frame delivered");
    assert!(corrupt.is_empty() && lost.is_empty());
    assert_eq!(prot.auth_failures + host_prot.auth_failures, 0);
    assert_eq!(prot.expired_key + host_prot.expired_key, 0);
}
