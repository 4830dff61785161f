//! Session threads on loopback: 20 Mbit/s of verified video from the host while the client
//! sends input events and numbered control messages; then a graceful close from the client.

use rift_core::connection::Event;
use rift_core::wire::STREAM_VIDEO;
use rift_sim::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::session::CloseReason;
use wavry_transport::testing::{established, Threads};
use wavry_transport::thread::SessionEvent;

const VIDEO_BPS: u64 = 20_000_000;
const SECONDS: u64 = 3;

#[test]
fn video_input_and_control_flow_together_then_close() {
    let _serial = crate::common::real_time();
    let mut p = Threads::spawn(VIDEO_BPS * 13 / 10, |h| h);
    established(&p.client, Duration::from_secs(2)).unwrap();
    established(&p.host, Duration::from_secs(2)).unwrap();

    // Host: an encoder thread sending frames at 60 fps.
    let stop = Arc::new(AtomicBool::new(false));
    let video = {
        let tx = p.host.sender();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut enc =
                SyntheticEncoder::new(EncoderConfig::default(), VIDEO_BPS, Instant::now());
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(
                    enc.next_frame_time()
                        .saturating_duration_since(Instant::now()),
                );
                if let Some(f) = enc.poll(Instant::now()) {
                    let mut data = Vec::new();
                    frame_payload(f.frame_id, f.size, &mut data);
                    tx.send_frame(STREAM_VIDEO, data, f.keyframe, false, 0)
                        .unwrap();
                    sent += 1;
                }
            }
            sent
        })
    };

    // Host: an injector thread blocked on the input channel, stamping each arrival.
    let input_rx = p.host.take_input();
    let injector = std::thread::spawn(move || {
        let mut arrivals = vec![];
        while let Ok(i) = input_rx.recv_timeout(Duration::from_secs(5)) {
            let n = u32::from_be_bytes(i.data().try_into().unwrap());
            arrivals.push((n, Instant::now()));
        }
        arrivals
    });

    // Client: input every 2 ms and a control message every 50 ms, while frames arrive.
    let tx = p.client.sender();
    let start = Instant::now();
    let (mut inputs, mut controls) = (0u32, 0u32);
    let mut frames = 0u32;
    let mut got_controls = vec![];
    let mut sent_at = vec![];
    while start.elapsed() < Duration::from_secs(SECONDS) {
        sent_at.push(Instant::now());
        tx.send_input(&inputs.to_be_bytes()).unwrap();
        inputs += 1;
        if inputs % 25 == 0 {
            tx.send_control(controls.to_be_bytes().to_vec()).unwrap();
            controls += 1;
        }
        while let Ok(e) = p.client.events.try_recv() {
            match e {
                SessionEvent::Frame(f) => {
                    assert!(
                        verify_payload(f.frame_id, &f.data),
                        "frame {} corrupt",
                        f.frame_id
                    );
                    frames += 1;
                }
                SessionEvent::Closed(r) => panic!("client closed: {r:?}"),
                _ => {}
            }
        }
        while let Ok(e) = p.host.events.try_recv() {
            if let SessionEvent::Connection(Event::Control(m)) = e {
                got_controls.push(u32::from_be_bytes(m.try_into().unwrap()));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let sent_frames = video.join().unwrap();

    // Drain what is still in flight.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && got_controls.len() < controls as usize {
        if let Ok(SessionEvent::Connection(Event::Control(m))) =
            p.host.events.recv_timeout(Duration::from_millis(10))
        {
            got_controls.push(u32::from_be_bytes(m.try_into().unwrap()));
        }
    }
    assert_eq!(
        got_controls,
        (0..controls).collect::<Vec<_>>(),
        "control once, in order"
    );
    // Close from the client (the host learns why); the injector ends when the host's thread
    // drops its input channel.
    tx.close(rift_core::wire::CLOSE_NORMAL, "user quit")
        .unwrap();
    let arrivals = injector.join().unwrap();
    let ids: Vec<u32> = arrivals.iter().map(|a| a.0).collect();
    assert_eq!(
        ids,
        (0..inputs).collect::<Vec<_>>(),
        "every input event once, in order"
    );
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .map(|&(n, at)| at - sent_at[n as usize])
        .collect();
    assert!(
        frames + 3 >= sent_frames,
        "frames: {frames} of {sent_frames}"
    );
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{inputs} input events beside {sent_frames} frames of 20 Mbit/s video: \
         client send → host injector thread p50 {:?} p99 {:?} max {:?} (loopback)",
        q(0.5),
        q(0.99),
        q(1.0)
    );
    let stats = p.host.stats();
    println!(
        "host socket: {} datagrams in {} send calls ({} GSO)",
        stats.socket.datagrams_sent, stats.socket.send_calls, stats.socket.gso_sends
    );

    // The graceful close: the host learned the code and reason.
    let deadline = Instant::now() + Duration::from_secs(2);
    let reason = loop {
        match p.host.events.recv_timeout(Duration::from_millis(50)) {
            Ok(SessionEvent::Closed(r)) => break r,
            _ => assert!(Instant::now() < deadline, "host never saw the close"),
        }
    };
    assert_eq!(
        reason,
        CloseReason::Peer {
            code: rift_core::wire::CLOSE_NORMAL,
            reason: "user quit".into()
        }
    );
    p.host.join().unwrap();
    p.client.join().unwrap();
}
