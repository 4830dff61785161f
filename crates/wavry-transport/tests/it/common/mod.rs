//! Shared set-up for the real-socket tests: identities, connection factories, a host and a
//! client on session threads, and a UDP proxy that can drop, record and inject datagrams.
#![allow(dead_code)]

use rift_core::connection::{Connection, ConnectionConfig};
use rift_core::delta::FixedRate;
use rift_crypto::handshake::{allow_list, pinned};
use rift_crypto::identity::Identity;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wavry_transport::session::{ConnectionFactory, Session, SessionConfig};
use wavry_transport::thread::{SessionEvent, SessionThread};
use wavry_transport::udp::UdpDriver;

/// A connection factory with a fixed send rate.
pub fn factory(sender: bool, bps: u64) -> ConnectionFactory {
    Box::new(move |l, r, now| {
        Connection::new(
            ConnectionConfig::new(l, r, sender),
            Box::new(FixedRate::new(bps, 60.0)),
            now,
        )
    })
}

pub struct Pair {
    pub host: SessionThread,
    pub client: SessionThread,
    pub host_addr: SocketAddr,
}

/// A host on a loopback socket and a client connecting to `via` (the host itself, or a proxy
/// in front of it: `via` gets the host's address and returns where the client should send).
/// Returns once the host accepted; the handshake may still be finishing.
pub fn pair(bps: u64, via: impl FnOnce(SocketAddr) -> SocketAddr) -> Pair {
    let (host_id, client_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (host_pub, client_pub) = (host_id.public(), client_id.public());
    let mut hd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let host_addr = hd.local_addr().unwrap();
    let target = via(host_addr);
    let host = std::thread::spawn(move || {
        let s = hd
            .accept(
                &SessionConfig::default(),
                &host_id,
                || allow_list(vec![client_pub]),
                || factory(true, bps),
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap()
            .expect("a client connects");
        SessionThread::spawn(hd, s).unwrap()
    });
    let mut cd = UdpDriver::bind("127.0.0.1:0").unwrap();
    let mut client = Session::connect(
        SessionConfig::default(),
        &client_id,
        pinned(host_pub),
        target,
        factory(false, 1_000_000),
        Instant::now(),
    )
    .unwrap();
    cd.flush(&mut client, Instant::now()).unwrap();
    let client = SessionThread::spawn(cd, client).unwrap();
    Pair {
        host: host.join().unwrap(),
        client,
        host_addr,
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

/// Which way a datagram crosses the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToHost,
    ToClient,
}

/// A UDP relay between one client and a host that asks `filter` about every datagram (forward
/// it or not), records what it forwards, and sends injected datagrams on demand.
/// Datagrams the proxy forwarded, in order.
pub type Recorded = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    pub recorded: Recorded,
    inject: Sender<(Dir, Vec<u8>)>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(
        host: SocketAddr,
        mut filter: impl FnMut(Dir, &[u8]) -> bool + Send + 'static,
    ) -> Proxy {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let recorded: Recorded = Arc::new(Mutex::new(Vec::new()));
        let (inject, injected): (_, Receiver<(Dir, Vec<u8>)>) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, stop2) = (recorded.clone(), stop.clone());
        let join = std::thread::spawn(move || {
            let mut client: Option<SocketAddr> = None;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                while let Ok((dir, d)) = injected.try_recv() {
                    let to = match dir {
                        Dir::ToHost => Some(host),
                        Dir::ToClient => client,
                    };
                    if let Some(to) = to {
                        let _ = sock.send_to(&d, to);
                    }
                }
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let (dir, to) = if from == host {
                    match client {
                        Some(c) => (Dir::ToClient, c),
                        None => continue,
                    }
                } else {
                    client = Some(from);
                    (Dir::ToHost, host)
                };
                if filter(dir, &buf[..n]) {
                    rec.lock().unwrap().push((dir, buf[..n].to_vec()));
                    let _ = sock.send_to(&buf[..n], to);
                }
            }
        });
        Proxy {
            addr,
            recorded,
            inject,
            stop,
            join: Some(join),
        }
    }

    pub fn inject(&self, dir: Dir, datagram: Vec<u8>) {
        self.inject.send((dir, datagram)).unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}
