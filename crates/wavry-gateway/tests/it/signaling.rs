//! Devices, hosts and signaling end to end: the real gateway on 127.0.0.1:0, registry calls
//! over HTTP (reqwest) and signaling over real WebSockets (tokio-tungstenite).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::peer::{device, Peer};
use common::*;
use futures_util::SinkExt as _;
use reqwest::StatusCode;
use rift_crypto::identity::Identity;
use rift_crypto::signing::VerifyingKey;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use wavry_gateway::{Config, ManualClock};
use wavry_proto::account::{ErrorCode, LoginResponse};
use wavry_proto::registry::{DeviceInfo, DeviceList, HostList, ShareList, SigningKeyInfo};
use wavry_proto::signal::{
    HostRecord, ServerMessage, SignalCode, HOST_RECORD_CONTEXT, MAX_SIGNAL_MESSAGE_BYTES,
};

async fn signing_key(gw: &TestGateway) -> VerifyingKey {
    let info: SigningKeyInfo = expect(
        gw.get("/v1/gateway/signing-key", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(info.algorithm, "ed25519");
    VerifyingKey::from_base64(&info.public_key).unwrap()
}

async fn hosts(gw: &TestGateway, token: &str) -> HostList {
    expect(gw.get("/v1/hosts", Some(token)).await, StatusCode::OK).await
}

/// The host list once its one host shows offline (within 5 s).
async fn wait_offline(gw: &TestGateway, token: &str) -> HostList {
    for _ in 0..100 {
        let list = hosts(gw, token).await;
        if !list.hosts[0].online {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the host still shows online");
}

/// The whole brokered connection: presence, connect, signed record, accept, offer/answer and
/// candidates both ways, close; and the connection's row in the database.
async fn host_and_client_meet_as(gw: &TestGateway, ann_email: &str) {
    let ann = gw.user(ann_email).await;
    let host = device(gw, &ann.token, "den pc", "host").await;
    let laptop = device(gw, &ann.token, "laptop", "client").await;
    assert_eq!(host.fingerprint.len(), 19);

    let list = hosts(gw, &ann.token).await;
    assert_eq!(list.hosts.len(), 1, "clients are not hosts: {list:?}");
    assert!(!list.hosts[0].online);

    let (mut h, _, resumed) = Peer::hello(gw, &ann.token, &host.device_id, None).await;
    assert!(!resumed);
    let list = hosts(gw, &ann.token).await;
    assert!(list.hosts[0].online && list.hosts[0].owned, "{list:?}");
    assert_eq!(list.hosts[0].fingerprint, host.fingerprint);

    let (mut c, _, _) = Peer::hello(gw, &ann.token, &laptop.device_id, None).await;
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord {
        connection_id,
        record,
    } = c.recv().await
    else {
        panic!("expected a host record")
    };
    let rec: HostRecord = record
        .open(&signing_key(gw).await, HOST_RECORD_CONTEXT)
        .expect("the record verifies with the gateway's published key");
    assert_eq!(rec.connection_id, connection_id);
    assert_eq!(rec.host_public_key, host.public_key);
    assert_eq!(rec.host_fingerprint, host.fingerprint);
    assert_eq!(rec.client_device_id, laptop.device_id);
    assert_eq!(rec.client_public_key, laptop.public_key);
    assert!(rec.expires_at > rec.issued_at);

    let ServerMessage::ConnectRequest {
        connection_id: cid,
        client,
    } = h.recv().await
    else {
        panic!("expected a connect request")
    };
    assert_eq!(cid, connection_id);
    assert_eq!(client.public_key, laptop.public_key);
    assert_eq!(client.fingerprint, laptop.fingerprint);
    assert_eq!(client.email, ann_email);

    h.send(json!({"type": "accept", "connection_id": connection_id}))
        .await;
    assert_eq!(
        c.recv().await,
        ServerMessage::Accepted {
            connection_id: connection_id.clone()
        }
    );
    let desc = json!({"protocol": "rift/1", "candidates": [
        {"kind": "host", "address": "192.168.1.20:40000", "priority": 100},
        {"kind": "srflx", "address": "[2001:db8::1]:40000"}]});
    c.send(json!({"type": "offer", "connection_id": connection_id, "description": desc}))
        .await;
    let ServerMessage::Offer { description, .. } = h.recv().await else {
        panic!("expected the offer")
    };
    assert_eq!(description.candidates.len(), 2);
    h.send(json!({"type": "answer", "connection_id": connection_id,
        "description": {"protocol": "rift/1"}}))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Answer { .. }));
    h.send(json!({"type": "candidate", "connection_id": connection_id,
        "candidate": {"kind": "srflx", "address": "203.0.113.7:5000"}}))
        .await;
    let ServerMessage::Candidate { candidate, .. } = c.recv().await else {
        panic!("expected a candidate")
    };
    assert_eq!(candidate.address.port(), 5000);

    c.send(json!({"type": "close", "connection_id": connection_id, "reason": "done"}))
        .await;
    assert_eq!(
        h.recv().await,
        ServerMessage::Closed {
            connection_id: connection_id.clone(),
            reason: "done".into()
        }
    );
    // Each side reports what the session did (after the close, too).
    c.send(
        json!({"type": "report", "connection_id": connection_id, "path": "direct",
        "bytes_sent": 1_000}),
    )
    .await;
    h.send(
        json!({"type": "report", "connection_id": connection_id, "path": "direct",
        "bytes_sent": 5_000_000}),
    )
    .await;
    c.send(
        json!({"type": "report", "connection_id": "nope", "path": "relayed",
        "bytes_sent": 1}),
    )
    .await;
    c.expect_error(SignalCode::UnknownConnection).await;
    // The connection is gone for both.
    h.send(json!({"type": "candidate", "connection_id": connection_id,
        "candidate": {"kind": "host", "address": "10.0.0.1:1"}}))
        .await;
    h.expect_error(SignalCode::UnknownConnection).await;
    h.ping_pong(9).await;
}

#[tokio::test]
async fn host_and_client_meet() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    host_and_client_meet_as(&gw, "ann@example.org").await;
    // What the database kept of it.
    let db = open_db(&gw.db_url).await;
    type Row = (
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let (accepted, ended, reason, path, host_bytes, client_bytes): Row = sqlx::query_as(
        "SELECT accepted_at, ended_at, end_reason, path, host_bytes_sent, client_bytes_sent \
         FROM connections",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(accepted.is_some() && ended.is_some());
    assert_eq!(reason.as_deref(), Some("done"));
    assert_eq!(path.as_deref(), Some("direct"));
    assert_eq!((host_bytes, client_bytes), (Some(5_000_000), Some(1_000)));
    gw.stop().await;
}

#[tokio::test]
async fn host_and_client_meet_on_postgres() {
    let Ok(url) = std::env::var(wavry_testenv::POSTGRES_URL_VAR) else {
        wavry_testenv::skip("set WAVRY_TEST_POSTGRES_URL to run the PostgreSQL test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A database of its own: one that another test's gateway signs on would refuse this one's
    // key file.
    let url = postgres_database(&url, dir.path()).await;
    let pg = |c: &mut Config| c.database_url = url.clone();
    let gw = TestGateway::start_with(dir.path(), Arc::new(ManualClock::new(T0_MS)), pg).await;
    let tag = wavry_gateway::token::new_id().unwrap().to_lowercase();
    host_and_client_meet_as(&gw, &format!("ann-{tag}@example.org")).await;
    gw.stop().await;
}

#[tokio::test]
async fn hosts_are_for_their_owner_and_whom_it_shares_with() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let bob = gw.user("bob@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let bobs = device(&gw, &bob.token, "bob's laptop", "client").await;
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut b, _, _) = Peer::hello(&gw, &bob.token, &bobs.device_id, None).await;

    assert!(hosts(&gw, &bob.token).await.hosts.is_empty());
    b.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    b.expect_error(SignalCode::HostNotFound).await;
    // Exactly what a host that does not exist gets.
    b.send(json!({"type": "connect", "host_id": "nope"})).await;
    b.expect_error(SignalCode::HostNotFound).await;
    // Bob cannot share or list Ann's host's shares.
    let path = format!("/v1/devices/{}/shares", host.device_id);
    expect_error(
        gw.post(&path, json!({"email": "bob@example.org"}), Some(&bob.token))
            .await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;

    expect_error(
        gw.post(
            &path,
            json!({"email": "nobody@example.org"}),
            Some(&ann.token),
        )
        .await,
        StatusCode::NOT_FOUND,
        ErrorCode::NoSuchAccount,
    )
    .await;
    let r = gw
        .post(
            &path,
            json!({"email": " Bob@Example.org"}),
            Some(&ann.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let shares: ShareList = expect(gw.get(&path, Some(&ann.token)).await, StatusCode::OK).await;
    assert_eq!(shares.shares.len(), 1);
    assert_eq!(shares.shares[0].email, "bob@example.org");

    let list = hosts(&gw, &bob.token).await;
    assert_eq!(list.hosts.len(), 1);
    assert!(!list.hosts[0].owned && list.hosts[0].online);
    assert_eq!(list.hosts[0].owner, "ann@example.org");
    b.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    assert!(matches!(b.recv().await, ServerMessage::HostRecord { .. }));
    let ServerMessage::ConnectRequest {
        connection_id,
        client,
    } = h.recv().await
    else {
        panic!("expected a connect request")
    };
    assert_eq!(client.email, "bob@example.org");
    // Bob cannot accept his own request: only the host can.
    b.send(json!({"type": "accept", "connection_id": connection_id}))
        .await;
    b.expect_error(SignalCode::Forbidden).await;
    h.send(json!({"type": "reject", "connection_id": connection_id, "reason": "busy"}))
        .await;
    assert_eq!(
        b.recv().await,
        ServerMessage::Rejected {
            connection_id,
            reason: "busy".into()
        }
    );

    // Unshared: back to not found.
    let r = gw
        .http
        .delete(gw.url(&format!("{path}/{}", bob.user_id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    b.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    b.expect_error(SignalCode::HostNotFound).await;
    gw.stop().await;
}

#[tokio::test]
async fn the_registry_refuses_bad_devices() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let key = Identity::generate().unwrap().public().to_base64();
    for (body, status, code) in [
        (
            json!({"name": "x", "kind": "host", "public_key": "AAAA"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
        ),
        (
            json!({"name": "", "kind": "host", "public_key": key}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
        ),
        (
            json!({"name": "a\u{7}b", "kind": "host", "public_key": key}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
        ),
        (
            json!({"name": "x".repeat(65), "kind": "host", "public_key": key}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidDevice,
        ),
        (
            json!({"name": "x", "kind": "server", "public_key": key}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        ),
        (
            json!({"name": "x", "kind": "host", "public_key": key, "admin": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
        ),
    ] {
        expect_error(
            gw.post("/v1/devices", body.clone(), Some(&ann.token)).await,
            status,
            code,
        )
        .await;
    }
    expect_error(
        gw.post(
            "/v1/devices",
            json!({"name": "x", "kind": "host", "public_key": key}),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let body = json!({"name": "den", "kind": "host", "public_key": key});
    let first: DeviceInfo = expect(
        gw.post("/v1/devices", body.clone(), Some(&ann.token)).await,
        StatusCode::CREATED,
    )
    .await;
    expect_error(
        gw.post("/v1/devices", body.clone(), Some(&ann.token)).await,
        StatusCode::CONFLICT,
        ErrorCode::DeviceExists,
    )
    .await;
    // Another account may register the same key: it cannot block the owner's.
    let bob = gw.user("bob@example.org").await;
    expect::<DeviceInfo>(
        gw.post("/v1/devices", body, Some(&bob.token)).await,
        StatusCode::CREATED,
    )
    .await;
    let mine: DeviceList = expect(
        gw.get("/v1/devices", Some(&ann.token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine.devices, vec![first.clone()]);
    // Bob cannot delete Ann's device; Ann can, once.
    let del = |token: &str| {
        gw.http
            .delete(gw.url(&format!("/v1/devices/{}", first.device_id)))
            .bearer_auth(token.to_string())
            .send()
    };
    expect_error(
        del(&bob.token).await.unwrap(),
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    assert_eq!(
        del(&ann.token).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        del(&ann.token).await.unwrap(),
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    // Plain HTTP on the WebSocket endpoint.
    expect_error(
        gw.get("/v1/signal", None).await,
        StatusCode::UPGRADE_REQUIRED,
        ErrorCode::UpgradeRequired,
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn bad_hellos_and_messages_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let bob = gw.user("bob@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;

    let mut p = Peer::open(&gw).await;
    p.send(json!({"type": "ping"})).await;
    p.expect_goodbye(SignalCode::ExpectedHello).await;

    let mut p = Peer::open(&gw).await;
    p.send(
        json!({"type": "hello", "version": 99, "token": ann.token, "device_id": host.device_id}),
    )
    .await;
    p.expect_goodbye(SignalCode::UnsupportedVersion).await;

    let mut p = Peer::open(&gw).await;
    p.send(json!({"type": "hello", "version": 1, "token": "x".repeat(43), "device_id": host.device_id}))
        .await;
    p.expect_goodbye(SignalCode::Unauthorized).await;

    // Bob's token with Ann's device.
    let mut p = Peer::open(&gw).await;
    p.send(json!({"type": "hello", "version": 1, "token": bob.token, "device_id": host.device_id}))
        .await;
    p.expect_goodbye(SignalCode::Unauthorized).await;

    let mut p = Peer::open(&gw).await;
    p.ws.send(Message::text("{not json")).await.unwrap();
    p.expect_goodbye(SignalCode::BadMessage).await;

    // After hello: errors, and the socket stays open.
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    c.ws.send(Message::text("{not json")).await.unwrap();
    c.expect_error(SignalCode::BadMessage).await;
    c.send(json!({"type": "ping", "surprise": 1})).await;
    c.expect_error(SignalCode::BadMessage).await;
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    c.expect_error(SignalCode::BadMessage).await;
    c.send(
        json!({"type": "hello", "version": 1, "token": ann.token, "device_id": laptop.device_id}),
    )
    .await;
    c.expect_error(SignalCode::ExpectedHello).await;
    c.send(json!({"type": "candidate", "connection_id": "nope",
        "candidate": {"kind": "host", "address": "10.0.0.1:1"}}))
        .await;
    c.expect_error(SignalCode::UnknownConnection).await;
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    c.expect_error(SignalCode::HostOffline).await;
    c.ping_pong(1).await;
    // A host does not connect to hosts.
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    h.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    h.expect_error(SignalCode::Forbidden).await;
    gw.stop().await;
}

/// A ping padded with JSON whitespace to exactly `len` bytes.
fn ping_of_len(nonce: u64, len: usize) -> String {
    let mut text = json!({"type": "ping", "nonce": nonce}).to_string();
    text.insert_str(1, &" ".repeat(len - text.len()));
    assert_eq!(text.len(), len);
    text
}

/// The close frame the gateway ends the socket with (after any other messages), within 5 s.
async fn close_frame(p: &mut Peer) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    use futures_util::StreamExt as _;
    loop {
        let next = tokio::time::timeout(common::peer::WAIT, p.ws.next())
            .await
            .expect("closes in time");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// docs/SIGNALING.md: a message is at most MAX_SIGNAL_MESSAGE_BYTES (16 KiB); a larger one
/// closes the socket with 1009, before hello or after. Exactly the limit is a message like any.
#[tokio::test]
async fn oversized_messages_close_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    assert_eq!(
        MAX_SIGNAL_MESSAGE_BYTES,
        16 * 1024,
        "docs/SIGNALING.md says 16 KiB"
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;

    // After hello: 16 KiB exactly is answered; one byte more closes with 1009.
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    c.ws.send(Message::text(ping_of_len(7, MAX_SIGNAL_MESSAGE_BYTES)))
        .await
        .unwrap();
    assert_eq!(c.recv().await, ServerMessage::Pong { nonce: 7 });
    // The send may already see the connection go: what matters is the close frame.
    let _ =
        c.ws.send(Message::text(ping_of_len(8, MAX_SIGNAL_MESSAGE_BYTES + 1)))
            .await;
    let frame = close_frame(&mut c).await;
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    assert_eq!(u16::from(frame.code), 1009);
    assert!(frame.reason.contains("16384"), "{frame:?}");

    // Far over the limit, as the first message.
    let mut p = Peer::open(&gw).await;
    let big =
        json!({"type": "hello", "version": 1, "token": "x".repeat(1 << 20), "device_id": "d"});
    let _ = p.ws.send(Message::text(big.to_string())).await;
    assert_eq!(close_frame(&mut p).await.code, CloseCode::Size);

    // A binary message is measured the same way.
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    let _ =
        c.ws.send(Message::binary(vec![0u8; MAX_SIGNAL_MESSAGE_BYTES + 1]))
            .await;
    assert_eq!(close_frame(&mut c).await.code, CloseCode::Size);
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    // Default: 40 at once, 20/s; 4 × the burst dropped in a row closes the socket.
    for n in 0..400u64 {
        if c.ws
            .send(Message::text(
                json!({"type": "ping", "nonce": n}).to_string(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut pongs = 0;
    let mut limited = 0;
    loop {
        match c.recv().await {
            ServerMessage::Pong { .. } => pongs += 1,
            ServerMessage::Error {
                code: SignalCode::RateLimited,
                ..
            } => limited += 1,
            ServerMessage::Goodbye {
                code: SignalCode::RateLimited,
                ..
            } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((40..=60).contains(&pongs), "{pongs} pongs");
    assert!(limited >= 1);
    c.expect_closed().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_dropped_host_resumes_and_gets_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (h, session, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    let last_seq = h.last_seq;
    drop(h); // the host's network drops

    // Within the grace period the host still counts as present: the request waits for it.
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord { connection_id, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    assert!(hosts(&gw, &ann.token).await.hosts[0].online);

    // The host comes back and resumes: the request it missed is replayed.
    let (mut h, _, resumed) =
        Peer::hello(&gw, &ann.token, &host.device_id, Some((&session, last_seq))).await;
    assert!(resumed);
    let ServerMessage::ConnectRequest {
        connection_id: cid, ..
    } = h.recv().await
    else {
        panic!("the missed connect request is replayed")
    };
    assert_eq!(cid, connection_id);
    h.send(json!({"type": "accept", "connection_id": cid}))
        .await;
    assert!(matches!(c.recv().await, ServerMessage::Accepted { .. }));

    // Resuming again from an older point replays again; a new socket replaces the old one.
    let (mut h2, _, resumed) =
        Peer::hello(&gw, &ann.token, &host.device_id, Some((&session, last_seq))).await;
    assert!(resumed);
    h.expect_goodbye(SignalCode::Replaced).await;
    assert!(matches!(
        h2.recv().await,
        ServerMessage::ConnectRequest { .. }
    ));

    // A resume naming no session: a fresh session, the old one's connection ends.
    let (_h3, _, resumed) = Peer::hello(&gw, &ann.token, &host.device_id, Some(("bogus", 1))).await;
    assert!(!resumed);
    h2.expect_goodbye(SignalCode::Replaced).await;
    match c.recv().await {
        ServerMessage::Closed {
            connection_id: id, ..
        } => assert_eq!(id, connection_id),
        other => panic!("expected closed, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_host_gone_past_the_grace_period_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |_| {}).await;
    let ann = gw.user("ann@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;
    let (h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    let ServerMessage::HostRecord { connection_id, .. } = c.recv().await else {
        panic!("expected a host record")
    };
    drop(h);
    // The gateway sees the socket end, then the grace period passes (30 s by default).
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance(Duration::from_secs(31));
    // The client's connection ends once the sweep (every second) notices.
    match c.recv().await {
        ServerMessage::Closed {
            connection_id: id, ..
        } => assert_eq!(id, connection_id),
        other => panic!("expected closed, got {other:?}"),
    }
    // The database learns it just after the hub does.
    let list = wait_offline(&gw, &ann.token).await;
    assert!(list.hosts[0].last_seen.is_some());
    c.send(json!({"type": "connect", "host_id": host.device_id}))
        .await;
    c.expect_error(SignalCode::HostOffline).await;
    gw.stop().await;
}

#[tokio::test]
async fn logout_device_removal_and_shutdown_close_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let ann = gw.user("ann@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let laptop = device(&gw, &ann.token, "laptop", "client").await;

    // Logout ends the session, and with it the sockets it opened.
    let second: LoginResponse = expect(
        gw.login("ann@example.org", PASSWORD, None).await,
        StatusCode::OK,
    )
    .await;
    let (mut h, _, _) = Peer::hello(&gw, &second.token, &host.device_id, None).await;
    let (mut c, _, _) = Peer::hello(&gw, &ann.token, &laptop.device_id, None).await;
    let r = gw
        .post("/v1/auth/logout", json!({}), Some(&second.token))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    h.expect_goodbye(SignalCode::SessionEnded).await;
    wait_offline(&gw, &ann.token).await;

    // Removing a device closes its socket.
    let r = gw
        .http
        .delete(gw.url(&format!("/v1/devices/{}", laptop.device_id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    c.expect_goodbye(SignalCode::DeviceRemoved).await;

    // A stop says goodbye to the rest.
    let (mut h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    gw.stop().await;
    h.expect_goodbye(SignalCode::ShuttingDown).await;
}

#[tokio::test]
async fn clients_hear_their_hosts_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let gw = TestGateway::start_with(dir.path(), clock.clone(), |_| {}).await;
    let ann = gw.user("ann@example.org").await;
    let bob = gw.user("bob@example.org").await;
    let eve = gw.user("eve@example.org").await;
    let host = device(&gw, &ann.token, "den", "host").await;
    let path = format!("/v1/devices/{}/shares", host.device_id);
    gw.post(&path, json!({"email": "bob@example.org"}), Some(&ann.token))
        .await;
    let mut clients = Vec::new();
    for (who, token) in [
        ("ann", &ann.token),
        ("bob", &bob.token),
        ("eve", &eve.token),
    ] {
        let d = device(&gw, token, &format!("{who}'s laptop"), "client").await;
        let mut p = Peer::hello(&gw, token, &d.device_id, None).await.0;
        p.skip_host_status = false;
        clients.push(p);
    }
    let (h, _, _) = Peer::hello(&gw, &ann.token, &host.device_id, None).await;
    let online = ServerMessage::HostStatus {
        host_id: host.device_id.clone(),
        online: true,
    };
    assert_eq!(clients[0].recv().await, online);
    assert_eq!(clients[1].recv().await, online, "shared with bob");
    drop(h);
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance(Duration::from_secs(31));
    let offline = ServerMessage::HostStatus {
        host_id: host.device_id.clone(),
        online: false,
    };
    assert_eq!(clients[0].recv().await, offline);
    assert_eq!(clients[1].recv().await, offline);
    // Eve heard nothing of a host that is not hers: her next message is her own pong.
    clients[2].ping_pong(5).await;
    gw.stop().await;
}
