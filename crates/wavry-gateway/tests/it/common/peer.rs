//! A signaling peer over a real WebSocket (tokio-tungstenite), and device registration, for
//! the tests that speak signaling.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use rift_crypto::identity::Identity;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wavry_proto::registry::DeviceInfo;
use wavry_proto::signal::{ServerEnvelope, ServerMessage, SignalCode};

use super::{expect, TestGateway};

/// How long any one expected message may take.
pub const WAIT: Duration = Duration::from_secs(5);

pub async fn device(gw: &TestGateway, token: &str, name: &str, kind: &str) -> DeviceInfo {
    let key = Identity::generate().unwrap().public().to_base64();
    expect(
        gw.post(
            "/v1/devices",
            json!({"name": name, "kind": kind, "public_key": key}),
            Some(token),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

pub struct Peer {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub last_seq: u64,
    /// Pass over `host_status` notices (they come whenever a host of the account comes or
    /// goes); a test of them turns this off.
    pub skip_host_status: bool,
}

impl Peer {
    pub async fn open(gw: &TestGateway) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/signal", gw.addr))
            .await
            .expect("websocket upgrade");
        Peer {
            ws,
            last_seq: 0,
            skip_host_status: true,
        }
    }

    /// Open, say hello, expect welcome; (peer, resume session, resumed).
    pub async fn hello(
        gw: &TestGateway,
        token: &str,
        device_id: &str,
        resume: Option<(&str, u64)>,
    ) -> (Self, String, bool) {
        let mut p = Self::open(gw).await;
        let mut hello =
            json!({"type": "hello", "version": 1, "token": token, "device_id": device_id});
        if let Some((session, last_seq)) = resume {
            hello["resume"] = json!({"session": session, "last_seq": last_seq});
            p.last_seq = last_seq;
        }
        p.send(hello).await;
        match p.recv().await {
            ServerMessage::Welcome {
                resume_session,
                resumed,
                device_id: d,
                heartbeat_secs,
                ..
            } => {
                assert_eq!(d, device_id);
                assert!(heartbeat_secs > 0);
                (p, resume_session, resumed)
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// The next gateway message; sequenced ones must come in order with no gap.
    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("no socket error");
            match m {
                Message::Text(t) => {
                    let env = ServerEnvelope::from_json(&t).unwrap_or_else(|e| panic!("{e}: {t}"));
                    if env.seq != 0 {
                        assert_eq!(env.seq, self.last_seq + 1, "in order, no gap: {t}");
                        self.last_seq = env.seq;
                    }
                    if self.skip_host_status
                        && matches!(env.message, ServerMessage::HostStatus { .. })
                    {
                        continue;
                    }
                    return env.message;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn expect_error(&mut self, code: SignalCode) {
        match self.recv().await {
            ServerMessage::Error { code: c, .. } if c == code => {}
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    /// `goodbye` with `code`, then the socket closes.
    pub async fn expect_goodbye(&mut self, code: SignalCode) {
        match self.recv().await {
            ServerMessage::Goodbye { code: c, .. } if c == code => {}
            other => panic!("expected goodbye {code}, got {other:?}"),
        }
        self.expect_closed().await;
    }

    pub async fn expect_closed(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closes in time")
            {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(t))) if t.contains(r#""type":"host_status""#) => continue,
                Some(Ok(other)) => panic!("expected the socket to close, got {other:?}"),
            }
        }
    }

    pub async fn ping_pong(&mut self, nonce: u64) {
        self.send(json!({"type": "ping", "nonce": nonce})).await;
        assert_eq!(self.recv().await, ServerMessage::Pong { nonce });
    }
}
