//! Accounts (docs/GATEWAY.md): registration, login and logout, login sessions, and TOTP
//! (enrol, confirm, disable). Every TOTP code check goes through `use_totp_code`.

use std::net::IpAddr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use wavry_proto::account::{
    AccountInfo, ErrorCode, LoginRequest, LoginResponse, RegisterRequest, SessionInfo, SessionList,
    TotpCodeRequest, TotpEnrollResponse, PASSWORD_MAX_BYTES,
};

use crate::admin_db;
use crate::audit::{self, Actor, Event};
use crate::db;
use crate::error::{random_failed, ApiError};
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::signal::bus::BusMessage;
use crate::state::AppState;
use crate::throttle::{Attempt, ThrottleKey};
use crate::token;
use crate::totp;
use crate::validate::{check_new_password, normalize_email};

/// Longest User-Agent kept with a session.
const USER_AGENT_MAX: usize = 256;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/account", get(account))
        .route("/v1/account/totp/enroll", post(totp_enroll))
        .route("/v1/account/totp/confirm", post(totp_confirm))
        .route("/v1/account/totp/disable", post(totp_disable))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{session_id}", delete(revoke_session))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    logout,
    account,
    list_sessions,
    revoke_session,
    totp_enroll,
    totp_confirm,
    totp_disable,
))]
pub(crate) struct ApiDoc;

#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    request_body = RegisterRequest,
    responses((status = 201, body = AccountInfo), crate::error::ClientError)
)]
async fn register(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AccountInfo>), ApiError> {
    let email = normalize_email(&req.email)?;
    check_new_password(&req.password)?;
    // Counted once the request is valid, before the expensive hash.
    st.register_limit
        .take(ip, st.clock.now_ms())
        .map_err(ApiError::too_many_attempts)?;
    let hash = st.hasher.hash(req.password).await?;
    let id = token::new_id().map_err(random_failed)?;
    let now = st.clock.now_secs();
    match db::insert_user(&st.db, &id, &email, &hash, now).await {
        Ok(()) => {}
        // Registration cannot hide that an address has an account; login does.
        Err(e) if db::is_unique_violation(&e) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::EmailTaken,
                "an account with this email exists",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user_id = %id, "account registered");
    if let Some(bus) = &st.signal.bus {
        bus.publish(BusMessage::Registered { ip });
    }
    st.metrics.registrations.inc();
    audit::record(
        &st,
        Event::new(Actor::User(&id), "account.registered").ip(ip),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(AccountInfo {
            user_id: id,
            email,
            totp_enabled: false,
            created_at: now,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "accounts",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), crate::error::ClientError)
)]
async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let ip_key = ThrottleKey::ip(ip);
    // An address that cannot be valid has no account: same answer as a wrong password, no
    // hashing spent, but it counts against the client's address.
    let email = match normalize_email(&req.email) {
        Ok(e) => e,
        Err(_) => {
            st.throttle
                .begin(&[&ip_key], st.clock.now_ms())
                .map_err(ApiError::too_many_attempts)?
                .failed(st.clock.now_ms());
            return Err(ApiError::invalid_credentials());
        }
    };
    let account_key = ThrottleKey::Account(email.clone());
    let keys = [&account_key, &ip_key];
    // Locked: refuse before hashing, whatever the password, so guessing stops and costs us
    // nothing. The attempt counts as in flight until it is decided (an early return, e.g. a
    // database error or "TOTP code required", counts as neither failure nor success).
    let attempt = st
        .throttle
        .begin(&keys, st.clock.now_ms())
        .map_err(|secs| {
            st.metrics.login("locked");
            ApiError::too_many_attempts(secs)
        })?;

    let user = db::user_auth_by_email(&st.db, &email).await?;
    let password_ok = if req.password.len() > PASSWORD_MAX_BYTES {
        false // cannot be anyone's password; not worth hashing
    } else {
        match &user {
            Some(u) => {
                st.hasher
                    .verify(req.password.clone(), u.password_hash.clone())
                    .await?
            }
            None => {
                // Equal timing for unknown accounts.
                st.hasher.verify_dummy(req.password.clone()).await?;
                false
            }
        }
    };
    let Some(user) = user.filter(|_| password_ok) else {
        attempt.failed(st.clock.now_ms());
        tracing::info!(%ip, "login failed");
        let e = Event::new(Actor::Anonymous, "login.failed")
            .target(&email)
            .ip(ip);
        audit::record(&st, e.detail("wrong email or password")).await;
        st.metrics.login("failed");
        return Err(ApiError::invalid_credentials());
    };
    // Told only to whoever knows the password.
    if let Some(ban) = admin_db::active_ban(&st.db, &user.id, st.clock.now_secs()).await? {
        attempt.succeeded(&account_key, st.clock.now_ms());
        let until = ban
            .expires_at
            .map_or("permanently".into(), |t| format!("until {t}"));
        audit::record(
            &st,
            Event::new(Actor::User(&user.id), "login.banned").ip(ip),
        )
        .await;
        st.metrics.login("banned");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Banned,
            format!("this account is banned {until}"),
        ));
    }

    match &user.totp_secret {
        Some(secret) => {
            let Some(code) = req.totp_code.as_deref() else {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::TotpRequired,
                    "this account needs a TOTP code (totp_code)",
                ));
            };
            let login = TotpUse::Login { email: &email, ip };
            use_totp_code(&st, attempt, &account_key, &user.id, secret, code, login).await?;
        }
        None => attempt.succeeded(&account_key, st.clock.now_ms()),
    }

    if st.hasher.needs_rehash(&user.password_hash) {
        // Move the stored hash to the configured cost while we hold the password. Failing
        // here must not fail the login.
        match st.hasher.hash(req.password).await {
            Ok(h) => {
                if let Err(e) = db::update_password_hash(&st.db, &user.id, &h).await {
                    tracing::warn!(error = %e, "rehashing a password failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "rehashing a password failed"),
        }
    }

    let now = st.clock.now_secs();
    let idle = st.idle_secs();
    db::delete_expired_sessions(&st.db, &user.id, now, now.saturating_sub(idle)).await?;
    let (token, token_hash) = token::new_token().map_err(random_failed)?;
    let session_id = token::new_id().map_err(random_failed)?;
    let expires_at = now.saturating_add(st.absolute_secs());
    let ip_text = ip.to_string();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(USER_AGENT_MAX).collect::<String>());
    db::insert_session(
        &st.db,
        &db::NewSession {
            id: &session_id,
            user_id: &user.id,
            token_hash: &token_hash,
            now,
            expires_at,
            ip: Some(&ip_text),
            user_agent: user_agent.as_deref(),
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, %session_id, %ip, "login");
    let e = Event::new(Actor::User(&user.id), "login.succeeded").target(&session_id);
    audit::record(&st, e.ip(ip)).await;
    st.metrics.login("succeeded");
    Ok(Json(LoginResponse {
        token,
        session_id,
        user_id: user.id,
        expires_at,
        idle_expires_at: now.saturating_add(idle).min(expires_at),
    }))
}

/// What a TOTP code is checked for: each use consumes the code its own way.
#[derive(Clone, Copy)]
enum TotpUse<'a> {
    /// Turn the pending secret on (`POST /v1/account/totp/confirm`).
    Enable,
    /// Turn TOTP off (`POST /v1/account/totp/disable`).
    Disable,
    /// The second factor of a login to `email` from `ip`.
    Login { email: &'a str, ip: IpAddr },
}

/// Check one TOTP code of `user_id` against `secret`, in the one order that keeps a million
/// codes from being guessable or a code from working twice:
///
/// 1. throttle: `attempt` is begun before anything else (there is no `Attempt` without
///    `LoginThrottle::begin`, so the caller cannot skip it);
/// 2. check: `code` is a code of `secret` in a step around now;
/// 3. consume: one conditional UPDATE marks its step used (turning TOTP on or off with it),
///    so a code used before, or raced by a second request, is rejected like a wrong one;
/// 4. record: the attempt fails (toward a lockout, on every instance) or succeeds, forgetting
///    `clear`'s failures;
/// 5. audit: TOTP turned on or off, or the failed login.
///
/// An error before step 4 (the database) drops the attempt: counted as neither.
async fn use_totp_code(
    st: &AppState,
    attempt: Attempt<'_>,
    clear: &ThrottleKey,
    user_id: &str,
    secret: &str,
    code: &str,
    purpose: TotpUse<'_>,
) -> Result<(), ApiError> {
    let step =
        totp::matching_step(secret, code, st.clock.now_secs()).map_err(ApiError::internal)?;
    let consumed = match step {
        None => false,
        Some(step) => match purpose {
            TotpUse::Enable => db::confirm_totp(&st.db, user_id, secret, step).await?,
            TotpUse::Disable => db::disable_totp(&st.db, user_id, secret, step).await?,
            TotpUse::Login { .. } => db::consume_totp_step(&st.db, user_id, secret, step).await?,
        },
    };
    if !consumed {
        attempt.failed(st.clock.now_ms());
        if let TotpUse::Login { email, ip } = purpose {
            tracing::info!(user_id = %user_id, %ip, "login failed: TOTP code");
            let e = Event::new(Actor::Anonymous, "login.failed")
                .target(email)
                .ip(ip);
            audit::record(st, e.detail("wrong TOTP code")).await;
            st.metrics.login("failed");
        }
        return Err(ApiError::invalid_totp());
    }
    attempt.succeeded(clear, st.clock.now_ms());
    let (action, what) = match purpose {
        TotpUse::Enable => ("totp.enabled", "TOTP enabled"),
        TotpUse::Disable => ("totp.disabled", "TOTP disabled"),
        // The login goes on; it is audited once its session exists.
        TotpUse::Login { .. } => return Ok(()),
    };
    tracing::info!(user_id = %user_id, "{what}");
    audit::record(st, Event::new(Actor::User(user_id), action)).await;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "accounts",
    responses((status = 204, description = "the token stops working"), crate::error::ClientError),
    security(("session" = []))
)]
async fn logout(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: Auth,
) -> Result<StatusCode, ApiError> {
    db::delete_session(&st.db, &auth.session_id).await?;
    st.signal
        .session_ended(&st.db, &auth.session_id, st.clock.now_ms())
        .await;
    tracing::info!(user_id = %auth.user_id, session_id = %auth.session_id, "logout");
    let e = Event::new(Actor::User(&auth.user_id), "session.logout").target(&auth.session_id);
    audit::record(&st, e.ip(ip)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/account",
    tag = "accounts",
    responses((status = 200, body = AccountInfo), crate::error::ClientError),
    security(("session" = []))
)]
async fn account(State(st): State<AppState>, auth: Auth) -> Result<Json<AccountInfo>, ApiError> {
    // A session outliving its user cannot happen (ON DELETE CASCADE); answer 401 if it does.
    let u = db::user_by_id(&st.db, &auth.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Json(AccountInfo {
        user_id: u.id,
        email: u.email,
        totp_enabled: u.totp_secret.is_some(),
        created_at: u.created_at,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "accounts",
    responses((status = 200, body = SessionList), crate::error::ClientError),
    security(("session" = []))
)]
async fn list_sessions(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<SessionList>, ApiError> {
    let now = st.clock.now_secs();
    let idle = st.idle_secs();
    let rows = db::list_sessions(&st.db, &auth.user_id, now, now.saturating_sub(idle)).await?;
    Ok(Json(SessionList {
        sessions: rows
            .into_iter()
            .map(|r| SessionInfo {
                current: r.id == auth.session_id,
                idle_expires_at: r.last_used_at.saturating_add(idle).min(r.expires_at),
                session_id: r.id,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                expires_at: r.expires_at,
                ip: r.ip,
                user_agent: r.user_agent,
            })
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/sessions/{session_id}",
    tag = "accounts",
    params(("session_id" = String, Path, description = "a session of yours")),
    responses((status = 204, description = "revoked"), crate::error::ClientError),
    security(("session" = []))
)]
async fn revoke_session(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: Auth,
    session_id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    // An id that does not even decode (e.g. %FF) names no session.
    let Ok(Path(session_id)) = session_id else {
        return Err(ApiError::not_found("no such session"));
    };
    // Someone else's session is "not found", exactly like one that does not exist.
    if db::delete_own_session(&st.db, &session_id, &auth.user_id).await? {
        st.signal
            .session_ended(&st.db, &session_id, st.clock.now_ms())
            .await;
        tracing::info!(user_id = %auth.user_id, %session_id, "session revoked");
        let e = Event::new(Actor::User(&auth.user_id), "session.revoked").target(&session_id);
        audit::record(&st, e.ip(ip)).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

#[utoipa::path(
    post,
    path = "/v1/account/totp/enroll",
    tag = "accounts",
    responses((status = 200, body = TotpEnrollResponse), crate::error::ClientError),
    security(("session" = []))
)]
async fn totp_enroll(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<TotpEnrollResponse>, ApiError> {
    let user = db::user_by_id(&st.db, &auth.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let already = || {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TotpAlreadyEnabled,
            "TOTP is already enabled; disable it first",
        )
    };
    if user.totp_secret.is_some() {
        return Err(already());
    }
    let secret = totp::new_secret().map_err(ApiError::internal)?;
    if !db::set_totp_pending(&st.db, &auth.user_id, &secret).await? {
        return Err(already());
    }
    let (uri, qr) = totp::provisioning(&secret, &st.config.totp_issuer, &user.email)
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %auth.user_id, "TOTP enrolment started");
    Ok(Json(TotpEnrollResponse {
        secret,
        otpauth_uri: uri,
        qr_png_base64: qr,
    }))
}

fn totp_not_enabled(what: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, ErrorCode::TotpNotEnabled, what)
}

#[utoipa::path(
    post,
    path = "/v1/account/totp/confirm",
    tag = "accounts",
    request_body = TotpCodeRequest,
    responses((status = 204, description = "TOTP is on"), crate::error::ClientError),
    security(("session" = []))
)]
async fn totp_confirm(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TotpCodeRequest>,
) -> Result<StatusCode, ApiError> {
    let key = ThrottleKey::Totp(auth.user_id.clone());
    let attempt = st
        .throttle
        .begin(&[&key], st.clock.now_ms())
        .map_err(ApiError::too_many_attempts)?;
    let Some(secret) = db::totp_pending(&st.db, &auth.user_id).await? else {
        return Err(totp_not_enabled(
            "no TOTP enrolment pending (POST /v1/account/totp/enroll)",
        ));
    };
    let enable = TotpUse::Enable;
    use_totp_code(
        &st,
        attempt,
        &key,
        &auth.user_id,
        &secret,
        &req.code,
        enable,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/account/totp/disable",
    tag = "accounts",
    request_body = TotpCodeRequest,
    responses((status = 204, description = "TOTP is off"), crate::error::ClientError),
    security(("session" = []))
)]
async fn totp_disable(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TotpCodeRequest>,
) -> Result<StatusCode, ApiError> {
    let key = ThrottleKey::Totp(auth.user_id.clone());
    let attempt = st
        .throttle
        .begin(&[&key], st.clock.now_ms())
        .map_err(ApiError::too_many_attempts)?;
    let user = db::user_by_id(&st.db, &auth.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let Some(secret) = user.totp_secret else {
        return Err(totp_not_enabled("TOTP is not enabled"));
    };
    let disable = TotpUse::Disable;
    use_totp_code(
        &st,
        attempt,
        &key,
        &auth.user_id,
        &secret,
        &req.code,
        disable,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
