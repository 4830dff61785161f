//! The gateway's HTTP API end to end: the real server on 127.0.0.1:0 with a SQLite file in a
//! temporary directory, spoken to over HTTP with reqwest. Time comes from a `ManualClock` so
//! TOTP steps, lockouts and session expiry are exercised without sleeping.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wavry_gateway::{Argon2Cost, Config, Gateway, GatewayError, ManualClock};
use wavry_proto::account::{
    AccountInfo, ErrorBody, ErrorCode, Health, LoginResponse, TotpEnrollResponse,
};

use crate::common;
use common::*;

#[tokio::test]
async fn healthz() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let h: Health = expect(gw.get("/healthz", None).await, StatusCode::OK).await;
    assert_eq!(h.status, "ok");
    gw.stop().await;
}

#[tokio::test]
async fn register_login_account_logout() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;

    let info: AccountInfo = expect(
        gw.register("  Ann@Example.ORG ", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(info.email, "ann@example.org");
    assert!(!info.totp_enabled);
    // The same address in another case is the same account.
    expect_error(
        gw.register("ANN@example.org", "another password").await,
        StatusCode::CONFLICT,
        ErrorCode::EmailTaken,
    )
    .await;

    let login: LoginResponse = expect(
        gw.login("ann@EXAMPLE.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(login.user_id, info.user_id);
    assert_eq!(login.token.len(), 43);
    let now = T0_MS / 1000;
    assert_eq!(login.expires_at, now + 30 * 24 * 3600);
    assert_eq!(login.idle_expires_at, now + 7 * 24 * 3600);

    let me: AccountInfo = expect(
        gw.get("/v1/account", Some(&login.token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me, info);

    let r = gw
        .post("/v1/auth/logout", json!({}), Some(&login.token))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    expect_error(
        gw.get("/v1/account", Some(&login.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let first = gw.user("bo@example.org").await;
    gw.clock.advance(Duration::from_secs(5));
    let second: LoginResponse = expect(
        gw.login("bo@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;

    let list = gw.sessions(&second.token).await;
    assert_eq!(list.sessions.len(), 2);
    // Newest first, the caller's marked.
    assert_eq!(list.sessions[0].session_id, second.session_id);
    assert!(list.sessions[0].current);
    assert_eq!(list.sessions[1].session_id, first.session_id);
    assert!(!list.sessions[1].current);
    assert_eq!(list.sessions[1].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        list.sessions[1].user_agent.as_deref(),
        Some("wavry-gateway-tests")
    );

    let r = gw
        .http
        .delete(gw.url(&format!("/v1/sessions/{}", first.session_id)))
        .bearer_auth(&second.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(
        gw.get("/v1/sessions", Some(&first.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/sessions/{}", first.session_id)))
        .bearer_auth(&second.token)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    assert_eq!(gw.sessions(&second.token).await.sessions.len(), 1);
    // Ids that are not valid UTF-8 once decoded, or far too long: not found, as JSON.
    for id in ["%FF%FE".to_string(), "x".repeat(4000)] {
        let r = gw
            .http
            .delete(gw.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(&second.token)
            .send()
            .await
            .unwrap();
        expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn another_users_token_or_session_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let a = gw.user("a@example.org").await;
    let b = gw.user("b@example.org").await;

    // B sees only B's sessions and cannot revoke A's: "not found", as if it did not exist.
    let list = gw.sessions(&b.token).await;
    assert_eq!(list.sessions.len(), 1);
    assert_eq!(list.sessions[0].session_id, b.session_id);
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/sessions/{}", a.session_id)))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    assert_eq!(
        gw.sessions(&a.token).await.sessions.len(),
        1,
        "A's session untouched"
    );

    // Tokens that are not a live session's.
    let forged = "A".repeat(43);
    let session_id_as_token = a.session_id.clone();
    for header in [
        None,
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {session_id_as_token}")),
        Some(format!("Basic {}", a.token)),
        Some(format!("Bearer {}x", a.token)),
        Some("Bearer".to_string()),
        // Not ASCII: not a valid header string at all.
        Some(format!("Bearer {}", "é".repeat(20))),
    ] {
        let mut rb = gw.http.get(gw.url("/v1/sessions"));
        if let Some(h) = &header {
            let v = reqwest::header::HeaderValue::from_bytes(h.as_bytes()).unwrap();
            rb = rb.header("authorization", v);
        }
        let r = rb.send().await.unwrap();
        expect_error(r, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    }
    // The scheme is case-insensitive (RFC 9110).
    let r = gw
        .http
        .get(gw.url("/v1/sessions"))
        .header("authorization", format!("bearer {}", a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let raw = |path: &str, body: Vec<u8>| {
        gw.http
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    for body in [
        &b"{"[..],
        b"{\"email\": \"a@b.c\",}",
        b"not json",
        b"",
        b"\xff\xfe",
    ] {
        let r = raw("/v1/accounts", body.to_vec()).await.unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::MalformedJson).await;
    }
    // Nested past serde_json's recursion limit: refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let r = raw("/v1/auth/login", deep.into_bytes()).await.unwrap();
    let status = r.status();
    let body: ErrorBody = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(status.is_client_error(), "{status} {body:?}");

    let cases = [
        (json!({"email": 5, "password": PASSWORD}), "invalid type"),
        (json!({"email": "a@b.c", "password": ["x"]}), "invalid type"),
        (json!({"email": "a@b.c"}), "missing field `password`"),
        (
            json!({"email": "a@b.c", "password": PASSWORD, "admin": true}),
            "unknown field `admin`",
        ),
        (json!([1, 2]), "invalid type"),
        (json!(null), "invalid type"),
    ];
    for (body, says) in cases {
        let b = expect_error(
            gw.post("/v1/accounts", body.clone(), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        )
        .await;
        assert!(b.error.contains(says), "{body}: {b:?}");
    }
    let b = expect_error(
        gw.post(
            "/v1/auth/login",
            json!({"email": "a@b.c", "password": PASSWORD, "totp": "1"}),
            None,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidBody,
    )
    .await;
    assert!(b.error.contains("unknown field `totp`"), "{b:?}");

    // Oversized: refused at the limit, not buffered whole.
    let big = json!({"email": "a@b.c", "password": "x".repeat(100 * 1024)});
    expect_error(
        gw.post("/v1/accounts", big, None).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
    )
    .await;
    // Not declared as JSON.
    let r = gw
        .http
        .post(gw.url("/v1/accounts"))
        .header("content-type", "text/plain")
        .body(r#"{"email":"a@b.c","password":"12345678"}"#)
        .send()
        .await
        .unwrap();
    expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
    )
    .await;

    // Values that parse but are not acceptable.
    for (email, password, code) in [
        ("no-at-sign", PASSWORD, ErrorCode::InvalidEmail),
        ("a b@example.org", PASSWORD, ErrorCode::InvalidEmail),
        ("ok@example.org", "short", ErrorCode::PasswordTooShort),
        (
            "ok@example.org",
            &"x".repeat(1025),
            ErrorCode::PasswordTooLong,
        ),
    ] {
        expect_error(
            gw.register(email, password).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    // The longest password accepted.
    expect::<AccountInfo>(
        gw.register("long@example.org", &"é".repeat(512)).await,
        StatusCode::CREATED,
    )
    .await;
    expect::<LoginResponse>(
        gw.login("long@example.org", &"é".repeat(512), None).await,
        StatusCode::OK,
    )
    .await;

    // Unknown endpoints and methods.
    expect_error(
        gw.get("/v1/nope", None).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    expect_error(
        gw.get("/v1/accounts", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
    )
    .await;
    // Still serving after all that.
    assert_eq!(gw.get("/healthz", None).await.status(), StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn login_errors_do_not_reveal_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    gw.user("real@example.org").await;
    let wrong_password = gw.login("real@example.org", "wrong password", None).await;
    let no_account = gw.login("ghost@example.org", "wrong password", None).await;
    let bad_address = gw.login("not an address", "wrong password", None).await;
    let a = expect_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    let b = expect_error(
        no_account,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    let c = expect_error(
        bad_address,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    gw.stop().await;
}

#[tokio::test]
async fn password_guessing_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.throttle.account.threshold = 3;
        c.throttle.account.base_lockout = Duration::from_secs(60);
    })
    .await;
    gw.user("victim@example.org").await;

    for _ in 0..3 {
        expect_error(
            gw.login("victim@example.org", "guess guess", None).await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
        )
        .await;
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = gw.login("victim@example.org", PASSWORD, None).await;
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("60")
    );
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyAttempts).await;
    // Addresses in another case are the same account.
    expect_error(
        gw.login("VICTIM@example.org", "guess guess", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
    )
    .await;
    // Other accounts are not affected.
    gw.user("other@example.org").await;
    // An account that does not exist locks the same way (a lockout reveals nothing).
    for _ in 0..3 {
        gw.login("ghost@example.org", "guess guess", None).await;
    }
    expect_error(
        gw.login("ghost@example.org", "guess guess", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
    )
    .await;

    gw.clock.advance(Duration::from_secs(61));
    expect::<LoginResponse>(
        gw.login("victim@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    // The success cleared the count: one more failure does not lock again.
    gw.login("victim@example.org", "guess guess", None).await;
    expect::<LoginResponse>(
        gw.login("victim@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;

    // Guessing on after a lockout ends doubles the next one. (Attempts while locked are
    // refused before any check, so they do not count.)
    for _ in 0..3 {
        gw.login("victim@example.org", "guess guess", None).await;
    }
    gw.clock.advance(Duration::from_secs(61));
    expect_error(
        gw.login("victim@example.org", "guess guess", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    let r = gw.login("victim@example.org", PASSWORD, None).await;
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("120")
    );
    gw.stop().await;
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.throttle.ip.threshold = 5;
    })
    .await;
    gw.user("someone@example.org").await;
    for i in 0..5 {
        expect_error(
            gw.login(&format!("user{i}@example.org"), "guess guess", None)
                .await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
        )
        .await;
    }
    // The address is locked, for any account, even with a right password.
    expect_error(
        gw.login("someone@example.org", PASSWORD, None).await,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
    )
    .await;
    gw.clock.advance(Duration::from_secs(31));
    expect::<LoginResponse>(
        gw.login("someone@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    gw.stop().await;
}

fn code(secret: &str, clock: &ManualClock, steps_ahead: i64) -> String {
    use wavry_gateway::Clock as _;
    let step = wavry_gateway::totp::step_at(clock.now_secs()) + steps_ahead;
    wavry_gateway::totp::code_at_step(secret, step).unwrap()
}

#[tokio::test]
async fn totp_enrol_confirm_login_replay_disable() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let email = "totp@example.org";
    let s = gw.user(email).await;
    let clock = gw.clock.clone();

    let enrol: TotpEnrollResponse = expect(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&s.token))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(enrol
        .otpauth_uri
        .starts_with("otpauth://totp/Wavry:totp%40example.org?"));
    assert!(enrol
        .otpauth_uri
        .contains(&format!("secret={}", enrol.secret)));
    assert!(enrol.otpauth_uri.contains("issuer=Wavry"));
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(&enrol.qr_png_base64)
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Not on until confirmed: login needs no code yet.
    expect::<LoginResponse>(gw.login(email, PASSWORD, None).await, StatusCode::OK).await;

    // Wrong and malformed codes do not confirm.
    for bad in ["000000", "12345", "abcdef", &code(&enrol.secret, &clock, 3)] {
        expect_error(
            gw.post(
                "/v1/account/totp/confirm",
                json!({"code": bad}),
                Some(&s.token),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidTotpCode,
        )
        .await;
    }
    let confirm_code = code(&enrol.secret, &clock, 0);
    let r = gw
        .post(
            "/v1/account/totp/confirm",
            json!({"code": confirm_code}),
            Some(&s.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let me: AccountInfo = expect(gw.get("/v1/account", Some(&s.token)).await, StatusCode::OK).await;
    assert!(me.totp_enabled);
    expect_error(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&s.token))
            .await,
        StatusCode::CONFLICT,
        ErrorCode::TotpAlreadyEnabled,
    )
    .await;

    // Login now needs a code; the password alone says "code required".
    expect_error(
        gw.login(email, PASSWORD, None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::TotpRequired,
    )
    .await;
    // The wrong password with a right code is still just wrong credentials.
    expect_error(
        gw.login(
            email,
            "wrong password",
            Some(&code(&enrol.secret, &clock, 1)),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    // The code that confirmed is used: replay refused.
    expect_error(
        gw.login(email, PASSWORD, Some(&confirm_code)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;
    // The next step's code (clock drift allowance) works once.
    let next = code(&enrol.secret, &clock, 1);
    expect::<LoginResponse>(gw.login(email, PASSWORD, Some(&next)).await, StatusCode::OK).await;
    expect_error(
        gw.login(email, PASSWORD, Some(&next)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;
    // 30 s later that code is the current one: still used, still refused.
    clock.advance(Duration::from_secs(30));
    expect_error(
        gw.login(email, PASSWORD, Some(&next)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;
    // And a code from 2 steps ago is too old even if never used.
    clock.advance(Duration::from_secs(30));
    expect_error(
        gw.login(email, PASSWORD, Some(&code(&enrol.secret, &clock, -2)))
            .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;
    let fresh = code(&enrol.secret, &clock, 0);
    expect::<LoginResponse>(
        gw.login(email, PASSWORD, Some(&fresh)).await,
        StatusCode::OK,
    )
    .await;

    // Disabling needs a good, unused code.
    for bad in ["000000".to_string(), fresh.clone()] {
        expect_error(
            gw.post(
                "/v1/account/totp/disable",
                json!({"code": bad}),
                Some(&s.token),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidTotpCode,
        )
        .await;
    }
    expect_error(
        gw.post("/v1/account/totp/disable", json!({}), Some(&s.token))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidBody,
    )
    .await;
    clock.advance(Duration::from_secs(30));
    let r = gw
        .post(
            "/v1/account/totp/disable",
            json!({"code": code(&enrol.secret, &clock, 0)}),
            Some(&s.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect::<LoginResponse>(gw.login(email, PASSWORD, None).await, StatusCode::OK).await;
    expect_error(
        gw.post(
            "/v1/account/totp/disable",
            json!({"code": "123456"}),
            Some(&s.token),
        )
        .await,
        StatusCode::CONFLICT,
        ErrorCode::TotpNotEnabled,
    )
    .await;
    expect_error(
        gw.post(
            "/v1/account/totp/confirm",
            json!({"code": "123456"}),
            Some(&s.token),
        )
        .await,
        StatusCode::CONFLICT,
        ErrorCode::TotpNotEnabled,
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn totp_code_guessing_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |c| {
        c.throttle.account.threshold = 3;
    })
    .await;
    let email = "guess-totp@example.org";
    let s = gw.user(email).await;
    let enrol: TotpEnrollResponse = expect(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&s.token))
            .await,
        StatusCode::OK,
    )
    .await;
    for _ in 0..3 {
        gw.post(
            "/v1/account/totp/confirm",
            json!({"code": "000000"}),
            Some(&s.token),
        )
        .await;
    }
    // Locked: the right code is refused too, for now.
    expect_error(
        gw.post(
            "/v1/account/totp/confirm",
            json!({"code": code(&enrol.secret, &clock, 0)}),
            Some(&s.token),
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
    )
    .await;
    clock.advance(Duration::from_secs(31));
    let r = gw
        .post(
            "/v1/account/totp/confirm",
            json!({"code": code(&enrol.secret, &clock, 0)}),
            Some(&s.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Wrong codes at login lock the account like wrong passwords.
    clock.advance(Duration::from_secs(30));
    for _ in 0..3 {
        expect_error(
            gw.login(email, PASSWORD, Some("000000")).await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidTotpCode,
        )
        .await;
    }
    expect_error(
        gw.login(email, PASSWORD, Some(&code(&enrol.secret, &clock, 0)))
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn sessions_expire_when_idle_and_absolutely() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |c| {
        c.session_idle_ttl = Duration::from_secs(3600);
        c.session_absolute_ttl = Duration::from_secs(3 * 3600);
    })
    .await;
    let s = gw.user("exp@example.org").await;
    assert_eq!(s.idle_expires_at - s.expires_at, 3600 - 3 * 3600);

    // Used every 50 minutes, it lives on past one idle period…
    for _ in 0..3 {
        clock.advance(Duration::from_secs(50 * 60));
        expect::<AccountInfo>(gw.get("/v1/account", Some(&s.token)).await, StatusCode::OK).await;
    }
    // …but not past its absolute lifetime (3 h), however it is used.
    clock.advance(Duration::from_secs(31 * 60));
    expect_error(
        gw.get("/v1/account", Some(&s.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;

    // Idle: unused for an hour, gone.
    let s2: LoginResponse = expect(
        gw.login("exp@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    clock.advance(Duration::from_secs(59 * 60));
    assert_eq!(gw.sessions(&s2.token).await.sessions.len(), 1);
    clock.advance(Duration::from_secs(61 * 60));
    expect_error(
        gw.get("/v1/account", Some(&s2.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    // Expired sessions are not listed, and are cleaned up at the next login.
    let s3: LoginResponse = expect(
        gw.login("exp@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    let list = gw.sessions(&s3.token).await;
    assert_eq!(list.sessions.len(), 1);
    assert_eq!(list.sessions[0].session_id, s3.session_id);
    let db_url = gw.db_url.clone();
    gw.stop().await;

    let pool = open_db(&db_url).await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |_| {}).await;
    let s = gw.user("keep@example.org").await;
    let enrol: TotpEnrollResponse = expect(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&s.token))
            .await,
        StatusCode::OK,
    )
    .await;
    let r = gw
        .post(
            "/v1/account/totp/confirm",
            json!({"code": code(&enrol.secret, &clock, 0)}),
            Some(&s.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let db_path = gw.db_path.clone();
    gw.stop().await;

    let gw = TestGateway::start_with(dir.path(), clock.clone(), |_| {}).await;
    assert_eq!(gw.db_path, db_path);
    // The session, the account, its TOTP and the used-code record are all still there.
    let me: AccountInfo = expect(gw.get("/v1/account", Some(&s.token)).await, StatusCode::OK).await;
    assert_eq!(me.email, "keep@example.org");
    assert!(me.totp_enabled);
    expect_error(
        gw.login(
            "keep@example.org",
            PASSWORD,
            Some(&code(&enrol.secret, &clock, 0)),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;
    expect::<LoginResponse>(
        gw.login(
            "keep@example.org",
            PASSWORD,
            Some(&code(&enrol.secret, &clock, 1)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        gw.register("keep@example.org", PASSWORD).await,
        StatusCode::CONFLICT,
        ErrorCode::EmailTaken,
    )
    .await;
    assert_eq!(gw.sessions(&s.token).await.sessions.len(), 2);
    gw.stop().await;
}

/// At the real OWASP cost: what is stored is an Argon2id PHC string at m=19456,t=2,p=1 and the
/// SHA-256 of the token, never the password or the token.
#[tokio::test]
async fn owasp_cost_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| c.argon2 = Argon2Cost::OWASP).await;
    let s = gw.user("owasp@example.org").await;
    expect_error(
        gw.login("owasp@example.org", "wrong password", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    let db_url = gw.db_url.clone();
    gw.stop().await;

    let pool = open_db(&db_url).await;
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    let (token_hash,): (String,) = sqlx::query_as("SELECT token_hash FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(token_hash, wavry_gateway::token::hash_token(&s.token));
    if on_postgres() {
        return;
    }
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    pool.close().await;
    // The token appears nowhere in the database file.
    let bytes = std::fs::read(dir.path().join("gateway.db")).unwrap();
    let wal = std::fs::read(dir.path().join("gateway.db-wal")).unwrap_or_default();
    for b in [bytes, wal] {
        assert!(!b.windows(s.token.len()).any(|w| w == s.token.as_bytes()));
    }
}

/// A hash made at an older cost is upgraded to the configured one at the next login.
#[tokio::test]
async fn stored_hash_moves_to_the_configured_cost_on_login() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |_| {}).await;
    gw.user("old@example.org").await;
    gw.stop().await;
    let cheap_but_other = Argon2Cost {
        m_kib: 16,
        t: 1,
        p: 1,
    };
    let gw = TestGateway::start_with(dir.path(), clock, |c| c.argon2 = cheap_but_other).await;
    expect::<LoginResponse>(
        gw.login("old@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    let db_url = gw.db_url.clone();
    gw.stop().await;
    let pool = open_db(&db_url).await;
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=16,t=1,p=1$"), "{hash}");
}

/// Two logins racing with the same TOTP code: exactly one gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_code_raced_twice_logs_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let email = "race@example.org";
    let s = gw.user(email).await;
    let enrol: TotpEnrollResponse = expect(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&s.token))
            .await,
        StatusCode::OK,
    )
    .await;
    let r = gw
        .post(
            "/v1/account/totp/confirm",
            json!({"code": code(&enrol.secret, &gw.clock, 0)}),
            Some(&s.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for ahead in [1, 2] {
        if ahead == 2 {
            gw.clock.advance(Duration::from_secs(30));
        }
        let c = code(&enrol.secret, &gw.clock, 1);
        let (a, b) = tokio::join!(
            gw.login(email, PASSWORD, Some(&c)),
            gw.login(email, PASSWORD, Some(&c))
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    }
    gw.stop().await;
}

/// With one hashing slot, a burst of logins (to different accounts) queues and every one is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_is_bounded_and_a_burst_queues() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.max_concurrent_hashes = 1;
        c.argon2 = Argon2Cost {
            m_kib: 1024,
            t: 1,
            p: 1,
        };
        c.throttle.register_burst = 20;
    })
    .await;
    for i in 0..12 {
        expect::<AccountInfo>(
            gw.register(&format!("burst{i}@example.org"), PASSWORD)
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12 {
        let http = gw.http.clone();
        let url = gw.url("/v1/auth/login");
        let password = if i % 3 == 0 {
            "wrong password"
        } else {
            PASSWORD
        };
        set.spawn(async move {
            let r = http
                .post(url)
                .json(&json!({"email": format!("burst{i}@example.org"), "password": password}))
                .send()
                .await
                .unwrap();
            (password == PASSWORD, r.status())
        });
    }
    while let Some(done) = set.join_next().await {
        let (right, status) = done.unwrap();
        let want = if right {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, want);
    }
    gw.stop().await;
}

/// The PostgreSQL driver is compiled in: a postgres:// URL is tried (nothing listens here, so
/// it fails as a database error after the connect timeout), not refused as unknown.
#[tokio::test]
async fn postgres_urls_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: "postgres://wavry@127.0.0.1:1/wavry".into(),
        signing_key_file: Some(dir.path().join("gateway-signing.key")),
        db_acquire_timeout: Duration::from_secs(1),
        argon2: Argon2Cost::TEST_ONLY_INSECURE,
        ..Config::default()
    };
    let opened = tokio::time::timeout(Duration::from_secs(30), Gateway::open(config))
        .await
        .expect("gives up after the connect timeout");
    match opened {
        Err(GatewayError::Database(e)) => {
            let text = e.to_string();
            assert!(
                text.contains("timed out") || text.contains("refused"),
                "{text}"
            );
        }
        Err(other) => panic!("expected a database error, got {other}"),
        Ok(_) => panic!("something answered PostgreSQL on 127.0.0.1:1"),
    }
}

/// A URL for neither database is refused before anything is opened.
#[tokio::test]
async fn unknown_database_urls_are_refused() {
    for url in ["mysql://x/y", "gateway.db", "sqlite://"] {
        let config = Config {
            database_url: url.into(),
            ..Config::default()
        };
        match Gateway::open(config).await {
            Err(GatewayError::DatabaseUrl { .. }) => {}
            Err(other) => panic!("{url}: {other}"),
            Ok(_) => panic!("{url} accepted"),
        }
    }
}

/// Too many headers are refused by the HTTP layer (431) and the server keeps serving.
#[tokio::test]
async fn too_many_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let mut rb = gw.http.get(gw.url("/healthz"));
    for i in 0..200 {
        rb = rb.header(format!("x-filler-{i}"), "x");
    }
    let r = rb.send().await.expect("an answer, not a reset");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(gw.get("/healthz", None).await.status(), StatusCode::OK);
    gw.stop().await;
}

/// A client that sends its headers slower than the deadline is cut off.
#[tokio::test]
async fn a_client_trickling_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.http.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    assert_eq!(gw.get("/healthz", None).await.status(), StatusCode::OK);
    gw.stop().await;
}

/// Past the connection cap, new connections are closed at once; the cap frees as they end.
#[tokio::test]
async fn connections_are_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| c.http.max_connections = 2).await;
    let a = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let _ = c
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
        .await
        .expect("closed at once");
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    drop((a, b));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match gw.http.get(gw.url("/healthz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ => {
                assert!(std::time::Instant::now() < deadline, "slots never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    gw.stop().await;
}

/// A stop lets the request in flight finish (and answers it), takes no new connections, and
/// what that request wrote is there after a restart.
#[tokio::test]
async fn a_stop_finishes_the_request_in_flight() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let mut gw = TestGateway::start(dir.path()).await;
    let body = format!(r#"{{"email":"late@example.org","password":"{PASSWORD}"}}"#);
    let (head, tail) = body.split_at(10);
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // A first request on the connection shows it is being served (not waiting in the
    // listener's backlog, which the stop would drop).
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    while !first.ends_with(br#"{"status":"ok"}"#) {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&first));
        first.extend_from_slice(&chunk[..n]);
    }
    let req = format!(
        "POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{head}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Time for the server to read the head: from then on the request is in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "no new connections once stopping"
    );
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .expect("answered and closed")
        .unwrap();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let clock = gw.clock.clone();
    gw.wait_stopped().await;

    let gw = TestGateway::start_with(dir.path(), clock, |_| {}).await;
    expect::<LoginResponse>(
        gw.login("late@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    gw.stop().await;
}

/// A body that stops arriving is answered 408 after the body deadline.
#[tokio::test]
async fn a_body_that_stops_arriving_times_out() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.http.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    let start = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .expect("answered");
    assert!(start.elapsed() >= Duration::from_millis(250));
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains(r#""code":"request_timeout""#), "{resp}");
    gw.stop().await;
}

/// One address cannot register accounts without bound (each costs a password hash).
#[tokio::test]
async fn registrations_per_address_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |c| {
        c.throttle.register_burst = 3;
        c.throttle.register_every = Duration::from_secs(60);
    })
    .await;
    // Invalid requests do not use up the allowance.
    for _ in 0..5 {
        gw.register("bad address", PASSWORD).await;
    }
    for i in 0..3 {
        expect::<AccountInfo>(
            gw.register(&format!("r{i}@example.org"), PASSWORD).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let r = gw.register("r3@example.org", PASSWORD).await;
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("60")
    );
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyAttempts).await;
    clock.advance(Duration::from_secs(60));
    expect::<AccountInfo>(
        gw.register("r3@example.org", PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    gw.stop().await;
}

/// Guesses sent all at once do not get past the lockout: attempts in flight count toward it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_do_not_bypass_the_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock, |c| {
        c.throttle.account.threshold = 3;
        // A real-ish cost and one slot, so the guesses really overlap.
        c.argon2 = Argon2Cost {
            m_kib: 4096,
            t: 1,
            p: 1,
        };
        c.max_concurrent_hashes = 1;
    })
    .await;
    gw.user("target@example.org").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let http = gw.http.clone();
        let url = gw.url("/v1/auth/login");
        set.spawn(async move {
            http.post(url)
                .json(&json!({"email": "target@example.org", "password": format!("guess {i:04}")}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut checked = 0;
    while let Some(status) = set.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 3,
        "{checked} guesses were checked; the threshold is 3"
    );
    gw.stop().await;
}

/// The main flows on PostgreSQL, when `WAVRY_TEST_POSTGRES_URL` names a database the test may
/// write to (e.g. postgres://wavry:wavry@127.0.0.1/wavry_test); skipped otherwise. The same
/// migrations and queries as on SQLite.
#[tokio::test]
async fn postgres_end_to_end() {
    let Ok(url) = std::env::var(wavry_testenv::POSTGRES_URL_VAR) else {
        wavry_testenv::skip("set WAVRY_TEST_POSTGRES_URL to run the PostgreSQL test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    // Unique addresses: the database outlives the test.
    let tag = wavry_gateway::token::new_id().unwrap().to_lowercase();
    let (ann, bob) = (
        format!("ann-{tag}@example.org"),
        format!("bob-{tag}@example.org"),
    );
    // A database of its own: one that another test's gateway signs on would refuse this one's
    // key file.
    let url = postgres_database(&url, dir.path()).await;
    let pg = |c: &mut Config| c.database_url = url.clone();
    let gw = TestGateway::start_with(dir.path(), clock.clone(), pg).await;

    let a = gw.user(&ann).await;
    let b = gw.user(&bob).await;
    expect_error(
        gw.register(&ann.to_uppercase(), PASSWORD).await,
        StatusCode::CONFLICT,
        ErrorCode::EmailTaken,
    )
    .await;
    expect_error(
        gw.login(&ann, "wrong password", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    clock.advance(Duration::from_secs(5)); // newest first needs distinct times
    let a2: LoginResponse = expect(gw.login(&ann, PASSWORD, None).await, StatusCode::OK).await;
    let list = gw.sessions(&a2.token).await;
    assert_eq!(list.sessions.len(), 2);
    assert!(list.sessions[0].current);
    // Bob cannot revoke Ann's session; Ann can.
    let del = |token: &str, id: &str| {
        gw.http
            .delete(gw.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(token)
            .send()
    };
    let r = del(&b.token, &a.session_id).await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    let r = del(&a2.token, &a.session_id).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(
        gw.get("/v1/account", Some(&a.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;

    // TOTP, with the used-step bookkeeping.
    let enrol: TotpEnrollResponse = expect(
        gw.post("/v1/account/totp/enroll", json!({}), Some(&a2.token))
            .await,
        StatusCode::OK,
    )
    .await;
    let r = gw
        .post(
            "/v1/account/totp/confirm",
            json!({"code": code(&enrol.secret, &clock, 0)}),
            Some(&a2.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let next = code(&enrol.secret, &clock, 1);
    expect::<LoginResponse>(gw.login(&ann, PASSWORD, Some(&next)).await, StatusCode::OK).await;
    expect_error(
        gw.login(&ann, PASSWORD, Some(&next)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidTotpCode,
    )
    .await;

    // Idle expiry and the restart.
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    expect_error(
        gw.get("/v1/account", Some(&b.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let b2: LoginResponse = expect(gw.login(&bob, PASSWORD, None).await, StatusCode::OK).await;
    gw.stop().await;
    let gw = TestGateway::start_with(dir.path(), clock.clone(), pg).await;
    let me: AccountInfo =
        expect(gw.get("/v1/account", Some(&b2.token)).await, StatusCode::OK).await;
    assert_eq!(me.email, bob);
    gw.stop().await;
}
