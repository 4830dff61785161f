//! A shared harness for tests and benchmarks that run RIFT sessions over real loopback (or any)
//! sockets: identities that trust each other, connection factories, a host that accepts and a
//! client that connects, driven on one thread in turn or on session threads. Behind the
//! `test-support` feature; not for production use (it panics on any failure).
//!
//! ```no_run
//! # use std::time::Duration;
//! # use wavry_transport::{testing, udp::UdpDriver};
//! let (host, client) = testing::ends();
//! let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
//! let host_addr = hd.local_addr().unwrap();
//! let h = std::thread::spawn(move || {
//!     // Established: the client proved its key and is allowed.
//!     let mut s = host.accept(&mut hd, || testing::fixed_rate(true, 10_000_000));
//!     // ... stream ...
//! });
//! let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
//! let mut s = client.connect(&mut cd, host_addr, testing::fixed_rate(false, 1_000_000));
//! testing::drive_until_established(&mut cd, &mut s, Duration::from_secs(2));
//! # h.join().unwrap();
//! ```

use crate::listen::{Listener, ListenerConfig};
use crate::session::{ConnectionFactory, Session, SessionConfig};
use crate::thread::{SessionEvent, SessionThread};
use crate::udp::UdpDriver;
use rift_core::connection::{Connection, ConnectionConfig};
use rift_core::delta::{CongestionController, FixedRate};
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::{Identity, PublicKey};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a host waits for the client's first handshake packet.
pub const ACCEPT_WITHIN: Duration = Duration::from_secs(5);

/// A connection factory whose connections send at a fixed rate (`sender`: it sends video).
pub fn fixed_rate(sender: bool, bps: u64) -> ConnectionFactory {
    with_controller(sender, move || Box::new(FixedRate::new(bps, 60.0)))
}

/// A connection factory whose connections use the congestion controller `cc` makes.
pub fn with_controller(
    sender: bool,
    cc: impl FnOnce() -> Box<dyn CongestionController> + Send + 'static,
) -> ConnectionFactory {
    Box::new(move |l, r, now| Connection::new(ConnectionConfig::new(l, r, sender), cc(), now))
}

/// The host's end of a pair: its identity, the one client it allows, its session settings.
pub struct HostEnd {
    pub identity: Identity,
    pub client: PublicKey,
    pub config: SessionConfig,
}

/// The client's end of a pair: its identity, the host key it pins, its session settings.
pub struct ClientEnd {
    pub identity: Identity,
    pub host: PublicKey,
    pub config: SessionConfig,
}

/// Two fresh identities that trust each other, with default session settings; each end can
/// move to its own thread.
pub fn ends() -> (HostEnd, ClientEnd) {
    let (h, c) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host, client) = (h.public(), c.public());
    (
        HostEnd {
            identity: h,
            client,
            config: SessionConfig::default(),
        },
        ClientEnd {
            identity: c,
            host,
            config: SessionConfig::default(),
        },
    )
}

impl HostEnd {
    /// A listener that admits this end's client.
    pub fn listener(&self) -> Listener {
        let client = self.client;
        let cfg = ListenerConfig {
            session: self.config.clone(),
            ..ListenerConfig::default()
        };
        Listener::new(
            cfg,
            &self.identity,
            move || allow_list(vec![client]),
            Instant::now(),
        )
        .unwrap()
    }

    /// Wait on `driver` (up to [`ACCEPT_WITHIN`]) until the client is admitted, and give it a
    /// connection from `factory`. The client must be driven meanwhile (another thread).
    pub fn accept(
        &self,
        driver: &mut UdpDriver,
        factory: impl FnOnce() -> ConnectionFactory,
    ) -> Session {
        driver
            .accept(
                &mut self.listener(),
                Instant::now() + ACCEPT_WITHIN,
                factory,
            )
            .unwrap()
            .expect("a client connects")
    }
}

impl ClientEnd {
    /// Start a session to `to` on `driver` and send its handshake initiation.
    pub fn connect(
        &self,
        driver: &mut UdpDriver,
        to: SocketAddr,
        factory: ConnectionFactory,
    ) -> Session {
        let mut s = Session::connect(
            self.config.clone(),
            &self.identity,
            pinned(self.host),
            to,
            factory,
            Instant::now(),
        )
        .unwrap();
        driver.flush(&mut s, Instant::now()).unwrap();
        s
    }
}

/// Drive `session` in 5 ms turns until it is established; panics after `within`.
pub fn drive_until_established(driver: &mut UdpDriver, session: &mut Session, within: Duration) {
    let start = Instant::now();
    while !session.is_established() && start.elapsed() < within {
        driver
            .drive(session, Instant::now() + Duration::from_millis(5))
            .unwrap();
    }
    assert!(session.is_established(), "{:?}", session.close_reason());
}

/// A host and a client on loopback sockets, both driven by the calling thread in turn.
pub struct InTurn {
    pub host_driver: UdpDriver,
    pub host: Session,
    pub client_driver: UdpDriver,
    pub client: Session,
}

impl InTurn {
    /// Connect a fresh pair on loopback and step both until established.
    pub fn established(host: ConnectionFactory, client: ConnectionFactory) -> InTurn {
        let (h, c) = ends();
        let mut host_driver = UdpDriver::bind("127.0.0.1:0").unwrap();
        let mut client_driver = UdpDriver::bind("127.0.0.1:0").unwrap();
        let to = host_driver.local_addr().unwrap();
        let mut client = c.connect(&mut client_driver, to, client);
        let mut listener = h.listener();
        let mut factory = Some(host);
        let start = Instant::now();
        let host = loop {
            client_driver
                .drive(&mut client, Instant::now() + Duration::from_millis(5))
                .unwrap();
            let turn = Instant::now() + Duration::from_millis(5);
            let admitted = host_driver
                .accept(&mut listener, turn, || {
                    factory.take().expect("one client: one connection")
                })
                .unwrap();
            if let Some(s) = admitted {
                break s;
            }
            assert!(start.elapsed() < ACCEPT_WITHIN, "the host admitted nobody");
        };
        let mut p = InTurn {
            host_driver,
            host,
            client_driver,
            client,
        };
        for _ in 0..40 {
            p.step();
        }
        assert!(p.client.is_established() && p.host.is_established());
        p
    }

    /// One turn of both ends, 5 ms each, the client first.
    pub fn step(&mut self) {
        self.client_driver
            .drive(&mut self.client, Instant::now() + Duration::from_millis(5))
            .unwrap();
        self.host_driver
            .drive(&mut self.host, Instant::now() + Duration::from_millis(5))
            .unwrap();
    }
}

/// A host and a client on session threads.
pub struct Threads {
    pub host: SessionThread,
    pub client: SessionThread,
    pub host_addr: SocketAddr,
}

impl Threads {
    /// A host sending at `host_bps` on a loopback socket and a client (sending at 1 Mbit/s)
    /// connecting to `via` (the host itself, or a proxy in front of it: `via` gets the host's
    /// address and returns where the client should send). Returns once the host admitted the
    /// client; the client may not have heard the host yet.
    pub fn spawn(host_bps: u64, via: impl FnOnce(SocketAddr) -> SocketAddr) -> Threads {
        let (h, c) = ends();
        let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
        let host_addr = hd.local_addr().unwrap();
        let target = via(host_addr);
        let host = std::thread::spawn(move || {
            let s = h.accept(&mut hd, || fixed_rate(true, host_bps));
            SessionThread::spawn(hd, s).unwrap()
        });
        let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
        let client = c.connect(&mut cd, target, fixed_rate(false, 1_000_000));
        let client = SessionThread::spawn(cd, client).unwrap();
        Threads {
            host: host.join().unwrap(),
            client,
            host_addr,
        }
    }
}

/// Wait for `Established` on `t`, passing over nothing else; the time it took.
pub fn established(t: &SessionThread, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    match t.events.recv_timeout(within) {
        Ok(SessionEvent::Established { .. }) => Ok(start.elapsed()),
        Ok(SessionEvent::Closed(r)) => Err(format!("closed: {r:?}")),
        Ok(other) => Err(format!("unexpected event first: {other:?}")),
        Err(_) => Err(format!("not established within {within:?}")),
    }
}
