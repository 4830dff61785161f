//! Host and client in two network namespaces with the impairment tool between them: 5 %
//! random loss both ways and 10 ms each way. The session must survive, keep showing frames,
//! and end up showing the host's screen (PSNR), with losses repaired or recovered from.
//!
//! Needs root (namespaces, TUN) and Xvfb; skips with a message otherwise.

use crate::common;

use rift_crypto::handshake::pinned;
use rift_crypto::identity::Identity;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use wavry_client::run::{connect, run, RunOptions};
use wavry_impair::netns::enter;
use wavry_impair::{LinkConfig, Topology};
use wavry_media::testing::TestDisplay;
use wavry_transport::udp::UdpDriver;

#[test]
fn a_session_survives_five_percent_loss() {
    let _window = common::one_window();
    if !wavry_testenv::require(&[wavry_testenv::Need::NetNs]) {
        return;
    }
    let (Some(host_disp), Some(client_disp)) =
        (TestDisplay::start(640, 480), TestDisplay::start(640, 480))
    else {
        return;
    };
    let hc = host_disp.connect();
    host_disp.paint(&hc, 0, 0, 640, 480, 0x305070);
    for (i, rgb) in [0xe04030u32, 0x30c050, 0x3050e0].iter().enumerate() {
        host_disp.paint(&hc, 60 + 180 * i as i16, 100, 140, 280, *rgb);
    }
    // A moving scene on top for the first seconds (real bitrate, so loss hits real frames);
    // when it stops, the still picture underneath must show on the client.
    let scene = Arc::new(Mutex::new(Some(
        wavry_scene::Scene::start(host_disp.name(), 30).expect("scene"),
    )));
    let name = format!("wvl{}", std::process::id() % 10_000);
    let topo = Topology::create(&name, [10, 214, 40]).expect("create the namespaces");
    let path = LinkConfig {
        delay: Duration::from_millis(10),
        loss: 0.05,
        ..LinkConfig::default()
    };
    let _impair = topo
        .start(path.clone(), path, 7)
        .expect("start the impairment tool");

    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let (addr_tx, addr_rx) = mpsc::channel();
    let (ns_a, addr_a) = (topo.ns_a.clone(), topo.addr_a);
    let host_display = host_disp.name().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let host_stop = stop.clone();
    let host = std::thread::spawn(move || {
        enter(&ns_a).expect("enter A");
        let hd = UdpDriver::bind((addr_a, 0)).unwrap();
        addr_tx.send(hd.local_addr().unwrap()).unwrap();
        common::serve_one(hd, &host_id, client_pub, host_display, &host_stop)
    });

    enter(&topo.ns_b).expect("enter B");
    let host_addr = addr_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let bind = (topo.addr_b, 0).into();
    let client = connect(bind, host_addr, &client_id, pinned(host_pub)).unwrap();

    // Each second the client reports; at 5 s the scene stops, at 8 s both screens are
    // grabbed (the client's window is still open then).
    let host_disp = Arc::new(host_disp);
    // (host screen, client screen) as grabbed at 8 s.
    type Grabs = Arc<Mutex<Option<(Vec<u8>, Vec<u8>)>>>;
    let grabs: Grabs = Arc::default();
    let client_name = client_disp.name().to_string();
    let report = {
        let (host_disp, grabs, scene) = (host_disp.clone(), grabs.clone(), scene.clone());
        let client_conn = client_disp.connect();
        let mut ticks = 0;
        move |s: &wavry_client::stats::Snapshot| {
            ticks += 1;
            println!("{}", s.json_line());
            if ticks == 5 {
                scene.lock().unwrap().take();
            }
            if ticks == 8 {
                let (_, _, src) = host_disp.grab(&hc);
                let (_, _, shown) = client_disp.grab(&client_conn);
                *grabs.lock().unwrap() = Some((src, shown));
            }
        }
    };
    std::env::set_var("DISPLAY", &client_name);
    let summary = run(
        client,
        RunOptions {
            title: "wavry lossy".into(),
            width: 640,
            height: 480,
            overlay: false,
            report: Some(Box::new(report)),
            duration: Some(Duration::from_secs(9)),
            hardware_decode: false,
            present: wavry_client::window::PresentMode::Auto,
            client_name: "lossy".into(),
            stop: Arc::new(AtomicBool::new(false)),
        },
    )
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let host_summary = host.join().unwrap();
    println!("client: {summary:?}\nhost: {host_summary:?}");
    assert!(
        summary.close.is_none()
            || summary.close == Some(wavry_transport::session::CloseReason::Local),
        "the session ended early: {:?}",
        summary.close
    );
    assert!(summary.frames_shown >= 60, "{summary:?}");
    let (src, shown) = grabs.lock().unwrap().take().expect("screens grabbed");
    let p = common::psnr(&src, &shown);
    println!("client screen vs host screen after the change, under 5 % loss: PSNR {p:.1} dB");
    assert!(p >= 30.0, "PSNR {p:.1} dB");
}
