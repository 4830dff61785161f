//! Glass-to-glass latency of Wavry on one machine: the host's virtual display shows a moving
//! scene with the latency probe (the monotonic clock as a barcode, repainted at 240 Hz) in the
//! top-left corner; the client shows the stream in its window on a second virtual display,
//! where a reader grabs the corner every millisecond and decodes the barcode.
//!
//! - event latency: for every painted time, until it or a later one first shows on the client
//!   display (what a person feels, including the wait for the next capture);
//! - frame latency: for each time that shows, from its painting to its first showing;
//! - corrupt readings (CRC fails) and freezes (> 100 ms without a new value).
//!
//! In the same run, with the same probe, scene and x264 settings (ultrafast, zerolatency,
//! 20 Mbit/s), two pipelines a user might pick instead:
//! - ffmpeg x11grab → libx264 → MPEG-TS over UDP → ffplay (nobuffer, low_delay, framedrop);
//! - GStreamer ximagesrc → x264enc (zerolatency, sliced threads) → RTP over UDP →
//!   rtpjitterbuffer latency=0 → avdec_h264 → ximagesink sync=false.
//!
//! `cargo bench -p wavry-client --bench glass_to_glass` (WAVRY_BENCH_SECONDS, default 10;
//! WAVRY_BENCH_SIZE, default 1920x1080; WAVRY_BENCH_BASELINES=0 skips the baselines).

use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavry_client::run::{connect, run, RunOptions};
use wavry_scene::probe::{analyse, now_us, Latency, Probe, Reader, Reading};
use wavry_scene::{Scene, VirtualDisplay};
use wavry_transport::udp::UdpDriver;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Read the probe on `display` every millisecond until `stop`, after `warmup`.
fn read_until(display: &str, warmup: Duration, stop: &AtomicBool) -> Vec<(u64, Reading)> {
    let r = Reader::open(display, 0, 0).expect("reader");
    std::thread::sleep(warmup);
    let mut readings = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(reading) = r.read() {
            readings.push((now_us(), reading));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    readings
}

/// Child processes killed when dropped.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(cmd: &str, args: &[String], display: &str) -> std::process::Child {
    std::process::Command::new(cmd)
        .args(args)
        .env("DISPLAY", display)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd}: {e}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Run a baseline pipeline for `secs` and measure it like Wavry.
fn baseline(
    name: &str,
    host: &str,
    client: &str,
    probe: &Probe,
    w: u32,
    h: u32,
    secs: u64,
) -> Option<Latency> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let size = format!("{w}x{h}");
    let (ws, hs) = (w.to_string(), h.to_string());
    let url = format!("udp://127.0.0.1:{port}");
    let caps = "caps=application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000";
    let (port_arg, url_tx) = (format!("port={port}"), format!("{url}?pkt_size=1316"));
    // (receiver, sender): program and arguments.
    type Command<'a> = (&'a str, Vec<&'a str>);
    let (rx, tx): (Command, Command) = match name {
        "ffmpeg" => (
            (
                "ffplay",
                vec![
                    "-loglevel",
                    "quiet",
                    "-fflags",
                    "nobuffer",
                    "-flags",
                    "low_delay",
                    "-framedrop",
                    "-probesize",
                    "32",
                    "-analyzeduration",
                    "0",
                    "-sync",
                    "ext",
                    "-left",
                    "0",
                    "-top",
                    "0",
                    "-noborder",
                    "-x",
                    &ws,
                    "-y",
                    &hs,
                    &url,
                ],
            ),
            (
                "ffmpeg",
                vec![
                    "-loglevel",
                    "quiet",
                    "-f",
                    "x11grab",
                    "-framerate",
                    "60",
                    "-video_size",
                    &size,
                    "-i",
                    host,
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                    "-b:v",
                    "20M",
                    "-maxrate",
                    "20M",
                    "-bufsize",
                    "333k",
                    "-g",
                    "600",
                    "-f",
                    "mpegts",
                    &url_tx,
                ],
            ),
        ),
        "gstreamer" => (
            (
                "gst-launch-1.0",
                vec![
                    "-q",
                    "udpsrc",
                    &port_arg,
                    caps,
                    "!",
                    "rtpjitterbuffer",
                    "latency=0",
                    "!",
                    "rtph264depay",
                    "!",
                    "avdec_h264",
                    "!",
                    "videoconvert",
                    "!",
                    "ximagesink",
                    "sync=false",
                ],
            ),
            (
                "gst-launch-1.0",
                vec![
                    "-q",
                    "ximagesrc",
                    "use-damage=false",
                    "show-pointer=false",
                    "!",
                    "video/x-raw,framerate=60/1",
                    "!",
                    "videoconvert",
                    "!",
                    "video/x-raw,format=I420",
                    "!",
                    "x264enc",
                    "tune=zerolatency",
                    "speed-preset=ultrafast",
                    "threads=2",
                    "sliced-threads=true",
                    "bitrate=20000",
                    "key-int-max=600",
                    "!",
                    "rtph264pay",
                    "config-interval=1",
                    "pt=96",
                    "!",
                    "udpsink",
                    "host=127.0.0.1",
                    &port_arg,
                    "sync=false",
                ],
            ),
        ),
        _ => return None,
    };
    for prog in [rx.0, tx.0] {
        if std::process::Command::new(prog)
            .arg("--version")
            .output()
            .is_err()
        {
            println!(
                "{name:<10} skipped: {prog} is not installed (apt: ffmpeg, or gstreamer1.0-tools \
                 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav \
                 gstreamer1.0-x)"
            );
            return None;
        }
    }
    // The sender's only keyframe is its first picture: the receiver must be listening by then.
    let mut procs = Procs(vec![spawn(rx.0, &s(&rx.1), client)]);
    std::thread::sleep(Duration::from_millis(1500));
    procs.0.push(spawn(tx.0, &s(&tx.1), host));
    let stop = AtomicBool::new(false);
    let readings = std::thread::scope(|sc| {
        let h = sc.spawn(|| read_until(client, Duration::from_secs(3), &stop));
        std::thread::sleep(Duration::from_secs(secs + 3));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    drop(procs);
    if std::env::var_os("WAVRY_BENCH_DEBUG").is_some() {
        // Per 500 ms: readings that showed a time, the newest time's age, absent, corrupt.
        let t0 = readings.first().map_or(0, |r| r.0);
        for chunk in readings.chunk_by(|a, b| (a.0 - t0) / 500_000 == (b.0 - t0) / 500_000) {
            let times: Vec<u64> = chunk
                .iter()
                .filter_map(|r| match r.1 {
                    Reading::Time(t) => Some(t),
                    _ => None,
                })
                .collect();
            let absent = chunk.iter().filter(|r| r.1 == Reading::Absent).count();
            let newest = times
                .iter()
                .max()
                .map(|&t| (chunk[chunk.len() - 1].0.saturating_sub(t)) / 1000);
            println!(
                "  {name} {:>5} ms: {} times, newest {:?} ms old, {} absent",
                (chunk[0].0 - t0) / 1000,
                times.len(),
                newest,
                absent
            );
        }
    }
    Some(analyse(&probe.painted(), &readings))
}

fn report(name: &str, l: &mut Latency) -> f64 {
    let e50 = pct(&mut l.event_ms, 0.5);
    println!(
        "{name:<10} event p50 {e50:5.1} p95 {:5.1} p99 {:5.1} ms | frame p50 {:5.1} p95 {:5.1} p99 {:5.1} ms | corrupt {} freezes {} ({} values shown, {} events, {} readings)",
        pct(&mut l.event_ms, 0.95),
        pct(&mut l.event_ms, 0.99),
        pct(&mut l.frame_ms, 0.5),
        pct(&mut l.frame_ms, 0.95),
        pct(&mut l.frame_ms, 0.99),
        l.corrupt,
        l.freezes,
        l.frame_ms.len(),
        l.event_ms.len(),
        l.readings
    );
    e50
}

fn main() {
    let secs: u64 = std::env::var("WAVRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let size = std::env::var("WAVRY_BENCH_SIZE").unwrap_or_else(|_| "1920x1080".into());
    let (w, h) = size
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .expect("WAVRY_BENCH_SIZE as WIDTHxHEIGHT");
    let (host_disp, client_disp) = match (VirtualDisplay::start(w, h), VirtualDisplay::start(w, h))
    {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("SKIP: {e}");
            return;
        }
    };
    let _scene = Scene::start(host_disp.name(), 60).expect("scene");
    let probe = Probe::start(host_disp.name(), 0, 0, 240).expect("probe");

    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let addr = hd.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let (name, stop) = (host_disp.name().to_string(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let t = wavry_host::accept_one(hd, &host_id, || allow_list(vec![client_pub]), deadline)
                .unwrap();
            let cfg = wavry_host::HostConfig {
                display: Some(name),
                hardware: false,
                ..Default::default()
            };
            wavry_host::serve(t, &cfg, &stop, None).unwrap()
        })
    };
    let client = connect(
        "127.0.0.1:0".parse().unwrap(),
        addr,
        &client_id,
        pinned(host_pub),
    )
    .unwrap();

    // The reader: every millisecond after a 2 s warm-up, until the client stops.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (name, done) = (client_disp.name().to_string(), done.clone());
        std::thread::spawn(move || read_until(&name, Duration::from_secs(2), &done))
    };
    std::env::set_var("DISPLAY", client_disp.name());
    let summary = run(
        client,
        RunOptions {
            title: "wavry glass to glass".into(),
            width: w,
            height: h,
            overlay: false,
            report: None,
            duration: Some(Duration::from_secs(secs + 2)),
            hardware_decode: false,
            client_name: "bench".into(),
            stop: Arc::new(AtomicBool::new(false)),
        },
    )
    .unwrap();
    done.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let readings = reader.join().unwrap();
    let _ = host.join();
    let painted = probe.painted();
    let mut l = analyse(&painted, &readings);
    println!(
        "{w}x{h} at 60 fps, loopback, x264 ultrafast/zerolatency; Wavry showed {} frames",
        summary.frames_shown
    );
    let wavry = report("wavry", &mut l);
    if std::env::var("WAVRY_BENCH_BASELINES").as_deref() == Ok("0") {
        return;
    }
    let mut best = f64::INFINITY;
    for name in ["ffmpeg", "gstreamer"] {
        match baseline(
            name,
            host_disp.name(),
            client_disp.name(),
            &probe,
            w,
            h,
            secs,
        ) {
            Some(mut b) if !b.frame_ms.is_empty() => best = best.min(report(name, &mut b)),
            Some(_) => println!("{name:<10} showed nothing readable"),
            None => {}
        }
    }
    println!(
        "wavry event p50 / best baseline event p50 = {:.2}",
        wavry / best
    );
}
