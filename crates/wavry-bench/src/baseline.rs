//! The pipelines a user might pick instead of Wavry, run with the same probe, scene and x264
//! settings (ultrafast, zerolatency, 20 Mbit/s, no periodic keyframes):
//!
//! - ffmpeg x11grab → libx264 → MPEG-TS over UDP → ffplay (nobuffer, low_delay, framedrop);
//! - GStreamer ximagesrc → x264enc (zerolatency, sliced threads) → RTP over UDP →
//!   rtpjitterbuffer latency=0 → avdec_h264 → ximagesink sync=false.
//!
//! Over an impaired path each program runs in its end's namespace (`ip netns exec`).

use crate::glass::{Ends, Rig};
use crate::BenchError;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Baseline {
    Ffmpeg,
    Gstreamer,
}

impl Baseline {
    pub const ALL: [Baseline; 2] = [Baseline::Ffmpeg, Baseline::Gstreamer];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Ffmpeg => "ffmpeg",
            Baseline::Gstreamer => "gstreamer",
        }
    }

    /// The Debian packages that bring its programs.
    pub fn packages(self) -> &'static str {
        match self {
            Baseline::Ffmpeg => "ffmpeg",
            Baseline::Gstreamer => {
                "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
                 gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x"
            }
        }
    }
}

/// Child processes, killed when dropped.
pub(crate) struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(
    ns: &Option<String>,
    prog: &str,
    args: &[String],
    display: &str,
) -> Result<Child, BenchError> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, prog]);
            c
        }
        None => Command::new(prog),
    };
    cmd.args(args)
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Spawn(prog.to_string(), e))
}

fn installed(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// (receiver, sender): program and arguments, for a stream to `dest`:`port`.
fn commands(
    b: Baseline,
    rig: &Rig,
    dest: std::net::IpAddr,
    port: u16,
) -> [(String, Vec<String>); 2] {
    let (w, h) = (rig.width.to_string(), rig.height.to_string());
    let size = format!("{w}x{h}");
    let fps = rig.fps.to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match b {
        Baseline::Ffmpeg => {
            let listen = format!("udp://{dest}:{port}");
            let send = format!("udp://{dest}:{port}?pkt_size=1316");
            [
                (
                    "ffplay".into(),
                    s(&[
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
                        &w,
                        "-y",
                        &h,
                        &listen,
                    ]),
                ),
                (
                    "ffmpeg".into(),
                    s(&[
                        "-loglevel",
                        "quiet",
                        "-f",
                        "x11grab",
                        "-framerate",
                        &fps,
                        "-video_size",
                        &size,
                        "-i",
                        rig.host_display(),
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
                        &send,
                    ]),
                ),
            ]
        }
        Baseline::Gstreamer => {
            let caps =
                "caps=application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000";
            let (port, host) = (format!("port={port}"), format!("host={dest}"));
            let address = format!("address={dest}");
            let rate = format!("video/x-raw,framerate={fps}/1");
            [
                (
                    "gst-launch-1.0".into(),
                    s(&[
                        "-q",
                        "udpsrc",
                        &address,
                        &port,
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
                    ]),
                ),
                (
                    "gst-launch-1.0".into(),
                    s(&[
                        "-q",
                        "ximagesrc",
                        "use-damage=false",
                        "show-pointer=false",
                        "!",
                        &rate,
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
                        &host,
                        &port,
                        "sync=false",
                    ]),
                ),
            ]
        }
    }
}

/// Start `b`'s receiver on the client display, then its sender on the host display.
pub(crate) fn start(b: Baseline, rig: &Rig, ends: &Ends) -> Result<Procs, BenchError> {
    let port = free_udp_port()?;
    let [rx, tx] = commands(b, rig, ends.client_addr, port);
    for prog in [&rx.0, &tx.0] {
        if !installed(prog) {
            return Err(BenchError::Missing {
                pipeline: b.name(),
                program: prog.clone(),
                packages: b.packages(),
            });
        }
    }
    // The sender's only keyframe is its first picture: the receiver must be listening by then.
    let mut procs = Procs(vec![spawn(
        &ends.client_ns,
        &rx.0,
        &rx.1,
        rig.client_display(),
    )?]);
    std::thread::sleep(Duration::from_millis(1500));
    procs
        .0
        .push(spawn(&ends.host_ns, &tx.0, &tx.1, rig.host_display())?);
    Ok(procs)
}

/// A UDP port free on this machine right now (the receiver binds it a moment later).
fn free_udp_port() -> Result<u16, BenchError> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
