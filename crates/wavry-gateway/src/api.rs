//! The HTTP API (docs/GATEWAY.md): routes, handlers, and the extractors that turn every bad
//! request into a JSON 4xx.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use sqlx::AnyPool;
use wavry_proto::account::{
    AccountInfo, ErrorCode, Health, LoginRequest, LoginResponse, RegisterRequest, SessionInfo,
    SessionList, TotpCodeRequest, TotpEnrollResponse, EMAIL_MAX_BYTES, PASSWORD_MAX_BYTES,
    PASSWORD_MIN_CHARS,
};

use crate::admin_db;
use crate::audit::{self, Actor, Event};
use crate::clock::Clock;
use crate::config::Config;
use crate::db;
use crate::error::ApiError;
use crate::metrics::{HttpLabels, RouteLabel};
use crate::password::Hasher;
use crate::throttle::{LoginThrottle, RateLimiter, ThrottleKey};
use crate::token;
use crate::totp;

/// A session's `last_used_at` is written at most this often (seconds): every request of a busy
/// client would otherwise be a database write. The idle expiry is that much less precise.
const TOUCH_INTERVAL_SECS: i64 = 60;
/// Longest User-Agent kept with a session.
const USER_AGENT_MAX: usize = 256;

pub(crate) struct Inner {
    pub db: AnyPool,
    pub signal: crate::signal::Signaling,
    pub metrics: crate::metrics::Metrics,
    pub hasher: Hasher,
    pub throttle: LoginThrottle,
    pub register_limit: RateLimiter,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    fn idle_secs(&self) -> i64 {
        i64::try_from(self.config.session_idle_ttl.as_secs()).unwrap_or(i64::MAX)
    }
    fn absolute_secs(&self) -> i64 {
        i64::try_from(self.config.session_absolute_ttl.as_secs()).unwrap_or(i64::MAX)
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let admin = if state.config.admin_token.is_some() {
        crate::admin::routes()
    } else {
        Router::new()
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/accounts", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/account", get(account))
        .route("/v1/account/totp/enroll", post(totp_enroll))
        .route("/v1/account/totp/confirm", post(totp_confirm))
        .route("/v1/account/totp/disable", post(totp_disable))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{session_id}", delete(revoke_session))
        .merge(crate::registry_api::routes())
        .route("/v1/signal", get(crate::signal::socket::upgrade))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            log_and_no_store,
        ))
        .with_state(state)
}

/// Log and count each request, and keep answers (tokens, TOTP secrets) out of every cache.
async fn log_and_no_store(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let start = Instant::now();
    let mut resp = next.run(req).await;
    st.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.to_string(),
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    st.metrics
        .http_seconds
        .get_or_create(&RouteLabel { route })
        .observe(start.elapsed().as_secs_f64());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::debug!(
        %method,
        path,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn openapi_json() -> Response {
    let mut resp = axum::response::IntoResponse::into_response(crate::openapi::json());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

// ---------------------------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------------------------

/// `Json<T>` whose rejections are `ApiError`s: a clear 4xx for every malformed, mistyped,
/// unknown-field, oversized or too slowly sent body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, ApiError> {
        // Only the reading is timed, never the handler: a request whose body has arrived runs
        // to completion.
        let read = Json::<T>::from_request(req, st);
        match tokio::time::timeout(st.config.http.body_read_timeout, read).await {
            Ok(Ok(Json(v))) => Ok(ApiJson(v)),
            Ok(Err(r)) => Err(json_rejection(r)),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time",
            )),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, text)
        }
        JsonRejection::JsonDataError(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            text,
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            "request body too large",
        ),
        other => {
            // Whatever else (a body that broke off): the client's fault, never a 500.
            let status = if other.status().is_client_error() {
                other.status()
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError::new(status, ErrorCode::InvalidBody, text)
        }
    }
}

/// The client's address: the connection's, or behind a trusted proxy the one it forwarded.
pub(crate) struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())
            // Served without connection info (a router used in-process): one shared bucket.
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let ip = crate::proxy::client_ip(peer, &parts.headers, &st.config.trusted_proxies);
        Ok(ClientIp(ip))
    }
}

/// A request made with a live session's bearer token.
pub struct Auth {
    pub user_id: String,
    pub session_id: String,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(ApiError::unauthorized)?;
        authenticate(st, token).await
    }
}

/// The live login session of bearer `token`; it counts as used now.
pub(crate) async fn authenticate(st: &Inner, token: &str) -> Result<Auth, ApiError> {
    if !token::looks_like_token(token) {
        return Err(ApiError::unauthorized());
    }
    session_for_hash(st, &token::hash_token(token)).await
}

/// The live login session whose token hashes to `token_hash`; it counts as used now.
pub(crate) async fn session_for_hash(st: &Inner, token_hash: &str) -> Result<Auth, ApiError> {
    let now = st.clock.now_secs();
    let session = db::session_by_token_hash(&st.db, token_hash, now)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if session.banned {
        // A ban deletes the sessions; this covers a login that raced it.
        db::delete_session(&st.db, &session.id).await?;
        return Err(ApiError::banned());
    }
    if now >= session.expires_at || now >= session.last_used_at.saturating_add(st.idle_secs()) {
        db::delete_session(&st.db, &session.id).await?;
        return Err(ApiError::unauthorized());
    }
    if now - session.last_used_at >= TOUCH_INTERVAL_SECS {
        db::touch_session(&st.db, &session.id, now).await?;
    }
    Ok(Auth {
        user_id: session.user_id,
        session_id: session.id,
    })
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Trim and lower-case an address, and refuse what cannot be one. Lower-casing the local part
/// is not what RFC 5321 says, but it is what people expect ("Ann@x" and "ann@x" are one
/// person), and no mail provider in use distinguishes them.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidEmail,
            format!("invalid email address: {why}"),
        )
    };
    let email = raw.trim().to_lowercase();
    if email.len() > EMAIL_MAX_BYTES {
        return Err(invalid("too long"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("no '@'"));
    };
    if local.is_empty() || local.len() > 64 || domain.is_empty() {
        return Err(invalid("empty or too long local part or domain"));
    }
    // ':' would break the otpauth:// label; the rest cannot appear unquoted in an address.
    if email.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, ':' | '<' | '>' | '"' | ',' | ';' | '\\')
    }) || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(invalid("unexpected character"));
    }
    Ok(email)
}

fn check_new_password(pw: &str) -> Result<(), ApiError> {
    if pw.len() > PASSWORD_MAX_BYTES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PasswordTooLong,
            format!("password longer than {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    if pw.chars().count() < PASSWORD_MIN_CHARS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PasswordTooShort,
            format!("password shorter than {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn random_failed(e: getrandom::Error) -> ApiError {
    ApiError::internal(format_args!("random: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "database unreachable", body = wavry_proto::account::ErrorBody), crate::error::ClientError)
)]
async fn healthz(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    match db::ping(&st.db).await {
        Ok(()) => Ok(Json(Health {
            status: "ok".into(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "database unreachable",
            ))
        }
    }
}

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
        bus.publish(crate::signal::bus::BusMessage::Registered { ip });
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

    if let Some(secret) = &user.totp_secret {
        let Some(code) = req.totp_code.as_deref() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::TotpRequired,
                "this account needs a TOTP code (totp_code)",
            ));
        };
        if !check_and_consume_totp(&st, &user.id, secret, code).await? {
            attempt.failed(st.clock.now_ms());
            tracing::info!(user_id = %user.id, %ip, "login failed: TOTP code");
            let e = Event::new(Actor::Anonymous, "login.failed")
                .target(&email)
                .ip(ip);
            audit::record(&st, e.detail("wrong TOTP code")).await;
            st.metrics.login("failed");
            return Err(ApiError::invalid_totp());
        }
    }
    attempt.succeeded(&account_key, st.clock.now_ms());

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

/// Whether `code` is a current code of `secret` not used before; if so it is now used.
async fn check_and_consume_totp(
    st: &AppState,
    user_id: &str,
    secret: &str,
    code: &str,
) -> Result<bool, ApiError> {
    let step =
        totp::matching_step(secret, code, st.clock.now_secs()).map_err(ApiError::internal)?;
    match step {
        Some(step) => Ok(db::consume_totp_step(&st.db, user_id, secret, step).await?),
        None => Ok(false),
    }
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
    let step =
        totp::matching_step(&secret, &req.code, st.clock.now_secs()).map_err(ApiError::internal)?;
    let confirmed = match step {
        Some(step) => db::confirm_totp(&st.db, &auth.user_id, &secret, step).await?,
        None => false,
    };
    if !confirmed {
        attempt.failed(st.clock.now_ms());
        return Err(ApiError::invalid_totp());
    }
    attempt.succeeded(&key, st.clock.now_ms());
    tracing::info!(user_id = %auth.user_id, "TOTP enabled");
    audit::record(&st, Event::new(Actor::User(&auth.user_id), "totp.enabled")).await;
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
    let step =
        totp::matching_step(&secret, &req.code, st.clock.now_secs()).map_err(ApiError::internal)?;
    let disabled = match step {
        Some(step) => db::disable_totp(&st.db, &auth.user_id, &secret, step).await?,
        None => false,
    };
    if !disabled {
        attempt.failed(st.clock.now_ms());
        return Err(ApiError::invalid_totp());
    }
    attempt.succeeded(&key, st.clock.now_ms());
    tracing::info!(user_id = %auth.user_id, "TOTP disabled");
    audit::record(&st, Event::new(Actor::User(&auth.user_id), "totp.disabled")).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM \n").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@x.org",
            "ann@",
            "a b@x.org",
            "a@b@c",
            "ann@x..org",
            "ann@.x",
            "a:b@x.org",
            "a\u{0}@x.org",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@x.org", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn password_bounds() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        // Characters, not bytes: 8 two-byte characters are fine.
        assert!(check_new_password("éééééééé").is_ok());
        assert!(check_new_password(&"x".repeat(1024)).is_ok());
        assert!(check_new_password(&"x".repeat(1025)).is_err());
    }
}
