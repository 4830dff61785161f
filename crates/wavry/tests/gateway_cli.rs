//! `wavry gateway` as a user runs it: the default database is created in the config dir,
//! settings come from flags and WAVRY_… variables, it answers HTTP, and SIGTERM stops it
//! cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange; the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[test]
fn gateway_serves_and_stops_on_sigterm() {
    let config = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--argon2-iterations",
            "1",
        ])
        .env("WAVRY_CONFIG_DIR", config.path())
        // From the environment (test-only cost: the real one is tested in wavry-gateway).
        .env("WAVRY_GATEWAY_ARGON2_MEMORY_KIB", "8")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wavry gateway");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let gw = Gateway(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    assert!(
        config.path().join("gateway.db").exists(),
        "default database created"
    );

    assert_eq!(http(addr, "GET", "/healthz", None).0, 200);
    let (status, body) = http(
        addr,
        "POST",
        "/v1/accounts",
        Some(r#"{"email":"cli@example.org","password":"correct horse"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(addr, "POST", "/v1/accounts", Some("{"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed_json"), "{body}");

    let pid = libc::pid_t::try_from(gw.0.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut gw = gw;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = gw.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest:?}");
}

#[test]
fn gateway_help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args(["gateway", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--database",
        "--db-max-connections",
        "--session-ttl",
        "--session-idle-ttl",
        "--max-body-bytes",
        "--max-connections",
        "--header-timeout",
        "--max-concurrent-hashes",
        "--argon2-memory-kib",
        "--argon2-iterations",
        "--argon2-parallelism",
        "--totp-issuer",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
        let env = format!(
            "WAVRY_GATEWAY_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(help.contains(&env), "{env} missing from:\n{help}");
    }
    assert!(help.contains("OWASP"));
    assert!(help.contains("SIGTERM"), "{help}");
    // Bad values are refused with a message, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args(["gateway", "--session-ttl", "5w"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
    let config = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "mysql://x",
        ])
        .env("WAVRY_CONFIG_DIR", config.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sqlite://PATH or postgres://"),
        "{out:?}"
    );
}
