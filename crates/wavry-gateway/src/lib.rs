//! wavry-gateway: accounts and login sessions over an HTTP JSON API (docs/GATEWAY.md), the
//! device registry and signaling over WebSocket (docs/SIGNALING.md), on SQLite (an embedded
//! file, the default) or PostgreSQL.
//!
//! ```no_run
//! # async fn run() -> Result<(), wavry_gateway::GatewayError> {
//! let config = wavry_gateway::Config::default();
//! let gateway = wavry_gateway::Gateway::open(config.clone()).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
//!     wavry_gateway::GatewayError::Io { context: "binding".into(), source: e }
//! })?;
//! gateway.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Request and response bodies are `wavry_proto::account` and `wavry_proto::registry`;
//! signaling messages (docs/SIGNALING.md) are `wavry_proto::signal`.

#![forbid(unsafe_code)]

mod accounts;
mod admin;
mod admin_db;
mod app;
mod audit;
pub mod clock;
pub mod config;
pub mod db;
mod error;
mod extract;
mod health;
mod metrics;
pub mod openapi;
pub mod password;
pub mod proxy;
mod registry_api;
pub mod registry_db;
mod serve;
pub mod signal;
pub mod signing_key;
mod state;
pub mod throttle;
pub mod token;
pub mod totp;
pub mod validate;

use std::future::Future;
use std::sync::Arc;

pub use admin::ADMIN_TOKEN_MIN_CHARS;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    parse_duration, AdminToken, Argon2Cost, Backoff, Config, FileConfig, HttpLimits, SignalConfig,
    ThrottleConfig,
};
pub use error::{ApiError, GatewayError, HashError};
pub use proxy::Cidr;
pub use signing_key::{PublishedKey, Rotation, SigningKeySet};
pub use validate::normalize_email;

/// A gateway with its database open and migrated, ready to serve.
pub struct Gateway {
    state: state::AppState,
}

impl Gateway {
    /// Check `config`, open (and create, for SQLite) the database, run its migrations, and
    /// prepare password hashing.
    pub async fn open(config: Config) -> Result<Self, GatewayError> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// `open` with another clock (tests move time with a `ManualClock`).
    pub async fn open_with_clock(
        mut config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        if let Some(t) = &config.admin_token {
            if t.expose().chars().count() < admin::ADMIN_TOKEN_MIN_CHARS {
                tracing::error!(
                    "the admin token (ADMIN_PANEL_TOKEN) is shorter than {} characters: the admin \
                     panel stays off",
                    admin::ADMIN_TOKEN_MIN_CHARS
                );
                config.admin_token = None;
            }
        }
        let (db, key_path) = open_database(&config).await?;
        let (signer, _) = signing_key::load(
            &db,
            &key_path,
            clock.now_secs(),
            config.signing_key_horizon(),
        )
        .await?;
        let hasher = password::Hasher::new(
            config.argon2,
            config.max_concurrent_hashes,
            config.hash_queue_timeout,
        )
        .await?;
        let pg_url = (db::prepare_url(&config.database_url)?.0 == db::Backend::Postgres)
            .then_some(config.database_url.as_str());
        let metrics = metrics::Metrics::new();
        let signal = signal::Signaling::open(
            &db,
            config.signal,
            pg_url,
            metrics.bus_sent.clone(),
            clock.clone(),
        )
        .await?;
        let throttle = throttle::LoginThrottle::new(config.throttle);
        if let Some(bus) = signal.bus.as_ref().map(|b| b.sender()) {
            // A failure here counts on every instance: guessing cannot be spread over them.
            throttle.observe_failures(move |key| {
                bus.publish(signal::bus::BusMessage::LoginFailed { key: key.clone() })
            });
        }
        let register_limit = throttle::RateLimiter::new(
            config.throttle.register_burst,
            config.throttle.register_every,
            config.throttle.max_entries,
        );
        Ok(Gateway {
            state: state::AppState(Arc::new(state::Inner {
                db,
                signer,
                signal,
                metrics,
                hasher,
                throttle,
                register_limit,
                clock,
                config,
            })),
        })
    }

    /// Whether the admin panel is served (a token of at least 32 characters is set).
    pub fn admin_enabled(&self) -> bool {
        self.state.config.admin_token.is_some()
    }

    /// The HTTP routes, for serving in-process (without the client's address, all clients
    /// share one per-address throttle bucket).
    pub fn router(&self) -> axum::Router {
        app::router(self.state.clone())
    }

    /// Serve on `listener` until `shutdown` completes, then let the requests in flight finish
    /// (no new connections are accepted) and close the database.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let addr = listener.local_addr().map_err(|e| GatewayError::Io {
            context: "reading the listening address".into(),
            source: e,
        })?;
        tracing::info!(%addr, "gateway listening");
        let st = self.state.clone();
        let housekeeping =
            tokio::spawn(async move { st.signal.housekeeping(&st.db, st.clock.as_ref()).await });
        let st = self.state.clone();
        let keys = tokio::spawn(async move {
            let every = st.signal.config.heartbeat;
            st.signer.maintain(&st.db, st.clock.as_ref(), every).await
        });
        let bus = self
            .state
            .signal
            .take_listener()
            .map(|l| tokio::spawn(app::listen_bus(self.state.clone(), l)));
        // Signaling sockets are upgraded connections the HTTP loop no longer tracks: say
        // goodbye on them as the stop begins, so peers reconnect elsewhere at once.
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.signal.hub.close_all(
                wavry_proto::signal::SignalCode::ShuttingDown,
                "the gateway is stopping; reconnect with resume",
            );
        };
        serve::serve(listener, self.router(), self.state.config.http, shutdown).await;
        // The sockets were told goodbye when the stop began; let them finish their last
        // writes before the database closes.
        self.state
            .signal
            .sockets_closed(std::time::Duration::from_secs(5))
            .await;
        housekeeping.abort();
        keys.abort();
        if let Some(b) = bus {
            b.abort();
        }
        self.state.db.close().await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Open the database of `config` and bring it up to date, moving a signing key still kept in
/// it (by a gateway from before migration 0006) into the key file first; the key file's path.
async fn open_database(
    config: &Config,
) -> Result<(sqlx::AnyPool, std::path::PathBuf), GatewayError> {
    let (backend, _) = db::prepare_url(&config.database_url)?;
    let key_path = config.signing_key_path()?;
    let db = db::open(
        &config.database_url,
        config.db_max_connections,
        config.db_acquire_timeout,
    )
    .await?;
    // Gateways before migration 0006 kept the key's seed in gateway_keys, which it drops.
    let moved = db::table_exists(&db, backend, "gateway_keys").await?
        && signing_key::move_out_of_database(&db, &key_path).await?;
    db::migrate(&db, backend, moved).await?;
    Ok((db, key_path))
}

/// `wavry gateway rotate-signing-key`: write a new signing key to the key file of `config` and
/// retire the current one, which stays published until the records it signed have expired.
/// Running instances with that key file sign with the new key from their next heartbeat
/// (docs/GATEWAY.md, "The signing key").
pub async fn rotate_signing_key(
    config: &Config,
    clock: &dyn Clock,
) -> Result<Rotation, GatewayError> {
    config.validate()?;
    let (db, key_path) = open_database(config).await?;
    let rotation = signing_key::rotate(
        &db,
        &key_path,
        clock.now_secs(),
        config.signing_key_horizon(),
    )
    .await;
    db.close().await;
    Ok(rotation?)
}
