//! Extractors: what a handler takes from a request (a JSON body, the client's address, a
//! session's or the admin's bearer token), each turning a bad request into a JSON 4xx. The
//! session check behind `Auth` is here too, for the signaling socket to share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use wavry_proto::account::ErrorCode;

use crate::audit::{self, Actor, Event};
use crate::db;
use crate::error::ApiError;
use crate::state::{AppState, Inner};
use crate::throttle::ThrottleKey;
use crate::token;

/// A session's `last_used_at` is written at most this often (seconds): every request of a busy
/// client would otherwise be a database write. The idle expiry is that much less precise.
const TOUCH_INTERVAL_SECS: i64 = 60;

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
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
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

/// A request carrying the admin token (`Authorization: Bearer` or `x-admin-token`).
pub struct Admin {
    pub(crate) ip: IpAddr,
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get("x-admin-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    bearer(headers)
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, st).await;
        let Some(expected) = st.config.admin_token.as_ref().map(|t| t.expose()) else {
            return Err(ApiError::not_found("no such endpoint"));
        };
        let key = ThrottleKey::ip(ip);
        let attempt = st
            .throttle
            .begin(&[&key], st.clock.now_ms())
            .map_err(ApiError::too_many_attempts)?;
        // Hashing both sides makes the comparison constant-time whatever the lengths.
        let given = presented_token(&parts.headers).unwrap_or("");
        let ok: bool = Sha256::digest(given.as_bytes())
            .ct_eq(&Sha256::digest(expected.as_bytes()))
            .into();
        if !ok {
            attempt.failed(st.clock.now_ms());
            audit::record(st, Event::new(Actor::Anonymous, "admin.auth_failed").ip(ip)).await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "missing or wrong admin token",
            ));
        }
        Ok(Admin { ip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn token_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented_token(&h), Some("abc"));
        h.insert("x-admin-token", HeaderValue::from_static("xyz"));
        assert_eq!(presented_token(&h), Some("xyz"));
    }
}
