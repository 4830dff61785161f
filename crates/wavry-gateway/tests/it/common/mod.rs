//! What the gateway's integration tests share: a real gateway on 127.0.0.1:0 with a SQLite
//! file in a temporary directory, spoken to over HTTP with reqwest, on a `ManualClock`.
//!
//! With `WAVRY_TEST_GATEWAY_DB=postgres` (and `WAVRY_TEST_POSTGRES_URL`), every test gateway uses
//! PostgreSQL instead: a database of its own, named after its temporary directory (so a
//! restart in the same directory finds its data), on that server. scripts/test.sh runs the
//! suite both ways.
#![allow(dead_code)] // each test crate uses a different part

pub mod chromium;
pub mod peer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wavry_gateway::{Argon2Cost, Config, Gateway, GatewayError, ManualClock};
use wavry_proto::account::{AccountInfo, ErrorBody, ErrorCode, LoginResponse, SessionList};

/// 2027-01-15T08:00:00Z, on a TOTP step boundary, plus 5 s: tests start well inside a step.
pub const T0_MS: i64 = 1_800_000_000_000 + 5_000;
pub const PASSWORD: &str = "correct horse battery";

pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub db_path: PathBuf,
    /// The database the gateway uses (the SQLite file's URL, or a PostgreSQL one).
    pub db_url: String,
    /// What it was started with.
    pub config: Config,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), GatewayError>>>,
}

/// Whether the suite runs on PostgreSQL (`WAVRY_TEST_GATEWAY_DB=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("WAVRY_TEST_GATEWAY_DB").is_ok_and(|v| v == "postgres")
}

/// In PostgreSQL mode, the URL of a database for `dir` (created on first use).
async fn postgres_for(dir: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let server = std::env::var("WAVRY_TEST_POSTGRES_URL")
        .expect("WAVRY_TEST_GATEWAY_DB=postgres needs WAVRY_TEST_POSTGRES_URL");
    Some(postgres_database(&server, dir).await)
}

/// A database of its own for `dir` on the PostgreSQL server of `server` (created on first
/// use); its URL. Tests on one database would also share its NOTIFY channel.
pub async fn postgres_database(server: &str, dir: &Path) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let name = format!("wavry_test_{:016x}", h.finish());
    let admin = sqlx::PgPool::connect(server)
        .await
        .expect("PostgreSQL reachable");
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&admin)
        .await
        .unwrap();
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    format!("{base}/{name}")
}

/// A pool on a test gateway's database, to look at what it stored.
pub async fn open_db(gw_db_url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(gw_db_url).await.unwrap()
}

/// The database URL `TestGateway::start(dir)` uses: the SQLite file `dir/gateway.db`, or in
/// PostgreSQL mode a database of its own for `dir`.
pub async fn database_url(dir: &Path) -> String {
    match postgres_for(dir).await {
        Some(url) => url,
        None => format!("sqlite://{}", dir.join("gateway.db").display()),
    }
}

pub fn test_config(db_path: &Path) -> Config {
    Config {
        database_url: format!("sqlite://{}", db_path.display()),
        // Beside the database, named also for PostgreSQL (where it has no default).
        signing_key_file: Some(db_path.with_file_name("gateway-signing.key")),
        // Test-only: the cheapest Argon2 keeps the suite fast (owasp_cost_end_to_end uses
        // the real cost).
        argon2: Argon2Cost::TEST_ONLY_INSECURE,
        ..Config::default()
    }
}

impl TestGateway {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, Arc::new(ManualClock::new(T0_MS)), |_| {}).await
    }

    pub async fn start_with(
        dir: &Path,
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let db_path = dir.join("gateway.db");
        let mut config = test_config(&db_path);
        if let Some(url) = postgres_for(dir).await {
            config.database_url = url;
        }
        tweak(&mut config);
        let db_url = config.database_url.clone();
        let gateway = Gateway::open_with_clock(config.clone(), clock.clone())
            .await
            .expect("gateway opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .user_agent("wavry-gateway-tests")
                .build()
                .unwrap(),
            clock,
            db_path,
            db_url,
            config,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful shutdown, as Ctrl-C does it.
    pub async fn stop(mut self) {
        self.begin_stop();
        self.wait_stopped().await;
    }

    pub fn begin_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn wait_stopped(mut self) {
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("shuts down in time")
                .expect("server task")
                .expect("server ends cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut rb = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut rb = self.http.get(self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/v1/accounts",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        totp: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"email": email, "password": password});
        if let Some(code) = totp {
            body["totp_code"] = json!(code);
        }
        self.post("/v1/auth/login", body, None).await
    }

    /// Register and log in; the session.
    pub async fn user(&self, email: &str) -> LoginResponse {
        expect::<AccountInfo>(self.register(email, PASSWORD).await, StatusCode::CREATED).await;
        expect(self.login(email, PASSWORD, None).await, StatusCode::OK).await
    }

    pub async fn sessions(&self, token: &str) -> SessionList {
        expect(self.get("/v1/sessions", Some(token)).await, StatusCode::OK).await
    }
}

pub async fn expect<T: DeserializeOwned>(resp: reqwest::Response, status: StatusCode) -> T {
    let got = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A JSON error answer with this status and code.
pub async fn expect_error(
    resp: reqwest::Response,
    status: StatusCode,
    code: ErrorCode,
) -> ErrorBody {
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: ErrorBody = expect(resp, status).await;
    assert_eq!(ctype, "application/json");
    assert_eq!(body.code, code, "{body:?}");
    assert!(!body.error.is_empty());
    body
}
