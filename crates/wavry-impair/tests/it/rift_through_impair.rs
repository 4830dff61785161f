//! Issue 3, test 5(c): an encrypted RIFT session over real UDP sockets across the impairment
//! tool with 5 % random loss, reordering and duplication (and 10 ms each way). Every video frame
//! sent is delivered byte for byte or reported lost; every control message, both ways, arrives
//! exactly once and in order.
//!
//! Needs root (network namespaces, TUN devices); skips with a message otherwise.

use rift_core::connection::{Connection, ConnectionConfig, Event};
use rift_core::delta::FixedRate;
use rift_core::media::OutgoingFrame;
use rift_core::wire::STREAM_VIDEO;
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use rift_sim::encoder::{frame_payload, verify_payload, EncoderConfig, SyntheticEncoder};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use wavry_impair::netns::enter;
use wavry_impair::{LinkConfig, Topology};
use wavry_transport::listen::{Listener, ListenerConfig};
use wavry_transport::session::{ConnectionFactory, Session, SessionConfig};
use wavry_transport::udp::UdpDriver;

const VIDEO_BPS: u64 = 4_000_000;
const STREAM_FOR: Duration = Duration::from_secs(10);
const CONTROL_EVERY: Duration = Duration::from_millis(10);
const MS: Duration = Duration::from_millis(1);

/// Control messages numbered 0, 1, … : checks each arrives once and in order.
#[derive(Default, Debug)]
struct ControlSeq {
    next_send: u32,
    next_expected: u32,
    out_of_order: Vec<(u32, u32)>,
}

impl ControlSeq {
    fn send(&mut self, c: &mut Connection) {
        c.send_control(&self.next_send.to_be_bytes())
            .expect("the control queue has room");
        self.next_send += 1;
    }

    fn received(&mut self, m: &[u8]) {
        let n = u32::from_be_bytes(m.try_into().expect("a 4-byte control message"));
        if n != self.next_expected {
            self.out_of_order.push((self.next_expected, n));
        }
        self.next_expected = n + 1;
    }
}

/// What one end saw; returned by its thread.
#[derive(Default, Debug)]
struct End {
    control: ControlSeq,
    control_failed: bool,
    frames_sent: Vec<u32>,
    delivered: Vec<u32>,
    corrupt: Vec<u32>,
    lost: Vec<u32>,
    receiver: Option<rift_core::media::MediaReceiverStats>,
}

impl End {
    fn events(&mut self, c: &mut Connection, enc: Option<&mut SyntheticEncoder>) {
        let mut keyframe = false;
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::Control(m) => self.control.received(&m),
                Event::FrameLost { frame_id, .. } => self.lost.push(frame_id),
                Event::KeyframeRequested { .. } => keyframe = true,
                Event::ControlFailed => self.control_failed = true,
                _ => {}
            }
        }
        if let (true, Some(enc)) = (keyframe, enc) {
            enc.request_keyframe();
        }
    }
}

fn connection(sender: bool) -> ConnectionFactory {
    Box::new(move |l, r, now| {
        Connection::new(
            ConnectionConfig::new(l, r, sender),
            // Room above the video for FEC and retransmissions.
            Box::new(FixedRate::new(VIDEO_BPS * 2, 60.0)),
            now,
        )
    })
}

#[test]
fn frames_delivered_or_reported_lost_control_exactly_once_in_order() {
    if !wavry_testenv::require(&[wavry_testenv::Need::NetNs]) {
        return;
    }
    let name = format!("wvi{}c", std::process::id() % 10_000);
    let topo = Topology::create(&name, [10, 214, 20]).expect("create the namespaces");
    let path = LinkConfig {
        delay: 10 * MS,
        jitter: MS,
        loss: 0.05,
        reorder: 0.05,
        reorder_delay: 4 * MS,
        duplicate: 0.05,
        ..LinkConfig::default()
    };
    let imp = topo
        .start(path.clone(), path, 5)
        .expect("start the impairer");

    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let host_done = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();

    // Host in A: streams video and control messages for STREAM_FOR, then drains.
    let (ns_a, addr_a, done) = (topo.ns_a.clone(), topo.addr_a, host_done.clone());
    let host = std::thread::spawn(move || {
        enter(&ns_a).expect("enter A");
        let mut d = UdpDriver::bind((addr_a, 0)).unwrap();
        addr_tx.send(d.local_addr().unwrap()).unwrap();
        let mut listener = Listener::new(
            ListenerConfig::default(),
            &host_id,
            move || allow_list(vec![client_pub]),
            Instant::now(),
        )
        .unwrap();
        let mut s = d
            .accept(
                &mut listener,
                Instant::now() + Duration::from_secs(5),
                || connection(true),
            )
            .unwrap()
            .expect("the client connects");
        let start = Instant::now();
        while !s.is_established() && start.elapsed() < Duration::from_secs(3) {
            d.drive(&mut s, Instant::now() + 5 * MS).unwrap();
        }
        assert!(s.is_established(), "host: {:?}", s.close_reason());
        let mut end = End::default();
        let started = Instant::now();
        let stop_video = started + STREAM_FOR;
        let mut enc = SyntheticEncoder::new(EncoderConfig::default(), VIDEO_BPS, started);
        let mut next_control = started;
        let mut buf = Vec::new();
        while started.elapsed() < STREAM_FOR + Duration::from_millis(1500) {
            let now = Instant::now();
            let wake = if now < stop_video {
                enc.next_frame_time().min(next_control)
            } else {
                now + 5 * MS
            };
            d.drive(&mut s, wake).unwrap();
            let c = s.connection().unwrap();
            end.events(c, Some(&mut enc));
            let now = Instant::now();
            if now >= stop_video {
                continue;
            }
            if now >= next_control {
                end.control.send(c);
                next_control += CONTROL_EVERY;
            }
            if let Some(f) = enc.poll(now) {
                // The payload is keyed by the connection's frame id, which the receiver reports.
                let next_id = end.frames_sent.last().map_or(0, |l| l + 1);
                frame_payload(next_id, f.size, &mut buf);
                let out = OutgoingFrame {
                    data: &buf,
                    keyframe: f.keyframe,
                    recovery_point: false,
                    capture_us: 0,
                };
                let id = c.send_frame(now, STREAM_VIDEO, out).unwrap();
                assert_eq!(id, next_id, "frame ids count up from 0");
                end.frames_sent.push(id);
            }
        }
        done.store(true, Ordering::Relaxed);
        end
    });

    // Client in B: receives and verifies, sends its own numbered control messages.
    let (ns_b, addr_b) = (topo.ns_b.clone(), topo.addr_b);
    let client = std::thread::spawn(move || {
        enter(&ns_b).expect("enter B");
        let host_addr = addr_rx.recv().unwrap();
        let mut d = UdpDriver::bind((addr_b, 0)).unwrap();
        let mut s = Session::connect(
            SessionConfig::default(),
            &client_id,
            pinned(host_pub),
            host_addr,
            connection(false),
            Instant::now(),
        )
        .unwrap();
        let mut end = End::default();
        let mut next_control: Option<Instant> = None;
        let mut stop_control = None;
        // Bounded even if the host thread dies without saying so.
        let deadline = Instant::now() + STREAM_FOR + Duration::from_secs(10);
        while !host_done.load(Ordering::Relaxed) && Instant::now() < deadline {
            d.drive(&mut s, Instant::now() + 2 * MS).unwrap();
            let Some(c) = s.connection() else { continue };
            let now = Instant::now();
            let next = next_control.get_or_insert(now);
            let stop = *stop_control.get_or_insert(now + STREAM_FOR);
            if now >= *next && now < stop {
                end.control.send(c);
                *next += CONTROL_EVERY;
            }
            while let Some(f) = c.poll_frame(STREAM_VIDEO) {
                end.delivered.push(f.frame_id);
                if !verify_payload(f.frame_id, f.data) {
                    end.corrupt.push(f.frame_id);
                }
            }
            end.events(c, None);
        }
        end.receiver = s
            .connection()
            .and_then(|c| c.receiver(STREAM_VIDEO).map(|r| r.stats));
        println!(
            "client: session {:?}, protection {:?}",
            s.stats,
            s.protection_stats()
        );
        end
    });

    let host = host.join().expect("host thread");
    let client = client.join().expect("client thread");
    let summary = imp.stop().expect("the impairer ran");
    drop(topo);

    let r = client.receiver.expect("receiver stats");
    println!("impairer a2b {:?}", summary.a2b);
    println!("impairer b2a {:?}", summary.b2a);
    println!("receiver {r:?}");
    println!(
        "frames: {} sent, {} delivered, {} corrupt, {} reported lost (events), {} lost / {} superseded / {} gated (stats); \
         control: host sent {} client got {}, client sent {} host got {}",
        host.frames_sent.len(),
        client.delivered.len(),
        client.corrupt.len(),
        client.lost.len(),
        r.frames_lost,
        r.frames_superseded,
        r.frames_gated,
        host.control.next_send,
        client.control.next_expected,
        client.control.next_send,
        host.control.next_expected,
    );

    // The path really was impaired, both ways.
    for l in [&summary.a2b, &summary.b2a] {
        assert!(
            l.dropped_random > 0 && l.duplicated > 0 && l.reordered > 0,
            "{l:?}"
        );
    }
    // Seen in half the runs or more with rift-core as of this test: the first keyframe needs a
    // NACK round, a later frame completes first, MediaReceiver::poll_frame starts delivery at
    // that oldest *complete* frame, skipping the keyframe without a FrameLost, and every frame
    // after it is gated while no keyframe is requested. Starting at the oldest *active* frame
    // instead passed 5 runs of 5.
    assert!(
        !(client.delivered.is_empty() && client.lost.is_empty()),
        "the stream never started and no loss was reported: {} frames gated; the first \
         keyframe was skipped silently (rift-core MediaReceiver::poll_frame starts at the oldest \
         complete frame)",
        r.frames_gated
    );
    // Video: intact, once, in order; the rest reported.
    assert!(
        client.corrupt.is_empty(),
        "corrupt frames {:?}",
        client.corrupt
    );
    assert!(
        client.delivered.windows(2).all(|w| w[0] < w[1]),
        "frames delivered out of order or twice"
    );
    let sent: HashSet<u32> = host.frames_sent.iter().copied().collect();
    let delivered: HashSet<u32> = client.delivered.iter().copied().collect();
    assert!(
        delivered.is_subset(&sent),
        "a frame delivered that was never sent"
    );
    let lost: HashSet<u32> = client.lost.iter().copied().collect();
    assert!(
        delivered.is_disjoint(&lost),
        "a frame both delivered and reported lost"
    );
    let missing = sent.len() - delivered.len();
    let reported = (r.frames_lost + r.frames_superseded + r.frames_gated) as usize;
    assert!(
        missing <= reported,
        "{missing} frames neither delivered nor reported lost, superseded or gated ({reported})"
    );
    assert!(
        delivered.len() as f64 >= 0.9 * sent.len() as f64,
        "only {} of {} frames delivered",
        delivered.len(),
        sent.len()
    );
    // Control: every message exactly once, in order, both ways.
    for (from, to, dir) in [
        (&host, &client, "host->client"),
        (&client, &host, "client->host"),
    ] {
        assert!(!to.control_failed, "{dir}: the control channel failed");
        assert!(
            to.control.out_of_order.is_empty(),
            "{dir}: {:?}",
            to.control.out_of_order
        );
        assert_eq!(
            to.control.next_expected, from.control.next_send,
            "{dir}: all delivered"
        );
        assert!(
            from.control.next_send > 500,
            "{dir}: too few messages to tell"
        );
    }
}
