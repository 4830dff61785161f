//! The gateway's HTTP account API: request and response bodies (JSON), shared by the gateway,
//! its clients and the tests (docs/GATEWAY.md).
//!
//! Requests refuse unknown fields, so a misspelt field is an error rather than silently ignored;
//! responses accept them, so an older client keeps working when the gateway adds one.
//! Times are Unix seconds (UTC).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Fewest characters (Unicode scalar values) a password may have.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most bytes (UTF-8) a password may have: long passphrases fit, a megabyte of hashing input
/// does not.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Longest email address accepted, in bytes (RFC 5321's path limit).
pub const EMAIL_MAX_BYTES: usize = 254;

/// `POST /v1/accounts`: create an account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
}

/// `POST /v1/auth/login`: open a session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The current TOTP code; required once TOTP is enabled on the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
}

// Passwords and codes never reach logs through `{:?}`.
impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("totp_code", &self.totp_code.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An account as its owner sees it (`GET /v1/account`, and the answer to registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    pub user_id: String,
    /// The normalised address (trimmed, lower case).
    pub email: String,
    pub totp_enabled: bool,
    pub created_at: i64,
}

/// The answer to a successful login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer <token>`: 32 random bytes, base64url without
    /// padding. The gateway keeps only its SHA-256; it cannot be shown again.
    pub token: String,
    /// The session's public id (what `GET /v1/sessions` lists and `DELETE` takes).
    pub session_id: String,
    pub user_id: String,
    /// When the session ends whatever happens.
    pub expires_at: i64,
    /// When the session ends if it is not used before (moves on with each use).
    pub idle_expires_at: i64,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("idle_expires_at", &self.idle_expires_at)
            .finish()
    }
}

/// One of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub session_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub idle_expires_at: i64,
    /// The address the session was opened from, as the gateway saw it.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session whose token made this request.
    pub current: bool,
}

/// `GET /v1/sessions`: the caller's live sessions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /v1/account/totp/enroll`: a new TOTP secret, pending until confirmed with a code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrollResponse {
    /// The secret in base32 (RFC 4648, no padding), for typing into an authenticator.
    pub secret: String,
    /// `otpauth://totp/…` URI (SHA1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code: a PNG image, base64 (standard alphabet, padded).
    pub qr_png_base64: String,
}

impl fmt::Debug for TotpEnrollResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollResponse")
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `POST /v1/account/totp/confirm` and `/disable`: a current TOTP code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    pub code: String,
}

impl fmt::Debug for TotpCodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCodeRequest { code: <redacted> }")
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `"ok"` when the gateway can reach its database.
    pub status: String,
}

/// Every error answer: a 4xx (or 5xx) status with this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A human-readable explanation.
    pub error: String,
    /// What a program matches on.
    pub code: ErrorCode,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// Valid JSON of the wrong shape: a missing field, a wrong type, an unknown field.
    InvalidBody,
    /// The body is not sent as `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The body is larger than the gateway accepts.
    BodyTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    InvalidEmail,
    PasswordTooShort,
    PasswordTooLong,
    /// Registration with an address that already has an account.
    EmailTaken,
    /// Wrong email or password (the same answer whether or not the account exists).
    InvalidCredentials,
    /// The password was right; this account also needs `totp_code`.
    TotpRequired,
    /// The TOTP code is wrong, expired, or was used already.
    InvalidTotpCode,
    /// TOTP enrolment while TOTP is already on.
    TotpAlreadyEnabled,
    /// Confirm or disable without TOTP enrolment pending or enabled.
    TotpNotEnabled,
    /// No `Authorization: Bearer` token, or one that is unknown, revoked or expired.
    Unauthorized,
    /// Too many failed attempts: wait `Retry-After` seconds.
    TooManyAttempts,
    NotFound,
    MethodNotAllowed,
    /// A device name or public key that cannot be one.
    InvalidDevice,
    /// This account has a device with this public key already.
    DeviceExists,
    /// Sharing a host with an address that has no account.
    NoSuchAccount,
    /// The WebSocket endpoint was asked without a WebSocket upgrade.
    UpgradeRequired,
    /// The account is banned (the message says until when).
    Banned,
    /// An admin request named no account, or both an id and an email.
    InvalidTarget,
    /// The gateway is saturated (e.g. password hashing queue); try again shortly.
    Busy,
    Internal,
    /// A code this version does not know (a newer gateway).
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields() {
        let err = serde_json::from_str::<RegisterRequest>(
            r#"{"email":"a@b.c","password":"12345678","admin":true}"#,
        );
        assert!(err.is_err());
        let ok: LoginRequest =
            serde_json::from_str(r#"{"email":"a@b.c","password":"12345678"}"#).unwrap();
        assert_eq!(ok.totp_code, None);
    }

    #[test]
    fn error_codes_are_snake_case_and_tolerate_new_ones() {
        let body = ErrorBody {
            error: "x".into(),
            code: ErrorCode::TooManyAttempts,
        };
        let s = serde_json::to_string(&body).unwrap();
        assert_eq!(s, r#"{"error":"x","code":"too_many_attempts"}"#);
        let b: ErrorBody = serde_json::from_str(r#"{"error":"x","code":"brand_new"}"#).unwrap();
        assert_eq!(b.code, ErrorCode::Unknown);
    }

    #[test]
    fn debug_redacts_secrets() {
        let r = LoginRequest {
            email: "a@b.c".into(),
            password: "hunter22hunter22".into(),
            totp_code: Some("123456".into()),
        };
        let s = format!("{r:?}");
        assert!(!s.contains("hunter22") && !s.contains("123456"), "{s}");
    }
}
