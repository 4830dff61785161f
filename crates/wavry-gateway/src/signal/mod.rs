//! Signaling (docs/SIGNALING.md): the hub that routes messages between connected devices, and
//! the WebSocket each device speaks it over. (The key host records are signed with is
//! `signing_key`'s.)
//!
//! `Signaling` is part of the application state, so it and the hub and bus take what they need
//! (the database, the clock, the throttles) as arguments, never the state itself; only
//! `socket`, the HTTP endpoint, sits above the state.

pub mod bus;
pub mod hub;
pub(crate) mod socket;

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::AnyPool;
use wavry_proto::signal::{ServerMessage, SignalCode};

use crate::clock::Clock;
use crate::config::SignalConfig;
use crate::error::GatewayError;
use crate::registry_db;
use crate::throttle::{LoginThrottle, RateLimiter};
use bus::{Bus, BusMessage, KickTarget};
use hub::{Effects, Hub, HubConfig};

pub(crate) struct Signaling {
    pub hub: Hub,
    /// This process, in `host_presence` rows.
    pub instance_id: String,
    pub config: SignalConfig,
    /// To the other instances on the same PostgreSQL; None on SQLite (one instance).
    pub bus: Option<Bus>,
    /// The bus's listening connection, until `serve` runs it.
    listener: Mutex<Option<PgListener>>,
    /// One permit per open signaling socket (`SignalConfig::max_sockets`).
    sockets: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Signaling {
    /// `postgres_url`: the database's URL when it is PostgreSQL, to join the other instances.
    pub async fn open(
        db: &AnyPool,
        config: SignalConfig,
        postgres_url: Option<&str>,
        bus_sent: prometheus_client::metrics::counter::Counter,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, GatewayError> {
        let instance_id = crate::token::new_id()
            .map_err(|e| GatewayError::Config(format!("an instance id: {e}")))?;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let hub = Hub::new(HubConfig {
            resume_grace_ms: ms(config.resume_grace),
            heartbeat_secs: u32::try_from(config.heartbeat.as_secs()).unwrap_or(u32::MAX),
            ..HubConfig::default()
        });
        let (bus, listener) = match postgres_url {
            Some(url) => {
                let (b, l) =
                    Bus::start(url, db.clone(), instance_id.clone(), bus_sent, clock).await?;
                (Some(b), Some(l))
            }
            None => (None, None),
        };
        tracing::info!(
            %instance_id,
            multi_instance = bus.is_some(),
            "signaling ready"
        );
        Ok(Signaling {
            hub,
            instance_id,
            config,
            bus,
            listener: Mutex::new(listener),
            sockets: std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_sockets)),
        })
    }

    /// A permit for one more signaling socket, or None at the cap.
    pub fn socket_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.sockets.clone().try_acquire_owned().ok()
    }

    /// Wait (up to `limit`) until every signaling socket has ended, so the database is not
    /// closed under their last writes.
    pub async fn sockets_closed(&self, limit: Duration) {
        let all = u32::try_from(self.config.max_sockets).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(limit, self.sockets.acquire_many(all)).await;
    }

    /// The bus's listener, once (for `serve` to run).
    pub fn take_listener(&self) -> Option<PgListener> {
        self.listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A sequenced message to `device`: here if it is present, else to the other instances.
    pub fn deliver(&self, device: &str, message: ServerMessage, now_ms: i64) {
        if self.hub.is_present(device) {
            self.hub.send(device, message, now_ms);
        } else if let Some(bus) = &self.bus {
            bus.publish(BusMessage::Deliver {
                to: device.to_string(),
                message,
            });
        }
    }

    /// Whether `host` can be reached: present here, or (with other instances) online on one.
    pub async fn host_reachable(
        &self,
        db: &AnyPool,
        host: &str,
        now_secs: i64,
    ) -> Result<bool, sqlx::Error> {
        if self.hub.is_present(host) {
            return Ok(true);
        }
        if self.bus.is_none() {
            return Ok(false);
        }
        let cutoff = now_secs.saturating_sub(self.presence_window_secs());
        registry_db::presence_fresh(db, host, cutoff).await
    }

    /// How long a presence row counts without a refresh: three heartbeats.
    pub fn presence_window_secs(&self) -> i64 {
        i64::try_from(self.config.heartbeat.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(3)
    }

    /// Close the sockets `target` names, here and on every other instance.
    pub async fn kick(
        &self,
        db: &AnyPool,
        target: KickTarget,
        code: SignalCode,
        message: &str,
        now_ms: i64,
    ) {
        let effects = self.hub.kick(|p| target.matches(p), code, message, now_ms);
        self.apply(db, effects, now_ms / 1000).await;
        if let Some(bus) = &self.bus {
            bus.publish(BusMessage::Kick {
                target,
                code,
                message: message.to_string(),
            });
        }
    }

    /// A notice from another instance. The account side's notices (a failed attempt, a
    /// registration) go to its `throttle` and `register_limit`.
    pub async fn handle_bus(
        &self,
        db: &AnyPool,
        throttle: &LoginThrottle,
        register_limit: &RateLimiter,
        msg: BusMessage,
        now_ms: i64,
    ) {
        match msg {
            BusMessage::Deliver { to, message } => {
                if !self.hub.is_present(&to) {
                    return; // on yet another instance, or gone
                }
                match &message {
                    ServerMessage::Closed { connection_id, .. }
                    | ServerMessage::Rejected { connection_id, .. } => {
                        self.hub.forget_connection(connection_id);
                    }
                    // The host's side learns the connection, so that its leaving ends it.
                    ServerMessage::ConnectRequest {
                        connection_id,
                        client,
                    } => {
                        let tracked =
                            self.hub
                                .track_connection(connection_id, &to, &client.device_id, false);
                        if let Err(code) = tracked {
                            tracing::debug!(%code, connection_id, "not tracking a connection");
                        }
                    }
                    _ => {}
                }
                self.hub.send(&to, message, now_ms);
            }
            BusMessage::Kick {
                target,
                code,
                message,
            } => {
                let effects = self.hub.kick(|p| target.matches(p), code, &message, now_ms);
                self.apply(db, effects, now_ms / 1000).await;
            }
            BusMessage::LoginFailed { key } => throttle.record_failure(&key, now_ms),
            // Counted whether or not it fits here: the other instance already let it in.
            BusMessage::Registered { ip } => {
                let _ = register_limit.take(ip, now_ms);
            }
            BusMessage::HostStatus {
                host_id,
                online,
                users,
            } => self.broadcast_host_status(host_id, online, &users),
        }
    }

    /// Tell the client devices of the accounts that may use `host_id` (here and on the other
    /// instances) that it came online or went offline.
    pub async fn host_status(&self, db: &AnyPool, host_id: &str, online: bool) {
        let users = match registry_db::users_of_host(db, host_id).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, host_id, "listing a host's users failed");
                return;
            }
        };
        self.broadcast_host_status(host_id.to_string(), online, &users);
        if let Some(bus) = &self.bus {
            bus.publish(BusMessage::HostStatus {
                host_id: host_id.to_string(),
                online,
                users,
            });
        }
    }

    fn broadcast_host_status(&self, host_id: String, online: bool, users: &[String]) {
        self.hub.broadcast(
            |p| p.kind == wavry_proto::registry::DeviceKind::Client && users.contains(&p.user_id),
            ServerMessage::HostStatus { host_id, online },
        );
    }

    /// Record what a hub call changed. Failures are logged, not returned: the hub has moved
    /// on, and a stale presence row expires by itself.
    pub async fn apply(&self, db: &AnyPool, effects: Effects, now_secs: i64) {
        for host in &effects.hosts_offline {
            if let Err(e) = registry_db::clear_presence(db, host, &self.instance_id, now_secs).await
            {
                tracing::warn!(error = %e, host, "recording a host offline failed");
            }
            tracing::info!(host, "host offline");
            self.host_status(db, host, false).await;
        }
        for (conn, reason) in &effects.ended {
            if let Err(e) = registry_db::connection_ended(db, conn, now_secs, reason).await {
                tracing::warn!(error = %e, conn, "recording a connection's end failed");
            }
        }
        if let Some(bus) = &self.bus {
            for (to, message) in effects.remote {
                bus.publish(BusMessage::Deliver { to, message });
            }
        }
    }

    /// A login session was revoked or ended: close the sockets it authenticated.
    pub async fn session_ended(&self, db: &AnyPool, session_id: &str, now_ms: i64) {
        let target = KickTarget::Session(session_id.to_string());
        let why = "the login session ended";
        self.kick(db, target, SignalCode::SessionEnded, why, now_ms)
            .await;
    }

    /// A device was deleted: close its socket.
    pub async fn device_removed(&self, db: &AnyPool, device_id: &str, now_ms: i64) {
        let target = KickTarget::Device(device_id.to_string());
        let why = "the device was removed from the account";
        self.kick(db, target, SignalCode::DeviceRemoved, why, now_ms)
            .await;
    }

    /// Runs while the gateway serves: ends the sessions of devices gone longer than the grace
    /// period, and keeps this instance's hosts' presence rows fresh.
    pub async fn housekeeping(&self, db: &AnyPool, clock: &dyn Clock) {
        let heartbeat = self.config.heartbeat;
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(heartbeat));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_refresh = 0i64;
        loop {
            tick.tick().await;
            let now_ms = clock.now_ms();
            let effects = self.hub.sweep(now_ms);
            self.apply(db, effects, now_ms / 1000).await;
            let hb_ms = i64::try_from(heartbeat.as_millis()).unwrap_or(i64::MAX);
            if now_ms.saturating_sub(last_refresh) >= hb_ms {
                last_refresh = now_ms;
                if let Err(e) =
                    registry_db::refresh_presence(db, &self.instance_id, now_ms / 1000).await
                {
                    tracing::warn!(error = %e, "refreshing host presence failed");
                }
                if self.bus.is_some() {
                    // Every instance has read a spilled notice within a minute.
                    if let Err(e) = bus::clean_spill(db, now_ms / 1000 - 60).await {
                        tracing::warn!(error = %e, "cleaning spilled notices failed");
                    }
                }
            }
        }
    }
}
