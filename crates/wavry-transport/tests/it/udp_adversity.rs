//! Real sockets on loopback, through a proxy that drops, records and injects datagrams:
//! - each handshake packet lost in turn: the session still comes up within 1 s;
//! - replayed, truncated, tampered, misrouted and foreign datagrams: refused and counted, and
//!   the session carries on.

use crate::common::{Dir, Proxy};
use rift_core::connection::Event;
use rift_core::wire::{Header, PacketType};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::testing::{established, Threads};
use wavry_transport::thread::SessionEvent;

fn packet_type(d: &[u8]) -> Option<PacketType> {
    Header::decode(d).ok().map(|h| h.packet_type)
}

#[test]
fn losing_any_one_handshake_packet_still_connects_within_a_second() {
    let _serial = crate::common::real_time();
    for (lost, dir) in [
        (PacketType::HandshakeInit, Dir::ToHost),
        (PacketType::HandshakeResponse, Dir::ToClient),
        (PacketType::HandshakeFinish, Dir::ToHost),
    ] {
        let dropped = Arc::new(AtomicBool::new(false));
        let d2 = dropped.clone();
        let mut proxy = None;
        let start = Instant::now();
        let p = Threads::spawn(2_000_000, |host| {
            let px = Proxy::start(host, move |d, bytes| {
                // Forward all but the first `lost` packet.
                let hit = d == dir && packet_type(bytes) == Some(lost);
                !hit || d2.swap(true, Ordering::Relaxed)
            });
            let a = px.addr;
            proxy = Some(px);
            a
        });
        let within = Duration::from_secs(1).saturating_sub(start.elapsed());
        let c =
            established(&p.client, within).unwrap_or_else(|e| panic!("{lost:?} lost: client {e}"));
        let h = established(
            &p.host,
            Duration::from_secs(1).saturating_sub(start.elapsed()),
        )
        .unwrap_or_else(|e| panic!("{lost:?} lost: host {e}"));
        assert!(dropped.load(Ordering::Relaxed), "{lost:?} was never seen");
        let total = start.elapsed();
        println!("{lost:?} lost: client up after {c:?}, host after {h:?}, both within {total:?}");
        assert!(total < Duration::from_secs(1));
        drop(p);
        drop(proxy);
    }
}

#[test]
fn hostile_datagrams_are_refused_and_counted_and_the_session_goes_on() {
    let _serial = crate::common::real_time();
    let mut proxy = None;
    let p = Threads::spawn(2_000_000, |host| {
        let px = Proxy::start(host, |_, _| true);
        let a = px.addr;
        proxy = Some(px);
        a
    });
    let proxy = proxy.unwrap();
    established(&p.client, Duration::from_secs(2)).unwrap();
    established(&p.host, Duration::from_secs(2)).unwrap();

    p.client.sender().send_control(b"first".to_vec()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let sample = loop {
        let found = proxy
            .recorded
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|(d, b)| {
                (*d == Dir::ToHost && packet_type(b) == Some(PacketType::Control))
                    .then(|| b.clone())
            });
        if let Some(b) = found {
            break b;
        }
        assert!(Instant::now() < deadline, "no control packet seen");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Let the host settle its counters, then take a baseline.
    std::thread::sleep(Duration::from_millis(250));
    let before = p.host.stats();

    let mut tampered = sample.clone();
    tampered[20] ^= 0x01;
    let mut wrong_cid = sample.clone();
    wrong_cid[2] ^= 0x40;
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("replayed", sample.clone()),
        ("truncated", sample[..20].to_vec()),
        ("header only", sample[..14].to_vec()),
        ("tampered", tampered),
        ("wrong connection id", wrong_cid),
        ("three bytes", vec![0xff; 3]),
        ("not RIFT (STUN-like)", vec![0x00; 20]),
        ("oversized", vec![0x90; 1600]),
    ];
    for (_, d) in &hostile {
        proxy.inject(Dir::ToHost, d.clone());
    }
    p.client.sender().send_control(b"second".to_vec()).unwrap();

    let mut controls = vec![];
    let deadline = Instant::now() + Duration::from_secs(2);
    while controls.len() < 2 && Instant::now() < deadline {
        if let Ok(SessionEvent::Connection(Event::Control(m))) =
            p.host.events.recv_timeout(Duration::from_millis(50))
        {
            controls.push(m);
        }
    }
    assert_eq!(controls, vec![b"first".to_vec(), b"second".to_vec()]);
    std::thread::sleep(Duration::from_millis(250));
    let after = p.host.stats();
    let refused = after.dropped - before.dropped;
    println!(
        "refused {refused} of {} hostile datagrams (session rejections {} → {})",
        hostile.len(),
        before.session.rejected,
        after.session.rejected
    );
    assert_eq!(
        refused,
        hostile.len() as u64,
        "every hostile datagram counted once"
    );
    assert!(after.session.rejected - before.session.rejected >= 5);
    // Still alive both ways.
    p.host
        .sender()
        .send_control(b"still here".to_vec())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match p.client.events.recv_timeout(Duration::from_millis(50)) {
            Ok(SessionEvent::Connection(Event::Control(m))) => {
                assert_eq!(m, b"still here");
                break;
            }
            Ok(SessionEvent::Closed(r)) => panic!("client closed: {r:?}"),
            _ => assert!(Instant::now() < deadline, "host's message never came"),
        }
    }
}
