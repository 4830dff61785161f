//! `wavry host`: stream this machine's X display to clients that are allowed in.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rift_crypto::handshake::{allow_list, Verifier};
use rift_crypto::identity::{Identity, PublicKey};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_transport::listen::{ListenEvent, Listener, ListenerConfig};
use wavry_transport::thread::SessionThread;
use wavry_transport::udp::UdpDriver;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CodecArg {
    H264,
    Hevc,
    Av1,
}

impl From<CodecArg> for wavry_media::Codec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::H264 => wavry_media::Codec::H264,
            CodecArg::Hevc => wavry_media::Codec::Hevc,
            CodecArg::Av1 => wavry_media::Codec::Av1,
        }
    }
}

#[derive(Args, Debug)]
pub struct HostArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:7878")]
    pub listen: SocketAddr,
    /// X display to stream and inject input into (default: $DISPLAY).
    #[arg(long)]
    pub display: Option<String>,
    /// Monitor id to stream at start (the client can switch); default: the whole screen.
    #[arg(long)]
    pub monitor: Option<u32>,
    /// Video codec.
    #[arg(long, value_enum, default_value = "h264")]
    pub codec: CodecArg,
    /// Frame rate cap.
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// Do not try hardware encoders (VA-API, NVENC, QSV).
    #[arg(long)]
    pub no_hardware: bool,
    /// Rolling intra refresh instead of keyframes after the first (smaller frame-size peaks).
    #[arg(long)]
    pub intra_refresh: bool,
    /// A client public key (base64, as `wavry id --public` prints it on the client) allowed to
    /// connect. Repeat for several.
    #[arg(long = "allow-key", value_name = "KEY")]
    pub allow_keys: Vec<String>,
    /// Let any client connect (anyone who can reach the port sees and controls this desktop:
    /// for a trusted LAN or a demo only).
    #[arg(long)]
    pub allow_any: bool,
    /// This host's identity file (default: <config dir>/identity.key, created if missing).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Serve one client, then exit.
    #[arg(long)]
    pub once: bool,
}

pub fn load_identity(path: Option<PathBuf>) -> Result<Identity> {
    let path = match path {
        Some(p) => p,
        None => wavry_config::identity::default_path().context("locating the device identity")?,
    };
    let (id, created) = wavry_config::identity::load_or_create(&path)
        .with_context(|| format!("loading the device identity {}", path.display()))?;
    if created {
        eprintln!(
            "created identity {} (fingerprint {})",
            path.display(),
            id.fingerprint()
        );
    }
    Ok(id)
}

fn verifier(allow_any: bool, keys: &[PublicKey]) -> Verifier {
    if allow_any {
        Box::new(|_| Ok(()))
    } else {
        allow_list(keys.to_vec())
    }
}

pub fn run_host(a: HostArgs, stop: Arc<AtomicBool>) -> Result<()> {
    let keys = a
        .allow_keys
        .iter()
        .map(|k| PublicKey::from_base64(k).with_context(|| format!("--allow-key {k}")))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() && !a.allow_any {
        bail!(
            "no client is allowed to connect: pass --allow-key KEY for each client (the client \
             prints its key with `wavry id --public`), or --allow-any on a trusted network"
        );
    }
    let identity = load_identity(a.identity)?;
    let cfg = wavry_host::HostConfig {
        display: a.display,
        codec: a.codec.into(),
        fps: a.fps,
        monitor: a.monitor,
        hardware: !a.no_hardware,
        intra_refresh: a.intra_refresh,
        ..Default::default()
    };
    let mut driver =
        UdpDriver::bind(a.listen).with_context(|| format!("binding UDP {}", a.listen))?;
    println!(
        "wavry host listening on {} (fingerprint {}; clients connect with `wavry connect HOST:{}`)",
        driver.local_addr()?,
        identity.fingerprint(),
        a.listen.port()
    );
    let allow_any = a.allow_any;
    let mut listener = Listener::new(
        ListenerConfig::default(),
        &identity,
        move || verifier(allow_any, &keys),
        Instant::now(),
    )
    .context("starting the listener")?;
    while !stop.load(Ordering::Relaxed) {
        let session = driver.accept(
            &mut listener,
            Instant::now() + Duration::from_millis(500),
            wavry_host::connection_factory,
        )?;
        report(&mut listener);
        let Some(session) = session else { continue };
        let peer = session.peer();
        println!("client {peer} connected");
        // The session takes the socket; a new one on the same port serves the next client.
        let local = driver.local_addr()?;
        let thread = SessionThread::spawn(driver, session)?;
        match wavry_host::serve(thread, &cfg, &stop, None) {
            Ok(s) => println!(
                "client {peer} gone after {:.1} s, {} frames: {:?}",
                s.duration.as_secs_f64(),
                s.frames,
                s.close
            ),
            Err(e) => eprintln!("session with {peer} failed: {e}"),
        }
        if a.once {
            break;
        }
        driver = rebind(local)?;
    }
    Ok(())
}

/// Say what became of handshakes that did not lead to a session.
fn report(listener: &mut Listener) {
    while let Some(ev) = listener.poll_event() {
        match ev {
            ListenEvent::Refused { from, key, reason } => eprintln!(
                "refused {from}: key {} ({reason}); allow it with --allow-key {}",
                key.fingerprint(),
                key.to_base64()
            ),
            ListenEvent::Unfinished { from } => eprintln!(
                "{from} started a handshake and did not finish it: if that was your client, it \
                 most likely refused this host's key (fingerprint changed?)"
            ),
        }
    }
}

/// Bind `addr` again once the previous session's thread has let go of it.
fn rebind(addr: SocketAddr) -> Result<UdpDriver> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match UdpDriver::bind(addr) {
            Ok(d) => return Ok(d),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "port still held; retrying");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("binding UDP {addr} again")),
        }
    }
}
