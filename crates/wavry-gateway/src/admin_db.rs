//! Queries of the admin side (migrations/0003_admin.sql): bans, the audit log, and the counts
//! the dashboard shows. Same portable SQL as `db`.

use sqlx::AnyPool;
use wavry_proto::admin::{AdminUser, AuditEntry, BanInfo, Overview};

pub struct NewAudit<'a> {
    pub id: &'a str,
    pub at_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub async fn insert_audit(db: &AnyPool, e: &NewAudit<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, at_ms, actor, action, target, ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.id)
    .bind(e.at_ms)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.target)
    .bind(e.ip)
    .bind(e.detail)
    .execute(db)
    .await?;
    Ok(())
}

/// Newest first: at most `limit` entries older than `before_ms`, optionally of one action.
pub async fn list_audit(
    db: &AnyPool,
    limit: i64,
    before_ms: i64,
    action: Option<&str>,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    type Row = (
        String,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, at_ms, actor, action, target, ip, detail FROM audit_log \
         WHERE at_ms < $1 AND ($2 = '' OR action = $2) ORDER BY at_ms DESC, id DESC LIMIT $3",
    )
    .bind(before_ms)
    .bind(action.unwrap_or(""))
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at_ms, actor, action, target, ip, detail)| AuditEntry {
                id,
                at_ms,
                actor,
                action,
                target,
                ip,
                detail,
            },
        )
        .collect())
}

/// Ban `user_id` (replacing an earlier ban).
pub async fn upsert_ban(db: &AnyPool, ban: &BanInfo) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bans (user_id, reason, created_at, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason, \
         created_at = excluded.created_at, expires_at = excluded.expires_at",
    )
    .bind(&ban.user_id)
    .bind(&ban.reason)
    .bind(ban.created_at)
    .bind(ban.expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Lift `user_id`'s ban; whether there was one in force.
pub async fn delete_ban(db: &AnyPool, user_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let was = active_ban(db, user_id, now).await?.is_some();
    sqlx::query("DELETE FROM bans WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(was)
}

/// `user_id`'s ban, if one is in force at `now`.
pub async fn active_ban(
    db: &AnyPool,
    user_id: &str,
    now: i64,
) -> Result<Option<BanInfo>, sqlx::Error> {
    let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT reason, created_at, expires_at FROM bans \
         WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(user_id)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(reason, created_at, expires_at)| BanInfo {
        user_id: user_id.to_string(),
        reason,
        created_at,
        expires_at,
    }))
}

async fn count(db: &AnyPool, sql: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(db).await?;
    Ok(n)
}

async fn count_with(db: &AnyPool, sql: &str, arg: i64) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(sql).bind(arg).fetch_one(db).await?;
    Ok(n)
}

/// Hosts whose presence was refreshed at or after `cutoff`.
pub async fn hosts_online(db: &AnyPool, cutoff: i64) -> Result<i64, sqlx::Error> {
    count_with(
        db,
        "SELECT COUNT(*) FROM host_presence WHERE last_seen >= $1",
        cutoff,
    )
    .await
}

/// The dashboard's counts at `now` (`presence_cutoff`: presence rows older than this are stale;
/// `idle_cutoff`: sessions unused since before this have ended).
pub async fn overview(
    db: &AnyPool,
    now: i64,
    presence_cutoff: i64,
    idle_cutoff: i64,
) -> Result<Overview, sqlx::Error> {
    let users = count(db, "SELECT COUNT(*) FROM users").await?;
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE expires_at > $1 AND last_used_at > $2")
            .bind(now)
            .bind(idle_cutoff)
            .fetch_one(db)
            .await?;
    let bans = count_with(
        db,
        "SELECT COUNT(*) FROM bans WHERE expires_at IS NULL OR expires_at > $1",
        now,
    )
    .await?;
    let devices = count(db, "SELECT COUNT(*) FROM devices").await?;
    let hosts_online = hosts_online(db, presence_cutoff).await?;
    let connections_24h = count_with(
        db,
        "SELECT COUNT(*) FROM connections WHERE requested_at >= $1",
        now - 86_400,
    )
    .await?;
    Ok(Overview {
        users,
        sessions,
        bans,
        devices,
        hosts_online,
        signaling_connected: 0,
        connections_24h,
        relays: 0,
    })
}

/// Accounts whose email contains `query` (all if empty), newest first, at most `limit`.
pub async fn list_users(
    db: &AnyPool,
    query: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<AdminUser>, sqlx::Error> {
    type Row = (
        String,
        String,
        i64,
        Option<String>,
        i64,
        i64,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    // The LIKE pattern's wildcards in `query` are escaped: a search is for the text typed.
    let pattern = format!(
        "%{}%",
        query
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.id, u.email, u.created_at, u.totp_secret, \
           (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > $2), \
           (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id), \
           b.reason, b.created_at, b.expires_at \
         FROM users u LEFT JOIN bans b ON b.user_id = u.id \
           AND (b.expires_at IS NULL OR b.expires_at > $2) \
         WHERE u.email LIKE $1 ESCAPE '\\' \
         ORDER BY u.created_at DESC, u.id LIMIT $3",
    )
    .bind(pattern)
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, email, created_at, totp, sessions, devices, reason, banned_at, expires_at)| {
                AdminUser {
                    ban: banned_at.map(|created_at| BanInfo {
                        user_id: id.clone(),
                        reason: reason.unwrap_or_default(),
                        created_at,
                        expires_at,
                    }),
                    user_id: id,
                    email,
                    created_at,
                    totp_enabled: totp.is_some(),
                    sessions,
                    devices,
                }
            },
        )
        .collect())
}

/// Per UTC day since `from_day` (days since the epoch): (day, connections, accepted).
pub async fn connections_per_day(
    db: &AnyPool,
    from_day: i64,
) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT requested_at / 86400 AS day, COUNT(*), \
           CAST(SUM(CASE WHEN accepted_at IS NULL THEN 0 ELSE 1 END) AS BIGINT) \
         FROM connections WHERE requested_at >= $1 GROUP BY requested_at / 86400 ORDER BY day",
    )
    .bind(from_day * 86_400)
    .fetch_all(db)
    .await
}

/// One day of ended sessions.
pub struct EndedDay {
    pub day: i64,
    pub sessions: i64,
    pub seconds: i64,
    pub direct: i64,
    pub relayed: i64,
    pub bytes: i64,
}

/// Per UTC day since `from_day`: the sessions that ended, their length, path and bytes.
pub async fn sessions_ended_per_day(
    db: &AnyPool,
    from_day: i64,
) -> Result<Vec<EndedDay>, sqlx::Error> {
    type Row = (i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT ended_at / 86400 AS day, COUNT(*), \
           CAST(SUM(ended_at - accepted_at) AS BIGINT), \
           CAST(SUM(CASE WHEN path = 'direct' THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN path = 'relayed' THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(COALESCE(host_bytes_sent, 0) + COALESCE(client_bytes_sent, 0)) AS BIGINT) \
         FROM connections WHERE accepted_at IS NOT NULL AND ended_at >= $1 \
         GROUP BY ended_at / 86400 ORDER BY day",
    )
    .bind(from_day * 86_400)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(day, sessions, seconds, direct, relayed, bytes)| EndedDay {
                day,
                sessions,
                seconds,
                direct,
                relayed,
                bytes,
            },
        )
        .collect())
}

/// Per UTC day since `from_day`: (day, count) of audit entries with `action`.
pub async fn audit_per_day(
    db: &AnyPool,
    action: &str,
    from_day: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at_ms / 86400000 AS day, COUNT(*) FROM audit_log \
         WHERE action = $1 AND at_ms >= $2 GROUP BY at_ms / 86400000 ORDER BY day",
    )
    .bind(action)
    .bind(from_day * 86_400_000)
    .fetch_all(db)
    .await
}
