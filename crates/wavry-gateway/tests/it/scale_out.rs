//! Several gateway instances on one PostgreSQL: a host on one and a client on another meet,
//! messages between them (large ones too) cross over, bans and lockouts hold on both. Needs
//! WAVRY_TEST_POSTGRES_URL (scripts/test.sh starts a throwaway PostgreSQL); skips without it.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::peer::{device, Peer};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use wavry_gateway::{AdminToken, Config, ManualClock};
use wavry_proto::account::ErrorCode;
use wavry_proto::admin::BanInfo;
use wavry_proto::registry::HostList;
use wavry_proto::signal::{ServerMessage, SignalCode};

const ADMIN: &str = "scale-out-admin-token-0123456789abcdef";

/// Two instances on the PostgreSQL of WAVRY_TEST_POSTGRES_URL, sharing one clock; None (a skip,
/// or a failure under CI) without it.
async fn two_instances(
    dir: &std::path::Path,
) -> Option<(TestGateway, TestGateway, Arc<ManualClock>, String)> {
    let Ok(url) = std::env::var(wavry_testenv::POSTGRES_URL_VAR) else {
        wavry_testenv::skip("set WAVRY_TEST_POSTGRES_URL to run the multi-instance tests");
        return None;
    };
    // A database per test: the instances of one test share it (and its NOTIFY channel),
    // other tests' instances do not hear them.
    let url = postgres_database(&url, dir).await;
    let clock = Arc::new(ManualClock::new(T0_MS));
    // Both read one key file: every instance on a database signs with the same key.
    let key_file = dir.join("gateway-signing.key");
    let cfg = |c: &mut Config| {
        c.database_url = url.clone();
        c.admin_token = Some(AdminToken::new(ADMIN));
        c.signing_key_file = Some(key_file.clone());
    };
    let a = TestGateway::start_with(&dir.join("a"), clock.clone(), cfg).await;
    let b = TestGateway::start_with(&dir.join("b"), clock.clone(), cfg).await;
    // The database outlives the test: unique addresses.
    let tag = wavry_gateway::token::new_id().unwrap().to_lowercase();
    Some((a, b, clock, tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_and_a_client_on_different_instances_meet() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b, _, tag)) = two_instances(dir.path()).await else {
        return;
    };
    let ann = a.user(&format!("ann-{tag}@example.org")).await;
    let host = device(&a, &ann.token, "den", "host").await;
    let laptop = device(&b, &ann.token, "laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&a, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&b, &ann.token, &laptop.device_id, None).await;

    // Instance B sees the host online on A.
    let list: HostList = expect(b.get("/v1/hosts", Some(&ann.token)).await, StatusCode::OK).await;
    assert!(list.hosts[0].online, "{list:?}");

    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord { connection_id, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    let ServerMessage::ConnectRequest {
        connection_id: cid,
        client,
    } = h.recv().await
    else {
        panic!("the request crosses to the host's instance")
    };
    assert_eq!(
        (cid.as_str(), client.public_key.as_str()),
        (connection_id.as_str(), laptop.public_key.as_str())
    );
    h.send(json!({"type": "accept", "connection_id": connection_id}))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Accepted { .. }));

    // Many messages keep their order; a large one goes through the spill table.
    for port in 1..=20u16 {
        c.send(json!({"type": "candidate", "connection_id": connection_id,
            "candidate": {"kind": "host", "address": format!("10.0.0.1:{port}")}}))
            .await;
    }
    for port in 1..=20u16 {
        let ServerMessage::Candidate { candidate, .. } = h.recv().await else {
            panic!("expected candidate {port}")
        };
        assert_eq!(candidate.address.port(), port);
    }
    let sdp = "a".repeat(12_000); // over NOTIFY's 8000 bytes
    h.send(json!({"type": "answer", "connection_id": connection_id,
        "description": {"protocol": "webrtc", "sdp": sdp}}))
        .await;
    let ServerMessage::Answer { description, .. } = c.recv().await else {
        panic!("expected the answer")
    };
    assert_eq!(description.sdp.as_deref(), Some(sdp.as_str()));

    c.send(json!({"type": "close", "connection_id": connection_id, "reason": "bye"}))
        .await;
    assert_eq!(
        h.recv().await,
        ServerMessage::Closed {
            connection_id,
            reason: "bye".into()
        }
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_instance_cuts_off_sockets_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b, _, tag)) = two_instances(dir.path()).await else {
        return;
    };
    let bob_email = format!("bob-{tag}@example.org");
    let bob = a.user(&bob_email).await;
    let laptop = device(&a, &bob.token, "laptop", "client").await;
    let (mut on_b, _, _) = Peer::hello(&b, &bob.token, &laptop.device_id, None).await;
    expect::<BanInfo>(
        a.post(
            "/admin/api/ban",
            json!({"user_id": bob.user_id}),
            Some(ADMIN),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    on_b.expect_goodbye(SignalCode::Banned).await;
    expect_error(
        b.login(&bob_email, PASSWORD, None).await,
        StatusCode::FORBIDDEN,
        ErrorCode::Banned,
    )
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_holds_on_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b, _, tag)) = two_instances(dir.path()).await else {
        return;
    };
    let email = format!("carol-{tag}@example.org");
    a.user(&email).await;
    // Five wrong passwords, spread over both instances, lock the account on both.
    for i in 0..5 {
        let gw = if i % 2 == 0 { &a } else { &b };
        expect_error(
            gw.login(&email, "wrong password", None).await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
        )
        .await;
        // Let the notice cross before the next guess.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for gw in [&a, &b] {
        expect_error(
            gw.login(&email, PASSWORD, None).await,
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyAttempts,
        )
        .await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_per_address_are_limited_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b, _, tag)) = two_instances(dir.path()).await else {
        return;
    };
    // Ten at once from one address (the default burst), alternating instances; the 11th is
    // refused on either.
    for i in 0..10 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = gw
            .register(&format!("r{i}-{tag}@example.org"), PASSWORD)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for gw in [&a, &b] {
        let r = gw
            .register(&format!("late-{tag}@example.org"), PASSWORD)
            .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_leaving_one_instance_ends_the_connection_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b, clock, tag)) = two_instances(dir.path()).await else {
        return;
    };
    let ann = a.user(&format!("dan-{tag}@example.org")).await;
    let host = device(&a, &ann.token, "den", "host").await;
    let laptop = device(&a, &ann.token, "laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&a, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&b, &ann.token, &laptop.device_id, None).await;
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord { connection_id, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    assert!(matches!(
        h.recv().await,
        ServerMessage::ConnectRequest { .. }
    ));
    drop(h);
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance(Duration::from_secs(31));
    match c.recv().await {
        ServerMessage::Closed {
            connection_id: id, ..
        } => assert_eq!(id, connection_id),
        other => panic!("expected closed, got {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}
