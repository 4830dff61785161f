//! Real sockets on loopback: a client that moves to a new socket (a new address, as after a
//! network change) keeps its session, and the host's video follows it. (Per-class DSCP marks
//! are checked on the wire in `socket.rs`'s tests.)

use rift_core::connection::Event;
use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wavry_transport::session::Session;
use wavry_transport::testing::{self, InTurn};
use wavry_transport::udp::UdpDriver;

fn factory(sender: bool) -> wavry_transport::session::ConnectionFactory {
    testing::fixed_rate(sender, 2_000_000)
}

/// A host and a client on loopback sockets, driven in turn on this thread, established.
fn connect() -> (UdpDriver, Session, UdpDriver, Session) {
    let p = InTurn::established(factory(true), factory(false));
    (p.host_driver, p.host, p.client_driver, p.client)
}

/// One turn of both ends, 5 ms each.
fn step(hd: &mut UdpDriver, host: &mut Session, cd: &mut UdpDriver, client: &mut Session) {
    cd.drive(client, Instant::now() + Duration::from_millis(5))
        .unwrap();
    hd.drive(host, Instant::now() + Duration::from_millis(5))
        .unwrap();
}

#[test]
fn session_survives_a_client_address_change() {
    let _serial = crate::common::real_time();
    let (mut hd, mut host, mut cd, mut client) = connect();

    client
        .connection()
        .unwrap()
        .send_input(Instant::now(), b"key A down")
        .unwrap();
    cd.flush(&mut client, Instant::now()).unwrap();
    client
        .connection()
        .unwrap()
        .send_control(b"switch monitor")
        .unwrap();
    cd.flush(&mut client, Instant::now()).unwrap();

    // The client's socket changes: same session, new source address.
    let old_addr = cd.local_addr().unwrap();
    let mut cd2 = UdpDriver::bind("127.0.0.1:0").unwrap();
    assert_ne!(cd2.local_addr().unwrap(), old_addr);
    client
        .connection()
        .unwrap()
        .send_input(Instant::now(), b"key A up")
        .unwrap();
    let mut inputs = vec![];
    let mut controls = vec![];
    for _ in 0..40 {
        step(&mut hd, &mut host, &mut cd2, &mut client);
        while let Some(ev) = host.connection().unwrap().poll_event() {
            match ev {
                Event::Input(i) => inputs.push(i.data().to_vec()),
                Event::Control(m) => controls.push(m),
                _ => {}
            }
        }
    }
    assert_eq!(
        host.peer(),
        cd2.local_addr().unwrap(),
        "host follows the client to its new address"
    );
    assert!(host.stats.roamed >= 1);
    assert_eq!(inputs, vec![b"key A down".to_vec(), b"key A up".to_vec()]);
    assert_eq!(controls, vec![b"switch monitor".to_vec()]);
    // And the host answers at the new address: the client still hears it.
    assert!(client.is_established());
    assert!(client.close_reason().is_none());
}

/// Frames the client got, and the frames it was told were lost.
#[derive(Default)]
struct Received {
    delivered: Vec<u32>,
    lost: Vec<u32>,
}

fn receive(client: &mut Session, got: &mut Received) {
    let c = client.connection().unwrap();
    while let Some(f) = c.poll_frame(STREAM_VIDEO) {
        let id = u32::from_be_bytes(f.data[..4].try_into().unwrap());
        assert_eq!(id, f.frame_id, "payload of frame {}", f.frame_id);
        assert!(
            f.data[4..].iter().all(|&b| b == id as u8),
            "frame {id} corrupt"
        );
        got.delivered.push(id);
    }
    while let Some(ev) = c.poll_event() {
        if let Event::FrameLost { frame_id, .. } = ev {
            got.lost.push(frame_id);
        }
    }
}

/// Whether frame `id` is covered by a loss report: rift-core reports a run of frames of which
/// nothing arrived with one `FrameLost`, naming the first, so `id` counts as reported if a
/// report names it or an earlier frame with nothing delivered in between.
fn reported_lost(id: u32, lost: &BTreeSet<u32>, delivered: &BTreeSet<u32>) -> bool {
    lost.range(..=id)
        .next_back()
        .is_some_and(|&first| delivered.range(first..=id).next().is_none())
}

/// Stream one frame per turn to the client, `turns` times, on driver `cd`.
#[allow(clippy::too_many_arguments)]
fn stream(
    turns: usize,
    hd: &mut UdpDriver,
    host: &mut Session,
    cd: &mut UdpDriver,
    client: &mut Session,
    sent: &mut Vec<(u32, SocketAddr)>,
    got: &mut Received,
) {
    for _ in 0..turns {
        // One 1500-byte frame per turn (about 10 ms): 1.2 Mbit/s under the 2 Mbit/s pacer.
        // After the first (a keyframe) every frame is a recovery point, as with reference
        // invalidation, so a frame lost at a move does not hold back those after it (the
        // decoder's gate is not what this test is about).
        let id = sent.len() as u32;
        let mut data = vec![id as u8; 1500];
        data[..4].copy_from_slice(&id.to_be_bytes());
        let peer = host.peer();
        host.connection()
            .unwrap()
            .send_frame(
                Instant::now(),
                STREAM_VIDEO,
                OutgoingFrame {
                    data: &data,
                    keyframe: id == 0,
                    recovery_point: id != 0,
                    capture_us: 0,
                },
            )
            .unwrap();
        sent.push((id, peer));
        step(hd, host, cd, client);
        receive(client, got);
    }
}

#[test]
fn video_follows_the_client_to_its_new_address() {
    let _serial = crate::common::real_time();
    let (mut hd, mut host, mut cd, mut client) = connect();
    let (mut sent, mut got) = (vec![], Received::default());
    stream(
        50,
        &mut hd,
        &mut host,
        &mut cd,
        &mut client,
        &mut sent,
        &mut got,
    );
    assert!(got.lost.is_empty(), "lost before any move: {:?}", got.lost);
    let addr0 = cd.local_addr().unwrap();

    // Move 1, announced: the client switches to a new socket (the old one stays open, unread)
    // and pings from it at once, as a client that changes sockets does (`Session::ping`).
    let mut cd1 = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr1 = cd1.local_addr().unwrap();
    let move1 = sent.len() as u32;
    client.ping();
    stream(
        60,
        &mut hd,
        &mut host,
        &mut cd1,
        &mut client,
        &mut sent,
        &mut got,
    );

    // Move 2, unannounced (as when a NAT rebinds): the host follows the client's next packet,
    // feedback if it still has arrivals to report, else the ping it sends once it has heard
    // nothing for `probe_after` (200 ms; `session.rs` tests that case on its own).
    let mut cd2 = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr2 = cd2.local_addr().unwrap();
    let move2 = sent.len() as u32;
    stream(
        150,
        &mut hd,
        &mut host,
        &mut cd2,
        &mut client,
        &mut sent,
        &mut got,
    );
    // Let the last frames land.
    for _ in 0..20 {
        step(&mut hd, &mut host, &mut cd2, &mut client);
        receive(&mut client, &mut got);
    }

    let first_to = |a: SocketAddr| sent.iter().find(|(_, to)| *to == a).map(|(id, _)| *id);
    let followed1 = first_to(addr1).expect("the host followed move 1");
    let followed2 = first_to(addr2).expect("the host followed move 2");
    let delivered: BTreeSet<u32> = got.delivered.iter().copied().collect();
    let lost: BTreeSet<u32> = got.lost.iter().copied().collect();
    let missing: Vec<u32> = (0..sent.len() as u32)
        .filter(|id| !delivered.contains(id))
        .collect();
    println!(
        "{} frames sent; move 1 ({addr0} → {addr1}, announced) at frame {move1}, host followed \
         from frame {followed1}; move 2 (→ {addr2}, unannounced) at frame {move2}, followed from \
         frame {followed2}; {} delivered, missing {missing:?}, loss reports {lost:?}; roamed {}",
        sent.len(),
        delivered.len(),
        host.stats.roamed
    );
    assert_eq!(host.peer(), addr2);
    assert_eq!(host.stats.roamed, 2);
    assert!(
        got.delivered.windows(2).all(|w| w[0] < w[1]),
        "delivered in order, once"
    );
    // Announced, the host follows within a couple of frames; unannounced, within the client's
    // `probe_after` (200 ms, about 20 turns here) and a few turns.
    assert!(
        followed1 - move1 <= 3,
        "move 1 followed after {} frames",
        followed1 - move1
    );
    assert!(
        followed2 - move2 <= 30,
        "move 2 followed after {} frames",
        followed2 - move2
    );
    for (id, to) in &sent {
        if *to == addr0 && *id + 2 < move1 || *to == addr1 && *id + 2 < move2 || *to == addr2 {
            // Sent to an address the client still read (but for the last turn or two before
            // it moved), or after the host had followed it the last time: every one arrives.
            assert!(delivered.contains(id), "frame {id} (sent to {to}) missing");
        } else {
            // In flight at a move, or sent to an address the client had left: delivered (a
            // retransmission reached it at the new one) or reported lost, never silently
            // missing.
            assert!(
                delivered.contains(id) || reported_lost(*id, &lost, &delivered),
                "frame {id} neither delivered nor reported lost"
            );
        }
    }
    assert!(client.close_reason().is_none() && host.close_reason().is_none());
}
