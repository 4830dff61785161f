//! Signaling between gateway instances that share one PostgreSQL: what one instance cannot
//! deliver itself (the device's socket is on another instance) or must tell every instance
//! (close a banned account's sockets) goes out with `NOTIFY wavry_signal`, and every instance
//! `LISTEN`s. An instance ignores its own notices, and delivers a message only if the device
//! is present there.
//!
//! Notices from one instance go out in order over one dedicated connection, so a peer sees a
//! connection's messages in the order they were sent. PostgreSQL caps a notice at 8000 bytes:
//! a larger one (a big WebRTC offer) is stored in `signal_spill` and the notice names its row.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{AnyPool, Connection as _};
use tokio::sync::mpsc;
use wavry_proto::signal::{ServerMessage, SignalCode};

use crate::clock::Clock;
use crate::error::GatewayError;

/// The NOTIFY channel.
pub const CHANNEL: &str = "wavry_signal";
/// Largest notice sent inline (PostgreSQL's limit is 8000 bytes, less some margin).
const INLINE_MAX: usize = 7_500;
/// Notices queued for publishing before new ones are dropped (and logged).
const QUEUE: usize = 65_536;

/// What one instance tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusMessage {
    /// A sequenced message for a device whose socket may be on another instance.
    Deliver { to: String, message: ServerMessage },
    /// Say `goodbye` to and close the sockets of an account, a login session or a device.
    Kick {
        target: KickTarget,
        code: SignalCode,
        message: String,
    },
    /// A host came online or went offline: tell these accounts' client devices.
    HostStatus {
        host_id: String,
        online: bool,
        users: Vec<String>,
    },
    /// A registration from this address, so the per-address limit holds across instances.
    Registered { ip: std::net::IpAddr },
    /// A failed login, TOTP or admin-token attempt, so lockouts hold across instances.
    LoginFailed { key: crate::throttle::ThrottleKey },
}

/// Whose sockets a kick closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
pub enum KickTarget {
    User(String),
    Session(String),
    Device(String),
}

impl KickTarget {
    pub fn matches(&self, p: &super::hub::PeerInfo) -> bool {
        match self {
            KickTarget::User(id) => p.user_id == *id,
            KickTarget::Session(id) => p.session_id == *id,
            KickTarget::Device(id) => p.device_id == *id,
        }
    }
}

/// A notice as sent: the sender, and the message or the spill row holding it.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    msg: Option<BusMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spill: Option<String>,
}

/// This instance's end of the bus.
pub struct Bus {
    tx: mpsc::Sender<BusMessage>,
    sent: Counter,
}

/// A handle that publishes, for callbacks that outlive a borrow of the `Bus`.
#[derive(Clone)]
pub struct BusSender(mpsc::Sender<BusMessage>, Counter);

impl BusSender {
    pub fn publish(&self, msg: BusMessage) {
        self.1.inc();
        if let Err(e) = self.0.try_send(msg) {
            tracing::error!(error = %e, "signaling bus: queue full or closed; notice dropped");
        }
    }
}

impl Bus {
    /// Connect the publishing and listening connections. The listener is returned to be run
    /// with [`receive`] once the gateway serves.
    pub async fn start(
        url: &str,
        db: AnyPool,
        instance_id: String,
        sent: Counter,
        clock: Arc<dyn Clock>,
    ) -> Result<(Bus, PgListener), GatewayError> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        let conn = PgConnection::connect(url).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_loop(
            url.to_string(),
            conn,
            db,
            instance_id,
            clock,
            rx,
        ));
        Ok((Bus { tx, sent }, listener))
    }

    pub fn publish(&self, msg: BusMessage) {
        self.sender().publish(msg);
    }

    pub fn sender(&self) -> BusSender {
        BusSender(self.tx.clone(), self.sent.clone())
    }
}

async fn publish_loop(
    url: String,
    mut conn: PgConnection,
    db: AnyPool,
    from: String,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<BusMessage>,
) {
    while let Some(msg) = rx.recv().await {
        let text = match encode(&db, &from, msg, clock.now_secs()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "signaling bus: could not encode a notice; dropped");
                continue;
            }
        };
        // One retry on a fresh connection: the server may have restarted.
        for attempt in 0..2 {
            match notify(&mut conn, &text).await {
                Ok(()) => break,
                Err(e) if attempt == 0 => {
                    tracing::warn!(error = %e, "signaling bus: NOTIFY failed; reconnecting");
                    match PgConnection::connect(&url).await {
                        Ok(c) => conn = c,
                        Err(e) => {
                            tracing::error!(error = %e, "signaling bus: reconnect failed; notice dropped");
                            break;
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "signaling bus: notice dropped"),
            }
        }
    }
}

async fn notify(conn: &mut PgConnection, text: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(text)
        .execute(conn)
        .await?;
    Ok(())
}

/// The notice text for `msg`; a large one is spilled with `now` (the gateway's clock, the one
/// `clean_spill` ages rows by).
async fn encode(db: &AnyPool, from: &str, msg: BusMessage, now: i64) -> Result<String, String> {
    let inline = Notice {
        from: from.to_string(),
        msg: Some(msg),
        spill: None,
    };
    let text = serde_json::to_string(&inline).map_err(|e| e.to_string())?;
    if text.len() <= INLINE_MAX {
        return Ok(text);
    }
    let id = crate::token::new_id().map_err(|e| e.to_string())?;
    sqlx::query("INSERT INTO signal_spill (id, payload, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(&text)
        .bind(now)
        .execute(db)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_string(&Notice {
        from: from.to_string(),
        msg: None,
        spill: Some(id),
    })
    .map_err(|e| e.to_string())
}

/// The next notice from another instance: waits for one, and answers None for one to skip
/// (this instance's own, unreadable, or a lost spill row) or after a failed receive (PgListener
/// reconnects by itself on the next call; notices sent meanwhile are lost, and their peers
/// resume or retry). `received` counts the other instances' notices.
pub(crate) async fn receive(
    listener: &mut PgListener,
    db: &AnyPool,
    instance_id: &str,
    received: &Counter,
) -> Option<BusMessage> {
    let n = match listener.recv().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "signaling bus: listening failed; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            return None;
        }
    };
    let notice: Notice = match serde_json::from_str(n.payload()) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "signaling bus: unreadable notice");
            return None;
        }
    };
    if notice.from == instance_id {
        return None;
    }
    received.inc();
    match (notice.msg, notice.spill) {
        (Some(m), _) => Some(m),
        (None, Some(id)) => spilled(db, &id).await,
        (None, None) => None,
    }
}

async fn spilled(db: &AnyPool, id: &str) -> Option<BusMessage> {
    let row: Result<Option<(String,)>, _> =
        sqlx::query_as("SELECT payload FROM signal_spill WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await;
    match row {
        Ok(Some((text,))) => match serde_json::from_str::<Notice>(&text) {
            Ok(Notice { msg: Some(m), .. }) => Some(m),
            _ => None,
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "signaling bus: reading a spilled notice failed");
            None
        }
    }
}

/// Drop spilled notices every instance has had time to read.
pub async fn clean_spill(db: &AnyPool, older_than: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM signal_spill WHERE created_at < $1")
        .bind(older_than)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip() {
        let m = BusMessage::Kick {
            target: KickTarget::User("u".into()),
            code: SignalCode::Banned,
            message: "m".into(),
        };
        let n = Notice {
            from: "i".into(),
            msg: Some(m.clone()),
            spill: None,
        };
        let text = serde_json::to_string(&n).unwrap();
        let back: Notice = serde_json::from_str(&text).unwrap();
        assert_eq!(back.msg, Some(m));
        let d = BusMessage::Deliver {
            to: "d".into(),
            message: ServerMessage::Accepted {
                connection_id: "c".into(),
            },
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<BusMessage>(&text).unwrap(), d);
    }
}
