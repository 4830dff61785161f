//! The application state every handler and background task shares: the database, the signing
//! key, signaling,
//! metrics, password hashing, the throttles, the clock and the configuration. It sits below
//! every feature module, so none of them needs another to reach it.

use std::sync::Arc;

use sqlx::AnyPool;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::signal::Signaling;
use crate::signing_key::Signer;
use crate::throttle::{LoginThrottle, RateLimiter};

pub(crate) struct Inner {
    pub db: AnyPool,
    /// The key host records are signed with.
    pub signer: Signer,
    pub signal: Signaling,
    pub metrics: Metrics,
    pub hasher: Hasher,
    pub throttle: LoginThrottle,
    pub register_limit: RateLimiter,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// A login session's idle lifetime, in seconds.
    pub(crate) fn idle_secs(&self) -> i64 {
        i64::try_from(self.config.session_idle_ttl.as_secs()).unwrap_or(i64::MAX)
    }
    /// A login session's absolute lifetime, in seconds.
    pub(crate) fn absolute_secs(&self) -> i64 {
        i64::try_from(self.config.session_absolute_ttl.as_secs()).unwrap_or(i64::MAX)
    }
}
