//! The admin dashboard and API (docs/ADMIN.md), served only when an admin token of at least
//! 32 characters is configured (`ADMIN_PANEL_TOKEN`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use wavry_proto::account::ErrorCode;
use wavry_proto::admin::{
    Analytics, AuditList, BanInfo, BanRequest, DayStats, Overview, RevokeRequest, RevokeResponse,
    UnbanRequest, UserList,
};
use wavry_proto::signal::SignalCode;

use crate::admin_db;
use crate::audit::{self, Actor, Event};
use crate::db;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::signal::bus::KickTarget;
use crate::state::AppState;
use crate::validate::{analytics_days, check_ban_duration, normalize_email, page_limit};

/// Fewest characters an admin token may have.
pub const ADMIN_TOKEN_MIN_CHARS: usize = 32;

const PAGE: &str = include_str!("admin/index.html");
const SCRIPT: &str = include_str!("admin/app.js");
const STYLE: &str = include_str!("admin/app.css");
/// The page loads only its own script and style, and talks only to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| asset(PAGE, "text/html; charset=utf-8")))
        .route("/admin/app.js", get(|| asset(SCRIPT, "text/javascript")))
        .route("/admin/app.css", get(|| asset(STYLE, "text/css")))
        .route("/admin/api/overview", get(overview))
        .route("/admin/api/users", get(users))
        .route("/admin/api/sessions/revoke", post(revoke))
        .route("/admin/api/ban", post(ban))
        .route("/admin/api/unban", post(unban))
        .route("/admin/api/audit", get(audit_log))
        .route("/admin/api/analytics", get(analytics))
        .route("/metrics", get(metrics))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(overview, users, revoke, ban, unban, audit_log, analytics, metrics))]
pub(crate) struct ApiDoc;

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            e.body_text(),
        )
    })
}

#[utoipa::path(
    get,
    path = "/admin/api/overview",
    tag = "admin",
    responses((status = 200, body = Overview), crate::error::ClientError),
    security(("admin" = []))
)]
async fn overview(State(st): State<AppState>, _: Admin) -> Result<Json<Overview>, ApiError> {
    let now = st.clock.now_secs();
    let hb = i64::try_from(st.signal.config.heartbeat.as_secs()).unwrap_or(i64::MAX);
    let idle = i64::try_from(st.config.session_idle_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut o = admin_db::overview(
        &st.db,
        now,
        now.saturating_sub(hb.saturating_mul(3)),
        now.saturating_sub(idle),
    )
    .await?;
    o.signaling_connected = i64::try_from(st.signal.hub.present_count()).unwrap_or(i64::MAX);
    Ok(Json(o))
}

/// `/metrics`, for Prometheus (with the admin token as its bearer credential).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), crate::error::ClientError),
    security(("admin" = []))
)]
async fn metrics(State(st): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let now = st.clock.now_secs();
    let cutoff = now.saturating_sub(st.signal.presence_window_secs());
    let hosts = admin_db::hosts_online(&st.db, cutoff).await?;
    st.metrics.hosts_online.set(hosts);
    let present = i64::try_from(st.signal.hub.present_count()).unwrap_or(i64::MAX);
    st.metrics.signal_sockets.set(present);
    let mut resp = st.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/api/users",
    tag = "admin",
    params(("q" = Option<String>, Query, description = "part of the email"), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = UserList), crate::error::ClientError),
    security(("admin" = []))
)]
async fn users(
    State(st): State<AppState>,
    _: Admin,
    q: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<UserList>, ApiError> {
    let q = query(q)?;
    let limit = page_limit(q.limit);
    let term = q.q.trim().to_lowercase();
    let users = admin_db::list_users(&st.db, &term, st.clock.now_secs(), limit).await?;
    Ok(Json(UserList { users }))
}

#[utoipa::path(
    post,
    path = "/admin/api/sessions/revoke",
    tag = "admin",
    request_body = RevokeRequest,
    responses((status = 200, body = RevokeResponse), crate::error::ClientError),
    security(("admin" = []))
)]
async fn revoke(
    State(st): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let now_ms = st.clock.now_ms();
    let revoked = match (&req.session_id, &req.user_id) {
        (Some(sid), None) => {
            let n = db::delete_session_by_id(&st.db, sid).await?;
            st.signal.session_ended(&st.db, sid, now_ms).await;
            n
        }
        (None, Some(uid)) => {
            let n = db::delete_user_sessions(&st.db, uid).await?;
            let why = "an administrator ended this account's sessions";
            let target = KickTarget::User(uid.clone());
            st.signal
                .kick(&st.db, target, SignalCode::SessionEnded, why, now_ms)
                .await;
            n
        }
        _ => return Err(invalid_target("give session_id or user_id (one of them)")),
    };
    let target = req.session_id.as_deref().or(req.user_id.as_deref());
    let mut e = Event::new(Actor::Admin, "admin.sessions_revoked")
        .ip(admin.ip)
        .detail(format!("{revoked} revoked"));
    if let Some(t) = target {
        e = e.target(t);
    }
    audit::record(&st, e).await;
    Ok(Json(RevokeResponse { revoked }))
}

fn invalid_target(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidTarget,
        why,
    )
}

/// The account a request names by id or by email.
async fn target_user(
    st: &AppState,
    user_id: Option<&str>,
    email: Option<&str>,
) -> Result<String, ApiError> {
    let found = match (user_id, email) {
        (Some(id), None) => db::user_by_id(&st.db, id).await?.map(|u| u.id),
        (None, Some(email)) => {
            let email = normalize_email(email)?;
            db::user_auth_by_email(&st.db, &email).await?.map(|u| u.id)
        }
        _ => return Err(invalid_target("give user_id or email (one of them)")),
    };
    found.ok_or_else(|| ApiError::not_found("no such account"))
}

#[utoipa::path(
    post,
    path = "/admin/api/ban",
    tag = "admin",
    request_body = BanRequest,
    responses((status = 200, body = BanInfo), crate::error::ClientError),
    security(("admin" = []))
)]
async fn ban(
    State(st): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<Json<BanInfo>, ApiError> {
    let user_id = target_user(&st, req.user_id.as_deref(), req.email.as_deref()).await?;
    let now_ms = st.clock.now_ms();
    let now = now_ms / 1000;
    check_ban_duration(req.duration_secs)?;
    let expires_at = req
        .duration_secs
        .map(|d| now.saturating_add(i64::try_from(d).unwrap_or(i64::MAX)));
    let info = BanInfo {
        user_id: user_id.clone(),
        reason: req.reason.chars().take(500).collect(),
        created_at: now,
        expires_at,
    };
    admin_db::upsert_ban(&st.db, &info).await?;
    // Everywhere at once: no session survives, open sockets are closed.
    let revoked = db::delete_user_sessions(&st.db, &user_id).await?;
    let target = KickTarget::User(user_id.clone());
    let why = "this account is banned";
    st.signal
        .kick(&st.db, target, SignalCode::Banned, why, now_ms)
        .await;
    let until = expires_at.map_or("permanent".to_string(), |t| format!("until {t}"));
    audit::record(
        &st,
        Event::new(Actor::Admin, "admin.ban")
            .target(&user_id)
            .ip(admin.ip)
            .detail(format!(
                "{until}; {revoked} sessions revoked; reason: {}",
                info.reason
            )),
    )
    .await;
    tracing::warn!(%user_id, %until, "account banned");
    Ok(Json(info))
}

#[utoipa::path(
    post,
    path = "/admin/api/unban",
    tag = "admin",
    request_body = UnbanRequest,
    responses((status = 204, description = "lifted"), crate::error::ClientError),
    security(("admin" = []))
)]
async fn unban(
    State(st): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<UnbanRequest>,
) -> Result<StatusCode, ApiError> {
    if !admin_db::delete_ban(&st.db, &req.user_id, st.clock.now_secs()).await? {
        return Err(ApiError::not_found("no ban in force for this account"));
    }
    audit::record(
        &st,
        Event::new(Actor::Admin, "admin.unban")
            .target(&req.user_id)
            .ip(admin.ip),
    )
    .await;
    tracing::warn!(user_id = %req.user_id, "account unbanned");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    before_ms: Option<i64>,
    action: Option<String>,
}

#[utoipa::path(
    get,
    path = "/admin/api/audit",
    tag = "admin",
    params(("limit" = Option<i64>, Query), ("before_ms" = Option<i64>, Query), ("action" = Option<String>, Query)),
    responses((status = 200, body = AuditList), crate::error::ClientError),
    security(("admin" = []))
)]
async fn audit_log(
    State(st): State<AppState>,
    _: Admin,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let q = query(q)?;
    let entries = admin_db::list_audit(
        &st.db,
        page_limit(q.limit),
        q.before_ms.unwrap_or(i64::MAX),
        q.action.as_deref().filter(|a| !a.is_empty()),
    )
    .await?;
    Ok(Json(AuditList { entries }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyticsQuery {
    days: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/admin/api/analytics",
    tag = "admin",
    params(("days" = Option<i64>, Query)),
    responses((status = 200, body = Analytics), crate::error::ClientError),
    security(("admin" = []))
)]
async fn analytics(
    State(st): State<AppState>,
    _: Admin,
    q: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Analytics>, ApiError> {
    let q = query(q)?;
    let n = analytics_days(q.days);
    let today = st.clock.now_secs().div_euclid(86_400);
    let from = today - (n - 1);
    let mut days: Vec<DayStats> = (from..=today)
        .map(|d| DayStats {
            day: civil_date(d),
            connections: 0,
            accepted: 0,
            ended: 0,
            total_duration_secs: 0,
            logins: 0,
            registrations: 0,
            direct: 0,
            relayed: 0,
            bytes: 0,
        })
        .collect();
    let slot = |d: i64| usize::try_from(d - from).ok();
    for (d, c, a) in admin_db::connections_per_day(&st.db, from).await? {
        if let Some(s) = slot(d).and_then(|i| days.get_mut(i)) {
            s.connections = c;
            s.accepted = a;
        }
    }
    for e in admin_db::sessions_ended_per_day(&st.db, from).await? {
        if let Some(s) = slot(e.day).and_then(|i| days.get_mut(i)) {
            s.ended = e.sessions;
            s.total_duration_secs = e.seconds;
            s.direct = e.direct;
            s.relayed = e.relayed;
            s.bytes = e.bytes;
        }
    }
    for (action, set) in [
        (
            "login.succeeded",
            (|s: &mut DayStats, n| s.logins = n) as fn(&mut DayStats, i64),
        ),
        ("account.registered", |s: &mut DayStats, n| {
            s.registrations = n
        }),
    ] {
        for (d, n) in admin_db::audit_per_day(&st.db, action, from).await? {
            if let Some(s) = slot(d).and_then(|i| days.get_mut(i)) {
                set(s, n);
            }
        }
    }
    Ok(Json(Analytics { days }))
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_833), "2027-01-15");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(-1), "1969-12-31");
    }
}
