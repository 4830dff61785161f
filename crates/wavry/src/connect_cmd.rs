//! `wavry connect ADDR`: show a host's desktop in a window and send it keyboard, mouse and
//! gamepad input.

use anyhow::{bail, Context, Result};
use clap::Args;
use rift_crypto::handshake::{pinned, Verifier};
use rift_crypto::identity::PublicKey;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use wavry_client::run::{run, Reporter, RunOptions, RunSummary};
use wavry_client::stats::Snapshot;
use wavry_client::window::PresentMode;
use wavry_config::KnownHosts;
use wavry_transport::session::CloseReason;
use wavry_transport::thread::{SessionEvent, SessionThread};

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The host: HOST:PORT (port 7878 if left out).
    pub addr: String,
    /// Pin the host's public key (base64, as `wavry id --public` prints it on the host) instead
    /// of trusting it on first use.
    #[arg(long, value_name = "KEY")]
    pub host_key: Option<String>,
    /// This client's identity file (default: <config dir>/identity.key, created if missing).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Show the stats overlay from the start (Ctrl+Alt+Shift+S toggles it).
    #[arg(long)]
    pub overlay: bool,
    /// Write the stats as one JSON object per line, every second, to FILE ("-": stdout).
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Disconnect after this long (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = wavry_config::parse_duration)]
    pub duration: Option<Duration>,
    /// Do not try hardware decoders.
    #[arg(long)]
    pub no_hardware: bool,
    /// How pictures reach the screen: gpu (YUV textures through an SDL renderer), cpu (SIMD
    /// conversion into the window, for machines without a GPU), or auto: gpu unless OpenGL is a
    /// software rasterizer such as llvmpipe.
    #[arg(long, value_name = "PATH", default_value = "auto", value_parser = parse_present)]
    pub present: PresentMode,
    /// Window size.
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
}

pub fn parse_present(s: &str) -> Result<PresentMode, String> {
    s.parse()
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:7878")
    };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))
}

/// Open a session to `addr` and wait until it is established, with the host's key pinned
/// (`pin`) or checked against the known-hosts store (trust on first use).
pub fn establish(
    addr: SocketAddr,
    name: &str,
    identity: &rift_crypto::identity::Identity,
    pin: Option<PublicKey>,
    known: Option<&mut KnownHosts>,
) -> Result<SessionThread> {
    let verify: Verifier = match (pin, known.as_ref().and_then(|k| k.get(name))) {
        (Some(k), _) | (None, Some(k)) => pinned(k),
        (None, None) => Box::new(|_| Ok(())),
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let thread = wavry_client::run::connect(bind, addr, identity, verify)
        .with_context(|| format!("starting a session with {addr}"))?;
    match thread.events.recv_timeout(Duration::from_secs(12)) {
        Ok(SessionEvent::Established { remote_key }) => {
            let key = remote_key.context("the host proved no key")?;
            if let (Some(known), None) = (known, pin) {
                if known.get(name).is_none() {
                    known
                        .remember(name, key)
                        .context("storing the host's key")?;
                    eprintln!(
                        "trusting {name} on first use: fingerprint {} (stored in {}; check it \
                         against `wavry id` on the host)",
                        key.fingerprint(),
                        known.path().display()
                    );
                }
            }
            Ok(thread)
        }
        Ok(SessionEvent::Closed(CloseReason::HandshakeTimeout)) | Err(_) => bail!(
            "no answer from {addr}: is `wavry host` running there, and is UDP port {} open?",
            addr.port()
        ),
        Ok(SessionEvent::Closed(CloseReason::HandshakeFailed(why))) => {
            if why.contains("key changed") {
                bail!(
                    "{why}\nIf the host was reinstalled or its identity replaced on purpose, \
                     remove the line for {name} from {} and connect again.",
                    KnownHosts::default_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| "the known-hosts file".into())
                )
            }
            if why.contains("speaks RIFT versions") {
                bail!("{addr} runs another version of Wavry ({why}): update the older side")
            }
            bail!("the handshake with {addr} failed: {why}")
        }
        Ok(SessionEvent::Closed(CloseReason::Peer { reason, .. })) => {
            bail!("{addr} refused this client: {reason} (give the host this client's key: `wavry id --public`)")
        }
        Ok(other) => bail!("unexpected first event from the session: {other:?}"),
    }
}

pub fn print_summary(s: &RunSummary) {
    println!(
        "session: {:.1} s, {} frames decoded, {} shown, {} lost; closed: {}",
        s.duration.as_secs_f64(),
        s.frames_decoded,
        s.frames_shown,
        s.frames_lost,
        s.close
            .as_ref()
            .map_or("by this client".to_string(), |c| format!("{c:?}"))
    );
}

pub fn run_connect(a: ConnectArgs, stop: Arc<AtomicBool>) -> Result<()> {
    let addr = resolve(&a.addr)?;
    let identity = crate::host_cmd::load_identity(a.identity)?;
    let pin = a
        .host_key
        .as_deref()
        .map(PublicKey::from_base64)
        .transpose()
        .context("--host-key")?;
    let kh_path = KnownHosts::default_path().context("locating the known-hosts file")?;
    let mut known =
        KnownHosts::load(&kh_path).with_context(|| format!("reading {}", kh_path.display()))?;
    let name = addr.to_string();
    let session = establish(addr, &name, &identity, pin, Some(&mut known))?;
    let report: Option<Reporter> = match a.stats_json {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(|s: &Snapshot| println!("{}", s.json_line())))
        }
        Some(p) => {
            let mut f =
                std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
            Some(Box::new(move |s: &Snapshot| {
                let _ = writeln!(f, "{}", s.json_line());
            }))
        }
    };
    let summary = run(
        session,
        RunOptions {
            title: format!("Wavry — {name}"),
            width: a.width,
            height: a.height,
            overlay: a.overlay,
            report,
            duration: a.duration,
            hardware_decode: !a.no_hardware,
            present: a.present,
            client_name: hostname(),
            stop,
        },
    )?;
    print_summary(&summary);
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "wavry-client".into())
}
