//! One signaling WebSocket: `hello` and authentication, then a loop that sends what the hub
//! queues for the device and handles what the device sends (docs/SIGNALING.md). Its route
//! and OpenAPI part are signaling's share of the HTTP API.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rift_crypto::identity::PublicKey;
use tokio::time::Instant;
use wavry_proto::account::ErrorCode;
use wavry_proto::registry::DeviceKind;
use wavry_proto::signal::{
    HostRecord, PeerIdentity, PeerMessage, ServerMessage, SessionDescription, SignalCode, Signed,
    HOST_RECORD_CONTEXT, MAX_CANDIDATES, MAX_SIGNAL_MESSAGE_BYTES, SIGNAL_VERSION,
};

use super::hub::{encode, Outbound, PeerInfo};
use crate::error::ApiError;
use crate::extract::{authenticate, session_for_hash};
use crate::metrics::TypeLabel;
use crate::registry_db::{self, DeviceRow, NewConnection};
use crate::state::AppState;
use crate::token;

/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 4096;
/// `hello` must arrive within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// An open socket's login session is checked again at most this often (on a ping).
const RECHECK_SESSION: Duration = Duration::from_secs(60);
/// Longest id (device, host, connection) or reason accepted in a message, bytes.
const MAX_ID: usize = 64;
const MAX_REASON: usize = 256;
/// Close codes (RFC 6455 §7.4.1): policy violation, going away, and message too big.
const CLOSE_POLICY: u16 = 1008;
const CLOSE_AWAY: u16 = 1001;
const CLOSE_TOO_BIG: u16 = 1009;
/// How long a closing socket waits for the peer's close frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/signal", get(upgrade))
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(upgrade))]
pub(crate) struct ApiDoc;

/// `GET /v1/signal`.
#[utoipa::path(
    get,
    path = "/v1/signal",
    tag = "signaling",
    responses((status = 101, description = "WebSocket: the signaling protocol of docs/SIGNALING.md"), (status = 426, description = "not a WebSocket upgrade", body = wavry_proto::account::ErrorBody))
)]
async fn upgrade(
    State(st): State<AppState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::UpgradeRequired,
            "this endpoint speaks WebSocket only (docs/SIGNALING.md)",
        )
        .into_response();
    };
    // Held for the socket's life: signaling sockets outlive their HTTP connection's slot.
    let Some(slot) = st.signal.socket_slot() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "this gateway holds as many signaling sockets as it may; try another or later",
        )
        .into_response();
    };
    ws.max_message_size(MAX_SIGNAL_MESSAGE_BYTES)
        .max_frame_size(MAX_SIGNAL_MESSAGE_BYTES)
        // tungstenite's default 128 KiB read buffer is filled in on the first read and kept:
        // 134 KiB per idle socket. Messages are at most 16 KiB; 4 KiB reads are plenty.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            run(st, socket).await;
            drop(slot);
        })
}

/// Who is on this socket.
struct Ctx {
    info: PeerInfo,
    link_id: u64,
    token_hash: String,
}

async fn run(st: AppState, mut socket: WebSocket) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, hello(&st, &mut socket)).await {
        Ok(Ok(h)) => h,
        Ok(Err(Refusal::Goodbye(code, why))) => return bye(&mut socket, code, &why).await,
        Ok(Err(Refusal::TooBig)) => return close_too_big(&mut socket).await,
        Ok(Err(Refusal::Ended)) => return,
        Err(_) => {
            return bye(
                &mut socket,
                SignalCode::ExpectedHello,
                "no hello within 10 s",
            )
            .await
        }
    };
    let (info, resume, token_hash) = hello;
    let resume_token = match token::new_id() {
        Ok(t) => t,
        Err(e) => return bye(&mut socket, SignalCode::Internal, &e.to_string()).await,
    };
    let now_ms = st.clock.now_ms();
    let attached = st.signal.hub.attach(
        info.clone(),
        resume.as_ref().map(|(t, s)| (t.as_str(), *s)),
        resume_token,
        now_ms,
    );
    st.signal
        .apply(&st.db, attached.effects, now_ms / 1000)
        .await;
    if info.kind == DeviceKind::Host {
        let r = registry_db::set_presence(
            &st.db,
            &info.device_id,
            &st.signal.instance_id,
            now_ms / 1000,
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording a host online failed");
        }
        if !attached.resumed {
            st.signal.host_status(&st.db, &info.device_id, true).await;
        }
    }
    tracing::info!(
        device = %info.device_id,
        user = %info.user_id,
        kind = info.kind.as_str(),
        resumed = attached.resumed,
        "signaling connected"
    );
    let ctx = Ctx {
        info,
        link_id: attached.link_id,
        token_hash,
    };
    serve(&st, &ctx, &mut socket, attached.rx).await;
    st.signal
        .hub
        .detach(&ctx.info.device_id, ctx.link_id, st.clock.now_ms());
    tracing::info!(device = %ctx.info.device_id, "signaling disconnected");
}

type Hello = (PeerInfo, Option<(String, u64)>, String);

/// Why `hello` did not open a session.
enum Refusal {
    /// Say goodbye with this code and reason, then close (1008).
    Goodbye(SignalCode, String),
    /// A message over the size limit: close with 1009.
    TooBig,
    /// The socket ended (closed or broken): nothing to say.
    Ended,
}

/// Read and check `hello`.
async fn hello(st: &AppState, socket: &mut WebSocket) -> Result<Hello, Refusal> {
    let text = loop {
        match socket.recv().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                return Err(Refusal::Goodbye(
                    SignalCode::BadMessage,
                    "expected a JSON text message".into(),
                ))
            }
            Some(Err(e)) if too_big(&e) => return Err(Refusal::TooBig),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(Refusal::Ended),
        }
    };
    let refuse = |code, why: &str| Err(Refusal::Goodbye(code, why.to_string()));
    let msg = match PeerMessage::from_json(&text) {
        Ok(m) => m,
        Err(e) => return Err(Refusal::Goodbye(SignalCode::BadMessage, e.to_string())),
    };
    count(st, &msg);
    let PeerMessage::Hello {
        version,
        token,
        device_id,
        resume,
    } = msg
    else {
        return refuse(SignalCode::ExpectedHello, "the first message must be hello");
    };
    if version != SIGNAL_VERSION {
        return refuse(
            SignalCode::UnsupportedVersion,
            &format!("this gateway speaks signaling version {SIGNAL_VERSION}"),
        );
    }
    let auth = match authenticate(st, &token).await {
        Ok(a) => a,
        Err(e) if e.code == ErrorCode::Unauthorized => {
            return refuse(SignalCode::Unauthorized, "invalid or expired token")
        }
        Err(e) if e.code == ErrorCode::Banned => {
            return refuse(SignalCode::Banned, "this account is banned")
        }
        Err(_) => return refuse(SignalCode::Internal, "internal error"),
    };
    let device = registry_db::device_by_id(&st.db, bounded(&device_id))
        .await
        .map_err(|e| Refusal::Goodbye(SignalCode::Internal, internal(e)))?;
    let Some(device) = device.filter(|d| d.user_id == auth.user_id) else {
        return refuse(SignalCode::Unauthorized, "no such device on this account");
    };
    let Some(kind) = DeviceKind::parse(&device.kind) else {
        return refuse(SignalCode::Internal, "internal error");
    };
    Ok((
        PeerInfo {
            device_id: device.id,
            user_id: auth.user_id,
            session_id: auth.session_id,
            kind,
        },
        resume.map(|r| (r.session, r.last_seq)),
        token::hash_token(&token),
    ))
}

/// The socket's main loop, until either side closes or the hub drops it.
async fn serve(
    st: &AppState,
    ctx: &Ctx,
    socket: &mut WebSocket,
    mut rx: tokio::sync::mpsc::Receiver<Outbound>,
) {
    let cfg = st.signal.config;
    let idle = cfg.heartbeat * 3;
    let mut last_heard = Instant::now();
    let mut last_check = Instant::now();
    let mut bucket = Bucket::new(cfg.message_burst, cfg.messages_per_sec);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Text(t)) => {
                    if socket.send(Message::Text(t.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Close) | None => return close(socket, CLOSE_POLICY, "closed by the gateway").await,
            },
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        reply_error(st, ctx, SignalCode::BadMessage, "expected a JSON text message", None);
                        continue;
                    }
                    Some(Err(e)) if too_big(&e) => return close_too_big(socket).await,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                };
                last_heard = Instant::now();
                match bucket.take(last_heard) {
                    Take::Ok => {}
                    Take::Dropped { tell } => {
                        if tell {
                            reply_error(st, ctx, SignalCode::RateLimited, "too many messages; this one was dropped", None);
                        }
                        continue;
                    }
                    Take::Abuse => {
                        return bye(socket, SignalCode::RateLimited, "too many messages").await;
                    }
                }
                let msg = match PeerMessage::from_json(&text) {
                    Ok(m) => {
                        count(st, &m);
                        m
                    }
                    Err(e) => {
                        reply_error(st, ctx, SignalCode::BadMessage, &e.to_string(), None);
                        continue;
                    }
                };
                if matches!(msg, PeerMessage::Ping { .. }) && last_check.elapsed() >= RECHECK_SESSION {
                    last_check = Instant::now();
                    match session_for_hash(st, &ctx.token_hash).await {
                        Err(e) if matches!(e.code, ErrorCode::Unauthorized | ErrorCode::Banned) => {
                            let now_ms = st.clock.now_ms();
                            st.signal.session_ended(&st.db, &ctx.info.session_id, now_ms).await;
                            continue; // the hub said goodbye through `rx`
                        }
                        // A database hiccup says nothing about the session: check again later.
                        Err(e) => tracing::warn!(code = ?e.code, "rechecking a signaling session failed"),
                        Ok(_) => {}
                    }
                }
                if let Err((code, why, conn)) = handle(st, ctx, msg).await {
                    reply_error(st, ctx, code, &why, conn);
                }
            }
            () = tokio::time::sleep_until(last_heard + idle) => {
                return bye(socket, SignalCode::IdleTimeout, "no message for three heartbeat intervals").await;
            }
        }
    }
}

fn count(st: &AppState, m: &PeerMessage) {
    let label = TypeLabel {
        r#type: m.type_name(),
    };
    st.metrics.signal_messages.get_or_create(&label).inc();
}

type Failure = (SignalCode, String, Option<String>);

fn fail(code: SignalCode, why: &str, conn: &str) -> Failure {
    (code, why.to_string(), Some(conn.to_string()))
}

fn internal(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "signaling: internal error");
    "internal error".to_string()
}

/// One message after `hello`.
async fn handle(st: &AppState, ctx: &Ctx, msg: PeerMessage) -> Result<(), Failure> {
    let me = ctx.info.device_id.as_str();
    let hub = &st.signal.hub;
    let now_ms = st.clock.now_ms();
    match msg {
        PeerMessage::Hello { .. } => Err((
            SignalCode::ExpectedHello,
            "hello was already sent on this socket".into(),
            None,
        )),
        PeerMessage::Ping { nonce } => {
            hub.reply(me, ctx.link_id, ServerMessage::Pong { nonce });
            Ok(())
        }
        PeerMessage::Connect { host_id } => connect(st, ctx, &host_id).await,
        PeerMessage::Accept { connection_id } => {
            let route = host_route(st, ctx, &connection_id).await?;
            if hub.mark_accepted(&connection_id) {
                // Recorded before the client hears of it.
                registry_db::connection_accepted(&st.db, &connection_id, now_ms / 1000)
                    .await
                    .map_err(|e| (SignalCode::Internal, internal(e), None))?;
                st.signal.deliver(
                    &route.other,
                    ServerMessage::Accepted { connection_id },
                    now_ms,
                );
            }
            Ok(())
        }
        PeerMessage::Reject {
            connection_id,
            reason,
        } => {
            host_route(st, ctx, &connection_id).await?;
            let reason = truncate(&reason, MAX_REASON);
            end_connection(
                st,
                ctx,
                &connection_id,
                &format!("rejected: {reason}"),
                ServerMessage::Rejected {
                    connection_id: connection_id.clone(),
                    reason: reason.clone(),
                },
            )
            .await
        }
        PeerMessage::Offer {
            connection_id,
            description,
        } => {
            let route = any_route(st, ctx, &connection_id).await?;
            check_description(&description, &connection_id)?;
            st.signal.deliver(
                &route.other,
                ServerMessage::Offer {
                    connection_id,
                    description,
                },
                now_ms,
            );
            Ok(())
        }
        PeerMessage::Answer {
            connection_id,
            description,
        } => {
            let route = any_route(st, ctx, &connection_id).await?;
            check_description(&description, &connection_id)?;
            st.signal.deliver(
                &route.other,
                ServerMessage::Answer {
                    connection_id,
                    description,
                },
                now_ms,
            );
            Ok(())
        }
        PeerMessage::Candidate {
            connection_id,
            candidate,
        } => {
            let route = any_route(st, ctx, &connection_id).await?;
            st.signal.deliver(
                &route.other,
                ServerMessage::Candidate {
                    connection_id,
                    candidate,
                },
                now_ms,
            );
            Ok(())
        }
        PeerMessage::Report {
            connection_id,
            path,
            bytes_sent,
        } => {
            let bytes = i64::try_from(bytes_sent).unwrap_or(i64::MAX);
            let conn = bounded(&connection_id);
            let known = registry_db::record_report(&st.db, conn, me, path.as_str(), bytes)
                .await
                .map_err(|e| (SignalCode::Internal, internal(e), None))?;
            if !known {
                return Err(fail(
                    SignalCode::UnknownConnection,
                    "no such connection on this device",
                    &connection_id,
                ));
            }
            Ok(())
        }
        PeerMessage::Close {
            connection_id,
            reason,
        } => {
            any_route(st, ctx, &connection_id).await?;
            let reason = truncate(&reason, MAX_REASON);
            end_connection(
                st,
                ctx,
                &connection_id,
                &reason,
                ServerMessage::Closed {
                    connection_id: connection_id.clone(),
                    reason: reason.clone(),
                },
            )
            .await
        }
    }
}

/// Record a connection's end, then tell the other side with `notice`.
async fn end_connection(
    st: &AppState,
    ctx: &Ctx,
    connection_id: &str,
    reason: &str,
    notice: ServerMessage,
) -> Result<(), Failure> {
    let now_ms = st.clock.now_ms();
    registry_db::connection_ended(&st.db, connection_id, now_ms / 1000, reason)
        .await
        .map_err(|e| (SignalCode::Internal, internal(e), None))?;
    let mut effects =
        st.signal
            .hub
            .end_connection(connection_id, &ctx.info.device_id, notice, now_ms);
    effects.ended.clear(); // recorded above
    st.signal.apply(&st.db, effects, now_ms / 1000).await;
    Ok(())
}

/// Where a message of this device about `conn` goes. A connection opened through another
/// instance is learned from the database on first use.
async fn any_route(st: &AppState, ctx: &Ctx, conn: &str) -> Result<super::hub::Route, Failure> {
    let conn = bounded(conn);
    let me = ctx.info.device_id.as_str();
    let unknown = |code| fail(code, "no such connection on this device", conn);
    match st.signal.hub.route(conn, me) {
        Ok(r) => return Ok(r),
        Err(code) if st.signal.bus.is_none() => return Err(unknown(code)),
        Err(_) => {}
    }
    let parties = registry_db::open_connection_parties(&st.db, conn)
        .await
        .map_err(|e| (SignalCode::Internal, internal(e), None))?;
    match parties {
        Some((host, client, accepted)) if host == me || client == me => {
            st.signal
                .hub
                .track_connection(conn, &host, &client, accepted)
                .map_err(unknown)?;
            st.signal.hub.route(conn, me).map_err(unknown)
        }
        _ => Err(unknown(SignalCode::UnknownConnection)),
    }
}

async fn host_route(st: &AppState, ctx: &Ctx, conn: &str) -> Result<super::hub::Route, Failure> {
    let route = any_route(st, ctx, conn).await?;
    if !route.from_host {
        return Err(fail(
            SignalCode::Forbidden,
            "only the host accepts or rejects a connection",
            conn,
        ));
    }
    Ok(route)
}

fn check_description(d: &SessionDescription, conn: &str) -> Result<(), Failure> {
    if d.candidates.len() > MAX_CANDIDATES || d.protocol.len() > MAX_ID {
        return Err(fail(
            SignalCode::BadMessage,
            &format!("at most {MAX_CANDIDATES} candidates and a protocol name of {MAX_ID} bytes"),
            conn,
        ));
    }
    Ok(())
}

/// `connect`: check the client may use the host, then tell both sides.
async fn connect(st: &AppState, ctx: &Ctx, host_id: &str) -> Result<(), Failure> {
    let not_found = || {
        (
            SignalCode::HostNotFound,
            "no such host among those this account may use".to_string(),
            None,
        )
    };
    if ctx.info.kind != DeviceKind::Client {
        return Err((
            SignalCode::Forbidden,
            "only a client device connects to hosts".into(),
            None,
        ));
    }
    let db_err = |e: sqlx::Error| (SignalCode::Internal, internal(e), None);
    let host = registry_db::device_by_id(&st.db, bounded(host_id))
        .await
        .map_err(db_err)?
        .filter(|h| h.kind == DeviceKind::Host.as_str())
        .ok_or_else(not_found)?;
    let allowed = host.user_id == ctx.info.user_id
        || registry_db::is_shared_with(&st.db, &host.id, &ctx.info.user_id)
            .await
            .map_err(db_err)?;
    if !allowed {
        // Indistinguishable from a host that does not exist.
        return Err(not_found());
    }
    let reachable = st
        .signal
        .host_reachable(&st.db, &host.id, st.clock.now_secs())
        .await
        .map_err(db_err)?;
    if !reachable {
        return Err((SignalCode::HostOffline, "the host is offline".into(), None));
    }
    let client = registry_db::device_by_id(&st.db, &ctx.info.device_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| {
            (
                SignalCode::DeviceRemoved,
                "this device was removed".into(),
                None,
            )
        })?;
    let email = crate::db::user_by_id(&st.db, &ctx.info.user_id)
        .await
        .map_err(db_err)?
        .map(|u| u.email)
        .unwrap_or_default();
    let conn_id = token::new_id().map_err(|e| (SignalCode::Internal, internal(e), None))?;
    let now_ms = st.clock.now_ms();
    let now = now_ms / 1000;
    let record = host_record(st, &conn_id, &host, &client, now)?;
    st.signal
        .hub
        .track_connection(&conn_id, &host.id, &client.id, false)
        .map_err(|code| match code {
            SignalCode::RateLimited => (
                code,
                "too many open connections on this device".to_string(),
                None,
            ),
            _ => (code, "the host is offline".to_string(), None),
        })?;
    registry_db::insert_connection(
        &st.db,
        &NewConnection {
            id: &conn_id,
            host_id: &host.id,
            host_user_id: &host.user_id,
            client_device_id: &client.id,
            client_user_id: &ctx.info.user_id,
            now,
        },
    )
    .await
    .map_err(db_err)?;
    let hub = &st.signal.hub;
    hub.send(
        &client.id,
        ServerMessage::HostRecord {
            connection_id: conn_id.clone(),
            record,
        },
        now_ms,
    );
    st.signal.deliver(
        &host.id,
        ServerMessage::ConnectRequest {
            connection_id: conn_id.clone(),
            client: PeerIdentity {
                fingerprint: fingerprint(&client.public_key),
                device_id: client.id,
                device_name: client.name,
                user_id: ctx.info.user_id.clone(),
                email,
                public_key: client.public_key,
            },
        },
        now_ms,
    );
    tracing::info!(conn = %conn_id, host = %host.id, client = %ctx.info.device_id, "connect request");
    Ok(())
}

fn host_record(
    st: &AppState,
    conn_id: &str,
    host: &DeviceRow,
    client: &DeviceRow,
    now: i64,
) -> Result<Signed, Failure> {
    let ttl = i64::try_from(st.signal.config.record_ttl.as_secs()).unwrap_or(i64::MAX);
    let record = HostRecord {
        connection_id: conn_id.to_string(),
        host_id: host.id.clone(),
        host_name: host.name.clone(),
        host_public_key: host.public_key.clone(),
        host_fingerprint: fingerprint(&host.public_key),
        owner_user_id: host.user_id.clone(),
        client_device_id: client.id.clone(),
        client_public_key: client.public_key.clone(),
        issued_at: now,
        expires_at: now.saturating_add(ttl),
    };
    Signed::seal(&st.signer.current(), HOST_RECORD_CONTEXT, &record)
        .map_err(|e| (SignalCode::Internal, internal(e), None))
}

/// The fingerprint of a stored key (checked at registration, so it parses).
fn fingerprint(public_key: &str) -> String {
    PublicKey::from_base64(public_key)
        .map(|k| k.fingerprint().to_string())
        .unwrap_or_default()
}

fn bounded(id: &str) -> &str {
    // An over-long id names nothing; cut it rather than send it to the database.
    if id.len() > MAX_ID {
        ""
    } else {
        id
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn reply_error(st: &AppState, ctx: &Ctx, code: SignalCode, why: &str, conn: Option<String>) {
    st.signal.hub.reply(
        &ctx.info.device_id,
        ctx.link_id,
        ServerMessage::Error {
            code,
            message: why.to_string(),
            connection_id: conn,
        },
    );
}

/// `goodbye`, then close.
async fn bye(socket: &mut WebSocket, code: SignalCode, why: &str) {
    let text = encode(
        0,
        ServerMessage::Goodbye {
            code,
            message: why.to_string(),
        },
    );
    let _ = socket.send(Message::Text(text.as_ref().into())).await;
    let close_code = if code == SignalCode::ShuttingDown {
        CLOSE_AWAY
    } else {
        CLOSE_POLICY
    };
    close(socket, close_code, code.as_str()).await;
}

/// Whether a read failed on a message (or frame) over `MAX_SIGNAL_MESSAGE_BYTES`. tungstenite
/// refuses it from the frame header, before reading the payload, and reports it as an error
/// without closing: the close frame is ours to send.
fn too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
        .is_some_and(|t| matches!(t, tungstenite::Error::Capacity(_)))
}

/// Close with 1009 ("message too big", RFC 6455 §7.4.1), as docs/SIGNALING.md promises. The
/// library stops reading after such a message, so there is nothing to drain: the unread rest
/// of it is discarded with the connection.
async fn close_too_big(socket: &mut WebSocket) {
    tracing::debug!("signaling message over {MAX_SIGNAL_MESSAGE_BYTES} bytes: closing with 1009");
    let reason = format!("message over {MAX_SIGNAL_MESSAGE_BYTES} bytes");
    close(socket, CLOSE_TOO_BIG, &reason).await;
}

/// Send a close frame, then read until the peer's close (briefly): dropping a socket with
/// unread data makes the kernel reset it, and the peer might lose the `goodbye` before it.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let sent = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    if sent.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_DRAIN, drain).await;
}

/// Per-socket message rate: a token bucket.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Instant,
    dropped_in_a_row: u32,
    told_at: Option<Instant>,
}

enum Take {
    Ok,
    /// Over the rate: drop the message; `tell` at most once a second.
    Dropped {
        tell: bool,
    },
    /// Far over the rate for long: close the socket.
    Abuse,
}

impl Bucket {
    fn new(burst: u32, per_sec: u32) -> Self {
        Bucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
            at: Instant::now(),
            dropped_in_a_row: 0,
            told_at: None,
        }
    }

    fn take(&mut self, now: Instant) -> Take {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.dropped_in_a_row = 0;
            return Take::Ok;
        }
        self.dropped_in_a_row += 1;
        if f64::from(self.dropped_in_a_row) > 4.0 * self.burst {
            return Take::Abuse;
        }
        let tell = self
            .told_at
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if tell {
            self.told_at = Some(now);
        }
        Take::Dropped { tell }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate_then_closes_on_abuse() {
        let t0 = Instant::now();
        let mut b = Bucket::new(4, 2);
        for _ in 0..4 {
            assert!(matches!(b.take(t0), Take::Ok));
        }
        assert!(matches!(b.take(t0), Take::Dropped { tell: true }));
        assert!(matches!(b.take(t0), Take::Dropped { tell: false }));
        // Half a second later one token is back.
        let t1 = t0 + Duration::from_millis(500);
        assert!(matches!(b.take(t1), Take::Ok));
        let mut last = Take::Ok;
        for _ in 0..17 {
            last = b.take(t1);
        }
        assert!(matches!(last, Take::Abuse));
    }

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
