//! `wavry gateway`: run the gateway (wavry-gateway) until Ctrl-C or SIGTERM; and
//! `wavry gateway rotate-signing-key`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wavry_gateway::{
    parse_duration, AdminToken, Argon2Cost, Cidr, Config, FileConfig, Gateway, HttpLimits,
    SystemClock, ADMIN_TOKEN_MIN_CHARS,
};

/// How long requests in flight get to finish after Ctrl-C/SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

// No clap defaults here: a flag or variable that is not given falls back to the configuration
// file, then to `wavry_gateway::Config::default()`; the defaults are named in the help text.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub action: Option<GatewayAction>,

    /// TOML configuration file with any of the settings below, named like the flags with '_'
    /// for '-' (e.g. session_ttl = "14d"). Flags and environment variables override it.
    #[arg(long, env = "WAVRY_GATEWAY_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on for HTTP [default: 127.0.0.1:8080]. Keep it on loopback
    /// behind a TLS-terminating reverse proxy: the gateway itself speaks plain HTTP.
    #[arg(long, env = "WAVRY_GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Database: sqlite://PATH (an embedded file, created with its directory on first run) or
    /// postgres://USER:PASSWORD@HOST/DB [default: sqlite://<config dir>/gateway.db, where the
    /// config dir is $WAVRY_CONFIG_DIR or the platform's, e.g. ~/.config/wavry].
    #[arg(
        long,
        env = "WAVRY_GATEWAY_DATABASE",
        value_name = "URL",
        global = true
    )]
    pub database: Option<String>,

    /// The file holding the Ed25519 key that signs host records (whoever has it can vouch for
    /// hosts). It must be mode 0600 and belong to the gateway's user, else the gateway refuses
    /// to start and says how to fix it. Created on first start, on a database that never had a
    /// key; every instance on one PostgreSQL needs a copy of the same file. The database keeps
    /// only public keys [default: gateway-signing.key beside a SQLite database, else in the
    /// config dir].
    #[arg(
        long,
        env = "WAVRY_GATEWAY_SIGNING_KEY_FILE",
        value_name = "PATH",
        global = true
    )]
    pub signing_key_file: Option<PathBuf>,

    /// Most database connections held open [default: 8].
    #[arg(long, env = "WAVRY_GATEWAY_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,

    /// A session ends this long after login, however it is used, e.g. 30d, 12h, 90m, 3600s; a
    /// duration needs its unit [default: 30d].
    #[arg(long, env = "WAVRY_GATEWAY_SESSION_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub session_ttl: Option<Duration>,

    /// A session ends when unused for this long [default: 7d].
    #[arg(long, env = "WAVRY_GATEWAY_SESSION_IDLE_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub session_idle_ttl: Option<Duration>,

    /// Largest request body accepted, in bytes; larger ones are answered 413 [default: 65536].
    #[arg(long, env = "WAVRY_GATEWAY_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Most HTTP connections open at once; further ones are closed as soon as they arrive
    /// [default: 10000].
    #[arg(long, env = "WAVRY_GATEWAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// A request's headers must arrive within this, else the connection is closed: slow
    /// clients cannot hold connections open [default: 10s].
    #[arg(long, env = "WAVRY_GATEWAY_HEADER_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,

    /// Most passwords hashed at once (each takes --argon2-memory-kib of memory and a core);
    /// further logins queue, up to 10 s, then get 503 [default: the number of CPUs].
    #[arg(long, env = "WAVRY_GATEWAY_MAX_CONCURRENT_HASHES", value_name = "N")]
    pub max_concurrent_hashes: Option<usize>,

    /// Argon2id memory cost in KiB [default: 19456; with --argon2-iterations 2 and
    /// --argon2-parallelism 1 that is OWASP's baseline; lower is for tests only]. Hashes stored
    /// at another cost are upgraded at their owner's next login.
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_MEMORY_KIB", value_name = "KIB")]
    pub argon2_memory_kib: Option<u32>,

    /// Argon2id passes, the time cost [default: 2].
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_ITERATIONS", value_name = "N")]
    pub argon2_iterations: Option<u32>,

    /// Argon2id lanes, the parallelism [default: 1].
    #[arg(long, env = "WAVRY_GATEWAY_ARGON2_PARALLELISM", value_name = "N")]
    pub argon2_parallelism: Option<u32>,

    /// Issuer name shown in authenticator apps for TOTP, without ':' [default: Wavry].
    #[arg(long, env = "WAVRY_GATEWAY_TOTP_ISSUER", value_name = "NAME")]
    pub totp_issuer: Option<String>,

    /// Serve the admin dashboard at /admin and its API at /admin/api/, for requests carrying
    /// this token (at least 32 characters; a shorter one leaves the panel off, with an error).
    /// Prefer the environment variable: a flag shows in the process list. Not read from the
    /// configuration file. [default: no admin panel]
    #[arg(
        long,
        env = "ADMIN_PANEL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// A reverse proxy (address or block, e.g. 127.0.0.1 or 10.0.0.0/8) whose X-Forwarded-For
    /// header names the real client, for throttling and the audit log. Repeat it, or give a
    /// comma-separated list. Without it the header is ignored: anyone can send one
    /// [default: none].
    #[arg(
        long = "trusted-proxy",
        env = "WAVRY_GATEWAY_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<Cidr>,
}

#[derive(Subcommand, Debug)]
pub enum GatewayAction {
    /// Replace the key that signs host records; the old one stays published until they expire.
    ///
    /// Acts on the gateway of the same --config, --database and --signing-key-file: run it
    /// where the gateway runs, as its user. The new key is written to the key file (0600) and
    /// new host records are signed with it:
    /// a running gateway reading that file switches at its next heartbeat (15 s); copy the file
    /// to every other instance on the same database. The old key stays published at
    /// /v1/gateway/signing-keys until the records it signed have expired. With the key file
    /// lost, this makes a new one and retires the lost key.
    RotateSigningKey,
}

fn default_database() -> Result<String> {
    let dir = wavry_config::config_dir().context(
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

/// The signing key file when none is named: beside a SQLite database file (the library's
/// choice), else in the config dir.
fn default_signing_key_file(database_url: &str) -> Result<Option<PathBuf>> {
    let probe = Config {
        database_url: database_url.to_string(),
        ..Config::default()
    };
    if probe.signing_key_path().is_ok() {
        return Ok(None);
    }
    let dir = wavry_config::config_dir().context(
        "no configuration directory for the signing key file; pass --signing-key-file or set \
         WAVRY_CONFIG_DIR",
    )?;
    Ok(Some(dir.join(wavry_gateway::signing_key::KEY_FILE_NAME)))
}

/// Flag or variable, else the file, else the built-in default.
fn merge(args: GatewayArgs, file: FileConfig) -> Result<Config> {
    let d = Config::default();
    let database_url = match args.database.or(file.database) {
        Some(url) => url,
        None => default_database()?,
    };
    let signing_key_file = match args.signing_key_file.or(file.signing_key_file) {
        Some(p) => Some(p),
        None => default_signing_key_file(&database_url)?,
    };
    Ok(Config {
        signing_key_file,
        listen: args.listen.or(file.listen).unwrap_or(d.listen),
        database_url,
        db_max_connections: args
            .db_max_connections
            .or(file.db_max_connections)
            .unwrap_or(d.db_max_connections),
        argon2: Argon2Cost {
            m_kib: args
                .argon2_memory_kib
                .or(file.argon2_memory_kib)
                .unwrap_or(d.argon2.m_kib),
            t: args
                .argon2_iterations
                .or(file.argon2_iterations)
                .unwrap_or(d.argon2.t),
            p: args
                .argon2_parallelism
                .or(file.argon2_parallelism)
                .unwrap_or(d.argon2.p),
        },
        max_concurrent_hashes: args
            .max_concurrent_hashes
            .or(file.max_concurrent_hashes)
            .unwrap_or(d.max_concurrent_hashes),
        session_absolute_ttl: args
            .session_ttl
            .or(file.session_ttl)
            .unwrap_or(d.session_absolute_ttl),
        session_idle_ttl: args
            .session_idle_ttl
            .or(file.session_idle_ttl)
            .unwrap_or(d.session_idle_ttl),
        max_body_bytes: args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(d.max_body_bytes),
        http: HttpLimits {
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.http.max_connections),
            header_read_timeout: args
                .header_timeout
                .or(file.header_timeout)
                .unwrap_or(d.http.header_read_timeout),
            ..d.http
        },
        totp_issuer: args
            .totp_issuer
            .or(file.totp_issuer)
            .unwrap_or_else(|| d.totp_issuer.clone()),
        admin_token: args.admin_token.map(AdminToken::new),
        trusted_proxies: if args.trusted_proxy.is_empty() {
            file.trusted_proxies
                .unwrap_or_default()
                .iter()
                .map(|s| s.parse::<Cidr>().map_err(anyhow::Error::msg))
                .collect::<Result<_>>()
                .context("trusted_proxies in the configuration file")?
        } else {
            args.trusted_proxy
        },
        ..d
    })
}

pub fn run_gateway(mut args: GatewayArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let action = args.action.take();
    let config = merge(args, file)?;
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    if let Some(GatewayAction::RotateSigningKey) = action {
        return runtime()?.block_on(rotate(config));
    }
    raise_fd_limit();
    if config.argon2 != Argon2Cost::OWASP {
        tracing::warn!(
            cost = ?config.argon2,
            "Argon2 cost differs from the OWASP baseline (m=19456 KiB, t=2, p=1)"
        );
    }
    runtime()?.block_on(serve(config))
}

async fn rotate(config: Config) -> Result<()> {
    let shown_db = redact(&config.database_url);
    let path = config
        .signing_key_path()
        .context("finding the signing key file")?;
    let heartbeat = config.signal.heartbeat;
    let r = wavry_gateway::rotate_signing_key(&config, &SystemClock)
        .await
        .with_context(|| format!("rotating the signing key of the gateway on {shown_db}"))?;
    let path = path.display();
    println!(
        "wavry gateway: new signing key {} written to {path}: new host records are signed with it",
        r.new_key_id
    );
    if r.retired.is_empty() {
        println!("wavry gateway: the database had no signing key before");
    } else {
        let now = wavry_gateway::Clock::now_secs(&SystemClock);
        let secs = r.published_until.saturating_sub(now).max(0);
        println!(
            "wavry gateway: retired {} (published at /v1/gateway/signing-keys for at least {secs} s \
             more, until the host records it signed have expired)",
            r.retired.join(", ")
        );
    }
    if !r.replaced_file {
        println!("wavry gateway: there was no key file: the retired key was lost, not replaced");
    }
    println!(
        "wavry gateway: a running gateway that reads {path} switches within {}s; copy {path} to \
         every other instance on this database (their --signing-key-file)",
        heartbeat.as_secs()
    );
    Ok(())
}

/// Each signaling socket is a file descriptor: lift the soft limit (often 1024) to the hard one
/// the system allows, and say what it is.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    tracing::info!(
        open_files = lim.rlim_cur,
        "file descriptor limit (about one per signaling socket)"
    );
    if lim.rlim_cur < 4096 {
        tracing::warn!(
            open_files = lim.rlim_cur,
            "few file descriptors: the gateway holds about this many signaling sockets \
             (raise the hard limit, e.g. LimitNOFILE= in a systemd unit)"
        );
    }
}

async fn serve(config: Config) -> Result<()> {
    let shown_db = redact(&config.database_url);
    let listen = config.listen;
    let admin_asked = config.admin_token.is_some();
    let gateway = Gateway::open(config)
        .await
        .with_context(|| format!("starting the gateway on {shown_db}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr().unwrap_or(listen);
    println!("wavry gateway: listening on http://{addr} (database {shown_db}); Ctrl-C stops it");
    if gateway.admin_enabled() {
        println!("wavry gateway: admin dashboard at http://{addr}/admin");
    } else if admin_asked {
        eprintln!(
            "wavry gateway: error: ADMIN_PANEL_TOKEN is shorter than {ADMIN_TOKEN_MIN_CHARS} \
             characters; the admin panel is off (everything else runs)"
        );
    }

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
