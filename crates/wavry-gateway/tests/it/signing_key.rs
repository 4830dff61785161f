//! The signing key (docs/GATEWAY.md, "The signing key"): a 0600 key file, never the database;
//! refused when others may read it or another user owns it, or when it is not the database's
//! key; moved out of a database that still holds it; rotated with the old key published until
//! its records expire. On SQLite and, in PostgreSQL mode, on PostgreSQL.

use crate::common;

use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::peer::{device, Peer};
use common::*;
use data_encoding::BASE64URL_NOPAD;
use reqwest::StatusCode;
use rift_crypto::signing::{SigningKey, VerifyingKey};
use serde_json::json;
use wavry_gateway::{Config, Gateway, GatewayError, SigningKeySet};
use wavry_proto::registry::SigningKeyInfo;
use wavry_proto::signal::{HostRecord, ServerMessage, Signed, HOST_RECORD_CONTEXT};

fn key_path(gw: &TestGateway) -> PathBuf {
    gw.config.signing_key_file.clone().unwrap()
}

async fn current_key(gw: &TestGateway) -> VerifyingKey {
    let info: SigningKeyInfo = expect(
        gw.get("/v1/gateway/signing-key", None).await,
        StatusCode::OK,
    )
    .await;
    VerifyingKey::from_base64(&info.public_key).unwrap()
}

async fn published(gw: &TestGateway) -> SigningKeySet {
    expect(
        gw.get("/v1/gateway/signing-keys", None).await,
        StatusCode::OK,
    )
    .await
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The seed line of a key file.
fn seed_in(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_string()
}

/// Whether the SQLite files of `gw` (the database and its log) contain `needle` anywhere, free
/// pages included. False on PostgreSQL (nothing to read here).
fn sqlite_files_contain(gw: &TestGateway, needle: &str) -> bool {
    if on_postgres() {
        return false;
    }
    let mut wal = gw.db_path.clone().into_os_string();
    wal.push("-wal");
    [gw.db_path.clone(), PathBuf::from(wal)].iter().any(|p| {
        std::fs::read(p)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

async fn table_exists(db: &sqlx::AnyPool, table: &str) -> bool {
    let sql = if on_postgres() {
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
    };
    let (n,): (i64,) = sqlx::query_as(sql).bind(table).fetch_one(db).await.unwrap();
    n > 0
}

/// Open a gateway on `config`; the error it refuses with.
async fn refused(config: Config) -> String {
    match Gateway::open(config).await {
        Ok(_) => panic!("the gateway opened"),
        Err(GatewayError::SigningKey(e)) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

#[tokio::test]
async fn the_key_is_a_private_file_and_the_database_holds_only_its_public_half() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let path = key_path(&gw);
    assert_eq!(path, dir.path().join("gateway-signing.key"));
    assert_eq!(mode(&path), 0o600, "created owner-only");
    let seed = seed_in(&path);
    let key = SigningKey::from_seed(
        &BASE64URL_NOPAD
            .decode(seed.as_bytes())
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(current_key(&gw).await, key.verifying_key());
    let set = published(&gw).await;
    assert_eq!(set.keys.len(), 1);
    assert!(set.keys[0].current);
    assert_eq!(set.keys[0].public_key, key.verifying_key().to_base64());
    assert_eq!(set.keys[0].key_id, key.verifying_key().key_id());

    let db = open_db(&gw.db_url).await;
    assert!(!table_exists(&db, "gateway_keys").await);
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT public_key, key_id FROM signing_keys")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [(
            key.verifying_key().to_base64(),
            key.verifying_key().key_id()
        )]
    );
    db.close().await;
    assert!(!sqlite_files_contain(&gw, &seed));

    // The same key after a restart.
    let clock = gw.clock.clone();
    gw.stop().await;
    let gw = TestGateway::start_with(dir.path(), clock, |_| {}).await;
    assert_eq!(current_key(&gw).await, key.verifying_key());
    gw.stop().await;
}

#[tokio::test]
async fn a_key_file_others_may_read_or_another_user_owns_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let (config, path) = (gw.config.clone(), key_path(&gw));
    gw.stop().await;

    for loose in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        let e = refused(config.clone()).await;
        assert!(
            e.contains(&format!("chmod 600 {}", path.display())) && e.contains("others may read"),
            "{e}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Gateway::open(config.clone()).await.expect("0600 is fine");

    if rustix::process::geteuid().is_root() {
        // Root may chown it to someone else (and back): the gateway, as root, refuses it.
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        let e = refused(config.clone()).await;
        assert!(e.contains("uid 4242") && e.contains("chown 0"), "{e}");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        Gateway::open(config).await.expect("its own again");
    } else {
        eprintln!("not root: the owner check is left to CI, which runs as root");
    }
}

#[tokio::test]
async fn an_instance_without_the_databases_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let key_id = current_key(&gw).await.key_id();
    let config = gw.config.clone();
    gw.stop().await;

    // No key file: a new key would split the instances (or silently replace the key clients
    // pinned), so none is made.
    let other = dir.path().join("elsewhere").join("gateway-signing.key");
    let elsewhere = Config {
        signing_key_file: Some(other.clone()),
        ..config.clone()
    };
    let e = refused(elsewhere.clone()).await;
    assert!(
        e.contains(&key_id) && e.contains("Copy") && e.contains("rotate-signing-key"),
        "{e}"
    );
    assert!(!other.exists());

    // Another key.
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let stranger = SigningKey::generate().unwrap();
    std::fs::write(&other, BASE64URL_NOPAD.encode(stranger.seed()) + "\n").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = refused(elsewhere).await;
    assert!(
        e.contains(&stranger.verifying_key().key_id()) && e.contains(&key_id),
        "{e}"
    );

    // A file that is not a key.
    std::fs::write(&other, "hello\n").unwrap();
    let e = refused(Config {
        signing_key_file: Some(other),
        ..config
    })
    .await;
    assert!(e.contains("base64url"), "{e}");
}

/// A client asks for the host; the signed record it gets.
async fn connect(c: &mut Peer, h: &mut Peer, host_id: &str) -> Signed {
    c.send(json!({"type": "connect", "host_id": host_id})).await;
    let ServerMessage::HostRecord { record, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    assert!(matches!(
        h.recv().await,
        ServerMessage::ConnectRequest { .. }
    ));
    record
}

/// What a verifier does: the published key the record names, then the signature.
fn verify(set: &SigningKeySet, record: &Signed) -> HostRecord {
    let key = set
        .by_key_id(&record.key_id)
        .unwrap_or_else(|| panic!("key {} is not published: {set:?}", record.key_id));
    record.open(&key, HOST_RECORD_CONTEXT).unwrap()
}

#[tokio::test]
async fn a_rotation_signs_with_the_new_key_and_keeps_the_old_published_until_its_records_expire() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let host = device(&gw, &ann.token, "den pc", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;

    let old = current_key(&gw).await;
    let first = connect(&mut c, &mut h, &host.device_id).await;
    assert_eq!(first.key_id, old.key_id());
    let stale_file = std::fs::read(key_path(&gw)).unwrap();

    let rotation = wavry_gateway::rotate_signing_key(&gw.config, gw.clock.as_ref())
        .await
        .unwrap();
    assert_eq!(rotation.retired, [old.key_id()]);
    assert!(rotation.replaced_file);
    assert_eq!(mode(&key_path(&gw)), 0o600);
    assert_ne!(std::fs::read(key_path(&gw)).unwrap(), stale_file);
    // Both published at once: the new one current and first, the old one until its records
    // (120 s) have expired.
    let set = published(&gw).await;
    assert_eq!(set.keys.len(), 2, "{set:?}");
    assert!(set.keys[0].current && set.keys[0].key_id == rotation.new_key_id);
    let retired = &set.keys[1];
    assert!(!retired.current && retired.key_id == old.key_id());
    assert_eq!(retired.retired_at, Some(T0_MS / 1000));
    let rec = verify(&set, &first);
    assert!(
        rec.expires_at < retired.published_until,
        "{rec:?} {retired:?}"
    );

    // The running gateway follows at its next heartbeat (15 s).
    gw.clock.advance(Duration::from_secs(16));
    let mut switched = false;
    for _ in 0..100 {
        if current_key(&gw).await.key_id() == rotation.new_key_id {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(switched, "still signing with the retired key");
    let second = connect(&mut c, &mut h, &host.device_id).await;
    assert_eq!(second.key_id, rotation.new_key_id);
    let set = published(&gw).await;
    verify(&set, &second);
    verify(&set, &first);

    // Once the first record has expired, its key is no longer published.
    let gone_at = set.keys[1].published_until;
    gw.clock.set_ms(gone_at * 1000 + 1000);
    let set = published(&gw).await;
    assert_eq!(set.keys.len(), 1, "{set:?}");
    assert_eq!(set.keys[0].key_id, rotation.new_key_id);
    verify(&set, &second);
    assert!(set.by_key_id(&first.key_id).is_none());

    // An instance started with a copy of the retired key file is refused.
    let config = gw.config.clone();
    gw.stop().await;
    let stale = dir.path().join("stale.key");
    std::fs::write(&stale, &stale_file).unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = refused(Config {
        signing_key_file: Some(stale),
        ..config
    })
    .await;
    assert!(
        e.contains("retired") && e.contains(&rotation.new_key_id),
        "{e}"
    );
}

#[tokio::test]
async fn a_rotation_interrupted_before_the_rename_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let config = gw.config.clone();
    let path = key_path(&gw);
    let old_file = std::fs::read(&path).unwrap();
    let clock = gw.clock.clone();
    gw.stop().await;
    let rotation = wavry_gateway::rotate_signing_key(&config, clock.as_ref())
        .await
        .unwrap();
    // As if it had stopped after the database and before the rename: the new key still in
    // the pending file, the old one in place.
    let pending = dir.path().join("gateway-signing.key.new");
    std::fs::rename(&path, &pending).unwrap();
    std::fs::write(&path, &old_file).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let gw = TestGateway::start_with(dir.path(), clock, |_| {}).await;
    assert_eq!(current_key(&gw).await.key_id(), rotation.new_key_id);
    assert!(!pending.exists());
    gw.stop().await;
}

#[tokio::test]
async fn a_lost_key_file_is_replaced_by_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let (config, clock, path) = (gw.config.clone(), gw.clock.clone(), key_path(&gw));
    let lost = current_key(&gw).await.key_id();
    gw.stop().await;
    std::fs::remove_file(&path).unwrap();
    assert!(refused(config.clone()).await.contains(&lost));

    let rotation = wavry_gateway::rotate_signing_key(&config, clock.as_ref())
        .await
        .unwrap();
    assert_eq!(rotation.retired, [lost]);
    assert!(!rotation.replaced_file);
    let gw = TestGateway::start_with(dir.path(), clock, |_| {}).await;
    assert_eq!(current_key(&gw).await.key_id(), rotation.new_key_id);
    gw.stop().await;
}

/// A database in the schema before migration 0006, its signing key's seed in `gateway_keys`
/// as gateways then kept it.
async fn legacy_database(url: &str, seed: &str) {
    sqlx::any::install_default_drivers();
    let (_, url) = wavry_gateway::db::prepare_url(url).unwrap();
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    // The migrations up to 0005 (sqlx has no "run up to"; its fields are public for macros).
    let before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            wavry_gateway::db::migrator()
                .await
                .unwrap()
                .iter()
                .filter(|m| m.version <= 5)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&db).await.unwrap();
    sqlx::query("INSERT INTO gateway_keys (purpose, secret, created_at) VALUES ($1, $2, $3)")
        .bind("host_records")
        .bind(seed)
        .bind(1_700_000_000i64)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
}

#[tokio::test]
async fn a_database_holding_the_key_is_migrated_and_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let seed = BASE64URL_NOPAD.encode(key.seed());
    legacy_database(&database_url(dir.path()).await, &seed).await;

    let gw = TestGateway::start(dir.path()).await;
    // Clients keep the key they pinned; it now lives in the file, and only there.
    assert_eq!(current_key(&gw).await, key.verifying_key());
    let path = key_path(&gw);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(seed_in(&path), seed);
    let db = open_db(&gw.db_url).await;
    assert!(!table_exists(&db, "gateway_keys").await);
    db.close().await;
    assert!(
        !sqlite_files_contain(&gw, &seed),
        "the seed is still in the SQLite file's free pages or log"
    );
    // Records verify with it.
    let ann = gw.user("ann@example.org").await;
    let host = device(&gw, &ann.token, "den pc", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    let record = connect(&mut c, &mut h, &host.device_id).await;
    record
        .open::<HostRecord>(&key.verifying_key(), HOST_RECORD_CONTEXT)
        .unwrap();
    let clock = gw.clock.clone();
    gw.stop().await;
    let gw = TestGateway::start_with(dir.path(), clock, |_| {}).await;
    assert_eq!(current_key(&gw).await, key.verifying_key());
    gw.stop().await;
}

#[tokio::test]
async fn a_database_holding_a_key_other_than_the_files_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let seed = BASE64URL_NOPAD.encode(key.seed());
    legacy_database(&database_url(dir.path()).await, &seed).await;
    let path = dir.path().join("gateway-signing.key");
    let other = SigningKey::generate().unwrap();
    std::fs::write(&path, BASE64URL_NOPAD.encode(other.seed()) + "\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = test_config(&dir.path().join("gateway.db"));
    config.database_url = database_url(dir.path()).await;
    let e = refused(config).await;
    assert!(
        e.contains(&key.verifying_key().key_id()) && e.contains("Move"),
        "{e}"
    );
    // Nothing was migrated or dropped: the key is still where it was.
    let db = open_db(&prepared(&database_url(dir.path()).await)).await;
    let (secret,): (String,) = sqlx::query_as("SELECT secret FROM gateway_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(secret, seed);
    db.close().await;
}

fn prepared(url: &str) -> String {
    wavry_gateway::db::prepare_url(url).unwrap().1
}
