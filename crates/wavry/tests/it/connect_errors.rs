//! `wavry connect` refuses clearly, before any window opens: a host whose key changed since
//! the first connection, and a host that does not allow this client. And `wavry host` does
//! nothing for strangers: it runs without a display here, so capture started for anyone
//! would fail the session, and it must not.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wavry(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wavry"));
    c.env("WAVRY_CONFIG_DIR", config).env_remove("DISPLAY");
    c
}

fn public_key(config: &Path) -> String {
    let out = wavry(config)
        .args(["keygen"])
        .output()
        .expect("wavry keygen");
    assert!(out.status.success(), "{out:?}");
    let out = wavry(config).args(["id", "--public"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("no public key in {text:?}"))
        .trim()
        .to_string()
}

/// A free UDP port on loopback (free a moment ago).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_host(config: &Path, port: u16, allow: &[&str]) -> Host {
    let mut c = wavry(config);
    c.args(["host", "--once", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for a in allow {
        c.args(["--allow-key", a]);
    }
    let host = Host(c.spawn().expect("start wavry host"));
    std::thread::sleep(Duration::from_millis(300));
    host
}

fn connect(config: &Path, port: u16) -> Output {
    wavry(config)
        .args(["connect", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run wavry connect")
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wavry-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_changed_host_key_is_refused_with_advice() {
    let (host_dir, client_dir) = (tempdir("kc-host"), tempdir("kc-client"));
    let client_key = public_key(&client_dir);
    public_key(&host_dir);
    let port = free_port();
    // The client remembers another key for this address: an impostor, or a reinstalled host.
    let other = public_key(&tempdir("kc-other"));
    std::fs::write(
        client_dir.join("known_hosts"),
        format!("127.0.0.1:{port} {other}\n"),
    )
    .unwrap();
    let _host = start_host(&host_dir, port, &[&client_key]);
    let out = connect(&client_dir, port);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("key changed"), "{err}");
    assert!(err.contains("remove the line"), "{err}");
}

#[test]
fn a_client_the_host_does_not_allow_is_told_so() {
    let (host_dir, client_dir) = (tempdir("na-host"), tempdir("na-client"));
    public_key(&client_dir);
    public_key(&host_dir);
    let someone_else = public_key(&tempdir("na-other"));
    let port = free_port();
    let _host = start_host(&host_dir, port, &[&someone_else]);
    let out = connect(&client_dir, port);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refused this client"), "{err}");
    assert!(err.contains("not allowed"), "{err}");
}

#[test]
fn strangers_start_nothing_on_the_host() {
    let (host_dir, client_dir) = (tempdir("st-host"), tempdir("st-client"));
    public_key(&client_dir);
    public_key(&host_dir);
    let someone_else = public_key(&tempdir("st-other"));
    let port = free_port();
    let mut c = wavry(&host_dir);
    c.args(["host", "--once", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--allow-key", &someone_else])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut host = Host(c.spawn().expect("start wavry host"));
    std::thread::sleep(Duration::from_millis(300));
    // A stranger that completes the handshake with a key the host does not allow…
    let out = connect(&client_dir, port);
    assert!(!out.status.success());
    // …and initiations that never finish: version 1's unpadded one, and padded ones.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for len in [52usize, 1200, 1200, 1200] {
        let mut init = vec![
            0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9,
        ];
        init.extend((0..len - init.len()).map(|i| i as u8));
        sock.send_to(&init, ("127.0.0.1", port)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    // Still waiting for its client: no session was started, so no capture failed.
    assert!(
        host.0.try_wait().unwrap().is_none(),
        "the host ended: a stranger got a session"
    );
    let _ = host.0.kill();
    let out = host.0.wait_with_output_taken();
    assert!(!out.0.contains("connected"), "stdout: {}", out.0);
    assert!(out.1.contains("refused 127.0.0.1"), "stderr: {}", out.1);
    assert!(!out.1.contains("failed"), "stderr: {}", out.1);
}

trait TakeOutput {
    /// Stdout and stderr of a child that has been killed.
    fn wait_with_output_taken(&mut self) -> (String, String);
}

impl TakeOutput for Child {
    fn wait_with_output_taken(&mut self) -> (String, String) {
        use std::io::Read;
        let _ = self.wait();
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(mut s) = self.stderr.take() {
            let _ = s.read_to_string(&mut e);
        }
        (o, e)
    }
}
