//! Errors: `GatewayError` for starting and running the gateway, `ApiError` for one HTTP answer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use wavry_proto::account::{ErrorBody, ErrorCode};

/// Why the gateway could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid database URL {url:?}: {reason}")]
    DatabaseUrl { url: String, reason: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("password hashing: {0}")]
    Hash(#[from] HashError),
    #[error(transparent)]
    SigningKey(#[from] crate::signing_key::SigningKeyError),
}

/// Password hashing failed (never because the password was wrong: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing queue is full")]
    Busy,
    #[error("the hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Every operation's client errors in the OpenAPI document: one line in each `responses(...)`.
/// Never built: the derive reads only its field's type.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
#[response(
    status = "4XX",
    description = "a client error (docs/GATEWAY.md, Errors)"
)]
pub struct ClientError(ErrorBody);

/// One error answer: a status and an `ErrorBody`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for `Retry-After` (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing, invalid or expired session token",
        )
    }

    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "wrong email or password",
        )
    }

    pub fn invalid_totp() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidTotpCode,
            "wrong, expired or already used TOTP code",
        )
    }

    pub fn banned() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Banned,
            "this account is banned",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, what)
    }

    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAttempts,
                format!("too many attempts; try again in {retry_after_secs} s"),
            )
        }
    }

    /// An unexpected failure: logged in full here, answered without detail.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(format_args!("database: {e}"))
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "the gateway is busy; try again shortly",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The system's random source failed (a new id or token could not be made).
pub(crate) fn random_failed(e: getrandom::Error) -> ApiError {
    ApiError::internal(format_args!("random: {e}"))
}
