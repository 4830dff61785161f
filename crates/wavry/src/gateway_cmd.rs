//! `wavry gateway`: run the account gateway (wavry-gateway) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use wavry_gateway::{Argon2Cost, Config, Gateway, HttpLimits};

/// How long requests in flight get to finish after Ctrl-C/SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Address and port to listen on for HTTP. Keep it on loopback behind a TLS-terminating
    /// reverse proxy: the gateway itself speaks plain HTTP.
    #[arg(long, env = "WAVRY_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database: sqlite://PATH (an embedded file, created with its directory on first run) or
    /// postgres://USER:PASSWORD@HOST/DB. Default: sqlite://<config dir>/gateway.db, where the
    /// config dir is $WAVRY_CONFIG_DIR or the platform's (e.g. ~/.config/wavry).
    #[arg(long, env = "WAVRY_GATEWAY_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// Most database connections held open.
    #[arg(long, env = "WAVRY_GATEWAY_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,

    /// A session ends this long after login, however it is used (e.g. 30d, 12h, 90m, 3600s).
    #[arg(long, env = "WAVRY_GATEWAY_SESSION_TTL", default_value = "30d", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// A session ends when unused for this long (same units as --session-ttl).
    #[arg(long, env = "WAVRY_GATEWAY_SESSION_IDLE_TTL", default_value = "7d", value_parser = parse_duration)]
    pub session_idle_ttl: Duration,

    /// Largest request body accepted, in bytes; larger ones are answered 413.
    #[arg(long, env = "WAVRY_GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Most HTTP connections open at once; further ones are closed as soon as they arrive.
    #[arg(long, env = "WAVRY_GATEWAY_MAX_CONNECTIONS", default_value_t = HttpLimits::default().max_connections)]
    pub max_connections: usize,

    /// A request's headers must arrive within this (same units as --session-ttl), else the
    /// connection is closed: slow clients cannot hold connections open.
    #[arg(long, env = "WAVRY_GATEWAY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Most passwords hashed at once (each takes --argon2-memory-kib of memory and a core);
    /// further logins queue, up to 10 s, then get 503. Default: the number of CPUs.
    #[arg(long, env = "WAVRY_GATEWAY_MAX_CONCURRENT_HASHES")]
    pub max_concurrent_hashes: Option<usize>,

    /// Argon2id memory cost in KiB. The default (with --argon2-iterations 2 and
    /// --argon2-parallelism 1) is OWASP's baseline; lower is for tests only. Hashes stored at
    /// another cost are upgraded at their owner's next login.
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_MEMORY_KIB", default_value_t = Argon2Cost::OWASP.m_kib)]
    pub argon2_memory_kib: u32,

    /// Argon2id passes (time cost).
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_ITERATIONS", default_value_t = Argon2Cost::OWASP.t)]
    pub argon2_iterations: u32,

    /// Argon2id lanes (parallelism).
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_PARALLELISM", default_value_t = Argon2Cost::OWASP.p)]
    pub argon2_parallelism: u32,

    /// Issuer name shown in authenticator apps for TOTP (no ':').
    #[arg(long, env = "WAVRY_GATEWAY_TOTP_ISSUER", default_value = "Wavry")]
    pub totp_issuer: String,
}

/// "30d", "12h", "90m", "45s" or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a number with a unit (30d, 12h, 90m, 45s), got {s:?}"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))?;
    if secs == 0 {
        return Err("must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

fn default_database() -> Result<String> {
    let dir = rift_crypto::identity::config_dir().context(
        "no configuration directory for the default database; pass --database or set \
         WAVRY_CONFIG_DIR",
    )?;
    let path = dir.join("gateway.db");
    let Some(path) = path.to_str() else {
        bail!(
            "the default database path {} is not UTF-8; pass --database",
            path.display()
        );
    };
    Ok(format!("sqlite://{path}"))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

pub fn run_gateway(args: GatewayArgs) -> Result<()> {
    let database_url = match args.database {
        Some(url) => url,
        None => default_database()?,
    };
    let defaults = Config::default();
    let config = Config {
        listen: args.listen,
        database_url,
        db_max_connections: args.db_max_connections,
        argon2: Argon2Cost {
            m_kib: args.argon2_memory_kib,
            t: args.argon2_iterations,
            p: args.argon2_parallelism,
        },
        max_concurrent_hashes: args
            .max_concurrent_hashes
            .unwrap_or(defaults.max_concurrent_hashes),
        session_absolute_ttl: args.session_ttl,
        session_idle_ttl: args.session_idle_ttl,
        max_body_bytes: args.max_body_bytes,
        http: HttpLimits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_timeout,
            ..defaults.http
        },
        totp_issuer: args.totp_issuer,
        ..defaults
    };
    if config.argon2 != Argon2Cost::OWASP {
        tracing::warn!(
            cost = ?config.argon2,
            "Argon2 cost differs from the OWASP baseline (m=19456 KiB, t=2, p=1)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<()> {
    let shown_db = redact(&config.database_url);
    let listen = config.listen;
    let gateway = Gateway::open(config)
        .await
        .with_context(|| format!("opening the gateway database {shown_db}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr().unwrap_or(listen);
    println!("wavry gateway: listening on http://{addr} (database {shown_db}); Ctrl-C stops it");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(gateway.serve(listener, async {
        let _ = stop_rx.await;
    }));
    tokio::select! {
        ended = &mut server => {
            // The server ended without being asked to: an error.
            return ended.context("gateway task")?.context("serving");
        }
        signal = shutdown_signal() => signal?,
    }
    println!("wavry gateway: stopping (requests in flight may take up to {DRAIN_TIMEOUT:?})");
    let _ = stop_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(ended) => ended.context("gateway task")?.context("serving")?,
        Err(_) => tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; exiting"),
    }
    println!("wavry gateway: stopped");
    Ok(())
}

async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        for bad in ["", "d", "0s", "5w", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            redact("postgres://wavry:s3cret@db.example:5432/wavry"),
            "postgres://***@db.example:5432/wavry"
        );
        assert_eq!(
            redact("sqlite:///var/lib/wavry/gateway.db"),
            "sqlite:///var/lib/wavry/gateway.db"
        );
    }
}
