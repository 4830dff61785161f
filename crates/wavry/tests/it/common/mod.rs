//! Shared by the client's end-to-end tests: a host serving one client, and picture comparison.
#![allow(dead_code)]

use rift_crypto::handshake::allow_list;
use rift_crypto::identity::{Identity, PublicKey};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use wavry_transport::udp::UdpDriver;

/// Accept `client` on `driver` (within 10 s) and stream X display `display` to it at 30 fps
/// with software codecs until the session ends or `stop` is set.
pub fn serve_one(
    driver: UdpDriver,
    identity: &Identity,
    client: PublicKey,
    display: String,
    stop: &AtomicBool,
) -> wavry_host::Summary {
    let deadline = Instant::now() + Duration::from_secs(10);
    let t = wavry_host::accept_one(driver, identity, move || allow_list(vec![client]), deadline)
        .expect("the client connects");
    let cfg = wavry_host::HostConfig {
        display: Some(display),
        fps: 30,
        hardware: false,
        ..Default::default()
    };
    wavry_host::serve(t, &cfg, stop, None).expect("the host serves")
}

/// PSNR of the luma of two BGRA images of one size.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let luma = |p: &[u8]| 0.0722 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.2126 * p[2] as f64;
    let se: f64 = a
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .map(|(x, y)| (luma(x) - luma(y)).powi(2))
        .sum();
    let mse = se / (a.len() / 4).max(1) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// SDL allows one context per process, and the window finds its X display through `DISPLAY`:
/// a test that opens a window holds this for its whole run, so such tests take turns in this
/// binary (cargo-nextest runs every test in a process of its own anyway).
pub fn one_window() -> std::sync::MutexGuard<'static, ()> {
    static WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());
    WINDOW.lock().unwrap_or_else(|e| e.into_inner())
}
