//! Real sockets on loopback: a client that moves to a new socket (a new address, as after a
//! network change) keeps its session. (Per-class DSCP marks are checked on the wire in
//! `socket.rs`'s tests.)

use rift_core::connection::{Connection, ConnectionConfig, Event};
use rift_core::delta::FixedRate;
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::time::{Duration, Instant};
use wavry_transport::session::{Session, SessionConfig};
use wavry_transport::udp::UdpDriver;

fn factory(sender: bool) -> wavry_transport::session::ConnectionFactory {
    Box::new(move |l, r, now| {
        Connection::new(
            ConnectionConfig::new(l, r, sender),
            Box::new(FixedRate::new(2_000_000, 60.0)),
            now,
        )
    })
}

#[test]
fn session_survives_a_client_address_change() {
    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let mut client = Session::connect(
        SessionConfig::default(),
        &client_id,
        pinned(host_pub),
        host_addr,
        factory(false),
        Instant::now(),
    )
    .unwrap();
    cd.flush(&mut client, Instant::now()).unwrap();
    let mut host = hd
        .accept(
            &SessionConfig::default(),
            &host_id,
            || allow_list(vec![client_pub]),
            || factory(true),
            Instant::now() + Duration::from_secs(2),
        )
        .unwrap()
        .expect("handshake initiation");
    let step =
        |hd: &mut UdpDriver, host: &mut Session, cd: &mut UdpDriver, client: &mut Session| {
            cd.drive(client, Instant::now() + Duration::from_millis(5))
                .unwrap();
            hd.drive(host, Instant::now() + Duration::from_millis(5))
                .unwrap();
        };
    for _ in 0..40 {
        step(&mut hd, &mut host, &mut cd, &mut client);
    }
    assert!(client.is_established() && host.is_established());

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
