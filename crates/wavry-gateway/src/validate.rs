//! What a well-formed email address and a new password are: shared by the account, registry
//! and admin endpoints, so each refuses the same input the same way.

use axum::http::StatusCode;
use wavry_proto::account::{ErrorCode, EMAIL_MAX_BYTES, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS};

use crate::error::ApiError;

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

pub(crate) fn check_new_password(pw: &str) -> Result<(), ApiError> {
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
