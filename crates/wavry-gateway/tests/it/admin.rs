//! The admin API end to end: the real gateway with an admin token, spoken to over HTTP, with
//! signaling sockets open to show bans cut them off.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::peer::{device, Peer};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use wavry_gateway::{AdminToken, Config, ManualClock};
use wavry_proto::account::{ErrorCode, LoginResponse};
use wavry_proto::admin::{Analytics, AuditList, BanInfo, Overview, RevokeResponse, UserList};
use wavry_proto::signal::{ServerMessage, SignalCode};

const TOKEN: &str = "test-admin-token-0123456789abcdefghij";

fn with_admin(c: &mut Config) {
    c.admin_token = Some(AdminToken::new(TOKEN));
}

async fn admin_gateway(dir: &std::path::Path) -> (TestGateway, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0_MS));
    (
        TestGateway::start_with(dir, clock.clone(), with_admin).await,
        clock,
    )
}

async fn admin_get(gw: &TestGateway, path: &str) -> reqwest::Response {
    gw.http
        .get(gw.url(path))
        .header("x-admin-token", TOKEN)
        .send()
        .await
        .unwrap()
}

async fn admin_post(gw: &TestGateway, path: &str, body: serde_json::Value) -> reqwest::Response {
    gw.post(path, body, Some(TOKEN)).await
}

async fn audit(gw: &TestGateway, action: &str) -> AuditList {
    expect(
        admin_get(gw, &format!("/admin/api/audit?action={action}")).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn the_admin_api_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    expect_error(
        gw.get("/admin/api/overview", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    // A user's session token is not an admin token.
    let ann = gw.user("ann@example.org").await;
    expect_error(
        gw.get("/admin/api/overview", Some(&ann.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let almost = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    expect_error(
        gw.get("/admin/api/overview", Some(&almost)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    // Both ways of presenting it work.
    expect::<Overview>(
        gw.get("/admin/api/overview", Some(TOKEN)).await,
        StatusCode::OK,
    )
    .await;
    expect::<Overview>(admin_get(&gw, "/admin/api/overview").await, StatusCode::OK).await;
    let failed = audit(&gw, "admin.auth_failed").await;
    assert_eq!(failed.entries.len(), 3);
    assert_eq!(failed.entries[0].actor, "anonymous");
    // Guessing is locked out per address (20 failures by default), even with the right token.
    for _ in 0..17 {
        gw.get("/admin/api/overview", Some("guess")).await;
    }
    let r = gw.get("/admin/api/overview", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    gw.stop().await;
}

#[tokio::test]
async fn no_panel_without_a_long_enough_token() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    expect_error(
        gw.get("/admin", None).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    gw.stop().await;
    let short = |c: &mut Config| c.admin_token = Some(AdminToken::new(&TOKEN[..31]));
    let gw = TestGateway::start_with(dir.path(), Arc::new(ManualClock::new(T0_MS)), short).await;
    expect_error(
        gw.get("/admin/api/overview", Some(&TOKEN[..31])).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    for (path, ctype) in [
        ("/admin", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let r = gw.get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(ctype));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    gw.stop().await;
}

#[tokio::test]
async fn overview_and_users_count_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    gw.user("bob@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord { connection_id, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    // A session: accepted, reported by both sides, closed.
    assert!(matches!(
        h.recv().await,
        ServerMessage::ConnectRequest { .. }
    ));
    h.send(json!({"type": "accept", "connection_id": connection_id}))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Accepted { .. }));
    for (p, n) in [(&mut h, 3_000_000), (&mut c, 20_000)] {
        p.send(json!({"type": "report", "connection_id": connection_id,
            "path": "relayed", "bytes_sent": n}))
            .await;
    }
    h.send(json!({"type": "close", "connection_id": connection_id}))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Closed { .. }));

    let o: Overview = expect(admin_get(&gw, "/admin/api/overview").await, StatusCode::OK).await;
    assert_eq!(
        o,
        Overview {
            users: 2,
            sessions: 2,
            bans: 0,
            devices: 2,
            hosts_online: 1,
            signaling_connected: 2,
            connections_24h: 1,
            relays: 0,
        }
    );
    let all: UserList = expect(admin_get(&gw, "/admin/api/users").await, StatusCode::OK).await;
    assert_eq!(all.users.len(), 2);
    let found: UserList = expect(
        admin_get(&gw, "/admin/api/users?q=ANN").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found.users.len(), 1);
    assert_eq!(found.users[0].email, "ann@example.org");
    assert_eq!((found.users[0].sessions, found.users[0].devices), (1, 2));
    // LIKE wildcards in a search are plain text.
    let none: UserList = expect(
        admin_get(&gw, "/admin/api/users?q=%25").await,
        StatusCode::OK,
    )
    .await;
    assert!(none.users.is_empty());
    expect_error(
        admin_get(&gw, "/admin/api/users?limit=lots").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidBody,
    )
    .await;
    expect_error(
        admin_get(&gw, "/admin/api/audit?nonsense=1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidBody,
    )
    .await;

    // Analytics: today's connection and logins.
    let a: Analytics = expect(
        admin_get(&gw, "/admin/api/analytics?days=3").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(a.days.len(), 3);
    let today = &a.days[2];
    assert_eq!(today.day, "2027-01-15");
    assert_eq!(
        (today.connections, today.logins, today.registrations),
        (1, 2, 2)
    );
    assert_eq!(
        (today.accepted, today.ended, today.relayed, today.direct),
        (1, 1, 1, 0)
    );
    assert_eq!(today.bytes, 3_020_000);
    gw.stop().await;
}

#[tokio::test]
async fn a_ban_takes_effect_everywhere_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, clock) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let bob = gw.user("bob@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &bob.token, "laptop", "client").await;
    let path = format!("/v1/devices/{}/shares", host.device_id);
    gw.post(&path, json!({"email": "bob@example.org"}), Some(&ann.token))
        .await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut b, _, _) = Peer::hello(&gw, &bob.token, &laptop.device_id, None).await;
    b.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    assert!(matches!(b.recv().await, ServerMessage::HostRecord { .. }));
    assert!(matches!(
        h.recv().await,
        ServerMessage::ConnectRequest { .. }
    ));

    // Bob is banned for an hour, by email.
    let ban: BanInfo = expect(
        admin_post(
            &gw,
            "/admin/api/ban",
            json!({"email": "Bob@example.org", "reason": "abuse", "duration_secs": 3600}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ban.user_id, bob.user_id);
    // Mid-WebSocket: cut off; the host hears the connection ended.
    b.expect_goodbye(SignalCode::Banned).await;
    assert!(matches!(h.recv().await, ServerMessage::Closed { .. }));
    // His token is dead, and he cannot log in again.
    expect_error(
        gw.get("/v1/account", Some(&bob.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let body = expect_error(
        gw.login("bob@example.org", PASSWORD, None).await,
        StatusCode::FORBIDDEN,
        ErrorCode::Banned,
    )
    .await;
    assert!(body.error.contains("until"), "{body:?}");
    // A wrong password still says only "wrong password": a ban is no oracle.
    expect_error(
        gw.login("bob@example.org", "not his password", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    // Ann is untouched.
    h.ping_pong(1).await;
    let o: Overview = expect(admin_get(&gw, "/admin/api/overview").await, StatusCode::OK).await;
    assert_eq!(o.bans, 1);

    // The hour passes: Bob is back.
    clock.advance(Duration::from_secs(3601));
    let again: LoginResponse = expect(
        gw.login("bob@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    // A permanent ban, by id, then lifted.
    expect::<BanInfo>(
        admin_post(&gw, "/admin/api/ban", json!({"user_id": bob.user_id})).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        gw.get("/v1/account", Some(&again.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    clock.advance(Duration::from_secs(10 * 365 * 86_400));
    expect_error(
        gw.login("bob@example.org", PASSWORD, None).await,
        StatusCode::FORBIDDEN,
        ErrorCode::Banned,
    )
    .await;
    let r = admin_post(&gw, "/admin/api/unban", json!({"user_id": bob.user_id})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect::<LoginResponse>(
        gw.login("bob@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        admin_post(&gw, "/admin/api/unban", json!({"user_id": bob.user_id})).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;

    // All of it is in the audit log.
    for action in ["admin.ban", "admin.unban", "login.banned"] {
        let entries = audit(&gw, action).await.entries;
        assert!(!entries.is_empty(), "{action}");
        assert!(entries
            .iter()
            .all(|e| e.target.as_deref() == Some(bob.user_id.as_str())
                || e.actor == format!("user:{}", bob.user_id)));
    }
    gw.stop().await;
}

#[tokio::test]
async fn sessions_are_revoked_one_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let second: LoginResponse = expect(
        gw.login("ann@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (mut c, _, _) = Peer::hello(&gw, &second.token, &laptop.device_id, None).await;
    let r: RevokeResponse = expect(
        admin_post(
            &gw,
            "/admin/api/sessions/revoke",
            json!({"session_id": second.session_id}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r.revoked, 1);
    c.expect_goodbye(SignalCode::SessionEnded).await;
    expect::<serde_json::Value>(
        gw.get("/v1/account", Some(&ann.token)).await,
        StatusCode::OK,
    )
    .await;
    let r: RevokeResponse = expect(
        admin_post(
            &gw,
            "/admin/api/sessions/revoke",
            json!({"user_id": ann.user_id}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r.revoked, 1);
    expect_error(
        gw.get("/v1/account", Some(&ann.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    assert_eq!(audit(&gw, "admin.sessions_revoked").await.entries.len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn bad_admin_requests_get_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    for (path, body, status, code) in [
        (
            "/admin/api/ban",
            json!({"user_id": ann.user_id, "email": "ann@example.org"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidTarget,
        ),
        (
            "/admin/api/ban",
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidTarget,
        ),
        (
            "/admin/api/ban",
            json!({"user_id": "nobody"}),
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
        ),
        (
            "/admin/api/ban",
            json!({"user_id": ann.user_id, "duration_secs": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidTarget,
        ),
        (
            "/admin/api/ban",
            json!({"user_id": ann.user_id, "duration_secs": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        ),
        (
            "/admin/api/ban",
            json!({"user_id": ann.user_id, "forever": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        ),
        (
            "/admin/api/sessions/revoke",
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidTarget,
        ),
        (
            "/admin/api/unban",
            json!({"user_id": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        ),
    ] {
        expect_error(admin_post(&gw, path, body).await, status, code).await;
    }
    let r = gw
        .http
        .post(gw.url("/admin/api/ban"))
        .header("x-admin-token", TOKEN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, ErrorCode::MalformedJson).await;
    // Still not banned.
    expect::<serde_json::Value>(
        gw.get("/v1/account", Some(&ann.token)).await,
        StatusCode::OK,
    )
    .await;
    gw.stop().await;
}

/// The dashboard as an admin uses it, in headless Chromium: a wrong token is refused, the
/// right one shows the registered users, and a ban clicked there takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_shows_users_and_bans_one() {
    use common::chromium::{find_chromium, Browser};
    let Some(bin) = find_chromium() else {
        wavry_testenv::skip("Chromium is not installed (scripts/setup.sh installs `chromium`)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    gw.user("bob@example.org").await;

    let mut b = Browser::launch_with(&bin).await.expect("launch Chromium");
    b.goto(&gw.url("/admin")).await.expect("open /admin");
    let login = |token: &str| {
        format!(
            "document.querySelector('#token').value = {}; \
             document.querySelector('#connect').click()",
            serde_json::to_string(token).unwrap()
        )
    };
    let wait = Duration::from_secs(15);
    b.eval(&login("not the token")).await.unwrap();
    b.wait_for(
        "document.querySelector('#status').textContent.includes('could not open')",
        wait,
    )
    .await
    .expect("a wrong token is refused");
    assert_eq!(
        b.eval("document.querySelector('#panel').hidden")
            .await
            .unwrap(),
        json!(true)
    );

    b.eval(&login(TOKEN)).await.unwrap();
    b.wait_for("document.body.dataset.ready === '1'", wait)
        .await
        .expect("the panel opens");
    let emails = b
        .eval("[...document.querySelectorAll('#users td.email')].map(td => td.textContent).sort()")
        .await
        .unwrap();
    assert_eq!(emails, json!(["ann@example.org", "bob@example.org"]));
    assert_eq!(
        b.eval("document.querySelector('#stat-users b').textContent")
            .await
            .unwrap(),
        json!("2")
    );

    // Ban Ann permanently, with a reason, by clicking her row's button.
    b.eval(
        "document.querySelector('#ban-reason').value = 'spam'; \
         document.querySelector('#users tr[data-email=\"ann@example.org\"] button.ban').click()",
    )
    .await
    .unwrap();
    b.wait_for(
        "document.querySelector('#users tr[data-email=\"ann@example.org\"]')\
         ?.classList.contains('banned')",
        wait,
    )
    .await
    .expect("the row shows the ban");
    b.wait_for(
        "document.querySelector('#audit tr[data-action=\"admin.ban\"]') !== null",
        wait,
    )
    .await
    .expect("the audit log shows the ban");
    let png = b.screenshot_png().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // It took effect.
    expect_error(
        gw.get("/v1/account", Some(&ann.token)).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let body = expect_error(
        gw.login("ann@example.org", PASSWORD, None).await,
        StatusCode::FORBIDDEN,
        ErrorCode::Banned,
    )
    .await;
    assert!(body.error.contains("permanently"), "{body:?}");
    let ban = audit(&gw, "admin.ban").await.entries;
    assert!(ban[0].detail.as_deref().unwrap_or("").contains("spam"));
    drop(b);
    gw.stop().await;
}

#[tokio::test]
async fn metrics_for_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _) = admin_gateway(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    expect_error(
        gw.login("ann@example.org", "wrong password", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
    )
    .await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    h.ping_pong(1).await;

    expect_error(
        gw.get("/metrics", None).await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let r = gw.get("/metrics", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        "wavry_gateway_logins_total{outcome=\"succeeded\"} 1",
        "wavry_gateway_logins_total{outcome=\"failed\"} 1",
        "wavry_gateway_registrations_total 1",
        "wavry_gateway_http_requests_total{method=\"POST\",route=\"/v1/auth/login\",status=\"200\"} 1",
        "wavry_gateway_http_requests_total{method=\"POST\",route=\"/v1/devices\",status=\"201\"} 1",
        "wavry_gateway_signal_messages_total{type=\"hello\"} 1",
        "wavry_gateway_signal_messages_total{type=\"ping\"} 1",
        "wavry_gateway_signal_devices_present 1",
        "wavry_gateway_hosts_online 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // Routes are templates, never raw paths (bounded label values).
    assert!(text.contains("wavry_gateway_http_request_duration_seconds_bucket{le="));
    gw.stop().await;
}

/// Behind a trusted proxy the audit log (and the throttle) see the forwarded client; from
/// anyone else the header is ignored.
#[tokio::test]
async fn forwarded_for_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    for (trust, expected) in [(true, "198.51.100.7"), (false, "127.0.0.1")] {
        let sub = dir.path().join(expected);
        let gw = TestGateway::start_with(&sub, Arc::new(ManualClock::new(T0_MS)), |c| {
            with_admin(c);
            if trust {
                c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            }
        })
        .await;
        let r = gw
            .http
            .post(gw.url("/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.1, 198.51.100.7")
            .json(&json!({"email": "nobody@example.org", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let failed = audit(&gw, "login.failed").await.entries;
        assert_eq!(failed[0].ip.as_deref(), Some(expected), "trust {trust}");
        gw.stop().await;
    }
}
