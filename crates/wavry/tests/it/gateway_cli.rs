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
    exchange(addr, method, path, None, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// One exchange, with an optional bearer token; an error if the server does not answer.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {resp:?}"))?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// Start `wavry gateway` with `args` and `env`; the process, its address and its stdout.
fn start(
    config_dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Gateway, SocketAddr, BufReader<std::process::ChildStdout>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wavry"));
    cmd.arg("gateway")
        .args(args)
        .env("WAVRY_CONFIG_DIR", config_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start wavry gateway");
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
    (gw, addr, out)
}

/// SIGTERM, then a clean exit that says it stopped.
fn stop(mut gw: Gateway, mut out: BufReader<std::process::ChildStdout>) {
    let pid = libc::pid_t::try_from(gw.0.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
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
fn gateway_serves_and_stops_on_sigterm() {
    let config = tempfile::tempdir().unwrap();
    let (gw, addr, out) = start(
        config.path(),
        &["--listen", "127.0.0.1:0", "--argon2-iterations", "1"],
        // From the environment (test-only cost: the real one is tested in wavry-gateway).
        &[("WAVRY_GATEWAY_ARGON2_MEMORY_KIB", "8")],
    );
    assert!(
        config.path().join("gateway.db").exists(),
        "default database created"
    );
    // The signing key beside it, for the owner only.
    let key = std::fs::metadata(config.path().join("gateway-signing.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
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
    // No ADMIN_PANEL_TOKEN: no panel.
    assert_eq!(http(addr, "GET", "/admin", None).0, 404);
    stop(gw, out);
}

#[test]
fn the_admin_panel_needs_a_long_enough_token() {
    let config = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    let (gw, addr, mut out) = start(
        config.path(),
        &["--listen", "127.0.0.1:0"],
        &[("ADMIN_PANEL_TOKEN", token)],
    );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("/admin"), "{line:?}");
    let (status, page) = http(addr, "GET", "/admin", None);
    assert_eq!(status, 200);
    assert!(page.contains("Wavry gateway"), "{page}");
    let (status, body) = http(addr, "GET", "/admin/api/overview", None);
    assert_eq!(status, 401, "{body}");
    stop(gw, out);

    // One character short: everything but the panel runs.
    let (gw, addr, out) = start(
        config.path(),
        &["--listen", "127.0.0.1:0"],
        &[("ADMIN_PANEL_TOKEN", &token[1..])],
    );
    assert_eq!(http(addr, "GET", "/healthz", None).0, 200);
    assert_eq!(http(addr, "GET", "/admin", None).0, 404);
    assert_eq!(http(addr, "GET", "/admin/api/overview", None).0, 404);
    stop(gw, out);
}

#[test]
fn gateway_reads_a_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file_db = dir.path().join("from-file.db");
    let flag_db = dir.path().join("from-flag.db");
    let toml = dir.path().join("gateway.toml");
    std::fs::write(
        &toml,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"sqlite://{}\"\nsession_ttl = \"1h\"\n\
             argon2_memory_kib = 8\nargon2_iterations = 1\n",
            file_db.display()
        ),
    )
    .unwrap();
    let toml_arg = toml.to_str().unwrap();

    let (gw, addr, out) = start(dir.path(), &["--config", toml_arg], &[]);
    assert!(file_db.exists());
    let creds = r#"{"email":"file@example.org","password":"correct horse"}"#;
    assert_eq!(http(addr, "POST", "/v1/accounts", Some(creds)).0, 201);
    let (status, body) = http(addr, "POST", "/v1/auth/login", Some(creds));
    assert_eq!(status, 200, "{body}");
    let login: serde_json::Value = serde_json::from_str(&body).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ttl = login["expires_at"].as_i64().unwrap() - now;
    assert!(
        (3590..=3610).contains(&ttl),
        "session_ttl from the file: {ttl}"
    );
    stop(gw, out);

    // A flag beats the file; so does the environment.
    let flag_url = format!("sqlite://{}", flag_db.display());
    let (gw, addr, out) = start(
        dir.path(),
        &["--config", toml_arg, "--database", &flag_url],
        &[("WAVRY_GATEWAY_SESSION_TTL", "2h")],
    );
    assert!(flag_db.exists());
    assert_eq!(
        http(addr, "POST", "/v1/accounts", Some(creds)).0,
        201,
        "a new database"
    );
    let (_, body) = http(addr, "POST", "/v1/auth/login", Some(creds));
    let login: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ttl = login["expires_at"].as_i64().unwrap() - now;
    assert!(
        (7190..=7210).contains(&ttl),
        "session_ttl from the environment: {ttl}"
    );
    stop(gw, out);

    // A misspelt setting is an error that names it.
    std::fs::write(&toml, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args(["gateway", "--config", toml_arg])
        .env("WAVRY_CONFIG_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lisen") && err.contains("gateway.toml"),
        "{err}"
    );
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
        "--config",
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
        "--trusted-proxy",
        "--signing-key-file",
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
    assert!(
        help.contains("--admin-token") && help.contains("ADMIN_PANEL_TOKEN"),
        "{help}"
    );
    assert!(help.contains("rotate-signing-key"), "{help}");
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args(["gateway", "rotate-signing-key", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for what in [
        "--signing-key-file",
        "--database",
        "--config",
        "published",
        "heartbeat",
    ] {
        assert!(help.contains(what), "{what} missing from:\n{help}");
    }
    // Bad values are refused with a message, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_wavry"))
        .args(["gateway", "--session-ttl", "3600"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no unit"));
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

/// kill -9 in the middle of a stream of writes (logins, each a new session, and device
/// registrations): after a restart on the same database, every session token the gateway handed
/// out still works and every device it said it registered (201) is listed. Nothing acknowledged
/// is lost.
#[test]
fn nothing_acknowledged_is_lost_to_kill_9() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let config = tempfile::tempdir().unwrap();
    let cheap = [("WAVRY_GATEWAY_ARGON2_MEMORY_KIB", "8")];
    let args = ["--listen", "127.0.0.1:0", "--argon2-iterations", "1"];
    let (mut gw, addr, _out) = start(config.path(), &args, &cheap);
    let creds = |w: usize| format!(r#"{{"email":"k{w}@example.org","password":"correct horse"}}"#);
    for w in 0..2 {
        assert_eq!(http(addr, "POST", "/v1/accounts", Some(&creds(w))).0, 201);
    }

    // Two writers side by side until the kill; each keeps what was acknowledged.
    let halt = std::sync::Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let halt = halt.clone();
            std::thread::spawn(move || {
                let (mut tokens, mut devices) = (Vec::new(), 0u32);
                let mut token = String::new();
                for i in 0u32.. {
                    if halt.load(Ordering::Relaxed) {
                        break;
                    }
                    // The gateway may die mid-request: no answer is no acknowledgement.
                    // An account holds 100 devices: logins only once 90 are in.
                    let once = {
                        if i % 2 == 0 || devices >= 90 {
                            exchange(addr, "POST", "/v1/auth/login", None, Some(&creds(w)))
                        } else {
                            let mut key = [0u8; 32];
                            key[..4].copy_from_slice(&i.to_le_bytes());
                            key[4] = u8::try_from(w).unwrap();
                            let key = rift_crypto::identity::PublicKey(key).to_base64();
                            let body = format!(
                                r#"{{"name":"d{i}","kind":"client","public_key":"{key}"}}"#
                            );
                            exchange(addr, "POST", "/v1/devices", Some(&token), Some(&body))
                        }
                    };
                    match once {
                        Ok((200, reply)) => {
                            let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
                            token = v["token"].as_str().unwrap().to_string();
                            tokens.push((w, token.clone()));
                        }
                        Ok((201, _)) => devices += 1,
                        Ok((status, reply)) => panic!("unexpected {status}: {reply}"),
                        Err(_) => break,
                    }
                }
                (tokens, (w, devices))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL while they write: no shutdown, no flush.
    gw.0.kill().unwrap();
    gw.0.wait().unwrap();
    halt.store(true, Ordering::Relaxed);
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    let (gw2, addr, out) = start(config.path(), &args, &cheap);
    let mut total = 0;
    for (tokens, (w, devices)) in results {
        assert!(tokens.len() >= 2, "writer {w} got going");
        for (_, t) in &tokens {
            let (status, reply) = exchange(addr, "GET", "/v1/account", Some(t), None).unwrap();
            assert_eq!(status, 200, "an acknowledged session was lost: {reply}");
        }
        let (_, list) = exchange(addr, "GET", "/v1/devices", Some(&tokens[0].1), None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&list).unwrap();
        let listed = v["devices"].as_array().unwrap().len();
        // A registration in flight at the kill may have committed unacknowledged: >=.
        assert!(
            listed >= devices as usize,
            "writer {w}: {devices} acknowledged, {listed} listed"
        );
        total += tokens.len() + devices as usize;
    }
    eprintln!("{total} acknowledged writes survived kill -9");
    drop(gw);
    stop(gw2, out);
}

/// The key that signs host records: a 0600 file the gateway refuses to use when others may
/// read it, and `wavry gateway rotate-signing-key` replaces it while the old key stays
/// published.
#[test]
fn the_signing_key_file_is_checked_and_rotated() {
    use std::os::unix::fs::PermissionsExt as _;
    let config = tempfile::tempdir().unwrap();
    let key_file = config.path().join("gateway-signing.key");
    let args = ["--listen", "127.0.0.1:0"];
    let (gw, addr, out) = start(config.path(), &args, &[]);
    let (status, body) = http(addr, "GET", "/v1/gateway/signing-key", None);
    assert_eq!(status, 200, "{body}");
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = first["key_id"].as_str().unwrap().to_string();
    stop(gw, out);

    let wavry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wavry"))
            .args(args)
            .env("WAVRY_CONFIG_DIR", config.path())
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = wavry(&["gateway", "--listen", "127.0.0.1:0"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("chmod 600 {}", key_file.display())),
        "{err}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let rotated = wavry(&["gateway", "rotate-signing-key"]);
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(
        said.contains("new signing key") && said.contains(&format!("retired {first}")),
        "{said}"
    );

    let (gw, addr, out) = start(config.path(), &args, &[]);
    let (_, body) = http(addr, "GET", "/v1/gateway/signing-keys", None);
    let set: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{body}");
    assert_eq!(keys[0]["current"], true);
    assert_ne!(keys[0]["key_id"], first.as_str());
    assert_eq!(
        keys[1]["key_id"],
        first.as_str(),
        "the old key is still published"
    );
    stop(gw, out);

    // An instance given another (missing) key file is refused, and told what to copy.
    let elsewhere = config.path().join("elsewhere.key");
    let refused = wavry(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--signing-key-file",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("Copy that key's file"), "{err}");
    assert!(!elsewhere.exists());
}
