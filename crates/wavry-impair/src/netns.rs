//! The three-namespace topology A — M — B, with the forwarder running in M:
//!
//! ```text
//!  netns {name}a            netns {name}m                          netns {name}b
//!  {name}-a  ──veth──  {name}-ma   [tun {name}-ab / {name}-ba]   {name}-mb  ──veth──  {name}-b
//!  x.y.z.1/26          x.y.z.2/26                                 x.y.z.65/26         x.y.z.66/26
//! ```
//! A and B route everything through M. Needs root and iproute2.
//!
//! ```no_run
//! # use wavry_impair::{LinkConfig, Topology};
//! # use std::time::Duration;
//! let topo = Topology::create("wvx1", [10, 214, 7])?;
//! let path = LinkConfig { delay: Duration::from_millis(10), loss: 0.01, ..LinkConfig::default() };
//! let _impair = topo.start(path.clone(), path, 1)?; // 20 ms RTT, 1 % loss each way
//! std::thread::spawn(move || {
//!     wavry_impair::netns::enter(&topo.ns_a).unwrap();
//!     // sockets made here live in A and reach B at topo.addr_b
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::forward::{ip, run, ForwardError, Forwarder, ForwarderConfig, Summary};
use crate::model::LinkConfig;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Why namespace tests cannot run here, if they cannot.
pub fn unavailable() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, TUN devices, policy routing)");
    }
    if run("ip", &["-V"]).is_err() {
        return Some("needs iproute2 (`ip`)");
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("needs /dev/net/tun");
    }
    None
}

/// Move the calling thread into network namespace `ns` (created by `ip netns add`). Sockets it
/// opens afterwards, and processes it spawns, live there.
pub fn enter(ns: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns on a namespace file we hold open; affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Namespaces A, M and B and the veth pairs between them; all removed on drop.
#[derive(Debug)]
pub struct Topology {
    pub ns_a: String,
    pub ns_m: String,
    pub ns_b: String,
    /// M's interfaces towards A and B.
    pub m_iface_a: String,
    pub m_iface_b: String,
    pub tun_a2b: String,
    pub tun_b2a: String,
    pub addr_a: Ipv4Addr,
    pub addr_b: Ipv4Addr,
}

impl Topology {
    /// Create the topology; `name` (at most 11 bytes, it prefixes interface names) names the
    /// namespaces `{name}a`, `{name}m`, `{name}b`; `net` is the /24 the addresses come from.
    /// Namespaces of the same name left by a killed run are replaced.
    pub fn create(name: &str, net: [u8; 3]) -> Result<Self, ForwardError> {
        if name.len() > 11 || name.is_empty() {
            return Err(ForwardError::TopologyName(name.into()));
        }
        let addr = |last| Ipv4Addr::new(net[0], net[1], net[2], last);
        let t = Topology {
            ns_a: format!("{name}a"),
            ns_m: format!("{name}m"),
            ns_b: format!("{name}b"),
            m_iface_a: format!("{name}-ma"),
            m_iface_b: format!("{name}-mb"),
            tun_a2b: format!("{name}-ab"),
            tun_b2a: format!("{name}-ba"),
            addr_a: addr(1),
            addr_b: addr(66),
        };
        for ns in [&t.ns_a, &t.ns_m, &t.ns_b] {
            let _ = ip(&["netns", "del", ns]);
        }
        // From here on, a failure removes what was made (Drop).
        for ns in [&t.ns_a, &t.ns_m, &t.ns_b] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
        }
        let (m_a, m_b) = (addr(2), addr(65));
        for (ns, iface, m_iface, local, gateway) in [
            (&t.ns_a, format!("{name}-a"), &t.m_iface_a, t.addr_a, m_a),
            (&t.ns_b, format!("{name}-b"), &t.m_iface_b, t.addr_b, m_b),
        ] {
            ip(&[
                "-n", ns, "link", "add", &iface, "type", "veth", "peer", "name", m_iface, "netns",
                &t.ns_m,
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{local}/26"),
                "dev",
                &iface,
            ])?;
            ip(&["-n", ns, "link", "set", "dev", &iface, "up"])?;
            ip(&[
                "-n",
                &t.ns_m,
                "addr",
                "add",
                &format!("{gateway}/26"),
                "dev",
                m_iface,
            ])?;
            ip(&["-n", &t.ns_m, "link", "set", "dev", m_iface, "up"])?;
            ip(&[
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ])?;
        }
        Ok(t)
    }

    /// Start the forwarder in M, impairing a→b and b→a as given; returns once it forwards.
    pub fn start(
        &self,
        a2b: LinkConfig,
        b2a: LinkConfig,
        seed: u64,
    ) -> Result<Impairer, ForwardError> {
        let mut cfg = ForwarderConfig::new(&self.m_iface_a, &self.m_iface_b);
        cfg.tun_a2b = self.tun_a2b.clone();
        cfg.tun_b2a = self.tun_b2a.clone();
        cfg.a2b = a2b;
        cfg.b2a = b2a;
        cfg.seed = seed;
        Impairer::spawn(Some(&self.ns_m), cfg, None)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in [&self.ns_a, &self.ns_m, &self.ns_b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A forwarder running on a thread of its own inside a namespace; stopped on drop.
pub struct Impairer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Summary, ForwardError>>>,
}

impl Impairer {
    /// On a new thread, enter namespace `ns` (if given), set up the forwarder there (optionally
    /// logging its queues to a writer at an interval) and run it; returns once it forwards.
    pub fn spawn(
        ns: Option<&str>,
        cfg: ForwarderConfig,
        queue_log: Option<(Box<dyn io::Write + Send>, std::time::Duration)>,
    ) -> Result<Impairer, ForwardError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns = ns.map(str::to_owned);
        let stop_t = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wavry-impair".into())
            .spawn(move || {
                let entered = ns.as_deref().map_or(Ok(()), |ns| {
                    enter(ns).map_err(|source| ForwardError::EnterNetns {
                        ns: ns.into(),
                        source,
                    })
                });
                let setup = entered.and_then(|_| Forwarder::new(cfg));
                let mut f = match setup {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(Summary::default());
                    }
                };
                if let Some((out, interval)) = queue_log {
                    if let Err(e) = f.log_queues(out, interval) {
                        let _ = ready_tx.send(Err(e));
                        return Ok(Summary::default());
                    }
                }
                let _ = ready_tx.send(Ok(()));
                f.run(&stop_t)
            })
            .map_err(|e| ForwardError::Thread(e.to_string()))?;
        let mut imp = Impairer {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(imp),
            Ok(Err(e)) => Err(e),
            // The thread died before reporting: its result says why.
            Err(_) => Err(imp
                .join()
                .err()
                .unwrap_or(ForwardError::Thread("ended during set-up".into()))),
        }
    }

    /// Whether the forwarder still runs (it ends early only on an error, which `stop` returns).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop forwarding and return the counters.
    pub fn stop(mut self) -> Result<Summary, ForwardError> {
        self.join()
    }

    fn join(&mut self) -> Result<Summary, ForwardError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ForwardError::Thread("panicked".into())),
            None => Ok(Summary::default()),
        }
    }
}

impl Drop for Impairer {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
