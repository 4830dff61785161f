//! Two RIFT connections over simulated lossy paths (5 % loss both ways, reordering,
//! duplication): every control message arrives once and in order, every input event arrives
//! once and in order or is reported lost, and every frame is delivered intact or reported lost.

use rift_core::connection::{Connection, ConnectionConfig, Event};
use rift_core::delta::{Delta, DeltaConfig, FixedRate};
use rift_core::media::OutgoingFrame;
use rift_core::wire::{MAX_DATAGRAM, STREAM_VIDEO};
use rift_sim::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use rift_sim::link::{Link, LinkConfig, LossModel};
use std::time::{Duration, Instant};

fn lossy(seed: u64) -> LinkConfig {
    LinkConfig {
        rate_bps: 20_000_000,
        queue_bytes: 500_000,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        loss: LossModel::Random { p: 0.05 },
        reorder: 0.03,
        reorder_delay: Duration::from_millis(4),
        duplicate: 0.02,
        seed,
    }
}

#[test]
fn control_input_and_video_survive_loss_reordering_and_duplication() {
    let t0 = Instant::now();
    let mut host = Connection::new(
        ConnectionConfig::new(11, 22, true),
        Box::new(Delta::new(DeltaConfig::default())),
        t0,
    );
    let mut client = Connection::new(
        ConnectionConfig::new(22, 11, false),
        Box::new(FixedRate::new(1_000_000, 60.0)),
        t0,
    );
    let mut fwd: Link<Vec<u8>> = Link::new(lossy(1), t0);
    let mut rev: Link<Vec<u8>> = Link::new(lossy(2), t0);
    let mut enc = SyntheticEncoder::new(EncoderConfig::default(), 4_000_000, t0);
    let mut frame = Vec::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    let (mut ctl_host_got, mut ctl_client_got, mut input_got) = (vec![], vec![], vec![]);
    let (mut frames_ok, mut frames_lost, mut frames_sent) = (0u64, 0u64, 0u64);
    let end = t0 + Duration::from_secs(20);
    let mut now = t0;
    let mut next_msg = t0;
    let (mut sent_ctl, mut sent_input) = (0u32, 0u32);
    while now < end {
        while let Some((_, d)) = fwd.poll(now) {
            let _ = client.handle_packet(now, &d);
        }
        while let Some((_, d)) = rev.poll(now) {
            let _ = host.handle_packet(now, &d);
        }
        if now >= next_msg && now < end - Duration::from_secs(3) {
            // Control both ways and an input event every 10 ms.
            host.send_control(format!("host {sent_ctl}").as_bytes())
                .unwrap();
            client
                .send_control(format!("client {sent_ctl}").as_bytes())
                .unwrap();
            sent_ctl += 1;
            client.send_input(now, &sent_input.to_be_bytes()).unwrap();
            sent_input += 1;
            next_msg += Duration::from_millis(10);
        }
        enc.set_bitrate(host.rate().encoder_bps);
        if let Some(f) = enc.poll(now) {
            frame_payload(f.frame_id, f.size, &mut frame);
            let out = OutgoingFrame {
                data: &frame,
                keyframe: f.keyframe,
                recovery_point: false,
                capture_us: 0,
            };
            host.send_frame(now, STREAM_VIDEO, out).unwrap();
            frames_sent += 1;
        }
        host.handle_timeout(now);
        client.handle_timeout(now);
        while let Some(tx) = host.poll_transmit(now, &mut buf).unwrap() {
            fwd.send(now, tx.len + 44, buf[..tx.len].to_vec());
        }
        while let Some(tx) = client.poll_transmit(now, &mut buf).unwrap() {
            rev.send(now, tx.len + 44, buf[..tx.len].to_vec());
        }
        while let Some(f) = client.poll_frame(STREAM_VIDEO) {
            assert!(
                verify_payload(f.frame_id, f.data),
                "frame {} corrupt",
                f.frame_id
            );
            frames_ok += 1;
        }
        while let Some(ev) = host.poll_event() {
            match ev {
                Event::Control(m) => ctl_host_got.push(String::from_utf8(m).unwrap()),
                Event::Input(i) => input_got.push(u32::from_be_bytes(i.data().try_into().unwrap())),
                Event::KeyframeRequested { .. } => enc.request_keyframe(),
                other => panic!("unexpected host event {other:?}"),
            }
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Control(m) => ctl_client_got.push(String::from_utf8(m).unwrap()),
                Event::FrameLost { .. } => frames_lost += 1,
                other => panic!("unexpected client event {other:?}"),
            }
        }
        let mut next = now + Duration::from_millis(1);
        for t in [
            fwd.next_event(),
            rev.next_event(),
            host.poll_timeout(),
            client.poll_timeout(),
            Some(enc.next_frame_time()),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        now = next.max(now + Duration::from_micros(50));
    }
    let expect = |who: &str| {
        (0..sent_ctl)
            .map(|i| format!("{who} {i}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(ctl_client_got, expect("host"), "host → client control");
    assert_eq!(ctl_host_got, expect("client"), "client → host control");
    // Input: in order, no duplicates; losses beyond the repeat window are skipped, not waited for.
    assert!(
        input_got.windows(2).all(|w| w[0] < w[1]),
        "input out of order or duplicated"
    );
    assert!(
        input_got.len() as u32 >= sent_input - 2,
        "input delivered {} of {sent_input}",
        input_got.len()
    );
    let rx = client.receiver(STREAM_VIDEO).unwrap().stats;
    println!(
        "control {sent_ctl} each way delivered in order; input {}/{sent_input}; frames sent {frames_sent}, delivered {frames_ok}, \
         lost {frames_lost}, gated {}, superseded {}; FEC rebuilt {} packets, NACKed {}",
        input_got.len(),
        rx.frames_gated,
        rx.frames_superseded,
        rx.fec_recovered_packets,
        rx.nacked_packets
    );
    // Every frame is accounted for: delivered, or reported lost / dropped while waiting for a
    // keyframe, or superseded by one (the last few may still be in flight at the end).
    let accounted = frames_ok + rx.frames_lost + rx.frames_gated + rx.frames_superseded;
    assert!(
        accounted + 3 >= frames_sent,
        "accounted {accounted} of {frames_sent}"
    );
    assert!(
        frames_ok as f64 >= 0.9 * frames_sent as f64,
        "delivered {frames_ok} of {frames_sent}"
    );
}
