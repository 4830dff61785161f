//! The gateway's admin API (`/admin/api/…`, docs/ADMIN.md): request and response bodies, shared
//! by the gateway, its dashboard's tests and any tooling. Same conventions as `account`.

use serde::{Deserialize, Serialize};

/// `GET /admin/api/overview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    pub users: i64,
    /// Login sessions not yet expired.
    pub sessions: i64,
    /// Bans in force.
    pub bans: i64,
    pub devices: i64,
    /// Hosts online (on any gateway instance sharing the database).
    pub hosts_online: i64,
    /// Devices connected to this instance's signaling.
    pub signaling_connected: i64,
    /// Connections requested in the last 24 hours.
    pub connections_24h: i64,
    /// Relays registered (relays come with their own issue: 0 until then).
    pub relays: i64,
}

/// One account, as the admin sees it (`GET /admin/api/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUser {
    pub user_id: String,
    pub email: String,
    pub created_at: i64,
    pub totp_enabled: bool,
    pub sessions: i64,
    pub devices: i64,
    /// Some when banned: the ban.
    pub ban: Option<BanInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<AdminUser>,
}

/// `POST /admin/api/sessions/revoke`: one session, or all of one account's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeResponse {
    pub revoked: u64,
}

/// `POST /admin/api/ban`: name the account by id or by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub reason: String,
    /// How long; absent: permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
}

/// A ban in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanInfo {
    pub user_id: String,
    pub reason: String,
    pub created_at: i64,
    /// None: permanent.
    pub expires_at: Option<i64>,
}

/// `POST /admin/api/unban`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnbanRequest {
    pub user_id: String,
}

/// One audit log entry (`GET /admin/api/audit`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `admin`, `user:<id>`, or `anonymous`.
    pub actor: String,
    /// What happened, e.g. `login.failed`, `admin.ban` (docs/ADMIN.md lists them).
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

/// One UTC day of activity (`GET /admin/api/analytics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Connections requested that day.
    pub connections: i64,
    /// …of which the host accepted.
    pub accepted: i64,
    /// Sessions (accepted connections) that ended that day, and their total length.
    pub ended: i64,
    pub total_duration_secs: i64,
    pub logins: i64,
    pub registrations: i64,
    /// Of the sessions that ended that day, those reported direct and relayed…
    pub direct: i64,
    pub relayed: i64,
    /// …and the bytes both sides reported sending.
    pub bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Analytics {
    /// Oldest first, every day of the window (zeros included).
    pub days: Vec<DayStats>,
}
