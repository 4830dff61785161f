//! `wavry demo`: the whole system on this machine. A host streams a moving scene on a virtual
//! X display over an encrypted RIFT session on loopback to a client window; without a display
//! of your own the client's window lives on a second virtual display. Prints the client's
//! stats every second and a summary at the end.

use anyhow::{bail, Context, Result};
use clap::Args;
use rift_crypto::handshake::allow_list;
use rift_crypto::identity::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_client::run::{run, RunOptions};
use wavry_client::stats::Snapshot;
use wavry_scene::{Scene, VirtualDisplay};
use wavry_transport::udp::UdpDriver;

#[derive(Args, Debug)]
pub struct DesktopDemoArgs {
    /// How long to stream, e.g. 30s or 2m (default: until Ctrl-C with a display of your own,
    /// 15s without).
    #[arg(long, value_name = "DURATION", value_parser = wavry_config::parse_duration)]
    pub duration: Option<Duration>,
    /// The host's virtual screen, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Frame rate of the scene and the stream.
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// Video codec.
    #[arg(long, value_enum, default_value = "h264")]
    pub codec: crate::host_cmd::CodecArg,
    /// Run the client on a virtual display even when $DISPLAY is set.
    #[arg(long)]
    pub headless: bool,
    /// Print each second's stats as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// How pictures reach the screen: gpu (YUV textures through an SDL renderer), cpu (SIMD
    /// conversion into the window, for machines without a GPU), or auto: gpu unless OpenGL is a
    /// software rasterizer such as llvmpipe.
    #[arg(long, value_name = "PATH", default_value = "auto", value_parser = crate::connect_cmd::parse_present)]
    pub present: wavry_client::window::PresentMode,
}

pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("--size {s}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        bail!("--size {s}: between 64x64 and 7680x4320");
    }
    Ok((w & !1, h & !1))
}

fn line(s: &Snapshot) -> String {
    format!(
        "{:5.1}s {:>4}x{:<4} {:3.0} fps {:5.1} Mbit/s  RTT {:4.1} ms  host {:4.1} ms  network {:4.1} ms  decode {:4.1} ms  present {:4.1} ms  lost {}",
        s.t_s, s.width, s.height, s.fps, s.video_mbps, s.rtt_ms, s.host.mean_ms,
        s.network.mean_ms, s.decode.mean_ms, s.present.mean_ms, s.frames_lost
    )
}

pub fn run_desktop_demo(a: DesktopDemoArgs, stop: Arc<AtomicBool>) -> Result<()> {
    let (w, h) = parse_size(&a.size)?;
    let own_display = std::env::var_os("DISPLAY").is_some() && !a.headless;
    let duration = a
        .duration
        .or((!own_display).then_some(Duration::from_secs(15)));

    let host_display =
        VirtualDisplay::start(w, h).context("starting the host's virtual display")?;
    let client_display = if own_display {
        None
    } else {
        Some(VirtualDisplay::start(w, h).context("starting the client's virtual display")?)
    };
    let _scene = Scene::start(host_display.name(), a.fps).context("painting the scene")?;
    println!(
        "wavry demo: host on virtual display {} ({w}x{h}, moving scene at {} fps), client window on {}",
        host_display.name(),
        a.fps,
        client_display
            .as_ref()
            .map_or("your display".to_string(), |d| format!("virtual display {}", d.name()))
    );

    // Fresh identities for the two ends, each pinning the other.
    let host_id = Identity::generate()?;
    let client_id = Identity::generate()?;
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let driver = UdpDriver::bind("127.0.0.1:0")?;
    let addr = driver.local_addr()?;
    let cfg = wavry_host::HostConfig {
        display: Some(host_display.name().to_string()),
        codec: a.codec.into(),
        fps: a.fps,
        ..Default::default()
    };
    let host_stop = stop.clone();
    let host = std::thread::Builder::new().name("demo-host".into()).spawn(
        move || -> Result<wavry_host::Summary> {
            let deadline = Instant::now() + Duration::from_secs(10);
            let allow = move || allow_list(vec![client_pub]);
            let thread = wavry_host::accept_one(driver, &host_id, allow, deadline)
                .context("waiting for the demo's client")?;
            Ok(wavry_host::serve(thread, &cfg, &host_stop, None)?)
        },
    )?;

    if let Some(d) = &client_display {
        // SAFETY-free but process-wide: the client's SDL window opens on this display; nothing
        // else in this process reads DISPLAY.
        std::env::set_var("DISPLAY", d.name());
    }
    let session = crate::connect_cmd::establish(addr, "demo", &client_id, Some(host_pub), None)?;
    let json = a.json;
    let summary = run(
        session,
        RunOptions {
            title: "Wavry demo".into(),
            width: w,
            height: h,
            overlay: true,
            report: Some(Box::new(move |s: &Snapshot| {
                if json {
                    println!("{}", s.json_line());
                } else {
                    println!("{}", line(s));
                }
            })),
            duration,
            hardware_decode: true,
            present: a.present,
            client_name: "wavry demo".into(),
            stop: stop.clone(),
        },
    )?;
    stop.store(true, Ordering::Relaxed);
    let host = host
        .join()
        .map_err(|_| anyhow::anyhow!("the host thread panicked"))??;
    crate::connect_cmd::print_summary(&summary);
    println!(
        "host: {} frames encoded and sent in {:.1} s",
        host.frames,
        host.duration.as_secs_f64()
    );
    if summary.frames_shown == 0 {
        bail!("no frame was shown: see the log above (RUST_LOG=info for more)");
    }
    Ok(())
}
