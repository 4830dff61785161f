//! What only the real-socket tests use: a UDP proxy that can drop, record and inject
//! datagrams. (Session set-up is `wavry_transport::testing`.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Held by every test on real sockets and real time while it runs, so they run one after
/// another as they did when each file was its own binary: on a small machine, a test that
/// saturates loopback or spins (netns_tbf's impairer) would otherwise starve the timing of
/// the others (frame_buffers counts on the session thread keeping up with 60 fps). The
/// simulated-time tests (`session`) do not take it. Under cargo-nextest (one process per
/// test) it is uncontended.
pub fn real_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
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
