//! The gateway's Ed25519 signing key (docs/GATEWAY.md, "The signing key"): its signature on a
//! host record tells a client which host key to pin (docs/SIGNALING.md), so whoever holds it can
//! sit in the middle of sessions.
//!
//! Its seed lives in a key file (mode 0600, owned by the gateway's user) and never in the
//! database, so a leaked database backup signs nothing. The database keeps only the public
//! halves (`signing_keys`), for two things: every instance publishes every key whose records may
//! still be valid, and an instance whose key file is not the database's current key is refused
//! instead of signing with another key than its peers.
//!
//! A rotation (`rotate`, `wavry gateway rotate-signing-key`) writes a new key file and marks the
//! old key retired. A running instance notices within a heartbeat and switches to the new file;
//! the old key stays published until the last record it signed has expired.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use rift_crypto::signing::{SigningKey, VerifyingKey, ED25519_KEY_LEN};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use zeroize::Zeroizing;

use crate::clock::Clock;

/// The key file's name where none is configured.
pub const KEY_FILE_NAME: &str = "gateway-signing.key";
/// The `gateway_keys` purpose under which gateways before migration 0006 kept the seed.
const LEGACY_PURPOSE: &str = "host_records";

/// Why the signing key could not be loaded, created, moved or rotated. Each message says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing key file {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "signing key file {path} has mode {mode:04o}: others may read it, and whoever reads it \
         can vouch for hosts. Fix: chmod 600 {path} (and rotate the key if someone may have \
         read it)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "signing key file {path} belongs to uid {owner}, not to the gateway's user (uid {uid}). \
         Fix: chown {uid} {path}, or run the gateway as its owner"
    )]
    Owner { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "signing key file {path}: {why}. It holds one line, the 32-byte Ed25519 seed in unpadded \
         base64url (docs/GATEWAY.md, \"The signing key\")"
    )]
    Malformed { path: PathBuf, why: String },
    #[error(
        "no signing key file at {path}, and the gateways on this database sign with key \
         {current}. Copy that key's file here from the instance that has it (or pass \
         --signing-key-file); if it is lost, `wavry gateway rotate-signing-key` makes a new one \
         (clients that pinned {current} must then trust the new key)"
    )]
    Missing { path: PathBuf, current: String },
    #[error(
        "signing key file {path} holds key {key_id}, but the gateways on this database sign \
         with key {current}. Copy the key file of {current} here; or, to replace {current} by a \
         new key, run `wavry gateway rotate-signing-key`"
    )]
    Mismatch {
        path: PathBuf,
        key_id: String,
        current: String,
    },
    #[error(
        "signing key file {path} holds key {key_id}, which a rotation retired. Copy the current \
         key file (key {current}) here from where the rotation ran"
    )]
    Retired {
        path: PathBuf,
        key_id: String,
        current: String,
    },
    #[error(
        "the database holds signing key {db_key} (from before the key moved out of it), but \
         {path} holds key {file_key}. Move {path} aside and start again to keep {db_key}, the \
         key clients have pinned"
    )]
    LegacyMismatch {
        path: PathBuf,
        db_key: String,
        file_key: String,
    },
    #[error(
        "another gateway instance created this database's first signing key ({current}) at the \
         same moment: copy its key file to {path}"
    )]
    Raced { path: PathBuf, current: String },
    #[error(
        "the database's table gateway_keys holds a signing key that does not parse ({0}); \
         nothing was changed"
    )]
    LegacyMalformed(String),
    #[error("a new signing key: {0}")]
    Generate(String),
    #[error("signing keys in the database: {0}")]
    Database(#[from] sqlx::Error),
}

fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> SigningKeyError + use<'a> {
    move |source| SigningKeyError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The key file
// ---------------------------------------------------------------------------------------------

/// The key file's contents: a comment, then the seed.
fn key_file_text(key: &SigningKey) -> Zeroizing<String> {
    let seed = Zeroizing::new(BASE64URL_NOPAD.encode(key.seed()));
    Zeroizing::new(format!(
        "# Wavry gateway signing key {} (Ed25519 seed, unpadded base64url).\n\
         # Whoever holds it can vouch for hosts: keep it mode 0600 and out of shared backups.\n\
         # docs/GATEWAY.md, \"The signing key\".\n{}\n",
        key.verifying_key().key_id(),
        seed.as_str()
    ))
}

/// The key in a key file's text: its one line that is neither blank nor a `#` comment.
fn parse_key_file(text: &str) -> Result<SigningKey, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("it holds no key")?;
    if lines.next().is_some() {
        return Err("it holds more than one line besides comments".into());
    }
    parse_seed(line)
}

/// A seed in unpadded base64url. Errors never quote it.
fn parse_seed(text: &str) -> Result<SigningKey, String> {
    let bytes = Zeroizing::new(
        BASE64URL_NOPAD
            .decode(text.trim().as_bytes())
            .map_err(|e| format!("the key is not unpadded base64url ({e})"))?,
    );
    let seed: &[u8; ED25519_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "the key is {} bytes, not {ED25519_KEY_LEN}",
            bytes.as_slice().len()
        )
    })?;
    SigningKey::from_seed(seed).map_err(|e| e.to_string())
}

/// The key in the file at `path`; None if there is no file. A file others may read, or that
/// another user owns, is refused: the check is on the opened file, so it is the one read.
pub fn read_key_file(path: &Path) -> Result<Option<SigningKey>, SigningKeyError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, "opening it")(e)),
    };
    check_private(&f, path)?;
    let mut text = Zeroizing::new(String::new());
    f.read_to_string(&mut text)
        .map_err(io(path, "reading it"))?;
    parse_key_file(&text)
        .map(Some)
        .map_err(|why| SigningKeyError::Malformed {
            path: path.to_path_buf(),
            why,
        })
}

#[cfg(unix)]
fn check_private(f: &File, path: &Path) -> Result<(), SigningKeyError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = f.metadata().map_err(io(path, "reading its permissions"))?;
    if !meta.is_file() {
        return Err(SigningKeyError::Malformed {
            path: path.to_path_buf(),
            why: "it is not a regular file".into(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SigningKeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Root may own it, as OpenSSH allows for its keys: only root could have made it so.
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(SigningKeyError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &File, _: &Path) -> Result<(), SigningKeyError> {
    Ok(())
}

/// Create `path`'s directory (owner-only where it is new).
fn make_parent(path: &Path) -> Result<(), SigningKeyError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir).map_err(io(path, "creating its directory"))
}

/// Write `key` to a new file at `path` (0600), to disk before returning.
fn write_new(path: &Path, key: &SigningKey) -> Result<(), SigningKeyError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path, "creating it"))?;
    let written = f
        .write_all(key_file_text(key).as_bytes())
        .and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(io(path, "writing it")(e));
    }
    Ok(())
}

/// Make a rename or a new name in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), SigningKeyError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(path, "syncing its directory"))?;
    }
    Ok(())
}

/// Write `key` to `path` unless a file is there already (then false). The key goes to a
/// temporary file first and is linked into place, so `path` never holds half a key.
fn create_key_file(path: &Path, key: &SigningKey) -> Result<bool, SigningKeyError> {
    make_parent(path)?;
    let tmp = sibling(path, &format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, key)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(path, "creating it")(e)),
    }
    sync_parent(path)?;
    Ok(true)
}

/// `path` with `.suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Where a rotation writes the new key before the database knows it (found again if the
/// rotation was interrupted).
fn pending_path(path: &Path) -> PathBuf {
    sibling(path, "new")
}

// ---------------------------------------------------------------------------------------------
// The database: public keys only
// ---------------------------------------------------------------------------------------------

/// A key in `signing_keys`: (retired_at, publish_until).
async fn key_row(
    db: &AnyPool,
    public_key: &str,
) -> Result<Option<(Option<i64>, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT retired_at, publish_until FROM signing_keys WHERE public_key = $1")
        .bind(public_key)
        .fetch_optional(db)
        .await
}

/// The key new records are signed with, if the database has one.
async fn current_key(db: &AnyPool) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT public_key FROM signing_keys WHERE retired_at IS NULL")
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(k,)| k))
}

/// A new current key: `public_key`, `key_id`, `created_at`, `publish_until`.
const INSERT_CURRENT: &str = "INSERT INTO signing_keys \
     (public_key, key_id, created_at, publish_until, retired_at) VALUES ($1, $2, $3, $4, NULL)";

/// Record `key` as the current key; false if the database already has one (or has this one).
async fn claim(
    db: &AnyPool,
    key: &VerifyingKey,
    now: i64,
    until: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(INSERT_CURRENT)
        .bind(key.to_base64())
        .bind(key.key_id())
        .bind(now)
        .bind(until)
        .execute(db)
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keep `key` published until at least `until`; its row as it is then.
async fn extend(
    db: &AnyPool,
    key: &VerifyingKey,
    until: i64,
) -> Result<Option<(Option<i64>, i64)>, sqlx::Error> {
    sqlx::query(
        "UPDATE signing_keys SET publish_until = $1 WHERE public_key = $2 AND publish_until < $1",
    )
    .bind(until)
    .bind(key.to_base64())
    .execute(db)
    .await?;
    key_row(db, &key.to_base64()).await
}

fn key_id_of(public_key: &str) -> String {
    VerifyingKey::from_base64(public_key)
        .map(|k| k.key_id())
        .unwrap_or_else(|_| public_key.to_string())
}

/// A seed still in `gateway_keys` (where gateways kept it before migration 0006), which must
/// exist.
async fn legacy_seed(db: &AnyPool) -> Result<Option<SigningKey>, SigningKeyError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT secret FROM gateway_keys WHERE purpose = $1")
            .bind(LEGACY_PURPOSE)
            .fetch_optional(db)
            .await?;
    let Some((secret,)) = row else {
        return Ok(None);
    };
    let secret = Zeroizing::new(secret);
    parse_seed(&secret)
        .map(Some)
        .map_err(SigningKeyError::LegacyMalformed)
}

/// Before the migrations run, on a database that still has `gateway_keys` (from before
/// migration 0006): put the seed kept there in the key file at `path`, so that migration 0006
/// can drop it from the database and clients keep the key they pinned. Whether a key was
/// moved.
pub async fn move_out_of_database(db: &AnyPool, path: &Path) -> Result<bool, SigningKeyError> {
    let Some(key) = legacy_seed(db).await? else {
        return Ok(false);
    };
    let key_id = key.verifying_key().key_id();
    match read_key_file(path)? {
        // Moved by an earlier start that stopped before migrating, or by another instance.
        Some(k) if k.verifying_key() == key.verifying_key() => {}
        Some(k) => {
            return Err(SigningKeyError::LegacyMismatch {
                path: path.to_path_buf(),
                db_key: key_id,
                file_key: k.verifying_key().key_id(),
            })
        }
        None => {
            if !create_key_file(path, &key)? {
                // Another process wrote it between the read and now: it must be this key.
                return move_out_of_database_check(path, &key);
            }
        }
    }
    tracing::warn!(
        path = %path.display(),
        key_id,
        "moved the signing key out of the database into its key file (mode 0600); the database \
         no longer holds it. Backups made before now do: rotate the key \
         (`wavry gateway rotate-signing-key`) if one may have leaked"
    );
    Ok(true)
}

fn move_out_of_database_check(path: &Path, key: &SigningKey) -> Result<bool, SigningKeyError> {
    match read_key_file(path)? {
        Some(k) if k.verifying_key() == key.verifying_key() => Ok(true),
        Some(k) => Err(SigningKeyError::LegacyMismatch {
            path: path.to_path_buf(),
            db_key: key.verifying_key().key_id(),
            file_key: k.verifying_key().key_id(),
        }),
        None => Err(SigningKeyError::Malformed {
            path: path.to_path_buf(),
            why: "it vanished while the key was being moved into it".into(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The signer: load, publish, follow a rotation
// ---------------------------------------------------------------------------------------------

/// A key as `GET /v1/gateway/signing-keys` publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishedKey {
    /// Always "ed25519".
    pub algorithm: String,
    /// Unpadded base64url of the 32-byte public key.
    pub public_key: String,
    /// What a signed record's `key_id` names: the key's first 8 bytes in hex.
    pub key_id: String,
    /// Whether new records are signed with it; false for a key a rotation retired.
    pub current: bool,
    /// When a rotation retired it (Unix seconds).
    pub retired_at: Option<i64>,
    /// Records it signed expire before this (Unix seconds); it is listed until then.
    pub published_until: i64,
}

/// `GET /v1/gateway/signing-keys`: every key whose signed records may still be valid, the
/// current one first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SigningKeySet {
    pub keys: Vec<PublishedKey>,
}

impl SigningKeySet {
    /// The published key a signed record names by `key_id`.
    pub fn by_key_id(&self, key_id: &str) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .filter(|k| k.key_id == key_id)
            .find_map(|k| VerifyingKey::from_base64(&k.public_key).ok())
    }
}

/// What a start did with the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// Read it.
    Read,
    /// There was none and the database had no key: made a new one.
    Created,
    /// Finished a rotation that stopped between the database and the file.
    FinishedRotation,
}

/// The key this instance signs host records with. A rotation replaces it in place.
pub struct Signer {
    key: RwLock<Arc<SigningKey>>,
    path: PathBuf,
    /// How long after a refresh a key stays published: the records' lifetime plus two
    /// heartbeats (records signed until the next refresh expire before that).
    horizon_secs: i64,
}

impl Signer {
    /// The key to sign with now.
    pub fn current(&self) -> Arc<SigningKey> {
        self.key.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.current().verifying_key()
    }

    /// The key file this instance reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn until(&self, now: i64) -> i64 {
        now.saturating_add(self.horizon_secs)
    }

    /// Every key whose records may still be valid at `now`, the current one first: the
    /// database's current key (published before any record is signed with it), this instance's
    /// own (it signs with it, even if a rotation retired it), and retired keys until their
    /// records have expired.
    pub async fn published(&self, db: &AnyPool, now: i64) -> Result<SigningKeySet, sqlx::Error> {
        let mine = self.verifying_key();
        let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT public_key, key_id, retired_at, publish_until FROM signing_keys \
             WHERE publish_until > $1 OR retired_at IS NULL OR public_key = $2",
        )
        .bind(now)
        .bind(mine.to_base64())
        .fetch_all(db)
        .await?;
        let mut keys: Vec<PublishedKey> = rows
            .into_iter()
            .map(|(public_key, key_id, retired_at, until)| {
                // A key still in use is published a horizon ahead, whatever its row says.
                let in_use = retired_at.is_none() || public_key == mine.to_base64();
                PublishedKey {
                    algorithm: "ed25519".into(),
                    public_key,
                    key_id,
                    current: retired_at.is_none(),
                    retired_at,
                    published_until: if in_use {
                        until.max(self.until(now))
                    } else {
                        until
                    },
                }
            })
            .collect();
        if !keys.iter().any(|k| k.public_key == mine.to_base64()) {
            // Its row is gone (deleted by hand): it still signs, so it is still published.
            keys.push(PublishedKey {
                algorithm: "ed25519".into(),
                public_key: mine.to_base64(),
                key_id: mine.key_id(),
                current: false,
                retired_at: None,
                published_until: self.until(now),
            });
        }
        Ok(keys_sorted(keys))
    }

    /// Keep this instance's key published, and follow a rotation: if the key was retired and
    /// the key file now holds the current key, sign with that from now on.
    pub async fn refresh(&self, db: &AnyPool, now: i64) {
        let key = self.current();
        let vk = key.verifying_key();
        let row = match extend(db, &vk, self.until(now)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the signing key's publication failed");
                return;
            }
        };
        match row {
            Some((None, _)) => {}
            Some((Some(_), _)) => self.follow_rotation(db, now, &vk).await,
            None => match claim(db, &vk, now, self.until(now)).await {
                Ok(true) => tracing::warn!(
                    key_id = vk.key_id(),
                    "the signing key was missing from the database: registered it again"
                ),
                Ok(false) => tracing::warn!(
                    key_id = vk.key_id(),
                    "the signing key is missing from the database, which names another current \
                     key: this instance's records may not verify; restart it"
                ),
                Err(e) => tracing::warn!(error = %e, "registering the signing key failed"),
            },
        }
    }

    async fn follow_rotation(&self, db: &AnyPool, now: i64, old: &VerifyingKey) {
        let stale = || {
            tracing::warn!(
                key_id = old.key_id(),
                path = %self.path.display(),
                "this instance's signing key was retired by a rotation, but its key file does not \
                 hold the current key: copy the current key file there. Signing with the retired \
                 key until then (it stays published)"
            )
        };
        let fresh = match read_key_file(&self.path) {
            Ok(Some(k)) if k.verifying_key() != *old => k,
            Ok(_) => return stale(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the signing key file after a rotation failed");
                return;
            }
        };
        let vk = fresh.verifying_key();
        match extend(db, &vk, self.until(now)).await {
            Ok(Some((None, _))) => {}
            Ok(_) => return stale(),
            Err(e) => {
                tracing::warn!(error = %e, "checking the rotated signing key failed");
                return;
            }
        }
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        tracing::warn!(
            key_id = vk.key_id(),
            retired = old.key_id(),
            "signing key rotated: new host records are signed with the new key; the retired one \
             stays published until its records have expired"
        );
    }

    /// Runs while the gateway serves: `refresh` every `every` (by `clock`).
    pub async fn maintain(&self, db: &AnyPool, clock: &dyn Clock, every: Duration) {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = clock.now_ms();
        loop {
            tick.tick().await;
            let now_ms = clock.now_ms();
            if now_ms.saturating_sub(last) >= every_ms {
                last = now_ms;
                self.refresh(db, now_ms / 1000).await;
            }
        }
    }
}

fn keys_sorted(mut keys: Vec<PublishedKey>) -> SigningKeySet {
    keys.sort_by(|a, b| {
        b.current
            .cmp(&a.current)
            .then(b.published_until.cmp(&a.published_until))
            .then(a.public_key.cmp(&b.public_key))
    });
    SigningKeySet { keys }
}

/// Load (or, on a database that never had one, create) the key in the file at `path`, and
/// check it is the database's current key. `horizon`: how long after a refresh a key stays
/// published (the records' lifetime and two heartbeats).
pub async fn load(
    db: &AnyPool,
    path: &Path,
    now: i64,
    horizon: Duration,
) -> Result<(Signer, Loaded), SigningKeyError> {
    let horizon_secs = i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX);
    let until = now.saturating_add(horizon_secs);
    let current = current_key(db).await?;
    let (key, how) = match read_key_file(path)? {
        Some(key) => {
            let vk = key.verifying_key();
            match key_row(db, &vk.to_base64()).await? {
                Some((None, _)) => (key, Loaded::Read),
                Some((Some(_), _)) => {
                    let current = current.unwrap_or_default();
                    match finish_rotation(path, &current)? {
                        Some(k) => (k, Loaded::FinishedRotation),
                        None => {
                            return Err(SigningKeyError::Retired {
                                path: path.to_path_buf(),
                                key_id: vk.key_id(),
                                current: key_id_of(&current),
                            })
                        }
                    }
                }
                None => {
                    if let Some(c) = current.filter(|c| *c != vk.to_base64()) {
                        return Err(SigningKeyError::Mismatch {
                            path: path.to_path_buf(),
                            key_id: vk.key_id(),
                            current: key_id_of(&c),
                        });
                    }
                    // A database without keys (new), taking the operator's key; a lost race is
                    // the mismatch above, found again.
                    if !claim(db, &vk, now, until).await? {
                        let c = current_key(db).await?.unwrap_or_default();
                        return Err(SigningKeyError::Mismatch {
                            path: path.to_path_buf(),
                            key_id: vk.key_id(),
                            current: key_id_of(&c),
                        });
                    }
                    (key, Loaded::Read)
                }
            }
        }
        None => {
            if let Some(c) = current {
                return Err(SigningKeyError::Missing {
                    path: path.to_path_buf(),
                    current: key_id_of(&c),
                });
            }
            let key =
                SigningKey::generate().map_err(|e| SigningKeyError::Generate(e.to_string()))?;
            if !create_key_file(path, &key)? {
                // Another process on this machine made it a moment ago: load that.
                return Box::pin(load(db, path, now, horizon)).await;
            }
            let vk = key.verifying_key();
            if !claim(db, &vk, now, until).await? {
                // Another instance made the database's first key at the same moment: ours
                // never signed anything.
                let _ = std::fs::remove_file(path);
                let c = current_key(db).await?.unwrap_or_default();
                return Err(SigningKeyError::Raced {
                    path: path.to_path_buf(),
                    current: key_id_of(&c),
                });
            }
            tracing::warn!(
                path = %path.display(),
                key_id = vk.key_id(),
                "created the gateway's signing key file (mode 0600): it vouches for every host. \
                 Keep it secret; every instance on this database needs a copy (--signing-key-file)"
            );
            (key, Loaded::Created)
        }
    };
    extend(db, &key.verifying_key(), until).await?;
    tracing::info!(
        path = %path.display(),
        key_id = key.verifying_key().key_id(),
        "signing key loaded"
    );
    Ok((
        Signer {
            key: RwLock::new(Arc::new(key)),
            path: path.to_path_buf(),
            horizon_secs,
        },
        how,
    ))
}

/// A rotation that wrote the new key and committed it to the database, but stopped before
/// renaming it into place: if the pending file holds the database's current key, finish it.
fn finish_rotation(path: &Path, current: &str) -> Result<Option<SigningKey>, SigningKeyError> {
    let pending = pending_path(path);
    let Some(key) = read_key_file(&pending)? else {
        return Ok(None);
    };
    if key.verifying_key().to_base64() != current || current.is_empty() {
        return Ok(None);
    }
    std::fs::rename(&pending, path).map_err(io(path, "finishing an interrupted rotation"))?;
    sync_parent(path)?;
    tracing::warn!(
        path = %path.display(),
        key_id = key.verifying_key().key_id(),
        "finished an interrupted signing key rotation"
    );
    Ok(Some(key))
}

/// What `rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key new records are signed with.
    pub new_key_id: String,
    /// The keys it replaced (none on a database that had no key).
    pub retired: Vec<String>,
    /// The retired keys stay published until at least this (Unix seconds); running instances
    /// that still sign with one keep it published longer, until they switch.
    pub published_until: i64,
    /// Whether `path` held the key that was retired (false: the key file was missing).
    pub replaced_file: bool,
}

/// Rotate: a new key in the key file at `path`; the database's current key retired, still
/// published until `now + horizon` (or as long as an instance still signs with it), and the new
/// one current. Running instances with this key file switch at their next heartbeat. With no
/// key file (a lost key), the database's current key is retired all the same.
pub async fn rotate(
    db: &AnyPool,
    path: &Path,
    now: i64,
    horizon: Duration,
) -> Result<Rotation, SigningKeyError> {
    let until = now.saturating_add(i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX));
    let old = read_key_file(path)?;
    let key = SigningKey::generate().map_err(|e| SigningKeyError::Generate(e.to_string()))?;
    let vk = key.verifying_key();
    // The new key is on disk before the database names it, so a rotation stopped half-way is
    // finished at the next start (`finish_rotation`) rather than losing the current key.
    make_parent(path)?;
    let pending = pending_path(path);
    match std::fs::remove_file(&pending) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&pending, "removing a stale one")(e)),
    }
    write_new(&pending, &key)?;
    let retired: Vec<(String,)> =
        sqlx::query_as("SELECT public_key FROM signing_keys WHERE retired_at IS NULL")
            .fetch_all(db)
            .await?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $1, \
           publish_until = CASE WHEN publish_until < $2 THEN $2 ELSE publish_until END \
         WHERE retired_at IS NULL",
    )
    .bind(now)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    sqlx::query(INSERT_CURRENT)
        .bind(vk.to_base64())
        .bind(vk.key_id())
        .bind(now)
        .bind(until)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    std::fs::rename(&pending, path).map_err(io(path, "putting the new key in place"))?;
    sync_parent(path)?;
    let retired: Vec<String> = retired.iter().map(|(k,)| key_id_of(k)).collect();
    tracing::warn!(
        path = %path.display(),
        key_id = vk.key_id(),
        retired = ?retired,
        "signing key rotated"
    );
    Ok(Rotation {
        new_key_id: vk.key_id(),
        retired,
        published_until: until,
        replaced_file: old.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_bad_ones_are_explained() {
        let key = SigningKey::generate().unwrap();
        let text = key_file_text(&key);
        assert!(text.starts_with('#'));
        let back = parse_key_file(&text).unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        // An operator's file: just the seed, with blank lines and comments around it.
        let bare = format!("\n  {}  \n# mine\n", BASE64URL_NOPAD.encode(key.seed()));
        assert_eq!(
            parse_key_file(&bare).unwrap().verifying_key(),
            key.verifying_key()
        );
        let seed = BASE64URL_NOPAD.encode(key.seed());
        for (bad, why) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("AAAA\nBBBB\n", "more than one"),
            ("not base64!\n", "base64url"),
            ("AAAA\n", "not 32"),
        ] {
            let e = parse_key_file(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(!e.contains(&seed));
        }
    }

    #[test]
    fn sorted_current_first() {
        let k = |id: &str, current: bool, until: i64| PublishedKey {
            algorithm: "ed25519".into(),
            public_key: id.into(),
            key_id: id.into(),
            current,
            retired_at: None,
            published_until: until,
        };
        let set = keys_sorted(vec![k("a", false, 9), k("b", true, 5), k("c", false, 10)]);
        let ids: Vec<_> = set.keys.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }
}
