//! Queries of the device registry and signaling (migrations/0002_devices.sql): devices,
//! host shares, host presence and connection attempts. Same portable SQL as
//! `db`.

use sqlx::AnyPool;

pub struct NewDevice<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub public_key: &'a str,
    pub now: i64,
}

pub async fn insert_device(db: &AnyPool, d: &NewDevice<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO devices (id, user_id, name, kind, public_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(d.id)
    .bind(d.user_id)
    .bind(d.name)
    .bind(d.kind)
    .bind(d.public_key)
    .bind(d.now)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub kind: String,
    pub public_key: String,
    pub created_at: i64,
}

type DeviceTuple = (String, String, String, String, String, i64);

fn device_row((id, user_id, name, kind, public_key, created_at): DeviceTuple) -> DeviceRow {
    DeviceRow {
        id,
        user_id,
        name,
        kind,
        public_key,
        created_at,
    }
}

const DEVICE_COLUMNS: &str = "id, user_id, name, kind, public_key, created_at";

pub async fn device_by_id(db: &AnyPool, id: &str) -> Result<Option<DeviceRow>, sqlx::Error> {
    let row: Option<DeviceTuple> = sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(device_row))
}

/// `user_id`'s devices, oldest first.
pub async fn list_devices(db: &AnyPool, user_id: &str) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let rows: Vec<DeviceTuple> = sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(device_row).collect())
}

/// How many devices `user_id` has.
pub async fn count_devices(db: &AnyPool, user_id: &str) -> Result<usize, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM devices WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db)
        .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Delete `id` if `user_id` owns it; whether it did.
pub async fn delete_own_device(db: &AnyPool, id: &str, user_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Share `host_id` with `user_id` (again is a no-op).
pub async fn insert_share(
    db: &AnyPool,
    host_id: &str,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO host_shares (host_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (host_id, user_id) DO NOTHING",
    )
    .bind(host_id)
    .bind(user_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete_share(db: &AnyPool, host_id: &str, user_id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM host_shares WHERE host_id = $1 AND user_id = $2")
        .bind(host_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// (user id, email, shared at) of the accounts `host_id` is shared with.
pub async fn list_shares(
    db: &AnyPool,
    host_id: &str,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.email, s.created_at FROM host_shares s JOIN users u ON u.id = s.user_id \
         WHERE s.host_id = $1 ORDER BY s.created_at, u.email",
    )
    .bind(host_id)
    .fetch_all(db)
    .await
}

pub async fn is_shared_with(
    db: &AnyPool,
    host_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM host_shares WHERE host_id = $1 AND user_id = $2")
            .bind(host_id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.is_some())
}

pub struct HostRow {
    pub id: String,
    pub name: String,
    pub public_key: String,
    pub owner_id: String,
    pub owner_email: String,
    /// `host_presence.last_seen` if the host has a presence row.
    pub presence_seen: Option<i64>,
    /// `devices.last_seen`: when it last went offline.
    pub last_seen: Option<i64>,
}

/// The hosts `user_id` may connect to: its own and those shared with it.
pub async fn hosts_for_user(db: &AnyPool, user_id: &str) -> Result<Vec<HostRow>, sqlx::Error> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.id, d.name, d.public_key, d.user_id, u.email, p.last_seen, d.last_seen \
         FROM devices d JOIN users u ON u.id = d.user_id \
         LEFT JOIN host_presence p ON p.host_id = d.id \
         WHERE d.kind = 'host' AND (d.user_id = $1 OR EXISTS \
           (SELECT 1 FROM host_shares s WHERE s.host_id = d.id AND s.user_id = $1)) \
         ORDER BY d.name, d.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, public_key, owner_id, owner_email, presence_seen, last_seen)| HostRow {
                id,
                name,
                public_key,
                owner_id,
                owner_email,
                presence_seen,
                last_seen,
            },
        )
        .collect())
}

/// `host_id` is online at `instance_id` (taking it over from any other instance).
pub async fn set_presence(
    db: &AnyPool,
    host_id: &str,
    instance_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO host_presence (host_id, instance_id, since, last_seen) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (host_id) DO UPDATE SET instance_id = excluded.instance_id, \
         since = excluded.since, last_seen = excluded.last_seen",
    )
    .bind(host_id)
    .bind(instance_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// `host_id` went offline from `instance_id` (unless another instance has it now).
pub async fn clear_presence(
    db: &AnyPool,
    host_id: &str,
    instance_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    // last_seen first, so a host listed offline always has one.
    sqlx::query("UPDATE devices SET last_seen = $1 WHERE id = $2")
        .bind(now)
        .bind(host_id)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM host_presence WHERE host_id = $1 AND instance_id = $2")
        .bind(host_id)
        .bind(instance_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The accounts that may use `host_id`: its owner and those it is shared with.
pub async fn users_of_host(db: &AnyPool, host_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM devices WHERE id = $1 \
         UNION SELECT user_id FROM host_shares WHERE host_id = $1",
    )
    .bind(host_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

/// Whether `host_id` has a presence row refreshed at or after `cutoff`.
pub async fn presence_fresh(db: &AnyPool, host_id: &str, cutoff: i64) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM host_presence WHERE host_id = $1 AND last_seen >= $2")
            .bind(host_id)
            .bind(cutoff)
            .fetch_optional(db)
            .await?;
    Ok(row.is_some())
}

/// (host, client device, accepted) of `id` if it has not ended.
pub async fn open_connection_parties(
    db: &AnyPool,
    id: &str,
) -> Result<Option<(String, String, bool)>, sqlx::Error> {
    let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT host_id, client_device_id, accepted_at FROM connections \
         WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(h, c, a)| (h, c, a.is_some())))
}

/// This instance's heartbeat: its hosts are still online.
pub async fn refresh_presence(
    db: &AnyPool,
    instance_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE host_presence SET last_seen = $1 WHERE instance_id = $2")
        .bind(now)
        .bind(instance_id)
        .execute(db)
        .await?;
    Ok(())
}

pub struct NewConnection<'a> {
    pub id: &'a str,
    pub host_id: &'a str,
    pub host_user_id: &'a str,
    pub client_device_id: &'a str,
    pub client_user_id: &'a str,
    pub now: i64,
}

pub async fn insert_connection(db: &AnyPool, c: &NewConnection<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connections (id, host_id, host_user_id, client_device_id, client_user_id, \
         requested_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.id)
    .bind(c.host_id)
    .bind(c.host_user_id)
    .bind(c.client_device_id)
    .bind(c.client_user_id)
    .bind(c.now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn connection_accepted(db: &AnyPool, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE connections SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Record one side's report on connection `id` if `device_id` is one of its sides; whether it
/// was.
pub async fn record_report(
    db: &AnyPool,
    id: &str,
    device_id: &str,
    path: &str,
    bytes_sent: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE connections SET path = $1, \
           host_bytes_sent = CASE WHEN host_id = $3 THEN $2 ELSE host_bytes_sent END, \
           client_bytes_sent = CASE WHEN client_device_id = $3 THEN $2 ELSE client_bytes_sent END \
         WHERE id = $4 AND (host_id = $3 OR client_device_id = $3)",
    )
    .bind(path)
    .bind(bytes_sent)
    .bind(device_id)
    .bind(id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn connection_ended(
    db: &AnyPool,
    id: &str,
    now: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connections SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}
