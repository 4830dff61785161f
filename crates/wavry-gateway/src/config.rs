//! Gateway configuration. Every field has a production default; the `wavry gateway` command
//! fills it from flags and `WAVRY_…` environment variables.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::GatewayError;
pub use crate::serve::HttpLimits;

/// Argon2id cost. The default is OWASP's baseline (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Argon2Cost {
    /// OWASP Password Storage Cheat Sheet baseline for Argon2id.
    pub const OWASP: Argon2Cost = Argon2Cost {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// The cheapest cost Argon2 allows. **Tests only**: it makes the suite fast, and makes
    /// stolen hashes cheap to crack.
    pub const TEST_ONLY_INSECURE: Argon2Cost = Argon2Cost {
        m_kib: 8,
        t: 1,
        p: 1,
    };
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Failed-login backoff, for one kind of key (an account, or a client address).
///
/// After `threshold` failures in a row the key is locked for `base_lockout`, and each further
/// failure doubles that, up to `max_lockout`. A key forgets its failures `forget_after` after
/// its last one (a successful login also clears an account's count, not an address's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub threshold: u32,
    pub base_lockout: Duration,
    pub max_lockout: Duration,
    pub forget_after: Duration,
}

/// Failed-login throttling per account and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub account: Backoff,
    /// Per address (IPv6 by /64: one subscriber usually holds a whole /64).
    pub ip: Backoff,
    /// Most keys remembered at once; the oldest unlocked ones go first when full.
    pub max_entries: usize,
    /// Registrations per client address: this many at once…
    pub register_burst: u32,
    /// …then one per this interval.
    pub register_every: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            // An online guesser gets 5 tries, then 30 s, 1 min, 2 min … 15 min between tries:
            // a few hundred guesses a day at most, per account.
            account: Backoff {
                threshold: 5,
                base_lockout: Duration::from_secs(30),
                max_lockout: Duration::from_secs(15 * 60),
                forget_after: Duration::from_secs(60 * 60),
            },
            // One address trying many accounts (credential stuffing); looser, since many
            // people can share one address behind a NAT.
            ip: Backoff {
                threshold: 20,
                base_lockout: Duration::from_secs(30),
                max_lockout: Duration::from_secs(15 * 60),
                forget_after: Duration::from_secs(60 * 60),
            },
            max_entries: 100_000,
            // Each registration costs an Argon2 hash: 10 at once, then 10 an hour.
            register_burst: 10,
            register_every: Duration::from_secs(6 * 60),
        }
    }
}

/// The signaling WebSocket's timing and limits (docs/SIGNALING.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalConfig {
    /// Peers ping at least this often; a socket silent for three intervals is closed, and a
    /// host's presence row is refreshed this often.
    pub heartbeat: Duration,
    /// A device whose socket dropped stays present this long, and can resume.
    pub resume_grace: Duration,
    /// A signed host record is valid this long.
    pub record_ttl: Duration,
    /// Messages a socket may send per second on average…
    pub messages_per_sec: u32,
    /// …and at once.
    pub message_burst: u32,
    /// Signaling sockets open at once, at most; more are answered 503. Each costs a file
    /// descriptor and about 20 KiB.
    pub max_sockets: usize,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            heartbeat: Duration::from_secs(15),
            resume_grace: Duration::from_secs(30),
            record_ttl: Duration::from_secs(120),
            messages_per_sec: 20,
            message_burst: 40,
            max_sockets: 50_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server listens on (used by the CLI; `Gateway::serve` takes a bound
    /// listener).
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created on first run) or `postgres://…`.
    pub database_url: String,
    /// Most database connections in the pool.
    pub db_max_connections: u32,
    /// How long to wait for a database connection, at start (an unreachable server fails the
    /// start after this) and for each request (then 500).
    pub db_acquire_timeout: Duration,
    pub argon2: Argon2Cost,
    /// Most password hashes computed at once (each takes `argon2.m_kib` of memory and a core).
    pub max_concurrent_hashes: usize,
    /// How long a request waits for a hashing slot before it is answered 503 `busy`.
    pub hash_queue_timeout: Duration,
    /// A session ends this long after login, however it is used.
    pub session_absolute_ttl: Duration,
    /// A session ends when unused for this long.
    pub session_idle_ttl: Duration,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Header deadline, header size and connection caps.
    pub http: HttpLimits,
    pub throttle: ThrottleConfig,
    /// Issuer shown in authenticator apps (`otpauth://` URI); must not contain ':'.
    pub totp_issuer: String,
    pub signal: SignalConfig,
    /// The admin panel's token (`ADMIN_PANEL_TOKEN`); the panel is served only when this is
    /// set and at least `admin::ADMIN_TOKEN_MIN_CHARS` characters long.
    pub admin_token: Option<AdminToken>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (docs/GATEWAY.md); empty: none,
    /// the connection's address is the client's.
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    /// The file holding the Ed25519 key host records are signed with (mode 0600; created on a
    /// database that never had a key). None: `gateway-signing.key` beside a SQLite database
    /// file; with PostgreSQL it must be given, the same file on every instance.
    pub signing_key_file: Option<PathBuf>,
}

/// The admin token: kept out of `Debug` output (and so out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken(<{} characters>)", self.0.chars().count())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            database_url: "sqlite://gateway.db".to_string(),
            db_max_connections: 8,
            db_acquire_timeout: Duration::from_secs(10),
            argon2: Argon2Cost::OWASP,
            max_concurrent_hashes: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            hash_queue_timeout: Duration::from_secs(10),
            session_absolute_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            session_idle_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            max_body_bytes: 64 * 1024,
            http: HttpLimits::default(),
            throttle: ThrottleConfig::default(),
            totp_issuer: "Wavry".to_string(),
            signal: SignalConfig::default(),
            admin_token: None,
            trusted_proxies: Vec::new(),
            signing_key_file: None,
        }
    }
}

impl Config {
    /// Where the signing key file is: `signing_key_file`, else beside the SQLite database file.
    pub fn signing_key_path(&self) -> Result<PathBuf, GatewayError> {
        if let Some(p) = &self.signing_key_file {
            return Ok(p.clone());
        }
        let file = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split_once('?').map_or(rest, |(p, _)| p))
            .filter(|p| !p.is_empty() && *p != ":memory:");
        match file {
            Some(db) => Ok(Path::new(db).with_file_name(crate::signing_key::KEY_FILE_NAME)),
            None => Err(GatewayError::Config(
                "signing_key_file must be set for this database: every gateway instance on it \
                 signs with the key in that file (docs/GATEWAY.md, \"The signing key\")"
                    .into(),
            )),
        }
    }

    /// How long after a refresh a signing key stays published: records live `record_ttl`, and
    /// the key is refreshed every heartbeat.
    pub fn signing_key_horizon(&self) -> Duration {
        self.signal.record_ttl + self.signal.heartbeat * 2
    }

    /// Refuse settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let bad = |what: &str| Err(GatewayError::Config(what.to_string()));
        if argon2::Params::new(self.argon2.m_kib, self.argon2.t, self.argon2.p, None).is_err() {
            return bad("argon2 cost out of range (m >= 8*p KiB, t >= 1, 1 <= p <= 2^24-1)");
        }
        if self.max_concurrent_hashes == 0 {
            return bad("max_concurrent_hashes must be at least 1");
        }
        if self.db_max_connections == 0 || self.db_acquire_timeout.is_zero() {
            return bad("db_max_connections and db_acquire_timeout must be positive");
        }
        if self.session_absolute_ttl.is_zero() || self.session_idle_ttl.is_zero() {
            return bad("session lifetimes must be positive");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024");
        }
        if self.http.max_header_bytes < 8192 {
            // hyper's floor (it would panic below it).
            return bad("http.max_header_bytes must be at least 8192");
        }
        if self.http.max_connections == 0
            || self.http.header_read_timeout.is_zero()
            || self.http.body_read_timeout.is_zero()
        {
            return bad("http: max_connections and the read timeouts must be positive");
        }
        if self.totp_issuer.is_empty() || self.totp_issuer.contains(':') {
            return bad("totp_issuer must be non-empty and contain no ':'");
        }
        let sig = &self.signal;
        if sig.heartbeat < Duration::from_secs(1)
            || sig.record_ttl.is_zero()
            || sig.messages_per_sec == 0
            || sig.message_burst == 0
            || sig.max_sockets == 0
            || sig.max_sockets > tokio::sync::Semaphore::MAX_PERMITS
        {
            return bad("signal: heartbeat must be at least 1 s; record_ttl and rates positive");
        }
        for b in [self.throttle.account, self.throttle.ip] {
            if b.threshold == 0 || b.base_lockout > b.max_lockout {
                return bad("throttle: threshold >= 1 and base_lockout <= max_lockout");
            }
        }
        if self.throttle.max_entries == 0
            || self.throttle.register_burst == 0
            || self.throttle.register_every.is_zero()
        {
            return bad(
                "throttle: max_entries, register_burst and register_every must be positive",
            );
        }
        Ok(())
    }
}

/// A duration with its unit ("30d", "12h", "90m", "45s"; `wavry_config::parse_duration`, so a
/// bare number is refused); more than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = wavry_config::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The optional TOML configuration file of `wavry gateway --config FILE`: the same settings as
/// the flags, named like them with `_` for `-` (`session_ttl = "30d"`). Flags and environment
/// variables override it; unknown keys are refused, so a misspelt setting is not silently
/// ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    pub db_max_connections: Option<u32>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub session_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub session_idle_ttl: Option<Duration>,
    pub max_body_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub header_timeout: Option<Duration>,
    pub max_concurrent_hashes: Option<usize>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub totp_issuer: Option<String>,
    /// Addresses or blocks, e.g. ["127.0.0.1", "10.0.0.0/8"].
    pub trusted_proxies: Option<Vec<String>>,
    pub signing_key_file: Option<PathBuf>,
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<Self, GatewayError> {
        toml::from_str(text).map_err(|e| GatewayError::Config(format!("{e}")))
    }

    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Io {
            context: format!("reading the configuration file {}", path.display()),
            source: e,
        })?;
        Self::parse(&text).map_err(|e| match e {
            GatewayError::Config(m) => GatewayError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_owasp() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(
            c.argon2,
            Argon2Cost {
                m_kib: 19456,
                t: 2,
                p: 1
            }
        );
        assert_eq!(c.max_body_bytes, 65536);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        // A bare number is refused (it once meant seconds here), with a hint to add a unit.
        assert!(parse_duration("45").unwrap_err().contains("no unit"));
        for bad in ["", "d", "0s", "5x", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_file() {
        let f = FileConfig::parse(
            r#"
            listen = "0.0.0.0:9000"
            database = "sqlite:///var/lib/wavry/gateway.db"
            session_ttl = "14d"
            argon2_memory_kib = 65536
            "#,
        )
        .unwrap();
        assert_eq!(f.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(f.session_ttl, Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(f.argon2_memory_kib, Some(65536));
        assert_eq!(f.session_idle_ttl, None);
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
        for bad in [
            "lisen = \"0.0.0.0:1\"",
            "session_ttl = \"5x\"",
            "session_ttl = \"14\"",
            "max_body_bytes = \"big\"",
            "listen = ",
        ] {
            let e = FileConfig::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid configuration"), "{bad}: {e}");
        }
        let e = FileConfig::parse("lisen = \"x\"").unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn the_signing_key_file_defaults_beside_a_sqlite_database() {
        let at = |url: &str| {
            Config {
                database_url: url.into(),
                ..Config::default()
            }
            .signing_key_path()
        };
        let key = crate::signing_key::KEY_FILE_NAME;
        assert_eq!(
            at("sqlite:///var/lib/wavry/gateway.db?mode=rwc").unwrap(),
            Path::new("/var/lib/wavry").join(key)
        );
        assert_eq!(at("sqlite://gateway.db").unwrap(), Path::new(key));
        for url in [
            "postgres://db/wavry",
            "sqlite::memory:",
            "sqlite://:memory:",
        ] {
            let e = at(url).unwrap_err().to_string();
            assert!(e.contains("signing_key_file"), "{url}: {e}");
        }
        let given = Config {
            database_url: "postgres://db/wavry".into(),
            signing_key_file: Some("/etc/wavry/key".into()),
            ..Config::default()
        };
        assert_eq!(
            given.signing_key_path().unwrap(),
            Path::new("/etc/wavry/key")
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let c = Config {
            totp_issuer: "a:b".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            argon2: Argon2Cost {
                m_kib: 1,
                t: 1,
                p: 1,
            },
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.throttle.account.threshold = 0;
        assert!(c.validate().is_err());
    }
}
