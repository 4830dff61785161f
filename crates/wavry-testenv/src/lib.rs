//! Whether a test's environment is here, decided in one place.
//!
//! Some tests need more than a compiler: root and network namespaces, `tc`, an Xvfb server,
//! PostgreSQL, Chromium. Outside CI a test whose environment is missing *skips*: it prints
//! `SKIPPED: <test>: <why>` and returns early. Under CI (`CI=true`, or `WAVRY_REQUIRE_ENV=1`,
//! which `scripts/test.sh` sets when it runs as root or under CI) the same test *fails* with that
//! reason, so a CI machine that lost a tool cannot go green while testing nothing.
//!
//! Every skip is also appended to the file named by `WAVRY_SKIP_LOG`, when set:
//! `scripts/test.sh` counts those lines in its closing summary (a test runner captures the
//! output of passing tests, so printing alone would go unseen).
//!
//! ```no_run
//! use wavry_testenv::{require, Need};
//!
//! #[test]
//! fn through_a_bottleneck() {
//!     if !require(&[Need::NetNs, Need::Program("tc")]) {
//!         return;
//!     }
//!     // … the test proper
//! }
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that names the PostgreSQL server of the gateway's tests.
pub const POSTGRES_URL_VAR: &str = "WAVRY_TEST_POSTGRES_URL";

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Running as root (effective uid 0).
    Root,
    /// Network namespaces, veth and TUN devices: root, iproute2's `ip` and `/dev/net/tun`.
    NetNs,
    /// An X server of the test's own: `Xvfb` on `PATH`.
    Xvfb,
    /// A PostgreSQL server, named by `WAVRY_TEST_POSTGRES_URL` (scripts/test.sh starts one).
    Postgres,
    /// Chromium: `$CHROMIUM_BIN`, Debian's `/usr/bin/chromium`, or `chromium` /
    /// `chromium-browser` on `PATH`.
    Chromium,
    /// A program on `PATH` (`tc`, `ffmpeg`, `xdotool` …).
    Program(&'static str),
}

impl Need {
    /// Why this need is not met, or `None` when it is.
    pub fn missing(self) -> Option<String> {
        match self {
            Need::Root => (!is_root()).then(|| "needs root".to_string()),
            Need::NetNs => {
                if !is_root() {
                    Some("needs root (network namespaces, veth, TUN devices)".into())
                } else if find_program("ip").is_none() {
                    Some("needs iproute2 (`ip`; scripts/setup.sh installs it)".into())
                } else if !Path::new("/dev/net/tun").exists() {
                    Some("needs /dev/net/tun".into())
                } else {
                    None
                }
            }
            Need::Xvfb => find_program("Xvfb")
                .is_none()
                .then(|| "needs Xvfb (apt-get install xvfb; scripts/setup.sh installs it)".into()),
            Need::Postgres => match std::env::var(POSTGRES_URL_VAR) {
                Ok(url) if !url.is_empty() => None,
                _ => Some(format!(
                    "needs PostgreSQL: set {POSTGRES_URL_VAR} (scripts/test.sh starts a throwaway server)"
                )),
            },
            Need::Chromium => chromium().is_none().then(|| {
                "needs Chromium (apt-get install chromium; scripts/setup.sh installs it)".into()
            }),
            Need::Program(name) => find_program(name)
                .is_none()
                .then(|| format!("needs `{name}` on PATH")),
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Root => f.write_str("root"),
            Need::NetNs => f.write_str("network namespaces"),
            Need::Xvfb => f.write_str("Xvfb"),
            Need::Postgres => f.write_str("PostgreSQL"),
            Need::Chromium => f.write_str("Chromium"),
            Need::Program(name) => write!(f, "`{name}`"),
        }
    }
}

/// Whether a missing environment fails tests instead of skipping them: under CI (`CI=true`)
/// or with `WAVRY_REQUIRE_ENV=1`.
pub fn required() -> bool {
    let set = |var: &str, want: &[&str]| {
        std::env::var(var).is_ok_and(|v| want.iter().any(|w| v.eq_ignore_ascii_case(w)))
    };
    set("CI", &["true", "1"]) || set("WAVRY_REQUIRE_ENV", &["1", "true"])
}

/// Whether every need is met. When one is not: under CI this panics with the reason (the test
/// fails); otherwise it reports the skip (see [`skip`]) and returns `false`, and the test
/// returns early.
#[must_use = "a test must return when its environment is missing"]
pub fn require(needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    skip(&missing.join("; "));
    false
}

/// Report that the calling test cannot run here, for a reason a [`Need`] does not cover (an
/// FFmpeg build without an encoder, say). Under CI this panics: the test fails with `reason`.
/// Otherwise it prints `SKIPPED: <test>: <reason>`, appends the same line to `WAVRY_SKIP_LOG`
/// when that is set, and returns; the caller then returns early.
#[track_caller]
pub fn skip(reason: &str) {
    let log = std::env::var_os("WAVRY_SKIP_LOG").filter(|p| !p.is_empty());
    report_skip(
        &test_name(),
        reason,
        required(),
        log.as_deref().map(Path::new),
    );
}

#[track_caller]
fn report_skip(test: &str, reason: &str, required: bool, log: Option<&Path>) {
    if required {
        panic!(
            "{test}: its environment is missing and CI (CI=true or WAVRY_REQUIRE_ENV=1) does not \
             allow skipping: {reason}"
        );
    }
    let line = format!("SKIPPED: {test}: {reason}");
    println!("{line}");
    eprintln!("{line}");
    if let Some(path) = log {
        // One short append per skip; concurrent test processes do not interleave within it.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("wavry-testenv: cannot append to WAVRY_SKIP_LOG {path:?}: {e}");
        }
    }
}

/// Whether a bench binary runs as a test: `cargo test --benches` (which CI runs, so benches
/// cannot rot) starts it without the `--bench` argument that `cargo bench` passes. Criterion's
/// benches follow this rule by themselves; hand-written ones call this and measure briefly.
pub fn bench_is_test() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Where Chromium is: `$CHROMIUM_BIN` (when it names a file), else Debian's
/// `/usr/bin/chromium`, else `chromium` or `chromium-browser` on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(find_program)
}

/// `name`'s path when it is an executable file in a directory of `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the effective user is root, from `/proc/self/status` (no `unsafe` for `geteuid`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The running test's name: libtest names the thread it runs a test on after the test.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .unwrap_or_else(|| "a test".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some(), "sh is on every PATH");
        assert!(find_program("wavry-no-such-program-here").is_none());
    }

    #[test]
    fn a_met_need_reports_nothing_missing() {
        assert_eq!(Need::Program("sh").missing(), None);
        assert!(Need::Program("wavry-no-such-program-here")
            .missing()
            .is_some_and(|why| why.contains("wavry-no-such-program-here")));
    }

    #[test]
    fn a_skip_fails_under_ci_and_is_logged_outside() {
        let caught = std::panic::catch_unwind(|| report_skip("t", "no widget", true, None));
        assert!(
            caught.is_err(),
            "under CI a missing environment must fail the test"
        );

        let dir = std::env::temp_dir().join(format!("wavry-testenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skipped");
        report_skip("t", "no widget", false, Some(&log));
        report_skip("u", "no gadget", false, Some(&log));
        let logged = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(logged, "SKIPPED: t: no widget\nSKIPPED: u: no gadget\n");
    }

    #[test]
    fn met_needs_pass_without_a_skip() {
        assert!(require(&[Need::Program("sh")]));
        assert!(require(&[]));
    }
}
