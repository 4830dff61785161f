//! The signaling hub: which devices are connected to this gateway instance, the messages
//! queued for each, and the connections being brokered between them. No I/O and no clock:
//! sockets attach a queue (`Link`), times come in as arguments, and what the database must
//! learn (a host went offline, a connection ended) comes back as [`Effects`].
//!
//! Sequenced messages (`seq` ≥ 1: everything about a connection) are kept per device in a
//! bounded outbox, so a peer whose socket dropped can `resume` within the grace period and
//! get what it missed. Replies (`welcome`, `pong`, `error`, `goodbye`) have `seq` 0 and go only
//! to the socket that asked.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use wavry_proto::registry::DeviceKind;
use wavry_proto::signal::{ServerEnvelope, ServerMessage, SignalCode, SIGNAL_VERSION};

/// What the hub tells a socket's task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send this text message.
    Text(Arc<str>),
    /// Close the socket (after the messages before this).
    Close,
}

#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Sequenced messages kept per device for resumption.
    pub outbox_len: usize,
    /// How long a device whose socket dropped stays present (and can resume), ms.
    pub resume_grace_ms: i64,
    /// Messages queued for one socket before it counts as too slow and is closed.
    pub link_queue: usize,
    /// Open connections per device, at most.
    pub max_connections_per_device: usize,
    /// Sent in `welcome`.
    pub heartbeat_secs: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            outbox_len: 256,
            resume_grace_ms: 30_000,
            link_queue: 512,
            max_connections_per_device: 8,
            heartbeat_secs: 15,
        }
    }
}

/// Who is on a socket, once its `hello` checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub device_id: String,
    pub user_id: String,
    /// The login session the socket authenticated with.
    pub session_id: String,
    pub kind: DeviceKind,
}

/// What the database must record after a hub call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Hosts that are no longer present here.
    pub hosts_offline: Vec<String>,
    /// Connections that ended: (connection id, reason).
    pub ended: Vec<(String, String)>,
    /// Messages for devices not present here (another gateway instance may have them).
    pub remote: Vec<(String, ServerMessage)>,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.hosts_offline.extend(other.hosts_offline);
        self.ended.extend(other.ended);
        self.remote.extend(other.remote);
    }
}

/// A socket's side of an attachment.
#[derive(Debug)]
pub struct Attached {
    pub link_id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    pub resumed: bool,
    /// What replacing an earlier, unresumed session of the device ended.
    pub effects: Effects,
}

/// The two sides of a connection, from one side's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Whether the asking device is the host.
    pub from_host: bool,
    pub other: String,
    pub accepted: bool,
}

struct Link {
    id: u64,
    tx: mpsc::Sender<Outbound>,
}

struct Peer {
    info: PeerInfo,
    resume_token: String,
    next_seq: u64,
    outbox: VecDeque<(u64, Arc<str>)>,
    link: Option<Link>,
    detached_since: Option<i64>,
    connections: HashSet<String>,
}

struct Conn {
    host: String,
    client: String,
    accepted: bool,
}

#[derive(Default)]
struct State {
    peers: HashMap<String, Peer>,
    conns: HashMap<String, Conn>,
    next_link: u64,
}

pub struct Hub {
    cfg: HubConfig,
    state: Mutex<State>,
}

pub(crate) fn encode(seq: u64, message: ServerMessage) -> Arc<str> {
    let env = ServerEnvelope { seq, message };
    // Serializing our own enum of strings and numbers cannot fail.
    serde_json::to_string(&env)
        .unwrap_or_else(|_| r#"{"seq":0,"type":"error","code":"internal","message":""}"#.into())
        .into()
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        Hub {
            cfg,
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attach a socket for `info.device_id`: continue its earlier session if `resume`
    /// (token, last seq received) names it and its missed messages are all still kept,
    /// otherwise start a new one (ending the earlier session's connections). Sends `welcome`
    /// (with `new_token` as the resume token of a new session), then anything missed.
    pub fn attach(
        &self,
        info: PeerInfo,
        resume: Option<(&str, u64)>,
        new_token: String,
        now_ms: i64,
    ) -> Attached {
        let mut st = self.lock();
        st.next_link += 1;
        let link_id = st.next_link;
        let (tx, rx) = mpsc::channel(self.cfg.link_queue);
        let mut effects = Effects::default();

        let resumable = match (st.peers.get(&info.device_id), resume) {
            (Some(p), Some((token, last_seq))) => {
                let oldest_kept = p.outbox.front().map_or(p.next_seq, |(s, _)| *s);
                p.info.user_id == info.user_id
                    && p.resume_token == token
                    && last_seq < p.next_seq
                    && last_seq + 1 >= oldest_kept
            }
            _ => false,
        };
        if resumable {
            let p = st.peers.get_mut(&info.device_id).expect("checked above");
            if let Some(old) = p.link.take() {
                goodbye(
                    &old,
                    SignalCode::Replaced,
                    "another socket resumed this session",
                );
            }
            let last_seq = resume.map_or(0, |r| r.1);
            let welcome = welcome(&info, &p.resume_token, true, self.cfg.heartbeat_secs);
            p.info = info;
            p.detached_since = None;
            let _ = tx.try_send(Outbound::Text(welcome));
            for (seq, text) in &p.outbox {
                if *seq > last_seq {
                    let _ = tx.try_send(Outbound::Text(text.clone()));
                }
            }
            p.link = Some(Link { id: link_id, tx });
            return Attached {
                link_id,
                rx,
                resumed: true,
                effects,
            };
        }

        if st.peers.contains_key(&info.device_id) {
            effects.merge(remove_peer(
                &mut st,
                &self.cfg,
                now_ms,
                &info.device_id,
                Some((SignalCode::Replaced, "another socket took over this device")),
                "the device reconnected without resuming",
            ));
            // The host stays online: it is back already.
            effects.hosts_offline.retain(|d| *d != info.device_id);
        }
        let _ = tx.try_send(Outbound::Text(welcome(
            &info,
            &new_token,
            false,
            self.cfg.heartbeat_secs,
        )));
        st.peers.insert(
            info.device_id.clone(),
            Peer {
                info,
                resume_token: new_token,
                next_seq: 1,
                outbox: VecDeque::new(),
                link: Some(Link { id: link_id, tx }),
                detached_since: None,
                connections: HashSet::new(),
            },
        );
        Attached {
            link_id,
            rx,
            resumed: false,
            effects,
        }
    }

    /// The socket `link_id` of `device_id` ended; the device stays present for the grace
    /// period.
    pub fn detach(&self, device_id: &str, link_id: u64, now_ms: i64) {
        let mut st = self.lock();
        if let Some(p) = st.peers.get_mut(device_id) {
            if p.link.as_ref().is_some_and(|l| l.id == link_id) {
                p.link = None;
                p.detached_since = Some(now_ms);
            }
        }
    }

    /// Whether `link_id` is still `device_id`'s socket.
    pub fn is_current(&self, device_id: &str, link_id: u64) -> bool {
        self.lock()
            .peers
            .get(device_id)
            .and_then(|p| p.link.as_ref())
            .is_some_and(|l| l.id == link_id)
    }

    /// Whether `device_id` is present (connected, or within its resumption grace).
    pub fn is_present(&self, device_id: &str) -> bool {
        self.lock().peers.contains_key(device_id)
    }

    /// Devices present now.
    pub fn present_count(&self) -> usize {
        self.lock().peers.len()
    }

    /// A reply to one socket only (`seq` 0, not kept).
    pub fn reply(&self, device_id: &str, link_id: u64, message: ServerMessage) {
        let st = self.lock();
        if let Some(link) = st
            .peers
            .get(device_id)
            .and_then(|p| p.link.as_ref())
            .filter(|l| l.id == link_id)
        {
            let _ = link.tx.try_send(Outbound::Text(encode(0, message)));
        }
    }

    /// An unsequenced message (`seq` 0) to every connected device `pred` picks.
    pub fn broadcast(&self, pred: impl Fn(&PeerInfo) -> bool, message: ServerMessage) {
        let st = self.lock();
        let text = encode(0, message);
        for p in st.peers.values().filter(|p| pred(&p.info)) {
            if let Some(link) = &p.link {
                let _ = link.tx.try_send(Outbound::Text(text.clone()));
            }
        }
    }

    /// A sequenced message to `device_id` (kept for resumption); false if it is not present.
    pub fn send(&self, device_id: &str, message: ServerMessage, now_ms: i64) -> bool {
        let mut st = self.lock();
        send_locked(&mut st, &self.cfg, device_id, message, now_ms)
    }

    /// Track connection `conn_id` from `client` to `host`. One side may be on another
    /// gateway instance; at least one must be present here.
    pub fn track_connection(
        &self,
        conn_id: &str,
        host: &str,
        client: &str,
        accepted: bool,
    ) -> Result<(), SignalCode> {
        let mut st = self.lock();
        let max = self.cfg.max_connections_per_device;
        let (h, c) = (st.peers.get(host), st.peers.get(client));
        if h.is_none() && c.is_none() {
            return Err(SignalCode::UnknownConnection);
        }
        if c.is_some_and(|c| c.connections.len() >= max)
            || h.is_some_and(|h| h.connections.len() >= max * 4)
        {
            return Err(SignalCode::RateLimited);
        }
        st.conns.insert(
            conn_id.to_string(),
            Conn {
                host: host.to_string(),
                client: client.to_string(),
                accepted,
            },
        );
        for d in [host, client] {
            if let Some(p) = st.peers.get_mut(d) {
                p.connections.insert(conn_id.to_string());
            }
        }
        Ok(())
    }

    /// Drop `conn_id` without telling anyone (its other side, on another instance, ended it
    /// and the notice is being delivered).
    pub fn forget_connection(&self, conn_id: &str) {
        let mut st = self.lock();
        if let Some(c) = st.conns.remove(conn_id) {
            for d in [&c.host, &c.client] {
                if let Some(p) = st.peers.get_mut(d.as_str()) {
                    p.connections.remove(conn_id);
                }
            }
        }
    }

    /// Where a message of `from` about `conn_id` goes.
    pub fn route(&self, conn_id: &str, from: &str) -> Result<Route, SignalCode> {
        let st = self.lock();
        let c = st.conns.get(conn_id).ok_or(SignalCode::UnknownConnection)?;
        if c.host == from {
            Ok(Route {
                from_host: true,
                other: c.client.clone(),
                accepted: c.accepted,
            })
        } else if c.client == from {
            Ok(Route {
                from_host: false,
                other: c.host.clone(),
                accepted: c.accepted,
            })
        } else {
            Err(SignalCode::UnknownConnection)
        }
    }

    /// The host accepted `conn_id`; false if it was accepted already.
    pub fn mark_accepted(&self, conn_id: &str) -> bool {
        let mut st = self.lock();
        match st.conns.get_mut(conn_id) {
            Some(c) if !c.accepted => {
                c.accepted = true;
                true
            }
            _ => false,
        }
    }

    /// End `conn_id`; the side other than `by` is told with `notice` (`closed` or
    /// `rejected`), here or, through the returned effects, on another instance. `ended` in
    /// the effects names the connection if it was open (the caller records it).
    pub fn end_connection(
        &self,
        conn_id: &str,
        by: &str,
        notice: ServerMessage,
        now_ms: i64,
    ) -> Effects {
        let mut st = self.lock();
        let mut effects = Effects::default();
        end_conn_locked(
            &mut st,
            &self.cfg,
            conn_id,
            by,
            notice,
            now_ms,
            &mut effects,
        );
        effects
    }

    /// Devices whose grace period ran out leave: their connections end.
    pub fn sweep(&self, now_ms: i64) -> Effects {
        let mut st = self.lock();
        let expired: Vec<String> = st
            .peers
            .iter()
            .filter(|(_, p)| {
                p.detached_since
                    .is_some_and(|t| now_ms.saturating_sub(t) >= self.cfg.resume_grace_ms)
            })
            .map(|(d, _)| d.clone())
            .collect();
        let mut effects = Effects::default();
        for d in expired {
            effects.merge(remove_peer(
                &mut st,
                &self.cfg,
                now_ms,
                &d,
                None,
                "the other side left",
            ));
        }
        effects
    }

    /// Say `goodbye` to and remove every device `pred` picks (a ban, a revoked login
    /// session, a deleted device): no resumption.
    pub fn kick(
        &self,
        pred: impl Fn(&PeerInfo) -> bool,
        code: SignalCode,
        message: &str,
        now_ms: i64,
    ) -> Effects {
        let mut st = self.lock();
        let picked: Vec<String> = st
            .peers
            .values()
            .filter(|p| pred(&p.info))
            .map(|p| p.info.device_id.clone())
            .collect();
        let mut effects = Effects::default();
        for d in picked {
            effects.merge(remove_peer(
                &mut st,
                &self.cfg,
                now_ms,
                &d,
                Some((code, message)),
                "the other side was disconnected",
            ));
        }
        effects
    }

    /// Tell every socket the gateway is stopping, and close them. Sessions stay resumable
    /// (on another instance, or this one after a restart if the peer's state is rebuilt).
    pub fn close_all(&self, code: SignalCode, message: &str) {
        let mut st = self.lock();
        for p in st.peers.values_mut() {
            if let Some(l) = p.link.take() {
                goodbye(&l, code, message);
            }
        }
    }
}

fn welcome(info: &PeerInfo, token: &str, resumed: bool, heartbeat_secs: u32) -> Arc<str> {
    encode(
        0,
        ServerMessage::Welcome {
            version: SIGNAL_VERSION,
            user_id: info.user_id.clone(),
            device_id: info.device_id.clone(),
            kind: info.kind,
            resume_session: token.to_string(),
            resumed,
            heartbeat_secs,
        },
    )
}

fn goodbye(link: &Link, code: SignalCode, message: &str) {
    let _ = link.tx.try_send(Outbound::Text(encode(
        0,
        ServerMessage::Goodbye {
            code,
            message: message.to_string(),
        },
    )));
    let _ = link.tx.try_send(Outbound::Close);
}

fn send_locked(
    st: &mut State,
    cfg: &HubConfig,
    device_id: &str,
    message: ServerMessage,
    now_ms: i64,
) -> bool {
    let Some(p) = st.peers.get_mut(device_id) else {
        return false;
    };
    let seq = p.next_seq;
    p.next_seq += 1;
    let text = encode(seq, message);
    p.outbox.push_back((seq, text.clone()));
    while p.outbox.len() > cfg.outbox_len {
        p.outbox.pop_front();
    }
    if let Some(link) = &p.link {
        if link.tx.try_send(Outbound::Text(text)).is_err() {
            // Full (it reads too slowly) or gone: drop the socket; the peer may resume and
            // get the message from the outbox.
            let _ = link.tx.try_send(Outbound::Close);
            p.link = None;
            p.detached_since = Some(now_ms);
        }
    }
    true
}

fn end_conn_locked(
    st: &mut State,
    cfg: &HubConfig,
    conn_id: &str,
    by: &str,
    notice: ServerMessage,
    now_ms: i64,
    effects: &mut Effects,
) -> bool {
    let Some(c) = st.conns.remove(conn_id) else {
        return false;
    };
    for d in [&c.host, &c.client] {
        if let Some(p) = st.peers.get_mut(d.as_str()) {
            p.connections.remove(conn_id);
        }
        if d != by && !send_locked(st, cfg, d, notice.clone(), now_ms) {
            effects.remote.push((d.clone(), notice.clone()));
        }
    }
    effects
        .ended
        .push((conn_id.to_string(), reason_of(&notice)));
    true
}

fn reason_of(notice: &ServerMessage) -> String {
    match notice {
        ServerMessage::Closed { reason, .. } => reason.clone(),
        ServerMessage::Rejected { reason, .. } => format!("rejected: {reason}"),
        _ => String::new(),
    }
}

fn remove_peer(
    st: &mut State,
    cfg: &HubConfig,
    now_ms: i64,
    device_id: &str,
    goodbye_with: Option<(SignalCode, &str)>,
    reason_for_others: &str,
) -> Effects {
    let mut effects = Effects::default();
    let Some(p) = st.peers.remove(device_id) else {
        return effects;
    };
    if let (Some(l), Some((code, msg))) = (&p.link, goodbye_with) {
        goodbye(l, code, msg);
    }
    if p.info.kind == DeviceKind::Host {
        effects.hosts_offline.push(device_id.to_string());
    }
    // The removed peer is gone, so only the other side hears of each connection's end.
    for conn in p.connections {
        let notice = ServerMessage::Closed {
            connection_id: conn.clone(),
            reason: reason_for_others.to_string(),
        };
        end_conn_locked(st, cfg, &conn, device_id, notice, now_ms, &mut effects);
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(device: &str, kind: DeviceKind) -> PeerInfo {
        PeerInfo {
            device_id: device.into(),
            user_id: "u".into(),
            session_id: format!("s-{device}"),
            kind,
        }
    }

    fn hub() -> Hub {
        Hub::new(HubConfig {
            outbox_len: 4,
            resume_grace_ms: 1_000,
            link_queue: 8,
            max_connections_per_device: 2,
            heartbeat_secs: 15,
        })
    }

    /// Everything queued on `rx` now, parsed.
    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Result<ServerEnvelope, ()>> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            out.push(match o {
                Outbound::Text(t) => Ok(ServerEnvelope::from_json(&t).unwrap()),
                Outbound::Close => Err(()),
            });
        }
        out
    }

    fn seqs(msgs: &[Result<ServerEnvelope, ()>]) -> Vec<u64> {
        msgs.iter().flatten().map(|e| e.seq).collect()
    }

    fn closed(n: u32) -> ServerMessage {
        ServerMessage::Closed {
            connection_id: format!("c{n}"),
            reason: String::new(),
        }
    }

    #[test]
    fn resume_replays_what_was_missed_and_only_while_it_is_kept() {
        let hub = hub();
        let mut a = hub.attach(info("h", DeviceKind::Host), None, "tok".into(), 0);
        assert_eq!(seqs(&drain(&mut a.rx)), vec![0]); // welcome
        hub.send("h", closed(1), 0);
        hub.send("h", closed(2), 0);
        assert_eq!(seqs(&drain(&mut a.rx)), vec![1, 2]);
        hub.detach("h", a.link_id, 10);
        assert!(hub.is_present("h"));
        hub.send("h", closed(3), 20);
        hub.send("h", closed(4), 20);
        // Received up to 2: 3 and 4 are replayed after the welcome.
        let mut b = hub.attach(
            info("h", DeviceKind::Host),
            Some(("tok", 2)),
            "new".into(),
            30,
        );
        assert!(b.resumed);
        assert_eq!(seqs(&drain(&mut b.rx)), vec![0, 3, 4]);
        // Numbering continues.
        hub.send("h", closed(5), 40);
        assert_eq!(seqs(&drain(&mut b.rx)), vec![5]);
        // Only the last 4 are kept: resuming from 0 needs 1, which is gone, so a new session.
        hub.send("h", closed(6), 40);
        let mut c = hub.attach(
            info("h", DeviceKind::Host),
            Some(("tok", 0)),
            "t3".into(),
            50,
        );
        assert!(!c.resumed);
        assert_eq!(
            drain(&mut b.rx).last(),
            Some(&Err(())),
            "the replaced socket is told to close"
        );
        hub.send("h", closed(7), 60);
        assert_eq!(
            seqs(&drain(&mut c.rx)),
            vec![0, 1],
            "a new session starts at 1"
        );
        // A wrong token never resumes; a last_seq from the future neither.
        let d = hub.attach(
            info("h", DeviceKind::Host),
            Some(("nope", 1)),
            "t4".into(),
            70,
        );
        assert!(!d.resumed);
        let e = hub.attach(
            info("h", DeviceKind::Host),
            Some(("t4", 99)),
            "t5".into(),
            80,
        );
        assert!(!e.resumed);
    }

    #[test]
    fn grace_ends_a_dropped_device_and_its_connections() {
        let hub = hub();
        let h = hub.attach(info("h", DeviceKind::Host), None, "a".into(), 0);
        let mut c = hub.attach(info("c", DeviceKind::Client), None, "b".into(), 0);
        drain(&mut c.rx);
        hub.track_connection("x", "h", "c", false).unwrap();
        assert_eq!(
            hub.route("x", "c").unwrap(),
            Route {
                from_host: false,
                other: "h".into(),
                accepted: false
            }
        );
        assert_eq!(hub.route("x", "z"), Err(SignalCode::UnknownConnection));
        hub.detach("h", h.link_id, 100);
        assert_eq!(hub.sweep(1_099), Effects::default(), "still within grace");
        let fx = hub.sweep(1_100);
        assert_eq!(fx.hosts_offline, vec!["h".to_string()]);
        assert_eq!(fx.ended.len(), 1);
        assert!(!hub.is_present("h"));
        let got = drain(&mut c.rx);
        assert!(matches!(
            got[0].as_ref().unwrap().message,
            ServerMessage::Closed { .. }
        ));
        assert_eq!(hub.route("x", "c"), Err(SignalCode::UnknownConnection));
    }

    #[test]
    fn connection_limits_and_offline_hosts() {
        let hub = hub();
        let _h = hub.attach(info("h", DeviceKind::Host), None, "a".into(), 0);
        let _c = hub.attach(info("c", DeviceKind::Client), None, "b".into(), 0);
        hub.track_connection("1", "h", "c", false).unwrap();
        hub.track_connection("2", "h", "c", false).unwrap();
        assert_eq!(
            hub.track_connection("3", "h", "c", false),
            Err(SignalCode::RateLimited)
        );
        assert_eq!(
            hub.track_connection("4", "elsewhere", "nobody", false),
            Err(SignalCode::UnknownConnection),
            "neither side is here"
        );
        assert!(hub.mark_accepted("1"));
        assert!(!hub.mark_accepted("1"), "once");
        assert_eq!(hub.end_connection("1", "c", closed(1), 0).ended.len(), 1);
        assert!(hub.end_connection("1", "c", closed(1), 0).ended.is_empty());
        hub.track_connection("3", "h", "c", false).unwrap();
    }

    #[test]
    fn a_side_on_another_instance_gets_its_notices_through_the_effects() {
        let hub = hub();
        let mut c = hub.attach(info("c", DeviceKind::Client), None, "b".into(), 0);
        drain(&mut c.rx);
        // The host is on another instance.
        hub.track_connection("x", "far-host", "c", false).unwrap();
        let route = hub.route("x", "c").unwrap();
        assert_eq!(route.other, "far-host");
        assert!(!hub.send("far-host", closed(0), 0), "not present here");
        let fx = hub.end_connection("x", "c", closed(9), 0);
        assert_eq!(fx.remote, vec![("far-host".to_string(), closed(9))]);
        // The far side ending it: forgotten quietly here.
        hub.track_connection("y", "far-host", "c", true).unwrap();
        hub.forget_connection("y");
        assert_eq!(hub.route("y", "c"), Err(SignalCode::UnknownConnection));
        assert!(drain(&mut c.rx).is_empty());
    }

    #[test]
    fn a_socket_that_does_not_read_is_dropped_but_can_resume() {
        let hub = hub();
        let a = hub.attach(info("c", DeviceKind::Client), None, "tok".into(), 0);
        // Queue of 8: the welcome and 7 more fit; the 9th overflows.
        for n in 0..8 {
            hub.send("c", closed(n), 5);
        }
        assert!(!hub.is_current("c", a.link_id), "dropped as too slow");
        assert!(hub.is_present("c"));
        let mut b = hub.attach(
            info("c", DeviceKind::Client),
            Some(("tok", 4)),
            "x".into(),
            6,
        );
        assert!(b.resumed);
        assert_eq!(seqs(&drain(&mut b.rx)), vec![0, 5, 6, 7, 8]);
    }

    #[test]
    fn kick_says_goodbye_and_forgets() {
        let hub = hub();
        let mut a = hub.attach(info("h", DeviceKind::Host), None, "tok".into(), 0);
        let _b = hub.attach(info("c", DeviceKind::Client), None, "t".into(), 0);
        drain(&mut a.rx);
        let fx = hub.kick(|p| p.session_id == "s-h", SignalCode::Banned, "banned", 0);
        assert_eq!(fx.hosts_offline, vec!["h".to_string()]);
        let got = drain(&mut a.rx);
        assert!(matches!(
            got[0].as_ref().unwrap().message,
            ServerMessage::Goodbye {
                code: SignalCode::Banned,
                ..
            }
        ));
        assert_eq!(got[1], Err(()));
        assert!(!hub.is_present("h") && hub.is_present("c"));
        // No resuming a kicked session.
        let again = hub.attach(info("h", DeviceKind::Host), Some(("tok", 0)), "n".into(), 1);
        assert!(!again.resumed);
        assert_eq!(hub.present_count(), 2);
    }
}
