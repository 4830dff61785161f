//! A small driver for headless Chromium over the Chrome DevTools Protocol (CDP), for tests
//! that load a page served on 127.0.0.1 and act on it as a person would.
//!
//! One `Browser` = one Chromium process with its own profile in a fresh temporary directory
//! and DevTools on a port the kernel picks (`--remote-debugging-port=0`), so tests can run
//! side by side. It talks to the browser's WebSocket with flattened sessions: one page target,
//! whose commands carry its `sessionId`. Every wait has a deadline, so a broken browser fails a
//! test instead of hanging it. Dropping the `Browser` kills Chromium's whole process group.
//!
//! Needs (dev-)dependencies: tokio (features macros, rt-multi-thread, process, io-util, time,
//! net, sync), tokio-tungstenite 0.29, futures-util 0.3 (sink, std), serde_json 1, tempfile 3,
//! base64 0.22; and the Debian package `chromium`.
//!
//! ```ignore
//! let Some(bin) = chromium::find_chromium() else {
//!     wavry_testenv::skip("Chromium is not installed (apt-get install chromium)");
//!     return;
//! };
//! let mut b = chromium::Browser::launch_with(&bin).await.expect("launch chromium");
//! b.goto(&format!("http://{addr}/")).await.expect("goto");
//! let title = b.eval("document.title").await.expect("eval");
//! ```
#![allow(dead_code)] // each test crate uses a different part

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Time for Chromium to print its DevTools address (slow on a loaded 2-CPU machine).
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for any one CDP command to be answered.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for a navigation to reach the page's `load` event.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The page's viewport in CSS pixels (also the screenshot size).
pub const VIEWPORT: (u32, u32) = (1280, 800);

// Debian's /usr/bin/chromium is a shell script that `exec`s the real binary, so the child's
// pid is Chromium's own. libc's kill(2) lets Drop signal the whole process group (renderers,
// zygote, GPU and network processes) without a libc crate dependency.
unsafe extern "C" {
    safe fn kill(pid: i32, sig: i32) -> i32;
}
const SIGKILL: i32 = 9;

/// Where Chromium is (see `wavry_testenv::chromium`). `None` means the test should call
/// `wavry_testenv::skip` and return (under CI that fails it).
pub fn find_chromium() -> Option<PathBuf> {
    wavry_testenv::chromium()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Browser {
    child: Child,
    /// Chromium's process group (its own pid, see `process_group(0)` below).
    pgid: Option<i32>,
    /// The page target's flattened session.
    session: String,
    ws: Ws,
    next_id: u64,
    /// loaderIds whose `load` lifecycle event has been seen since the last `goto`; kept from
    /// events read while waiting for other answers, since `load` can arrive before them.
    loaded: HashSet<String>,
    /// Set on Inspector.targetCrashed / detach: no answer will come any more.
    crashed: bool,
    /// Last lines Chromium printed on stderr, for error messages.
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    // Last field: dropped after Drop::drop has killed Chromium, so the profile can be removed.
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium found by [`find_chromium`]; Err (with the reason) when there is none.
    pub async fn launch() -> Result<Browser, String> {
        let bin = find_chromium()
            .ok_or("chromium not found (apt-get install -y --no-install-recommends chromium)")?;
        Self::launch_with(&bin).await
    }

    pub async fn launch_with(bin: &Path) -> Result<Browser, String> {
        let profile = tempfile::Builder::new()
            .prefix("cdp-chromium-")
            .tempdir()
            .map_err(|e| format!("creating the profile directory: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox", // we run as root in a container
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            // No network here: without these Chromium keeps trying to reach Google.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-port=0", // the kernel picks a free port; read it from stderr
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0) // its own group, so Drop can kill every Chromium process at once
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pgid = child.id().map(|p| p as i32);
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;

        // Read stderr until the DevTools address, then keep draining it in a task: a full
        // pipe would block Chromium (it logs dbus errors here all the time).
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let tail2 = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_string());
                    }
                }
                // Headless Chromium without a D-Bus logs these by the dozen: harmless noise.
                if line.contains(":ERROR:dbus/") || line.contains("cpufreq") {
                    continue;
                }
                if let Ok(mut t) = tail2.lock() {
                    if t.len() >= 20 {
                        t.remove(0);
                    }
                    t.push(line);
                }
            }
        });
        let ws = match connect(rx).await {
            Ok(ws) => ws,
            Err(what) => {
                // Not yet a Browser, so no Drop: kill the group here (the Child's
                // kill_on_drop only reaches the main process).
                kill_and_reap(pgid, &mut child);
                let tail = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                return Err(format!(
                    "launching chromium: {what}\n--- chromium stderr (last lines) ---\n{tail}"
                ));
            }
        };
        let mut b = Browser {
            child,
            pgid,
            session: String::new(),
            ws,
            next_id: 0,
            loaded: HashSet::new(),
            crashed: false,
            stderr_tail: tail,
            profile,
        };
        // From here on an early return drops `b`, which kills Chromium.
        let target = b
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = str_field(&target, "targetId")?;
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        b.session = str_field(&attached, "sessionId")?;
        b.page("Page.enable", json!({})).await?;
        // Lifecycle events carry the loaderId, so `goto` waits for *its* load, not a stale one.
        b.page("Page.setLifecycleEventsEnabled", json!({ "enabled": true }))
            .await?;
        b.page("Inspector.enable", json!({})).await?; // for Inspector.targetCrashed
                                                      // A fixed viewport (headless's default window loses ~90 px to invisible browser UI).
        let (width, height) = VIEWPORT;
        b.page(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        Ok(b)
    }

    /// Navigates the page and waits for its `load` event. Err when the navigation itself fails
    /// (e.g. connection refused); an HTTP error status still loads a page and is Ok.
    pub async fn goto(&mut self, url: &str) -> Result<(), String> {
        self.loaded.clear();
        let nav = self.page("Page.navigate", json!({ "url": url })).await?;
        if let Some(err) = nav
            .get("errorText")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(format!("navigating to {url}: {err}"));
        }
        // No loaderId: a same-document navigation (only the #fragment changed); nothing loads.
        let Some(loader) = nav
            .get("loaderId")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(());
        };
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while !self.loaded.contains(&loader) {
            self.read_one(deadline)
                .await
                .map_err(|e| format!("waiting for {url} to load: {e}"))?;
        }
        Ok(())
    }

    /// Evaluates `js` in the page (promises are awaited) and returns its value as JSON
    /// (`undefined` → Null). A thrown exception is an Err with its text. Several statements
    /// are fine; wrap them in `(() => { … })()` to keep `let`/`const` out of the global scope.
    pub async fn eval(&mut self, js: &str) -> Result<Value, String> {
        self.eval_until(js, Instant::now() + COMMAND_TIMEOUT).await
    }

    async fn eval_until(&mut self, js: &str, deadline: Instant) -> Result<Value, String> {
        let params = json!({
            "expression": js,
            "returnByValue": true,
            "awaitPromise": true,
            "userGesture": true, // so clicks may open things that need a user gesture
        });
        let session = self.session.clone();
        let r = self
            .call_until(Some(&session), "Runtime.evaluate", params, deadline)
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex
                .pointer("/exception/description")
                .and_then(Value::as_str)
                .or_else(|| ex.get("text").and_then(Value::as_str))
                .unwrap_or("unknown exception");
            return Err(format!("JS exception: {text}"));
        }
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `js_condition` every 50 ms until its value is truthy (by JS rules) and returns
    /// that value. Errors (e.g. a page mid-navigation) count as not yet; on timeout the Err
    /// carries the last value or error.
    pub async fn wait_for(
        &mut self,
        js_condition: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A try may not outlive the wait (a never-settling promise), but gets at least 1 s.
            let try_deadline = deadline.max(Instant::now() + Duration::from_secs(1));
            let last = match self.eval_until(js_condition, try_deadline).await {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => format!("last value {v}"),
                Err(e) => format!("last error {e}"),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for `{js_condition}`: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&mut self) -> Result<Vec<u8>, String> {
        let r = self
            .page("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = str_field(&r, "data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("screenshot is not base64: {e}"))
    }

    /// Chromium's pid (also its process group id), for tests that check it is gone.
    pub fn pid(&self) -> Option<u32> {
        self.pgid.map(|p| p as u32)
    }

    /// The profile directory, removed when the Browser is dropped.
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    /// Any CDP command on the page session, for what the methods above do not cover.
    pub async fn page(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        self.call_until(session, method, params, deadline).await
    }

    /// Sends one command and reads messages until its answer (matched by id) arrives.
    async fn call_until(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<Value, String> {
        if self.crashed {
            return Err(format!("{method}: the page crashed or was closed earlier"));
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        match tokio::time::timeout_at(
            deadline.into(),
            self.ws.send(Message::text(msg.to_string())),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{method}: sending: {e}")),
            Err(_) => return Err(format!("{method}: sending timed out")),
        }
        loop {
            let m = self
                .read_one(deadline)
                .await
                .map_err(|e| format!("{method}: {e}"))?;
            if m.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // an event, or the late answer to a command that timed out earlier
            }
            if let Some(err) = m.get("error") {
                return Err(format!("{method}: {err}"));
            }
            return Ok(m.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Reads one CDP message, noting page `load` lifecycle events on the way.
    async fn read_one(&mut self, deadline: Instant) -> Result<Value, String> {
        loop {
            let next = match tokio::time::timeout_at(deadline.into(), self.ws.next()).await {
                Err(_) => return Err(self.with_stderr("timed out waiting for the browser")),
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err(self.with_stderr("the browser closed the DevTools connection"))
                }
                Ok(Some(Err(e))) => {
                    return Err(self.with_stderr(&format!("DevTools connection: {e}")))
                }
                Ok(Some(Ok(m))) => m,
            };
            let text = match &next {
                Message::Text(t) => t.as_str(),
                _ => continue, // ping/pong/binary: nothing CDP sends us
            };
            if std::env::var_os("CDP_TRACE").is_some() {
                eprintln!("cdp <- {}", text.chars().take(300).collect::<String>());
            }
            let v: Value =
                serde_json::from_str(text).map_err(|e| format!("bad CDP message: {e}"))?;
            let for_us = v.get("sessionId").and_then(Value::as_str) == Some(self.session.as_str());
            match v.get("method").and_then(Value::as_str) {
                Some("Page.lifecycleEvent")
                    if for_us
                        && v.pointer("/params/name").and_then(Value::as_str) == Some("load") =>
                {
                    if let Some(l) = v.pointer("/params/loaderId").and_then(Value::as_str) {
                        self.loaded.insert(l.to_string());
                    }
                }
                // The renderer died; its pending commands would never be answered. Fail now,
                // and every later call too, rather than at a timeout.
                Some("Inspector.targetCrashed") if for_us => {
                    self.crashed = true;
                    return Err(self.with_stderr("the page crashed"));
                }
                // Our page went away (closed): the same.
                Some("Target.detachedFromTarget")
                    if v.pointer("/params/sessionId").and_then(Value::as_str)
                        == Some(self.session.as_str()) =>
                {
                    self.crashed = true;
                    return Err(self.with_stderr("the page target was detached"));
                }
                _ => {}
            }
            return Ok(v);
        }
    }

    fn with_stderr(&self, what: &str) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.join("\n"))
            .unwrap_or_default();
        format!("{what}\n--- chromium stderr (last lines) ---\n{tail}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_and_reap(self.pgid, &mut self.child);
    }
}

/// SIGKILLs Chromium's whole process group, then waits briefly for the main process, so the
/// profile directory (removed right after) is not written to while it is deleted. Bounded
/// (blocking, at most 2 s): never hangs a test.
fn kill_and_reap(pgid: Option<i32>, child: &mut Child) {
    if let Some(p) = pgid.filter(|&p| p > 1) {
        kill(-p, SIGKILL); // negative pid: the whole process group
    }
    let _ = child.start_kill();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
}

/// Waits for the DevTools address from stderr and connects to it.
async fn connect(addr: tokio::sync::oneshot::Receiver<String>) -> Result<Ws, String> {
    let url = match tokio::time::timeout(LAUNCH_TIMEOUT, addr).await {
        Ok(Ok(url)) => url,
        Ok(Err(_)) => return Err("Chromium exited before printing its DevTools address".into()),
        Err(_) => return Err(format!("no DevTools address within {LAUNCH_TIMEOUT:?}")),
    };
    // Large limits: a screenshot arrives as one base64 message.
    let config = WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
    match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(format!("connecting to {url}: {e}")),
        Err(_) => Err(format!("connecting to {url}: timed out")),
    }
}

fn str_field(v: &Value, name: &str) -> Result<String, String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("CDP answer without `{name}`: {v}"))
}

/// JavaScript truthiness of a returned value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
