//! The audit log: every admin action and security event, persisted (docs/ADMIN.md lists the
//! actions). Writing is best effort for the request it belongs to: a failure is logged at error
//! level, and the request's own outcome stands.

use std::net::IpAddr;

use crate::admin_db::{self, NewAudit};
use crate::state::Inner;

/// Who did it.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin,
    User(&'a str),
    /// Not signed in (a failed login, a bad admin token).
    Anonymous,
}

/// One event.
pub struct Event<'a> {
    pub actor: Actor<'a>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub detail: Option<String>,
}

impl<'a> Event<'a> {
    pub fn new(actor: Actor<'a>, action: &'a str) -> Self {
        Event {
            actor,
            action,
            target: None,
            ip: None,
            detail: None,
        }
    }

    pub fn target(mut self, t: &'a str) -> Self {
        self.target = Some(t);
        self
    }

    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

pub(crate) async fn record(st: &Inner, e: Event<'_>) {
    let actor = match e.actor {
        Actor::Admin => "admin".to_string(),
        Actor::User(id) => format!("user:{id}"),
        Actor::Anonymous => "anonymous".to_string(),
    };
    let id = match crate::token::new_id() {
        Ok(id) => id,
        Err(err) => {
            tracing::error!(error = %err, action = e.action, "audit: no random id; entry lost");
            return;
        }
    };
    let ip = e.ip.map(|ip| ip.to_string());
    let row = NewAudit {
        id: &id,
        at_ms: st.clock.now_ms(),
        actor: &actor,
        action: e.action,
        target: e.target,
        ip: ip.as_deref(),
        detail: e.detail.as_deref(),
    };
    if let Err(err) = admin_db::insert_audit(&st.db, &row).await {
        tracing::error!(error = %err, action = e.action, %actor, "audit: writing failed; entry lost");
    }
}
