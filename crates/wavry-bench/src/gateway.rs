//! `wavry bench gateway`: how many signaling WebSockets a gateway holds, how fast it relays
//! messages between the two sides of a connection, and how many logins a second it verifies
//! at a given Argon2 cost (issue 6; results in docs/BENCHMARKS.md).
//!
//! Everything goes over real HTTP and real WebSockets with the protocol's own message types
//! (`wavry_proto`): accounts and devices are registered through the API, every client says
//! `hello` and pings at the heartbeat, pairs run `connect`/`accept`, then each pair's client
//! sends `candidate`s whose `priority` carries the send time (µs since the bench started, mod
//! 2^32) and whose address carries a sequence number; the host side takes receive − send.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt as _, StreamExt as _};
use rift_crypto::identity::Identity;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wavry_gateway::{Argon2Cost, Config, Gateway};
use wavry_proto::account::{LoginRequest, LoginResponse, RegisterRequest};
pub use wavry_proto::registry::DeviceKind;
use wavry_proto::registry::{DeviceInfo, RegisterDeviceRequest};
use wavry_proto::signal::{
    Candidate, CandidateKind, PeerMessage, ServerEnvelope, ServerMessage, SIGNAL_VERSION,
};

/// An account holds at most this many devices (docs/SIGNALING.md).
pub const MAX_DEVICES_PER_ACCOUNT: usize = 100;
/// The gateway lets one address register this many accounts at once (ThrottleConfig default);
/// against a gateway we did not start, registrations are spread over loopback addresses.
const REGISTER_BURST_PER_ADDRESS: usize = 10;
const PASSWORD: &str = "wavry bench password";
/// Read buffer of each client WebSocket, bytes (see `open_socket`).
pub const CLIENT_READ_BUFFER: usize = 4096;
/// One socket's connect + upgrade + hello → welcome must take less than this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors the process needs beside its sockets (database, epoll, runtime, stdio…).
const SPARE_FDS: u64 = 256;

/// Which Argon2 cost a login measurement runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCost {
    /// OWASP's baseline, the gateway's default: 19 MiB, t=2, p=1.
    Owasp,
    /// The cheapest Argon2 (8 KiB, t=1): for contrast only, never for real accounts.
    Cheap,
    /// Whatever the gateway at `--url` is configured with.
    Target,
}

impl LoginCost {
    fn argon2(self) -> Option<Argon2Cost> {
        match self {
            LoginCost::Owasp => Some(Argon2Cost::OWASP),
            LoginCost::Cheap => Some(Argon2Cost::TEST_ONLY_INSECURE),
            LoginCost::Target => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            LoginCost::Owasp => "OWASP Argon2id (19 MiB, t=2, p=1)",
            LoginCost::Cheap => "CHEAP Argon2id (8 KiB, t=1, p=1; contrast only, insecure)",
            LoginCost::Target => "the target gateway's configured Argon2 cost",
        }
    }
}

/// Where the gateway under test runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// In this process, on 127.0.0.1:0: clients and gateway share the runtime and the cores.
    InProcess,
    /// A `wavry gateway` child process started with this executable, on loopback.
    Spawn { exe: PathBuf },
    /// A gateway already running at this base URL (`http://127.0.0.1:8080`); `pid` to read
    /// its memory and CPU time.
    External { url: String, pid: Option<u32> },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Database of a gateway this bench starts (None: a SQLite file in a temporary directory).
    pub database: Option<String>,
    /// Signaling WebSockets to hold open (0: skip the signaling part).
    pub clients: usize,
    /// Devices per account (at most 100).
    pub devices_per_account: usize,
    /// Host/client pairs that connect and relay candidates (2 × pairs ≤ clients).
    pub pairs: usize,
    /// Kind of the sockets outside the pairs.
    pub idle_kind: DeviceKind,
    /// Candidates per second, across all pairs.
    pub rate: f64,
    /// How long the candidates flow.
    pub relay_secs: f64,
    /// WebSocket handshakes (and HTTP registrations) in flight at once.
    pub connect_concurrency: usize,
    /// The bench's own setup accounts at OWASP cost instead of the cheapest (in-process and
    /// spawned gateways only; a gateway at `--url` uses its own cost).
    pub setup_owasp: bool,
    /// Login measurements, in order (empty: skip).
    pub login_costs: Vec<LoginCost>,
    /// Logins in flight at once.
    pub login_concurrency: usize,
    /// How long each login measurement runs.
    pub login_secs: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: Target::InProcess,
            database: None,
            clients: 10_000,
            devices_per_account: MAX_DEVICES_PER_ACCOUNT,
            pairs: 500,
            idle_kind: DeviceKind::Host,
            rate: 1000.0,
            relay_secs: 60.0,
            connect_concurrency: 64,
            setup_owasp: false,
            login_costs: vec![LoginCost::Owasp, LoginCost::Cheap],
            login_concurrency: 8,
            login_secs: 10.0,
        }
    }
}

/// Percentiles of a set of durations, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of_micros(mut v: Vec<u64>) -> Dist {
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1000.0
        };
        Dist {
            n: v.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: v[v.len() - 1] as f64 / 1000.0,
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
            self.p50, self.p95, self.p99, self.max, self.n
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct SignalReport {
    pub where_: String,
    pub clients: usize,
    pub accounts: usize,
    pub pairs: usize,
    pub setup_cost: String,
    pub setup_secs: f64,
    /// All N sockets open and welcomed, from the first handshake to the last welcome.
    pub connect_secs: f64,
    pub connected: usize,
    pub connect_failures: usize,
    /// One socket's TCP connect + upgrade + hello → welcome.
    pub hello: Dist,
    /// All pairs' connect → accepted.
    pub pairing_secs: f64,
    pub rate: f64,
    pub relay_secs: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub relay: Dist,
    /// Sockets still open at the end (should be `clients`).
    pub still_open: usize,
    /// Why sockets closed early (goodbye code or error), with counts.
    pub drops: Vec<(String, usize)>,
    /// Gateway-side resident memory (kB) before any socket and with all open; whose.
    pub rss_before_kb: Option<u64>,
    pub rss_after_kb: Option<u64>,
    pub rss_of: String,
    /// CPU seconds the gateway process used during the relay window (separate process only).
    pub gateway_cpu_relay: Option<f64>,
    pub fd_limit: u64,
}

#[derive(Debug, Clone)]
pub struct LoginReport {
    pub cost: LoginCost,
    pub where_: String,
    pub concurrency: usize,
    pub secs: f64,
    pub ok: u64,
    pub per_sec: f64,
    pub latency: Dist,
    /// Non-200 answers by status.
    pub refused: Vec<(u16, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub signal: Option<SignalReport>,
    pub logins: Vec<LoginReport>,
    pub nproc: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.signal {
            writeln!(f, "signaling: {}", s.where_)?;
            writeln!(
                f,
                "  setup: {} accounts, {} devices ({}), {:.1} s; RLIMIT_NOFILE {}",
                s.accounts, s.clients, s.setup_cost, s.setup_secs, s.fd_limit
            )?;
            writeln!(
                f,
                "  connect: {}/{} sockets welcomed in {:.2} s ({} failed); per socket {}",
                s.connected, s.clients, s.connect_secs, s.connect_failures, s.hello
            )?;
            writeln!(
                f,
                "  pairing: {} pairs connect → accepted in {:.2} s",
                s.pairs, s.pairing_secs
            )?;
            writeln!(
                f,
                "  relay: {:.0} candidates/s for {:.0} s: sent {}, received {}, lost {}",
                s.rate, s.relay_secs, s.sent, s.received, s.lost
            )?;
            writeln!(
                f,
                "  relay latency (client send → host receive): {}",
                s.relay
            )?;
            writeln!(
                f,
                "  still open at the end: {}/{}{}",
                s.still_open,
                s.clients,
                if s.still_open == s.clients {
                    " (all stayed connected)"
                } else {
                    ""
                }
            )?;
            for (why, n) in &s.drops {
                writeln!(f, "    closed early: {n} × {why}")?;
            }
            match (s.rss_before_kb, s.rss_after_kb) {
                (Some(a), Some(b)) => writeln!(
                    f,
                    "  RSS ({}): {:.1} MiB before, {:.1} MiB with all sockets open ({:.1} KiB per socket)",
                    s.rss_of,
                    a as f64 / 1024.0,
                    b as f64 / 1024.0,
                    b.saturating_sub(a) as f64 / s.connected.max(1) as f64
                )?,
                _ => writeln!(f, "  RSS: unknown ({})", s.rss_of)?,
            }
            if let Some(c) = s.gateway_cpu_relay {
                writeln!(
                    f,
                    "  gateway CPU during the relay: {:.2} s over {:.0} s ({:.0} % of one core)",
                    c,
                    s.relay_secs,
                    100.0 * c / s.relay_secs.max(1e-9)
                )?;
            }
        }
        for l in &self.logins {
            writeln!(f, "logins at {}: {}", l.cost.label(), l.where_)?;
            writeln!(
                f,
                "  {} concurrent for {:.0} s: {} ok, {:.1} logins/s; latency {}",
                l.concurrency, l.secs, l.ok, l.per_sec, l.latency
            )?;
            for (status, n) in &l.refused {
                writeln!(f, "    refused: {n} × HTTP {status}")?;
            }
        }
        Ok(())
    }
}

/// Run the whole bench on a runtime of its own (the gateway, when in-process, shares it).
pub fn run(opts: &Options) -> Result<Report> {
    check_options(opts)?;
    let fd_limit = raise_fd_limit(fds_needed(opts))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(opts, fd_limit))
}

fn check_options(o: &Options) -> Result<()> {
    if o.devices_per_account == 0 || o.devices_per_account > MAX_DEVICES_PER_ACCOUNT {
        bail!("--devices-per-account must be 1..={MAX_DEVICES_PER_ACCOUNT} (the gateway's cap)");
    }
    if o.clients > 0 && (o.pairs == 0 || 2 * o.pairs > o.clients) {
        bail!(
            "--pairs must be at least 1 and at most half of --clients ({} pairs need {} sockets)",
            o.pairs,
            2 * o.pairs
        );
    }
    if o.clients > 0 && (o.rate <= 0.0 || o.relay_secs <= 0.0) {
        bail!("--rate and --seconds must be positive");
    }
    // Each socket may send 20 messages a second on average (docs/SIGNALING.md); above it the
    // gateway drops messages on purpose, which would read as loss here.
    if o.clients > 0 && o.rate / o.pairs as f64 > 15.0 {
        bail!(
            "--rate {} over {} pairs is {:.1} messages/s per socket; the gateway allows 20 on \
             average: use more pairs or a lower rate (≤ 15 per pair)",
            o.rate,
            o.pairs,
            o.rate / o.pairs as f64
        );
    }
    if o.connect_concurrency == 0 || o.login_concurrency == 0 {
        bail!("concurrency must be at least 1");
    }
    if matches!(o.target, Target::External { .. })
        && o.login_costs.iter().any(|c| *c != LoginCost::Target)
    {
        bail!("against --url the login cost is the target's own (LoginCost::Target)");
    }
    Ok(())
}

/// Both ends of every socket live here when the gateway is in-process.
fn fds_needed(o: &Options) -> u64 {
    let per = if matches!(o.target, Target::InProcess) {
        2
    } else {
        1
    };
    o.clients as u64 * per + SPARE_FDS
}

/// Raise the soft RLIMIT_NOFILE to the hard one; fail if even that is too few.
pub fn raise_fd_limit(needed: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("setrlimit(RLIMIT_NOFILE) to the hard limit");
        }
        lim.rlim_cur = lim.rlim_max;
    }
    let have: u64 = lim.rlim_cur;
    if have < needed {
        bail!(
            "this bench needs about {needed} file descriptors but the hard RLIMIT_NOFILE is \
             {have} (an in-process gateway holds both ends of every socket: 2 per client). \
             Use fewer --clients, or --separate-process / --url so the gateway's sockets count \
             against another process, or raise the hard limit (ulimit -Hn, LimitNOFILE=)"
        );
    }
    Ok(have)
}

/// A gateway this bench started, and how to stop it.
struct Running {
    base: String,
    addr: SocketAddr,
    where_: String,
    /// Whose memory to read.
    pid: Option<u32>,
    stop: Option<Stopper>,
    _dir: Option<tempfile::TempDir>,
}

enum Stopper {
    InProcess(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), wavry_gateway::GatewayError>>,
    ),
    Child(std::process::Child),
}

impl Running {
    async fn stop(mut self) -> Result<()> {
        match self.stop.take() {
            Some(Stopper::InProcess(tx, task)) => {
                let _ = tx.send(());
                // Sockets get `goodbye` and up to 2 s to close; then the server drains.
                tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .context("the in-process gateway did not stop within 30 s")?
                    .context("the gateway task panicked")?
                    .context("the gateway stopped with an error")?;
            }
            Some(Stopper::Child(mut c)) => stop_child(&mut c),
            None => {}
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // An error path must not leave a gateway process behind.
        if let Some(Stopper::Child(c)) = &mut self.stop {
            stop_child(c);
        }
    }
}

fn stop_child(c: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(c.id()) {
        // SAFETY: signalling the child we spawned, by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for _ in 0..100 {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn temp_db(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

/// Start an in-process gateway with `argon2`, open to as many registrations as the bench needs.
async fn start_in_process(database: Option<&str>, argon2: Argon2Cost) -> Result<Running> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let database_url = database
        .map(str::to_string)
        .unwrap_or_else(|| temp_db(&dir, "gateway.db"));
    // The signing key lives in a file beside the database; a database given by the caller
    // outlives this run, so its key file must too (one per machine, under the temp directory).
    let key_dir = match database {
        Some(_) => std::env::temp_dir(),
        None => dir.path().to_path_buf(),
    };
    let mut config = Config {
        database_url: database_url.clone(),
        argon2,
        signing_key_file: Some(key_dir.join("wavry-bench-gateway-signing.key")),
        ..Config::default()
    };
    // Every bench account registers from 127.0.0.1; the per-address registration limit
    // (10, then one per 6 min) is for the public, not for this setup.
    config.throttle.register_burst = u32::MAX / 2;
    let gateway = Gateway::open(config)
        .await
        .with_context(|| format!("opening the gateway on {}", redact(&database_url)))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(listener, async {
        let _ = rx.await;
    }));
    Ok(Running {
        base: format!("http://{addr}"),
        addr,
        where_: format!(
            "in-process gateway on {addr}, {} (clients and gateway share this process's runtime \
             and the machine's cores)",
            redact(&database_url)
        ),
        pid: Some(std::process::id()),
        stop: Some(Stopper::InProcess(tx, task)),
        _dir: Some(dir),
    })
}

/// Start `exe gateway` on a free loopback port and wait until it answers /healthz.
async fn start_child(
    exe: &std::path::Path,
    database: Option<&str>,
    cheap: bool,
) -> Result<Running> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let database_url = database
        .map(str::to_string)
        .unwrap_or_else(|| temp_db(&dir, "gateway.db"));
    // A free port: bind, read, release (the child binds it a moment later).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free loopback port")?;
    let log = std::fs::File::create(dir.path().join("gateway.log"))
        .context("creating the gateway's log file")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("gateway")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--database")
        .arg(&database_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if cheap {
        cmd.args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"]);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} gateway", exe.display()))?;
    let pid = child.id();
    let running = Running {
        base: format!("http://{addr}"),
        addr,
        where_: format!(
            "`wavry gateway` in its own process (pid {pid}) on {addr}, {}; the clients run in \
             this process on the same cores",
            redact(&database_url)
        ),
        pid: Some(pid),
        stop: Some(Stopper::Child(child)),
        _dir: Some(dir),
    };
    let http = http_client(None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("{}/healthz", running.base))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok {
            return Ok(running);
        }
        if Instant::now() > deadline {
            bail!("the gateway child did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn http_client(source: Option<IpAddr>) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent("wavry-bench")
        .local_address(source)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

/// Resident memory of `pid`, kB (`VmRSS` in /proc/PID/status).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of `pid` so far (/proc/PID/stat, in clock ticks).
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// The gateway API over HTTP, from one source address.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn register(&self, email: &str) -> Result<()> {
        let body = RegisterRequest {
            email: email.to_string(),
            password: PASSWORD.to_string(),
        };
        let r = self
            .http
            .post(format!("{}/v1/accounts", self.base))
            .json(&body)
            .send()
            .await
            .context("POST /v1/accounts")?;
        expect_status(r, 201, "registering an account").await?;
        Ok(())
    }

    async fn login(&self, email: &str) -> Result<LoginResponse> {
        let r = self.login_raw(email).await.context("POST /v1/auth/login")?;
        let text = expect_status(r, 200, "logging in").await?;
        serde_json::from_str(&text).context("parsing the login answer")
    }

    async fn login_raw(&self, email: &str) -> reqwest::Result<reqwest::Response> {
        let body = LoginRequest {
            email: email.to_string(),
            password: PASSWORD.to_string(),
            totp_code: None,
        };
        self.http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&body)
            .send()
            .await
    }

    async fn device(&self, token: &str, name: &str, kind: DeviceKind) -> Result<DeviceInfo> {
        let key = Identity::generate()
            .map_err(|e| anyhow!("generating a device key: {e}"))?
            .public()
            .to_base64();
        let body = RegisterDeviceRequest {
            name: name.to_string(),
            kind,
            public_key: key,
        };
        let r = self
            .http
            .post(format!("{}/v1/devices", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .context("POST /v1/devices")?;
        let text = expect_status(r, 201, "registering a device").await?;
        serde_json::from_str(&text).context("parsing the device answer")
    }
}

async fn expect_status(r: reqwest::Response, want: u16, what: &str) -> Result<String> {
    let status = r.status().as_u16();
    let text = r
        .text()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    if status != want {
        bail!("{what}: HTTP {status}: {text}");
    }
    Ok(text)
}

/// Loopback source addresses to register from: 10 accounts each, since a gateway we did not
/// configure allows one address 10 registrations at once (127.0.0.0/8 is all loopback).
fn register_source(i: usize, spread: bool, gateway: IpAddr) -> Option<IpAddr> {
    if !spread || !gateway.is_loopback() || !gateway.is_ipv4() {
        return None;
    }
    let k = (i / REGISTER_BURST_PER_ADDRESS) as u32;
    // 127.S.x.y, skipping .0 and .255 in the last octet; S from the process id, so two
    // benches against one gateway (or one run after another) use fresh addresses.
    let s = 100 + (std::process::id() % 100) as u8;
    let ip = Ipv4Addr::new(127, s, (k / 250) as u8, (k % 250 + 1) as u8);
    Some(IpAddr::V4(ip))
}

/// Register and log in `n` accounts named `prefix-i@bench.invalid`; their tokens.
async fn make_accounts(
    base: &str,
    gateway_ip: IpAddr,
    spread: bool,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<(String, String)>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let api = Api {
            base: base.to_string(),
            http: http_client(register_source(i, spread, gateway_ip))?,
        };
        let email = format!("{prefix}-{i}@bench.invalid");
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = sem.acquire_owned().await;
            api.register(&email).await?;
            let login = api.login(&email).await?;
            Ok::<_, anyhow::Error>((email, login.token))
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.context("account task panicked")??);
    }
    Ok(out)
}

/// A run-unique tag, so accounts never collide in a reused database.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("b{:x}{:x}", nanos, std::process::id())
}

async fn run_async(opts: &Options, fd_limit: u64) -> Result<Report> {
    let mut report = Report {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..Report::default()
    };
    if opts.clients > 0 {
        let setup_cost = if opts.setup_owasp {
            Argon2Cost::OWASP
        } else {
            Argon2Cost::TEST_ONLY_INSECURE
        };
        let running = match &opts.target {
            Target::InProcess => {
                Some(start_in_process(opts.database.as_deref(), setup_cost).await?)
            }
            Target::Spawn { exe } => {
                Some(start_child(exe, opts.database.as_deref(), !opts.setup_owasp).await?)
            }
            Target::External { .. } => None,
        };
        let (base, addr, where_, pid, spread) = match (&running, &opts.target) {
            (Some(r), _) => (
                r.base.clone(),
                r.addr,
                r.where_.clone(),
                r.pid,
                matches!(opts.target, Target::Spawn { .. }),
            ),
            (None, Target::External { url, pid }) => {
                let addr = resolve(url).await?;
                (
                    url.trim_end_matches('/').to_string(),
                    addr,
                    format!("external gateway at {url}"),
                    *pid,
                    true,
                )
            }
            (None, _) => bail!("no gateway to measure"),
        };
        let setup_label = match &opts.target {
            Target::External { .. } => "the target's Argon2 cost".to_string(),
            _ if opts.setup_owasp => "setup accounts at OWASP Argon2 cost".to_string(),
            _ => {
                "setup accounts at the CHEAP Argon2 cost (8 KiB, t=1), bench setup only".to_string()
            }
        };
        let mut s = signaling(opts, &base, addr, spread, pid).await?;
        s.where_ = where_;
        s.setup_cost = setup_label;
        s.fd_limit = fd_limit;
        s.rss_of = match (&opts.target, pid) {
            (Target::InProcess, _) => {
                "this process: gateway AND all client sockets together".to_string()
            }
            (_, Some(p)) => format!("gateway process {p}"),
            (_, None) => "no --gateway-pid given".to_string(),
        };
        report.signal = Some(s);
        if let Some(r) = running {
            r.stop().await?;
        }
    }
    for &cost in &opts.login_costs {
        report.logins.push(logins(opts, cost).await?);
    }
    Ok(report)
}

async fn resolve(url: &str) -> Result<SocketAddr> {
    let u = reqwest::Url::parse(url).with_context(|| format!("parsing --url {url}"))?;
    if u.scheme() != "http" {
        bail!("--url must be http:// (the bench speaks plain HTTP and ws://)");
    }
    let host = u.host_str().context("--url has no host")?.to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?;
    addrs
        .next()
        .with_context(|| format!("{host} has no address"))
}

/// What each socket task reports to the orchestrator.
enum Event {
    /// A pair's client heard `accepted`: (pair, connection id).
    Accepted(usize, String),
    /// Something went wrong on a pair's way to `accepted`.
    PairFailed(usize, String),
}

/// Shared counters of the relay measurement.
#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    /// Socket tasks that have ended (closed by the bench or dropped).
    finished: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    drops: Mutex<HashMap<String, usize>>,
    /// Whether the measurement window is on (samples outside it are not kept).
    measuring: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn dropped(&self, why: String) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut d) = self.drops.lock() {
            *d.entry(why).or_insert(0) += 1;
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Device {
    token: String,
    id: String,
    kind: DeviceKind,
}

async fn signaling(
    opts: &Options,
    base: &str,
    addr: SocketAddr,
    spread: bool,
    pid: Option<u32>,
) -> Result<SignalReport> {
    let accounts = opts.clients.div_ceil(opts.devices_per_account);
    let tag = run_tag();
    let t_setup = Instant::now();
    let users = make_accounts(
        base,
        addr.ip(),
        spread,
        &tag,
        accounts,
        opts.connect_concurrency.min(16),
    )
    .await
    .context("registering the bench's accounts")?;
    // Device i: pairs first (host 2k, client 2k+1), then idle sockets.
    let kind_of = |i: usize| {
        if i < 2 * opts.pairs {
            if i % 2 == 0 {
                DeviceKind::Host
            } else {
                DeviceKind::Client
            }
        } else {
            opts.idle_kind
        }
    };
    // A pair's host and client are on one account (its own host needs no share), so each
    // account's devices register one after another (the 100-device check is not atomic), and
    // accounts in parallel.
    let http = http_client(None)?;
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.connect_concurrency));
    let mut tasks = Vec::new();
    for (a, (_, token)) in users.iter().enumerate() {
        let lo = a * opts.devices_per_account;
        let hi = ((a + 1) * opts.devices_per_account).min(opts.clients);
        let api = Api {
            base: base.to_string(),
            http: http.clone(),
        };
        let token = token.clone();
        let kinds: Vec<DeviceKind> = (lo..hi).map(kind_of).collect();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = sem.acquire_owned().await;
            let mut out = Vec::with_capacity(kinds.len());
            for (j, kind) in kinds.into_iter().enumerate() {
                let d = api
                    .device(&token, &format!("bench {}", lo + j), kind)
                    .await?;
                out.push(Device {
                    token: token.clone(),
                    id: d.device_id,
                    kind,
                });
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut devices: Vec<Device> = Vec::with_capacity(opts.clients);
    for t in tasks {
        devices.extend(t.await.context("device task panicked")??);
    }
    let setup_secs = t_setup.elapsed().as_secs_f64();

    let rss_before_kb = pid.and_then(rss_kb);
    let shared = Arc::new(Shared::default());
    let epoch = Instant::now();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let ws_url = format!("ws://{addr}/v1/signal");
    // Open every socket, bounded concurrency; each is then driven by its own task.
    let t_connect = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.connect_concurrency));
    let mut opening = Vec::with_capacity(devices.len());
    for (i, d) in devices.iter().enumerate() {
        let sem = sem.clone();
        let url = ws_url.clone();
        let hello = PeerMessage::Hello {
            version: SIGNAL_VERSION,
            token: d.token.clone(),
            device_id: d.id.clone(),
            resume: None,
        };
        let pair = (i < 2 * opts.pairs).then_some(i / 2);
        let kind = d.kind;
        let shared = shared.clone();
        let ev_tx = ev_tx.clone();
        opening.push(tokio::spawn(async move {
            let slot = sem.acquire_owned().await;
            let t0 = Instant::now();
            // A gateway out of descriptors leaves connections unanswered in its backlog.
            let (ws, heartbeat) = tokio::time::timeout(OPEN_TIMEOUT, open_socket(&url, &hello))
                .await
                .map_err(|_| {
                    anyhow!(
                        "no welcome within {} s of connecting",
                        OPEN_TIMEOUT.as_secs()
                    )
                })??;
            let took = t0.elapsed();
            drop(slot);
            shared.open.fetch_add(1, Ordering::Relaxed);
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<PeerMessage>();
            let peer = PeerTask {
                index: i,
                ws,
                heartbeat,
                kind,
                pair,
                shared,
                epoch,
                ev_tx,
                cmd_rx,
            };
            tokio::spawn(peer.run());
            Ok::<_, anyhow::Error>((took, cmd_tx))
        }));
    }
    drop(ev_tx);
    let mut hello_us = Vec::with_capacity(devices.len());
    let mut cmds: Vec<Option<mpsc::UnboundedSender<PeerMessage>>> =
        Vec::with_capacity(devices.len());
    let mut connect_failures = 0;
    let mut first_failure = None;
    for t in opening {
        match t.await.context("socket task panicked")? {
            Ok((took, tx)) => {
                hello_us.push(took.as_micros() as u64);
                cmds.push(Some(tx));
            }
            Err(e) => {
                connect_failures += 1;
                first_failure.get_or_insert_with(|| format!("{e:#}"));
                cmds.push(None);
            }
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let connected = hello_us.len();
    if let Some(e) = &first_failure {
        eprintln!("{connect_failures} sockets failed to open; the first: {e}");
    }
    let rss_after_kb = pid.and_then(rss_kb);

    // Pairs: each client asks for its host; hosts accept as requests come.
    let t_pair = Instant::now();
    for k in 0..opts.pairs {
        let (Some(Some(client)), Some(host)) = (cmds.get(2 * k + 1), devices.get(2 * k)) else {
            continue;
        };
        let _ = client.send(PeerMessage::Connect {
            host_id: host.id.clone(),
        });
    }
    let mut conn_ids: Vec<Option<String>> = vec![None; opts.pairs];
    let mut pending = (0..opts.pairs)
        .filter(|k| cmds.get(2 * k + 1).is_some_and(Option::is_some))
        .count();
    let pair_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pending > 0 {
        match tokio::time::timeout_at(pair_deadline, ev_rx.recv()).await {
            Ok(Some(Event::Accepted(k, id))) => {
                if let Some(slot) = conn_ids.get_mut(k) {
                    if slot.is_none() {
                        *slot = Some(id);
                        pending -= 1;
                    }
                }
            }
            Ok(Some(Event::PairFailed(k, why))) => {
                eprintln!("pair {k} did not connect: {why}");
                pending -= 1;
            }
            Ok(None) => break,
            Err(_) => {
                eprintln!("{pending} pairs still not accepted after 60 s");
                break;
            }
        }
    }
    let pairing_secs = t_pair.elapsed().as_secs_f64();
    let live: Vec<(usize, String)> = conn_ids
        .iter()
        .enumerate()
        .filter_map(|(k, c)| c.clone().map(|c| (k, c)))
        .collect();
    if live.is_empty() {
        bail!("no pair connected: nothing to relay");
    }

    // Relay: one candidate every 1/rate s, round-robin over the pairs.
    let cpu0 = match pid {
        Some(p) if p != std::process::id() => cpu_secs(p),
        _ => None,
    };
    shared.measuring.store(true, Ordering::Relaxed);
    let period = Duration::from_secs_f64(1.0 / opts.rate);
    let total = (opts.rate * opts.relay_secs).round() as u64;
    let start = tokio::time::Instant::now();
    let mut seq: u32 = 0;
    let mut queued = 0u64;
    for n in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(n as f64)).await;
        let (k, conn) = &live[n as usize % live.len()];
        seq = seq.wrapping_add(1);
        if let Some(Some(client)) = cmds.get(2 * k + 1) {
            queued += 1;
            let _ = client.send(PeerMessage::Candidate {
                connection_id: conn.clone(),
                candidate: Candidate {
                    kind: CandidateKind::Host,
                    address: SocketAddr::from((Ipv4Addr::from(seq), 9)),
                    priority: 0, // stamped by the sending task, just before the write
                },
            });
        }
    }
    let relay_secs = start.elapsed().as_secs_f64();
    let cpu1 = match pid {
        Some(p) if p != std::process::id() => cpu_secs(p),
        _ => None,
    };
    // Let the last candidates arrive (a lost one never will: wait at most 5 s). Counted
    // against what was handed to the sockets: the last may not be written yet.
    let drain = Instant::now();
    while shared.received.load(Ordering::Relaxed) < queued
        && drain.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.measuring.store(false, Ordering::Relaxed);
    // A candidate queued to a socket that then broke counts as sent and lost.
    let sent = queued.max(shared.sent.load(Ordering::Relaxed));
    let received = shared.received.load(Ordering::Relaxed);
    let still_open = shared.open.load(Ordering::Relaxed);
    let latencies = shared
        .latencies_us
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let mut drops: Vec<(String, usize)> = shared
        .drops
        .lock()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    drops.sort();
    // Close our side (each task ends when its command channel closes) and wait for it, so the
    // gateway is not stopped under sockets that are still pinging.
    drop(cmds);
    let closing = Instant::now();
    while shared.finished.load(Ordering::Relaxed) < connected
        && closing.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(SignalReport {
        where_: String::new(),
        clients: opts.clients,
        accounts,
        pairs: live.len(),
        setup_cost: String::new(),
        setup_secs,
        connect_secs,
        connected,
        connect_failures,
        hello: Dist::of_micros(hello_us),
        pairing_secs,
        rate: opts.rate,
        relay_secs,
        sent,
        received,
        lost: sent.saturating_sub(received),
        relay: Dist::of_micros(latencies),
        still_open,
        drops,
        rss_before_kb,
        rss_after_kb,
        rss_of: String::new(),
        gateway_cpu_relay: match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        fd_limit: 0,
    })
}

/// Connect, say hello, wait for welcome; the socket and its heartbeat.
async fn open_socket(url: &str, hello: &PeerMessage) -> Result<(Ws, Duration)> {
    // tungstenite zero-fills its whole read buffer (128 KiB by default) on the first read, so
    // each socket would keep 128 KiB resident; signaling messages are at most 16 KiB, and a
    // small buffer keeps the bench's own side from swamping the in-process memory figure.
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("WebSocket handshake")?;
    let text = serde_json::to_string(hello).context("encoding hello")?;
    ws.send(Message::text(text))
        .await
        .context("sending hello")?;
    loop {
        let m = ws
            .next()
            .await
            .context("closed before welcome")?
            .context("socket error before welcome")?;
        let Message::Text(t) = m else { continue };
        let env = ServerEnvelope::from_json(&t).context("parsing the gateway's answer to hello")?;
        match env.message {
            ServerMessage::Welcome { heartbeat_secs, .. } => {
                return Ok((ws, Duration::from_secs(u64::from(heartbeat_secs.max(1)))))
            }
            other => bail!("expected welcome, got {other:?}"),
        }
    }
}

/// One open signaling socket: pings at the heartbeat, accepts connect requests (host),
/// reports `accepted` (client), sends what it is told (stamping candidates), and times the
/// candidates it receives.
struct PeerTask {
    index: usize,
    ws: Ws,
    heartbeat: Duration,
    kind: DeviceKind,
    pair: Option<usize>,
    shared: Arc<Shared>,
    epoch: Instant,
    ev_tx: mpsc::UnboundedSender<Event>,
    cmd_rx: mpsc::UnboundedReceiver<PeerMessage>,
}

impl PeerTask {
    async fn run(mut self) {
        // Ping at 80 % of the heartbeat, each socket at its own phase so 10,000 pings do not
        // land in the same millisecond.
        let every = self.heartbeat.mul_f64(0.8);
        let phase = every.mul_f64(fastrand_unit(self.index as u64));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
        let mut nonce = 0u64;
        let why = loop {
            tokio::select! {
                cmd = self.cmd_rx.recv() => {
                    let Some(mut msg) = cmd else {
                        // The bench is done with this socket.
                        let _ = self.ws.close(None).await;
                        self.shared.finished.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    if let PeerMessage::Candidate { candidate, .. } = &mut msg {
                        candidate.priority = self.epoch.elapsed().as_micros() as u32;
                        self.shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = self.send(&msg).await {
                        break format!("send error: {e}");
                    }
                }
                _ = ping.tick() => {
                    nonce += 1;
                    if let Err(e) = self.send(&PeerMessage::Ping { nonce }).await {
                        break format!("send error: {e}");
                    }
                }
                m = self.ws.next() => {
                    let text = match m {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(f))) => {
                            break format!("closed by the gateway: {}", f.map(|f| f.reason.to_string()).unwrap_or_default())
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break format!("socket error: {e}"),
                        None => break "socket ended".to_string(),
                    };
                    let now_us = self.epoch.elapsed().as_micros() as u32;
                    let env = match ServerEnvelope::from_json(&text) {
                        Ok(e) => e,
                        Err(e) => break format!("unparsable gateway message: {e}"),
                    };
                    if let Some(why) = self.on_message(env.message, now_us).await {
                        break why;
                    }
                }
            }
        };
        if let Some(k) = self.pair {
            let _ = self.ev_tx.send(Event::PairFailed(k, why.clone()));
        }
        self.shared.dropped(why);
        self.shared.finished.fetch_add(1, Ordering::Relaxed);
    }

    async fn send(&mut self, msg: &PeerMessage) -> Result<()> {
        let text = serde_json::to_string(msg).context("encoding")?;
        self.ws.send(Message::text(text)).await.context("writing")
    }

    /// Handle one gateway message; `Some(reason)` ends the socket.
    async fn on_message(&mut self, msg: ServerMessage, now_us: u32) -> Option<String> {
        match msg {
            ServerMessage::ConnectRequest { connection_id, .. }
                if self.kind == DeviceKind::Host =>
            {
                if let Err(e) = self.send(&PeerMessage::Accept { connection_id }).await {
                    return Some(format!("send error: {e}"));
                }
            }
            ServerMessage::Accepted { connection_id } => {
                if let Some(k) = self.pair {
                    let _ = self.ev_tx.send(Event::Accepted(k, connection_id));
                }
            }
            ServerMessage::Candidate { candidate, .. } => {
                // Wrapping µs: correct for any latency under 71 minutes.
                let us = now_us.wrapping_sub(candidate.priority);
                self.shared.received.fetch_add(1, Ordering::Relaxed);
                if self.shared.measuring.load(Ordering::Relaxed) {
                    if let Ok(mut v) = self.shared.latencies_us.lock() {
                        v.push(u64::from(us));
                    }
                }
            }
            ServerMessage::Goodbye { code, message } => {
                return Some(format!("goodbye {code}: {message}"));
            }
            ServerMessage::Error { code, message, .. } => {
                // The socket stays open; a pair that cannot connect is reported.
                if let Some(k) = self.pair {
                    let _ = self
                        .ev_tx
                        .send(Event::PairFailed(k, format!("error {code}: {message}")));
                }
            }
            _ => {}
        }
        None
    }
}

/// A number in [0, 1) from a seed (splitmix64): enough to spread ping phases.
fn fastrand_unit(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Logins per second at `cost`: `login_concurrency` workers, each logging in to its own
/// account again and again for `login_secs`.
async fn logins(opts: &Options, cost: LoginCost) -> Result<LoginReport> {
    let running = match (cost.argon2(), &opts.target) {
        (Some(a), _) => Some(start_in_process(opts.database.as_deref(), a).await?),
        (None, Target::External { .. }) => None,
        (None, _) => bail!("LoginCost::Target needs --url"),
    };
    let (base, ip, where_) = match (&running, &opts.target) {
        (Some(r), _) => (
            r.base.clone(),
            r.addr.ip(),
            format!(
                "in-process gateway, {} hashes at once (its default: CPU count)",
                Config::default().max_concurrent_hashes
            ),
        ),
        (None, Target::External { url, .. }) => (
            url.trim_end_matches('/').to_string(),
            resolve(url).await?.ip(),
            format!("external gateway at {url}"),
        ),
        (None, _) => bail!("no gateway for logins"),
    };
    let tag = run_tag();
    let n = opts.login_concurrency;
    let spread = running.is_none();
    let accounts = make_accounts(&base, ip, spread, &tag, n, n.min(16))
        .await
        .context("registering the login accounts")?;
    let http = http_client(None)?;
    let secs = opts.login_secs;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (email, _) in accounts {
        let api = Api {
            base: base.clone(),
            http: http.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut refused: HashMap<u16, u64> = HashMap::new();
            while Instant::now() < end {
                let t = Instant::now();
                let r = api.login_raw(&email).await.context("POST /v1/auth/login")?;
                let status = r.status().as_u16();
                // Read the body so the connection is reused.
                let _ = r.bytes().await;
                if status == 200 {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    *refused.entry(status).or_insert(0) += 1;
                    if status == 429 {
                        // Throttled (it says Retry-After): back off rather than spin.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            Ok::<_, anyhow::Error>((lat, refused))
        }));
    }
    let mut lat = Vec::new();
    let mut refused: HashMap<u16, u64> = HashMap::new();
    for t in tasks {
        let (l, r) = t.await.context("login task panicked")??;
        lat.extend(l);
        for (k, v) in r {
            *refused.entry(k).or_insert(0) += v;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(r) = running {
        r.stop().await?;
    }
    let mut refused: Vec<(u16, u64)> = refused.into_iter().collect();
    refused.sort();
    Ok(LoginReport {
        cost,
        where_,
        concurrency: n,
        secs: elapsed,
        ok: lat.len() as u64,
        per_sec: lat.len() as f64 / elapsed,
        latency: Dist::of_micros(lat),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d = Dist::of_micros((1..=100).map(|x| x * 1000).collect());
        assert_eq!(
            (d.n, d.p50, d.p95, d.p99, d.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Dist::of_micros(vec![]), Dist::default());
    }

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://wavry:secret@db/wavry"),
            "postgres://wavry:***@db/wavry"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn registrations_spread_ten_per_loopback_address() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(register_source(3, false, lo), None);
        assert_eq!(register_source(9, true, lo), register_source(0, true, lo));
        assert_ne!(register_source(10, true, lo), register_source(9, true, lo));
        let far = register_source(2499 * 10, true, lo);
        assert!(far.is_some_and(|a| a.is_loopback()));
    }
}
