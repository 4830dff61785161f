//! The README's main job, as a user runs it: `wavry demo` on a machine without a display
//! starts its own virtual displays, streams for the given time and exits cleanly.

use std::process::Command;

#[test]
fn demo_streams_and_exits_cleanly() {
    if Command::new("Xvfb").arg("-help").output().is_err() {
        println!("SKIP: Xvfb is not installed (scripts/setup.sh installs it)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args([
            "demo",
            "--headless",
            "--duration",
            "10s",
            "--size",
            "640x360",
            "--json",
        ])
        .env_remove("DISPLAY")
        .output()
        .expect("run wavry demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wavry demo failed:\n{stdout}\n{stderr}"
    );
    // One JSON stats line per second, then the summary.
    let stats: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON stats line"))
        .collect();
    assert!(stats.len() >= 8, "stats lines: {stdout}");
    let fps = stats.last().and_then(|s| s["fps"].as_f64()).unwrap_or(0.0);
    assert!(fps > 20.0, "the last second showed {fps} fps:\n{stdout}");
    assert!(stdout.contains("session:"), "{stdout}");
}
