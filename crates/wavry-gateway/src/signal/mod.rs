//! Signaling (docs/SIGNALING.md): the hub that routes messages between connected devices,
//! the WebSocket each device speaks it over, and the gateway key host records are signed with.

pub mod hub;
pub(crate) mod socket;

use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use rift_crypto::signing::SigningKey;
use sqlx::AnyPool;
use wavry_proto::signal::SignalCode;

use crate::config::SignalConfig;
use crate::error::GatewayError;
use crate::registry_db;
use hub::{Effects, Hub, HubConfig};

/// The `gateway_keys` purpose of the host-record signing key.
const HOST_RECORD_KEY: &str = "host_records";

pub(crate) struct Signaling {
    pub hub: Hub,
    /// Signs host records; the same key on every instance sharing the database.
    pub key: SigningKey,
    /// This process, in `host_presence` rows.
    pub instance_id: String,
    pub config: SignalConfig,
}

impl Signaling {
    pub async fn open(
        db: &AnyPool,
        config: SignalConfig,
        now_secs: i64,
    ) -> Result<Self, GatewayError> {
        let fresh = SigningKey::generate().map_err(|e| GatewayError::Config(e.to_string()))?;
        let stored = registry_db::load_or_store_key(
            db,
            HOST_RECORD_KEY,
            &BASE64URL_NOPAD.encode(fresh.seed()),
            now_secs,
        )
        .await?;
        let bad = |why: String| GatewayError::Config(format!("stored signing key: {why}"));
        let seed: [u8; 32] = BASE64URL_NOPAD
            .decode(stored.as_bytes())
            .map_err(|e| bad(e.to_string()))?
            .try_into()
            .map_err(|_| bad("not 32 bytes".into()))?;
        let key = SigningKey::from_seed(&seed).map_err(|e| bad(e.to_string()))?;
        let instance_id = crate::token::new_id().map_err(|e| bad(e.to_string()))?;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let hub = Hub::new(HubConfig {
            resume_grace_ms: ms(config.resume_grace),
            heartbeat_secs: u32::try_from(config.heartbeat.as_secs()).unwrap_or(u32::MAX),
            ..HubConfig::default()
        });
        tracing::info!(key_id = %key.verifying_key().key_id(), %instance_id, "signaling ready");
        Ok(Signaling {
            hub,
            key,
            instance_id,
            config,
        })
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
        }
        for (conn, reason) in &effects.ended {
            if let Err(e) = registry_db::connection_ended(db, conn, now_secs, reason).await {
                tracing::warn!(error = %e, conn, "recording a connection's end failed");
            }
        }
    }

    /// A login session was revoked or ended: close the sockets it authenticated.
    pub async fn session_ended(&self, db: &AnyPool, session_id: &str, now_ms: i64) {
        let effects = self.hub.kick(
            |p| p.session_id == session_id,
            SignalCode::SessionEnded,
            "the login session ended",
            now_ms,
        );
        self.apply(db, effects, now_ms / 1000).await;
    }

    /// A device was deleted: close its socket.
    pub async fn device_removed(&self, db: &AnyPool, device_id: &str, now_ms: i64) {
        let effects = self.hub.kick(
            |p| p.device_id == device_id,
            SignalCode::DeviceRemoved,
            "the device was removed from the account",
            now_ms,
        );
        self.apply(db, effects, now_ms / 1000).await;
    }
}

/// Runs while the gateway serves: ends the sessions of devices gone longer than the grace
/// period, and keeps this instance's hosts' presence rows fresh.
pub(crate) async fn housekeeping(st: crate::api::AppState) {
    let heartbeat = st.signal.config.heartbeat;
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(heartbeat));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh = 0i64;
    loop {
        tick.tick().await;
        let now_ms = st.clock.now_ms();
        let effects = st.signal.hub.sweep(now_ms);
        st.signal.apply(&st.db, effects, now_ms / 1000).await;
        let hb_ms = i64::try_from(heartbeat.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(last_refresh) >= hb_ms {
            last_refresh = now_ms;
            if let Err(e) =
                registry_db::refresh_presence(&st.db, &st.signal.instance_id, now_ms / 1000).await
            {
                tracing::warn!(error = %e, "refreshing host presence failed");
            }
        }
    }
}
