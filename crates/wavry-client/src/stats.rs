//! What the client measures, once per second: shown in the overlay and written as JSON lines.
//!
//! Latency is split into stages, each labelled for what it covers, so nobody reads a stage as
//! the whole path:
//! - `host`: on the host, from the screen grab to the encoded frame handed to the transport;
//! - `network`: half the round trip (the propagation estimate: a true one-way time needs
//!   a shared clock) plus the frame's transfer as seen here, from its first packet's arrival
//!   to its last (pacing, serialization, FEC repair or NACK waits);
//! - `decode`: the frame arriving whole to the picture decoded;
//! - `present`: the picture decoded to the window's present call returning.

use serde::Serialize;
use std::time::Duration;

/// Mean and 95th percentile of one latency stage over the interval, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stage {
    pub mean_ms: f64,
    pub p95_ms: f64,
}

impl Stage {
    /// From this interval's samples (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Stage {
        if samples.is_empty() {
            return Stage::default();
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = samples.iter().map(|&d| ms(d)).sum::<f64>() / samples.len() as f64;
        let p95 = ms(samples[(samples.len() - 1) * 95 / 100]);
        Stage {
            mean_ms: mean,
            p95_ms: p95,
        }
    }
}

/// One interval's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Seconds since the session started.
    pub t_s: f64,
    pub width: u32,
    pub height: u32,
    pub codec: String,
    /// Frames shown per second.
    pub fps: f64,
    /// Video received, Mbit/s (frame payload).
    pub video_mbps: f64,
    pub rtt_ms: f64,
    /// The host's packets lost on the way here, percent (before FEC and retransmission; the
    /// host's figure from feedback).
    pub loss_pct: f64,
    /// Packets rebuilt by FEC since the session started.
    pub fec_recovered: u64,
    /// Frames that could not be rebuilt since the session started.
    pub frames_lost: u64,
    pub host: Stage,
    pub network: Stage,
    pub decode: Stage,
    pub present: Stage,
}

impl Snapshot {
    /// The overlay's lines.
    pub fn lines(&self) -> Vec<String> {
        let stage =
            |name: &str, s: &Stage| format!("{name:<28}{:6.1} ms  p95 {:6.1}", s.mean_ms, s.p95_ms);
        vec![
            format!(
                "{}x{} {}  {:.0} fps  {:.1} Mbit/s",
                self.width, self.height, self.codec, self.fps, self.video_mbps
            ),
            format!(
                "RTT {:.1} ms  loss {:.2} %  FEC recovered {}  frames lost {}",
                self.rtt_ms, self.loss_pct, self.fec_recovered, self.frames_lost
            ),
            stage("host: capture+encode", &self.host),
            stage("network: RTT/2 + transfer", &self.network),
            stage("client: decode", &self.decode),
            stage("client: present", &self.present),
        ]
    }

    /// One JSON object on one line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_summarise_their_samples() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Stage::of(&mut v);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(s.p95_ms, 95.0);
        assert_eq!(Stage::of(&mut []), Stage::default());
    }

    #[test]
    fn json_lines_carry_every_field_and_lines_label_every_stage() {
        let s = Snapshot {
            codec: "h264".into(),
            fps: 60.0,
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&s.json_line()).unwrap();
        for k in [
            "fps",
            "rtt_ms",
            "loss_pct",
            "fec_recovered",
            "host",
            "network",
            "decode",
            "present",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        let text = s.lines().join("\n");
        for label in [
            "host: capture+encode",
            "network: RTT/2 + transfer",
            "client: decode",
            "client: present",
        ] {
            assert!(text.contains(label));
        }
    }
}
