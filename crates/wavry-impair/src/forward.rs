//! The forwarder: each direction's packets are steered by policy routing into a TUN device of
//! their own, held by a [`Link`] for as long as the model says, and written back into the same
//! TUN, from where the kernel routes them on to the other side.
//!
//! ```text
//!   A ──▶ iface_a ──(ip rule iif iface_a → table T: dev tun_a2b)──▶ tun_a2b ─┐
//!                                                                           model a2b
//!   B ◀── iface_b ◀──────────────(main table)────────────────── tun_a2b ◀───┘
//! ```
//! and the same the other way with `iface_b`, table T+1 and `tun_b2a`.
//!
//! One thread serves both directions: it sleeps in ppoll(2) until a packet arrives or until
//! shortly before the next one is due, then spins to the exact time, so delays are accurate to
//! a few microseconds rather than a timer tick.

use crate::model::{ConfigError, Link, LinkConfig, LinkStats};
use crate::queue_log::QueueLog;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tun::AbstractDevice;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("invalid impairment: {0}")]
    Config(#[from] ConfigError),
    #[error("creating TUN device {name}: {source}")]
    Tun { name: String, source: tun::Error },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("writing {path}: {source}")]
    Sysctl { path: String, source: io::Error },
    #[error("queue log: {0}")]
    QueueLog(io::Error),
    #[error("polling the TUN devices: {0}")]
    Poll(io::Error),
    #[error("topology name {0:?}: 1 to 11 bytes (it prefixes interface names)")]
    TopologyName(String),
    #[error("entering network namespace {ns}: {source}")]
    EnterNetns { ns: String, source: io::Error },
    #[error("the forwarder thread: {0}")]
    Thread(String),
}

#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// The interface packets from side A arrive on (and those to A leave by).
    pub iface_a: String,
    pub iface_b: String,
    /// TUN device names, at most 15 bytes each.
    pub tun_a2b: String,
    pub tun_b2a: String,
    pub a2b: LinkConfig,
    pub b2a: LinkConfig,
    /// Seeds the a→b model; b→a uses `seed + 1`.
    pub seed: u64,
    /// Routing table (and rule priority) for a→b; b→a uses `table + 1`.
    pub table: u32,
    /// How long before a release the thread stops sleeping and spins.
    pub spin: Duration,
    /// Run the forwarding thread at this SCHED_FIFO priority (1-99), so other work on a busy
    /// machine does not delay its packets; `None` keeps the normal scheduler.
    pub realtime: Option<i32>,
}

impl ForwarderConfig {
    pub fn new(iface_a: &str, iface_b: &str) -> Self {
        ForwarderConfig {
            iface_a: iface_a.into(),
            iface_b: iface_b.into(),
            tun_a2b: "wvimp-a2b".into(),
            tun_b2a: "wvimp-b2a".into(),
            a2b: LinkConfig::default(),
            b2a: LinkConfig::default(),
            seed: 0,
            table: 7100,
            spin: Duration::from_micros(200),
            realtime: Some(10),
        }
    }
}

/// Counters of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub a2b: LinkStats,
    pub b2a: LinkStats,
    /// Packets the kernel refused when written back (they are lost).
    pub write_errors: u64,
    /// How late packets were written back, against the time the model set.
    pub lateness: Lateness,
}

/// How late the forwarder wrote packets back: the timing error it adds to the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    pub packets: u64,
    pub total: Duration,
    pub max: Duration,
    /// Packets written more than 100 µs late.
    pub over_100us: u64,
}

impl Lateness {
    fn record(&mut self, late: Duration) {
        self.packets += 1;
        self.total += late;
        self.max = self.max.max(late);
        self.over_100us += u64::from(late > Duration::from_micros(100));
    }

    pub fn mean(&self) -> Duration {
        Duration::from_nanos((self.total.as_nanos() / u128::from(self.packets.max(1))) as u64)
    }
}

struct Direction {
    name: &'static str,
    tun: tun::Device,
    link: Link,
}

impl Direction {
    /// Write back every packet due at `now`.
    fn release(&mut self, now: Instant, write_errors: &mut u64, lateness: &mut Lateness) {
        while let Some(p) = self.link.poll(now) {
            // Measured before the write, which itself runs the kernel's forwarding of the packet.
            let late = Instant::now().saturating_duration_since(p.due);
            match self.tun.send(&p.data) {
                Ok(_) => lateness.record(late),
                Err(e) => {
                    *write_errors += 1;
                    tracing::debug!(dir = self.name, "write to TUN: {e}");
                }
            }
        }
    }

    /// Take every waiting packet in, stamped `now`.
    fn receive(&mut self, now: Instant, buf: &mut [u8]) {
        loop {
            match self.tun.recv(buf) {
                Ok(n) => self.link.push(now, buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(dir = self.name, "read from TUN: {e}");
                    }
                    return;
                }
            }
        }
    }
}

/// Removes the policy-routing rules on drop (the routes go with the TUN devices).
struct Rules(Vec<(String, String)>);

impl Drop for Rules {
    fn drop(&mut self) {
        for (iface, table) in &self.0 {
            let _ = ip(&["-4", "rule", "del", "iif", iface, "lookup", table]);
        }
    }
}

pub struct Forwarder {
    // Field order: the rules go before the TUN devices close.
    _rules: Rules,
    dirs: [Direction; 2],
    log: Option<QueueLog<Box<dyn Write + Send>>>,
    spin: Duration,
    realtime: Option<i32>,
    write_errors: u64,
    lateness: Lateness,
}

impl Forwarder {
    /// Create the TUN devices and the routing in the current network namespace. Enables IPv4
    /// forwarding and disables reverse-path filtering there (a packet from A comes back in
    /// through a TUN, not through the interface its source is routed by).
    pub fn new(cfg: ForwarderConfig) -> Result<Self, ForwardError> {
        let a2b = Link::new(cfg.a2b, cfg.seed)?;
        let b2a = Link::new(cfg.b2a, cfg.seed.wrapping_add(1))?;
        let mut tun_a2b = open_tun(&cfg.tun_a2b)?;
        let mut tun_b2a = open_tun(&cfg.tun_b2a)?;
        sysctl("net/ipv4/ip_forward", "1")?;
        for dev in ["all", "default", &cfg.tun_a2b, &cfg.tun_b2a] {
            sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
        }
        for (dev, name) in [(&mut tun_a2b, &cfg.tun_a2b), (&mut tun_b2a, &cfg.tun_b2a)] {
            // Before it is up: no IPv6 neighbour discovery or router solicitation from the
            // device itself through the model (absent when the kernel has no IPv6).
            let _ = sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1");
            dev.enabled(true).map_err(|source| ForwardError::Tun {
                name: name.clone(),
                source,
            })?;
        }
        let mut rules = Rules(vec![]);
        for (iface, tun, table) in [
            (&cfg.iface_a, &cfg.tun_a2b, cfg.table),
            (&cfg.iface_b, &cfg.tun_b2a, cfg.table + 1),
        ] {
            let table = table.to_string();
            // A rule left behind by a killed run would otherwise stay ahead of ours.
            while ip(&["-4", "rule", "del", "iif", iface, "lookup", &table]).is_ok() {}
            ip(&[
                "-4", "route", "replace", "default", "dev", tun, "table", &table,
            ])?;
            ip(&[
                "-4", "rule", "add", "iif", iface, "lookup", &table, "priority", &table,
            ])?;
            rules.0.push((iface.clone(), table));
        }
        Ok(Forwarder {
            _rules: rules,
            dirs: [
                Direction {
                    name: "a2b",
                    tun: tun_a2b,
                    link: a2b,
                },
                Direction {
                    name: "b2a",
                    tun: tun_b2a,
                    link: b2a,
                },
            ],
            log: None,
            spin: cfg.spin,
            realtime: cfg.realtime,
            write_errors: 0,
            lateness: Lateness::default(),
        })
    }

    /// Log both queues to `out` every `interval` (see [`crate::queue_log`]), from now on.
    pub fn log_queues(
        &mut self,
        out: Box<dyn Write + Send>,
        interval: Duration,
    ) -> Result<(), ForwardError> {
        self.log =
            Some(QueueLog::new(out, Instant::now(), interval).map_err(ForwardError::QueueLog)?);
        Ok(())
    }

    pub fn summary(&self) -> Summary {
        Summary {
            a2b: self.dirs[0].link.stats(),
            b2a: self.dirs[1].link.stats(),
            write_errors: self.write_errors,
            lateness: self.lateness,
        }
    }

    /// Forward until `stop` is set. Packets still held when it stops are dropped.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Summary, ForwardError> {
        // Timer slack would add ~50 µs to every sleep.
        // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer and affects this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        if let Some(priority) = self.realtime {
            let param = libc::sched_param {
                sched_priority: priority,
            };
            // SAFETY: pthread_self is this thread; param is a valid sched_param.
            let rc = unsafe {
                libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param)
            };
            if rc != 0 {
                tracing::warn!(
                    "no real-time priority ({}): delays may be late on a busy machine",
                    io::Error::from_raw_os_error(rc)
                );
            }
        }
        let mut buf = vec![0u8; 65536];
        let result = self.run_loop(stop, &mut buf);
        if let Some(log) = &mut self.log {
            log.flush().map_err(ForwardError::QueueLog)?;
        }
        result.map(|_| self.summary())
    }

    fn run_loop(&mut self, stop: &AtomicBool, buf: &mut [u8]) -> Result<(), ForwardError> {
        let mut fds = self.dirs.each_ref().map(|d| libc::pollfd {
            fd: d.tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            for d in &mut self.dirs {
                d.release(now, &mut self.write_errors, &mut self.lateness);
            }
            if let Some(log) = &mut self.log {
                let stats = [
                    ("a2b", self.dirs[0].link.stats()),
                    ("b2a", self.dirs[1].link.stats()),
                ];
                log.sample(now, &stats).map_err(ForwardError::QueueLog)?;
            }
            // Wake at least every 100 ms to see `stop`.
            let wake = self
                .dirs
                .iter()
                .filter_map(|d| d.link.next_wakeup())
                .chain(self.log.as_ref().map(|l| l.next_due()))
                .fold(now + Duration::from_millis(100), Instant::min);
            let sleep = wake
                .saturating_duration_since(now)
                .saturating_sub(self.spin);
            let ts = libc::timespec {
                tv_sec: sleep.as_secs() as libc::time_t,
                tv_nsec: sleep.subsec_nanos() as libc::c_long,
            };
            // SAFETY: fds is a valid array of two pollfd; ts outlives the call; no signal mask.
            let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ForwardError::Poll(e));
            }
            if n == 0 {
                continue;
            }
            let now = Instant::now();
            for (d, fd) in self.dirs.iter_mut().zip(&mut fds) {
                if fd.revents & libc::POLLIN != 0 {
                    d.receive(now, buf);
                }
                fd.revents = 0;
            }
        }
        Ok(())
    }
}

fn open_tun(name: &str) -> Result<tun::Device, ForwardError> {
    let err = |source| ForwardError::Tun {
        name: name.into(),
        source,
    };
    let mut cfg = tun::Configuration::default();
    cfg.tun_name(name).mtu(1500);
    let dev = tun::create(&cfg).map_err(err)?;
    dev.set_nonblock().map_err(|e| err(e.into()))?;
    Ok(dev)
}

/// Write a sysctl of the calling thread's network namespace.
fn sysctl(key: &str, value: &str) -> Result<(), ForwardError> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| ForwardError::Sysctl { path, source })
}

/// Run `ip` (in the calling thread's network namespace: a child inherits it).
pub(crate) fn ip(args: &[&str]) -> Result<String, ForwardError> {
    run("ip", args)
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, ForwardError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ForwardError::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ForwardError::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
