//! The database: connecting (SQLite or PostgreSQL, chosen by the URL), migrating, and every
//! query the gateway makes. Queries are written once for both databases (`$n` parameters,
//! portable SQL) and run through sqlx's `Any` driver.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::Executor as _;

use crate::error::GatewayError;

/// The schema's one source: `migrations/`, compiled into the binary, as (version,
/// description, SQL) in the order they apply.
///
/// Listed here rather than read by `sqlx::migrate!`: that macro needs sqlx's `macros` feature,
/// which compiles sqlx's PostgreSQL and SQLite drivers, tokio and rustls a second time for the
/// build host, a third of a cold `cargo clippy`. The migrations are the same either way
/// (`Migration::new` takes the checksum the macro would); `tests::migrations_are_the_directory`
/// fails when a file is added to `migrations/` but not here.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "accounts",
        include_str!("../migrations/0001_accounts.sql"),
    ),
    (2, "devices", include_str!("../migrations/0002_devices.sql")),
    (3, "admin", include_str!("../migrations/0003_admin.sql")),
    (
        4,
        "signal spill",
        include_str!("../migrations/0004_signal_spill.sql"),
    ),
    (
        5,
        "connection reports",
        include_str!("../migrations/0005_connection_reports.sql"),
    ),
    (
        6,
        "signing keys",
        include_str!("../migrations/0006_signing_keys.sql"),
    ),
];

/// [`MIGRATIONS`] as sqlx's migration source.
#[derive(Debug)]
struct Migrations;

impl<'s> MigrationSource<'s> for Migrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(std::future::ready(Ok(MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                // As sqlx's directory source reads a file: a plain `.sql` is a simple
                // migration, and a first line `-- no-transaction` opts out of the transaction.
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect())))
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Check a database URL and make it ready to open: for SQLite, create the file (owner-only:
/// it holds password hashes and TOTP secrets) and its directory on first run, and open it
/// read-write-create unless the URL says otherwise.
pub fn prepare_url(url: &str) -> Result<(Backend, String), GatewayError> {
    let bad = |reason: &str| GatewayError::DatabaseUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(bad("expected sqlite://PATH or postgres://…"));
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad("no file path"));
    }
    if path == ":memory:" {
        return Ok((Backend::Sqlite, url.to_string()));
    }
    if query.is_none_or(|q| !q.contains("mode=")) {
        create_private_file(Path::new(path)).map_err(|e| GatewayError::Io {
            context: format!("creating the database file {path}"),
            source: e,
        })?;
    }
    let url = match query {
        Some(q) if q.contains("mode=") => url.to_string(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    };
    Ok((Backend::Sqlite, url))
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Open the pool and bring the schema up to date.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> Result<AnyPool, GatewayError> {
    let pool = open(url, max_connections, acquire_timeout).await?;
    migrate(&pool, prepare_url(url)?.0, false).await?;
    Ok(pool)
}

/// The gateway's migrations (every file of `migrations/`, embedded).
pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Migrations).await
}

/// Bring the schema up to date. `purge`: the migrations drop secrets (the signing key of a
/// database from before migration 0006), so SQLite rewrites its file and empties its log:
/// otherwise the dropped pages would keep the bytes until reused. (PostgreSQL deletes a dropped
/// table's files.)
pub async fn migrate(pool: &AnyPool, backend: Backend, purge: bool) -> Result<(), GatewayError> {
    migrator().await?.run(pool).await?;
    if purge && backend == Backend::Sqlite {
        sqlx::query("VACUUM").execute(pool).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Open the pool (creating a SQLite file), without migrating.
pub async fn open(
    url: &str,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> Result<AnyPool, GatewayError> {
    sqlx::any::install_default_drivers();
    let (backend, url) = prepare_url(url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // Per connection: wait for a writer rather than fail; synchronous FULL
                    // explicitly (not left to compile options), so a committed write survives
                    // a power cut too; foreign keys, so deleting a user deletes their sessions.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    if backend == Backend::Sqlite {
        // WAL (readers do not wait for the writer) is a property of the file: set once, here,
        // on the pool's first connection, since switching needs a lock busy_timeout cannot wait
        // for.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

/// Whether the database has a table named `name`.
pub async fn table_exists(
    pool: &AnyPool,
    backend: Backend,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let (n,): (i64,) = sqlx::query_as(sql).bind(name).fetch_one(pool).await?;
    Ok(n > 0)
}

/// Whether `e` is a unique-constraint violation (an email already taken).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// What login needs of a user.
pub struct UserAuth {
    pub id: String,
    pub password_hash: String,
    pub totp_secret: Option<String>,
}

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub created_at: i64,
    pub totp_secret: Option<String>,
}

pub async fn insert_user(
    db: &AnyPool,
    id: &str,
    email: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn user_auth_by_email(
    db: &AnyPool,
    email: &str,
) -> Result<Option<UserAuth>, sqlx::Error> {
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, password_hash, totp_secret FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, password_hash, totp_secret)| UserAuth {
        id,
        password_hash,
        totp_secret,
    }))
}

pub async fn user_by_id(db: &AnyPool, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let row: Option<(String, String, i64, Option<String>)> =
        sqlx::query_as("SELECT id, email, created_at, totp_secret FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, email, created_at, totp_secret)| UserRow {
        id,
        email,
        created_at,
        totp_secret,
    }))
}

pub async fn update_password_hash(db: &AnyPool, id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// TOTP
// ---------------------------------------------------------------------------------------------

pub async fn set_totp_pending(
    db: &AnyPool,
    user_id: &str,
    secret: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET totp_pending_secret = $1 WHERE id = $2 AND totp_secret IS NULL",
    )
    .bind(secret)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn totp_pending(db: &AnyPool, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT totp_pending_secret FROM users WHERE id = $1 AND totp_secret IS NULL",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(s,)| s))
}

/// Turn the pending secret on, if it is still `secret`; `step` is the confirming code's.
pub async fn confirm_totp(
    db: &AnyPool,
    user_id: &str,
    secret: &str,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
         totp_last_step = $1 \
         WHERE id = $2 AND totp_pending_secret = $3 AND totp_secret IS NULL",
    )
    .bind(step)
    .bind(user_id)
    .bind(secret)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Record that the code of `step` was used, if no code of this or a later step was before.
/// One conditional UPDATE, so two requests racing with the same code cannot both win.
pub async fn consume_totp_step(
    db: &AnyPool,
    user_id: &str,
    secret: &str,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_secret = $3 \
         AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .bind(secret)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Turn TOTP off, consuming the code of `step` as `consume_totp_step` does.
pub async fn disable_totp(
    db: &AnyPool,
    user_id: &str,
    secret: &str,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = $1 \
         WHERE id = $2 AND totp_secret = $3 \
         AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .bind(secret)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub token_hash: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert_session(db: &AnyPool, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at, \
         ip, user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.token_hash)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.ip)
    .bind(s.user_agent)
    .execute(db)
    .await?;
    Ok(())
}

pub struct SessionAuth {
    pub id: String,
    pub user_id: String,
    pub last_used_at: i64,
    pub expires_at: i64,
    /// The user is banned at the time asked about.
    pub banned: bool,
}

/// The session of a token hash, and whether its user is banned at `now`.
pub async fn session_by_token_hash(
    db: &AnyPool,
    token_hash: &str,
    now: i64,
) -> Result<Option<SessionAuth>, sqlx::Error> {
    let row: Option<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.id, s.user_id, s.last_used_at, s.expires_at, \
           CASE WHEN b.user_id IS NULL THEN 0 ELSE 1 END \
         FROM sessions s LEFT JOIN bans b ON b.user_id = s.user_id \
           AND (b.expires_at IS NULL OR b.expires_at > $2) \
         WHERE s.token_hash = $1",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.map(
        |(id, user_id, last_used_at, expires_at, banned)| SessionAuth {
            id,
            user_id,
            last_used_at,
            expires_at,
            banned: banned != 0,
        },
    ))
}

pub async fn touch_session(db: &AnyPool, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1")
        .bind(now)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_session(db: &AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Delete session `id`; how many (0 or 1).
pub async fn delete_session_by_id(db: &AnyPool, id: &str) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Delete every session of `user_id`; how many.
pub async fn delete_user_sessions(db: &AnyPool, user_id: &str) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Delete `id` if `user_id` owns it; whether it did.
pub async fn delete_own_session(
    db: &AnyPool,
    id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Housekeeping: drop `user_id`'s sessions that ended (absolutely, or idle since before
/// `idle_cutoff`).
pub async fn delete_expired_sessions(
    db: &AnyPool,
    user_id: &str,
    now: i64,
    idle_cutoff: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sessions WHERE user_id = $1 AND (expires_at <= $2 OR last_used_at <= $3)",
    )
    .bind(user_id)
    .bind(now)
    .bind(idle_cutoff)
    .execute(db)
    .await?;
    Ok(())
}

pub struct SessionRow {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// `user_id`'s live sessions, newest first.
pub async fn list_sessions(
    db: &AnyPool,
    user_id: &str,
    now: i64,
    idle_cutoff: i64,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    type Row = (String, i64, i64, i64, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, created_at, last_used_at, expires_at, ip, user_agent FROM sessions \
         WHERE user_id = $1 AND expires_at > $2 AND last_used_at > $3 \
         ORDER BY created_at DESC, id",
    )
    .bind(user_id)
    .bind(now)
    .bind(idle_cutoff)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, created_at, last_used_at, expires_at, ip, user_agent)| SessionRow {
                id,
                created_at,
                last_used_at,
                expires_at,
                ip,
                user_agent,
            },
        )
        .collect())
}

pub async fn ping(db: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/gw.db");
        let (b, url) = prepare_url(&format!("sqlite://{}", p.display())).unwrap();
        assert_eq!(b, Backend::Sqlite);
        assert!(url.ends_with("gw.db?mode=rwc"), "{url}");
        assert!(p.exists(), "created on first run");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (b, url) = prepare_url("postgres://u@localhost/wavry").unwrap();
        assert_eq!(
            (b, url.as_str()),
            (Backend::Postgres, "postgres://u@localhost/wavry")
        );
        assert!(prepare_url("mysql://x").is_err());
        assert!(prepare_url("sqlite://").is_err());
        let (_, url) = prepare_url("sqlite::memory:").unwrap();
        assert_eq!(url, "sqlite::memory:");
    }

    /// The embedded list is exactly what `sqlx::migrate!("./migrations")` would compile in:
    /// sqlx's own directory source reads the same versions, descriptions, types, checksums and
    /// transaction modes from the files.
    #[tokio::test]
    async fn migrations_are_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_dir = Migrator::new(dir.as_path()).await.unwrap();
        let embedded = Migrator::new(Migrations).await.unwrap();
        let key = |m: &Migration| {
            (
                m.version,
                m.description.to_string(),
                m.migration_type,
                m.checksum.to_vec(),
                m.no_tx,
            )
        };
        assert_eq!(
            embedded.iter().map(key).collect::<Vec<_>>(),
            from_dir.iter().map(key).collect::<Vec<_>>(),
            "migrations/ and MIGRATIONS differ: list every file of migrations/ in MIGRATIONS"
        );
    }
}
