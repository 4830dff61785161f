//! Glass-to-glass latency, measured as a camera would (docs/BENCHMARKS.md, *Latency*).
//!
//! A [`Rig`] is two virtual displays on this machine: the host's shows a moving scene with the
//! latency probe (the monotonic clock as a barcode, repainted at 240 Hz) in its top-left
//! corner; the client's shows whatever the pipeline under test puts there. A reader grabs the
//! client display's corner every millisecond and decodes the barcode. One clock on both ends,
//! so a reading minus the time it shows is the whole path: capture, encode, network, decode,
//! present.
//!
//! [`measure`] runs one pipeline (Wavry or a [`Baseline`]) over one [`NetPath`] for a while
//! and returns the readings' analysis ([`Latency`]: event and frame latency, corrupt readings,
//! freezes).

use crate::baseline::{self, Baseline};
use crate::BenchError;
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use wavry_client::run::{connect, run, RunOptions};
use wavry_client::stats::Snapshot;
use wavry_client::window::PresentMode;
use wavry_impair::netns::enter;
use wavry_impair::{GilbertElliott, LinkConfig, Topology};
use wavry_scene::probe::{analyse, now_us, Latency, Probe, Reader};
use wavry_scene::{Scene, VirtualDisplay};
use wavry_transport::udp::UdpDriver;

/// The probe's repaint rate: four values per 60 Hz frame, so the wait for the next capture is
/// part of what event latency sees.
pub const PROBE_HZ: u32 = 240;

/// Readings start this long after a pipeline starts (its first keyframe, windows mapping).
const WARMUP: Duration = Duration::from_secs(2);

/// The host and client displays, the scene and the probe, shared by every pipeline measured
/// at one size.
pub struct Rig {
    // Fields drop in this order: the painters stop before their display goes away.
    _scene: Scene,
    probe: Probe,
    host: VirtualDisplay,
    client: VirtualDisplay,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Rig {
    /// Start both displays at `width`×`height`, the scene at `fps` and the probe.
    pub fn start(width: u32, height: u32, fps: u32) -> Result<Rig, BenchError> {
        let host = VirtualDisplay::start(width, height)?;
        let client = VirtualDisplay::start(width, height)?;
        let scene = Scene::start(host.name(), fps)?;
        let probe = Probe::start(host.name(), 0, 0, PROBE_HZ).map_err(BenchError::Probe)?;
        Ok(Rig {
            host,
            client,
            _scene: scene,
            probe,
            width,
            height,
            fps,
        })
    }

    pub fn host_display(&self) -> &str {
        self.host.name()
    }

    pub fn client_display(&self) -> &str {
        self.client.name()
    }

    /// Read the client display's probe every millisecond while `run` runs (after the warm-up),
    /// then match the readings against what the probe painted.
    fn observe<T>(
        &self,
        run: impl FnOnce() -> Result<T, BenchError>,
    ) -> Result<(T, Latency), BenchError> {
        let reader = Reader::open(self.client.name(), 0, 0).map_err(BenchError::Probe)?;
        let stop = AtomicBool::new(false);
        let (out, readings) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                std::thread::sleep(WARMUP);
                let mut readings = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = reader.read() {
                        readings.push((now_us(), r));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                readings
            });
            let out = run();
            stop.store(true, Ordering::Relaxed);
            (out, h.join().unwrap_or_default())
        });
        Ok((out?, analyse(&self.probe.painted(), &readings)))
    }
}

/// The network between the two ends.
#[derive(Debug, Clone)]
pub enum NetPath {
    Loopback,
    /// Host and client in network namespaces of their own, with the impairment tool between
    /// them impairing both directions alike.
    Impaired {
        label: String,
        link: LinkConfig,
    },
}

impl NetPath {
    /// 10 ms each way (20 ms round trip) and `loss` random loss, both ways (none at 0).
    pub fn random_loss(loss: f64) -> NetPath {
        let label = if loss > 0.0 {
            format!("20 ms RTT, {:.0} % random loss", loss * 100.0)
        } else {
            "20 ms RTT, no loss".to_string()
        };
        NetPath::Impaired {
            label,
            link: LinkConfig {
                delay: Duration::from_millis(10),
                loss,
                ..LinkConfig::default()
            },
        }
    }

    /// 10 ms each way and `loss` lost in bursts of `mean_burst` packets on average.
    pub fn burst_loss(loss: f64, mean_burst: f64) -> Result<NetPath, BenchError> {
        Ok(NetPath::Impaired {
            label: format!(
                "20 ms RTT, {:.0} % burst loss (mean burst {mean_burst})",
                loss * 100.0
            ),
            link: LinkConfig {
                delay: Duration::from_millis(10),
                burst_loss: Some(
                    GilbertElliott::from_loss_and_burst(loss, mean_burst)
                        .map_err(|e| BenchError::Impair(e.to_string()))?,
                ),
                ..LinkConfig::default()
            },
        })
    }

    pub fn label(&self) -> &str {
        match self {
            NetPath::Loopback => "loopback",
            NetPath::Impaired { label, .. } => label,
        }
    }
}

/// Where each end of a pipeline runs: the namespace to enter (none on loopback) and the
/// address to bind or send to.
pub(crate) struct Ends {
    pub host_ns: Option<String>,
    pub client_ns: Option<String>,
    pub host_addr: std::net::IpAddr,
    pub client_addr: std::net::IpAddr,
    _topology: Option<(Topology, wavry_impair::Impairer)>,
}

impl Ends {
    fn new(path: &NetPath, seed: u64) -> Result<Ends, BenchError> {
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        match path {
            NetPath::Loopback => Ok(Ends {
                host_ns: None,
                client_ns: None,
                host_addr: localhost,
                client_addr: localhost,
                _topology: None,
            }),
            NetPath::Impaired { link, .. } => {
                if let Some(why) = wavry_impair::netns::unavailable() {
                    return Err(BenchError::NoNamespaces(why));
                }
                let name = format!("wvb{}", std::process::id() % 100_000);
                let topo = Topology::create(&name, [10, 214, 60])
                    .map_err(|e| BenchError::Impair(e.to_string()))?;
                let impairer = topo
                    .start(link.clone(), link.clone(), seed)
                    .map_err(|e| BenchError::Impair(e.to_string()))?;
                Ok(Ends {
                    host_ns: Some(topo.ns_a.clone()),
                    client_ns: Some(topo.ns_b.clone()),
                    host_addr: topo.addr_a.into(),
                    client_addr: topo.addr_b.into(),
                    _topology: Some((topo, impairer)),
                })
            }
        }
    }
}

fn enter_ns(ns: &Option<String>) -> Result<(), BenchError> {
    match ns {
        Some(ns) => enter(ns).map_err(|e| BenchError::Impair(format!("entering {ns}: {e}"))),
        None => Ok(()),
    }
}

/// A pipeline under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    Wavry { present: PresentMode },
    Baseline(Baseline),
}

impl Pipeline {
    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::Wavry { .. } => "wavry",
            Pipeline::Baseline(b) => b.name(),
        }
    }
}

/// What one pipeline showed over one path.
#[derive(Debug, Clone)]
pub struct Measured {
    pub pipeline: &'static str,
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub latency: Latency,
    /// Wavry only: where the time went, by the client's own per-second report.
    pub stages: Option<Stages>,
}

/// The Wavry client's stage times over the measured seconds (the mean of its per-second
/// means, warm-up left out), and its repair counts at the end.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stages {
    pub host_ms: f64,
    pub network_ms: f64,
    pub decode_ms: f64,
    pub present_ms: f64,
    pub fec_recovered: u64,
    pub frames_lost: u64,
}

impl Stages {
    fn of(snaps: &[Snapshot]) -> Option<Stages> {
        let measured: Vec<&Snapshot> = snaps
            .iter()
            .filter(|s| s.t_s > WARMUP.as_secs_f64() + 0.5)
            .collect();
        let last = measured.last()?;
        let mean = |f: fn(&Snapshot) -> f64| {
            measured.iter().map(|s| f(s)).sum::<f64>() / measured.len() as f64
        };
        Some(Stages {
            host_ms: mean(|s| s.host.mean_ms),
            network_ms: mean(|s| s.network.mean_ms),
            decode_ms: mean(|s| s.decode.mean_ms),
            present_ms: mean(|s| s.present.mean_ms),
            fec_recovered: last.fec_recovered,
            frames_lost: last.frames_lost,
        })
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host capture+encode {:.1} | network {:.1} | decode {:.1} | present {:.1} ms \
             (client's report, means); FEC recovered {} packets, {} frames lost",
            self.host_ms,
            self.network_ms,
            self.decode_ms,
            self.present_ms,
            self.fec_recovered,
            self.frames_lost
        )
    }
}

/// Run `pipeline` over `path` on `rig` for `seconds` (plus the warm-up) and measure it.
/// A baseline whose programs are missing is [`BenchError::Missing`].
pub fn measure(
    rig: &Rig,
    pipeline: Pipeline,
    path: &NetPath,
    seconds: u64,
) -> Result<Measured, BenchError> {
    let ends = Ends::new(path, 7)?;
    let run_for = WARMUP + Duration::from_secs(seconds);
    let (stages, latency) = match pipeline {
        Pipeline::Wavry { present } => {
            let (snaps, latency) = rig.observe(|| run_wavry(rig, &ends, present, run_for))?;
            (Stages::of(&snaps), latency)
        }
        Pipeline::Baseline(b) => {
            let procs = baseline::start(b, rig, &ends)?;
            let out = rig.observe(|| {
                std::thread::sleep(run_for);
                Ok(())
            });
            drop(procs);
            (None, out?.1)
        }
    };
    Ok(Measured {
        pipeline: pipeline.name(),
        path: path.label().to_string(),
        width: rig.width,
        height: rig.height,
        latency,
        stages,
    })
}

/// A Wavry host on the rig's host display and a client window on its client display, each in
/// its namespace, for `run_for`. Returns the client's per-second reports.
fn run_wavry(
    rig: &Rig,
    ends: &Ends,
    present: PresentMode,
    run_for: Duration,
) -> Result<Vec<Snapshot>, BenchError> {
    let snaps = Arc::new(Mutex::new(Vec::new()));
    let (host_id, client_id) = (Identity::generate()?, Identity::generate()?);
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = mpsc::channel();
    let host = {
        let (ns, bind) = (ends.host_ns.clone(), ends.host_addr);
        let (display, fps, stop) = (rig.host_display().to_string(), rig.fps, stop.clone());
        std::thread::spawn(move || -> Result<(), BenchError> {
            enter_ns(&ns)?;
            let driver = UdpDriver::bind((bind, 0))?;
            let _ = addr_tx.send(driver.local_addr()?);
            let deadline = Instant::now() + Duration::from_secs(10);
            let session = wavry_host::accept_one(
                driver,
                &host_id,
                move || allow_list(vec![client_pub]),
                deadline,
            )?;
            let cfg = wavry_host::HostConfig {
                display: Some(display),
                fps,
                hardware: false,
                ..Default::default()
            };
            wavry_host::serve(session, &cfg, &stop, None)
                .map_err(|e| BenchError::Wavry(e.to_string()))?;
            Ok(())
        })
    };
    let client = {
        let (ns, bind) = (ends.client_ns.clone(), ends.client_addr);
        let (w, h) = (rig.width, rig.height);
        let display = rig.client_display().to_string();
        let report_to = snaps.clone();
        std::thread::spawn(move || -> Result<u64, BenchError> {
            enter_ns(&ns)?;
            let host_addr = addr_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| BenchError::Wavry("the host did not start".into()))?;
            let session = connect((bind, 0).into(), host_addr, &client_id, pinned(host_pub))?;
            // SDL reads the display from the environment; this process runs one client.
            std::env::set_var("DISPLAY", display);
            let summary = run(
                session,
                RunOptions {
                    title: "wavry glass to glass".into(),
                    width: w,
                    height: h,
                    overlay: false,
                    report: Some(Box::new(move |s: &Snapshot| {
                        if let Ok(mut v) = report_to.lock() {
                            v.push(s.clone());
                        }
                    })),
                    duration: Some(run_for),
                    hardware_decode: false,
                    present,
                    client_name: "wavry bench".into(),
                    stop: Arc::new(AtomicBool::new(false)),
                },
            )
            .map_err(|e| BenchError::Wavry(e.to_string()))?;
            Ok(summary.frames_shown)
        })
    };
    let shown = client
        .join()
        .map_err(|_| BenchError::Wavry("the client thread panicked".into()))?;
    stop.store(true, Ordering::Relaxed);
    let hosted = host
        .join()
        .map_err(|_| BenchError::Wavry("the host thread panicked".into()))?;
    let shown = shown?;
    hosted?;
    tracing::info!(frames_shown = shown, "wavry run done");
    let snaps = std::mem::take(&mut *snaps.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(snaps)
}

/// Percentile `p` (0..1) of `v`, sorting it; NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// p50, p95 and p99 of event and frame latency.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Figures {
    pub event_ms: [f64; 3],
    pub frame_ms: [f64; 3],
    pub corrupt: usize,
    pub freezes: usize,
    /// Distinct values shown.
    pub values: usize,
}

impl Measured {
    pub fn figures(&self) -> Figures {
        let (mut e, mut f) = (self.latency.event_ms.clone(), self.latency.frame_ms.clone());
        let ps = [0.5, 0.95, 0.99];
        Figures {
            event_ms: ps.map(|p| percentile(&mut e, p)),
            frame_ms: ps.map(|p| percentile(&mut f, p)),
            corrupt: self.latency.corrupt,
            freezes: self.latency.freezes,
            values: self.latency.frame_ms.len(),
        }
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.figures();
        if g.values == 0 {
            return write!(
                f,
                "{}x{} {:<34} {:<9} showed no readable picture ({} readings, {} corrupt)",
                self.width, self.height, self.path, self.pipeline, self.latency.readings, g.corrupt
            );
        }
        write!(
            f,
            "{}x{} {:<34} {:<9} event p50 {:5.1} p95 {:5.1} p99 {:5.1} ms | frame p50 {:5.1} p95 \
             {:5.1} p99 {:5.1} ms | corrupt {} freezes {} ({} values shown)",
            self.width,
            self.height,
            self.path,
            self.pipeline,
            g.event_ms[0],
            g.event_ms[1],
            g.event_ms[2],
            g.frame_ms[0],
            g.frame_ms[1],
            g.frame_ms[2],
            g.corrupt,
            g.freezes,
            g.values
        )
    }
}
