//! A client lists the host's monitors and switches between them live: the host answers Hello
//! with the monitors, and SelectMonitor restarts the stream at the chosen monitor's size
//! (StreamInfo, then a keyframe of that size) and tells the new selection; when the monitor
//! goes away the client is told the new list.

use crate::common;

use rift_core::connection::Event;
use rift_crypto::handshake::pinned;
use rift_crypto::identity::Identity;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_control::{ControlMessage, PROTOCOL_VERSION};
use wavry_media::testing::TestDisplay;
use wavry_transport::thread::{SessionEvent, SessionThread};
use wavry_transport::udp::UdpDriver;

/// The next control message from the host, within `timeout`, skipping frames, stats, the
/// cursor and the rest.
fn next_control(t: &SessionThread, timeout: Duration) -> ControlMessage {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match t.events.recv_timeout(left) {
            Ok(SessionEvent::Connection(Event::Control(b))) => {
                match ControlMessage::decode(&b).unwrap() {
                    ControlMessage::HostStats { .. }
                    | ControlMessage::CursorShape(_)
                    | ControlMessage::CursorPosition { .. } => {}
                    m => return m,
                }
            }
            Ok(SessionEvent::Closed(r)) => panic!("closed: {r:?}"),
            Ok(_) => {}
            Err(_) => panic!("no control message within {timeout:?}"),
        }
    }
}

#[test]
fn the_client_switches_monitors_live() {
    let Some(display) = TestDisplay::start(1280, 480) else {
        return;
    };
    display.set_monitor("LEFT", 0, 0, 640, 480);
    display.set_monitor("RIGHT", 640, 0, 640, 480);
    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr = hd.local_addr().unwrap();
    let name = display.name().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let host_stop = stop.clone();
    let host =
        std::thread::spawn(move || common::serve_one(hd, &host_id, client_pub, name, &host_stop));
    let bind = "127.0.0.1:0".parse().unwrap();
    let client = wavry_client::run::connect(bind, addr, &client_id, pinned(host_pub)).unwrap();
    let tx = client.sender();
    let hello = ControlMessage::Hello {
        version: PROTOCOL_VERSION,
        client: "test".into(),
        decoders: vec![wavry_control::Codec::H264],
    };
    tx.send_control(hello.encode().unwrap()).unwrap();

    // Whole screen first; the monitor list (sent at start and again after Hello).
    let mut right = None;
    let mut whole = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (right.is_none() || !whole) && Instant::now() < deadline {
        match next_control(&client, Duration::from_secs(5)) {
            ControlMessage::Monitors { monitors, selected } => {
                assert_eq!(selected, None);
                right = monitors.iter().find(|m| m.name == "RIGHT").map(|m| m.id);
            }
            ControlMessage::StreamInfo { width, height, .. } => {
                assert_eq!((width, height), (1280, 480));
                whole = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let right = right.expect("the RIGHT monitor is listed");
    tx.send_control(
        ControlMessage::SelectMonitor { id: Some(right) }
            .encode()
            .unwrap(),
    )
    .unwrap();
    // The stream restarts at the monitor's size, and the client is told the new selection.
    let (mut restarted, mut told) = (false, false);
    while !(restarted && told) {
        match next_control(&client, Duration::from_secs(5)) {
            ControlMessage::StreamInfo {
                width,
                height,
                monitor,
                ..
            } => {
                assert_eq!((width, height, monitor), (640, 480, Some(right)));
                restarted = true;
            }
            // (The answer to Hello may still be on its way, with the whole screen selected.)
            ControlMessage::Monitors { selected, .. } => told = selected == Some(right),
            other => panic!("unexpected {other:?}"),
        }
    }
    // And a keyframe of that size follows.
    let deadline = Instant::now() + Duration::from_secs(5);
    let key = loop {
        match client
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(SessionEvent::Frame(f)) if f.keyframe => break f,
            Ok(_) => {}
            Err(_) => panic!("no keyframe after the switch"),
        }
    };
    let mut dec = wavry_media::codec::open_decoder(&wavry_media::codec::DecoderConfig::new(
        wavry_media::Codec::H264,
    ))
    .unwrap();
    dec.send(&key.data, 0).unwrap();
    let pic = dec.receive().unwrap().expect("a picture");
    assert_eq!((pic.size().width, pic.size().height), (640, 480));

    // The streamed monitor goes away: the host falls back to the whole screen and tells the
    // client the new list.
    display.delete_monitor("RIGHT");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no new monitor list");
        if let ControlMessage::Monitors { monitors, selected } =
            next_control(&client, Duration::from_secs(5))
        {
            if monitors.iter().all(|m| m.name != "RIGHT") {
                assert_eq!(selected, None);
                break;
            }
        }
    }
    drop(tx);
    drop(client);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    host.join().unwrap();
}
