//! `wavry impair`: the network impairment forwarder (wavry_impair) from the command line, either
//! in a topology of three namespaces it creates or between two interfaces of a namespace.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wavry_config::parse_duration;
use wavry_impair::netns::Impairer;
use wavry_impair::{ForwarderConfig, GilbertElliott, LinkConfig, Summary, Topology};

/// Per-direction values: `V` for both directions, `A2B/B2A` for each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerDir<T> {
    a2b: T,
    b2a: T,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Every impairment takes VALUE for both directions or A2B/B2A for each (e.g. --delay 10ms/30ms).
Durations: 10ms, 250us, 1.5s (a bare number is milliseconds). Percentages: 1, 0.5% (percent).
Rates: 5mbit, 800kbit, 1gbit, 2.5Mbit (bit/s of IP packets; a bare number is bit/s).
Order in each direction: rate-limited drop-tail queue, then loss, burst loss and duplication,
then delay, jitter and reordering. See docs/IMPAIR.md.

Examples:
  wavry impair --topology wvx --delay 10ms --loss 1           # 20 ms RTT, 1 % loss each way
  wavry impair --topology wvx --burst-loss 2 --burst-len 4    # 2 % loss in bursts of 4
  wavry impair --topology wvx --rate 5mbit/0 --queue-ms 50ms  # 5 Mbit/s A->B, 50 ms queue
  ip netns exec wvxa ping 10.214.0.66                         # from A to B, through M")]
pub struct ImpairArgs {
    /// Create network namespaces NAMEa, NAMEm and NAMEb linked A — M — B, forward in M and
    /// delete them on exit. NAME is at most 11 characters.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["iface_a", "iface_b", "netns"],
          required_unless_present_all = ["iface_a", "iface_b"], help_heading = "Where")]
    topology: Option<String>,
    /// The /24 the topology's addresses come from: A is .1, B is .66.
    #[arg(long, value_name = "A.B.C", default_value = "10.214.0", value_parser = parse_net,
          help_heading = "Where")]
    net: [u8; 3],
    /// Forward between this interface (side A) and --iface-b in the current namespace (or
    /// --netns): packets arriving on one go through the tool and out of the other.
    #[arg(
        long,
        value_name = "IFACE",
        requires = "iface_b",
        help_heading = "Where"
    )]
    iface_a: Option<String>,
    /// The interface facing side B.
    #[arg(
        long,
        value_name = "IFACE",
        requires = "iface_a",
        help_heading = "Where"
    )]
    iface_b: Option<String>,
    /// Enter this network namespace (made by `ip netns add`) before forwarding.
    #[arg(long, value_name = "NAME", help_heading = "Where")]
    netns: Option<String>,
    /// Names of the two TUN devices, A->B and B->A (at most 15 characters each). Default:
    /// wvimp-a2b,wvimp-b2a; with --topology NAME-ab,NAME-ba.
    #[arg(long, value_name = "A2B,B2A", value_parser = parse_pair, help_heading = "Where")]
    tun_names: Option<(String, String)>,
    /// Policy-routing table (and rule priority) for A->B; B->A uses TABLE+1.
    #[arg(long, default_value_t = 7100, help_heading = "Where")]
    table: u32,

    /// One-way propagation delay.
    #[arg(long, value_name = "DURATION", value_parser = per_dir(parse_duration),
          default_value = "0ms", help_heading = "Impairments")]
    delay: PerDir<Duration>,
    /// Jitter: each packet's delay is --delay plus a uniform sample in [-J, +J] (never
    /// below 0). Without --jitter-reorders a packet never overtakes the one before it.
    #[arg(long, value_name = "DURATION", value_parser = per_dir(parse_duration),
          default_value = "0ms", help_heading = "Impairments")]
    jitter: PerDir<Duration>,
    /// Let jitter reorder packets (like netem's jitter).
    #[arg(long, help_heading = "Impairments")]
    jitter_reorders: bool,
    /// Random (independent) loss, percent.
    #[arg(long, value_name = "PERCENT", value_parser = per_dir(parse_percent),
          default_value = "0", help_heading = "Impairments")]
    loss: PerDir<f64>,
    /// Burst loss, percent on average, in bursts of --burst-len packets on average (Gilbert
    /// model: every packet of a burst lost).
    #[arg(long, value_name = "PERCENT", value_parser = per_dir(parse_percent),
          default_value = "0", conflicts_with = "gilbert", help_heading = "Impairments")]
    burst_loss: PerDir<f64>,
    /// Mean burst length of --burst-loss, packets.
    #[arg(long, value_name = "PACKETS", value_parser = per_dir(parse_number),
          default_value = "3", help_heading = "Impairments")]
    burst_len: PerDir<f64>,
    /// Gilbert-Elliott burst loss given by its transition probabilities, percent per packet:
    /// P (good -> bad), R (bad -> good), optionally the loss in the good and the bad state
    /// (default 0 and 100).
    #[arg(long, value_name = "P,R[,LG,LB]", value_parser = per_dir(parse_gilbert),
          help_heading = "Impairments")]
    gilbert: Option<PerDir<GilbertElliott>>,
    /// Reordering: percent of packets held back by --reorder-delay beyond their delay, so
    /// later packets overtake them.
    #[arg(long, value_name = "PERCENT", value_parser = per_dir(parse_percent),
          default_value = "0", help_heading = "Impairments")]
    reorder: PerDir<f64>,
    /// Extra delay of a reordered packet.
    #[arg(long, value_name = "DURATION", value_parser = per_dir(parse_duration),
          default_value = "5ms", help_heading = "Impairments")]
    reorder_delay: PerDir<Duration>,
    /// Duplication: percent of packets sent twice.
    #[arg(long, value_name = "PERCENT", value_parser = per_dir(parse_percent),
          default_value = "0", help_heading = "Impairments")]
    duplicate: PerDir<f64>,
    /// Bottleneck rate (0 = unlimited), with a drop-tail queue.
    #[arg(long, value_name = "RATE", value_parser = per_dir(parse_rate),
          default_value = "0", help_heading = "Impairments")]
    rate: PerDir<u64>,
    /// Drop-tail queue limit, bytes (with --rate).
    #[arg(long, value_name = "BYTES", value_parser = per_dir(parse_bytes),
          help_heading = "Impairments")]
    queue_bytes: Option<PerDir<usize>>,
    /// Drop-tail queue limit as time to drain at --rate (with --rate). With neither limit the
    /// queue holds 1 s.
    #[arg(long, value_name = "DURATION", value_parser = per_dir(parse_duration),
          help_heading = "Impairments")]
    queue_ms: Option<PerDir<Duration>>,

    /// Seed of every random choice (same seed and traffic, same impairment). A->B uses SEED,
    /// B->A SEED+1.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the queue occupancy as CSV to FILE: t_ms,dir,queue_bytes,queue_packets,dropped_total.
    #[arg(long, value_name = "FILE")]
    queue_log: Option<PathBuf>,
    /// Interval between queue-log rows.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10ms")]
    log_interval: Duration,
    /// Busy-wait this long before each release instead of sleeping (timing precision against
    /// CPU use).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "200us")]
    spin: Duration,
    /// Keep the normal scheduler instead of SCHED_FIFO priority 10 for the forwarding thread.
    #[arg(long)]
    no_realtime: bool,
}

impl<T: Copy> PerDir<T> {
    fn get(&self, a2b: bool) -> T {
        if a2b {
            self.a2b
        } else {
            self.b2a
        }
    }
}

impl ImpairArgs {
    fn link(&self, a2b: bool) -> Result<LinkConfig> {
        let burst_loss = match (&self.gilbert, self.burst_loss.get(a2b)) {
            (Some(g), _) => Some(g.get(a2b)),
            (None, loss) if loss > 0.0 => Some(GilbertElliott::from_loss_and_burst(
                loss,
                self.burst_len.get(a2b),
            )?),
            (None, _) => None,
        };
        let rate = (self.rate.get(a2b) > 0).then_some(self.rate.get(a2b));
        let cfg = LinkConfig {
            delay: self.delay.get(a2b),
            jitter: self.jitter.get(a2b),
            jitter_reorders: self.jitter_reorders,
            loss: self.loss.get(a2b),
            burst_loss,
            reorder: self.reorder.get(a2b),
            reorder_delay: self.reorder_delay.get(a2b),
            duplicate: self.duplicate.get(a2b),
            rate_bps: rate,
            // A queue limit means nothing on an unlimited direction.
            queue_bytes: self
                .queue_bytes
                .map(|q| q.get(a2b))
                .filter(|_| rate.is_some()),
            queue_time: self.queue_ms.map(|q| q.get(a2b)).filter(|_| rate.is_some()),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn links(&self) -> Result<(LinkConfig, LinkConfig)> {
        Ok((
            self.link(true).context("A->B impairment")?,
            self.link(false).context("B->A impairment")?,
        ))
    }
}

pub fn run_impair(args: ImpairArgs) -> Result<()> {
    let (a2b, b2a) = args.links()?;
    if let Some(why) = wavry_impair::netns::unavailable() {
        bail!("wavry impair {why}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    let topology = match &args.topology {
        Some(name) => Some(
            Topology::create(name, args.net)
                .with_context(|| format!("creating the namespaces of topology {name}"))?,
        ),
        None => None,
    };
    let mut cfg = match &topology {
        Some(t) => {
            let mut c = ForwarderConfig::new(&t.m_iface_a, &t.m_iface_b);
            c.tun_a2b = t.tun_a2b.clone();
            c.tun_b2a = t.tun_b2a.clone();
            c
        }
        None => match (&args.iface_a, &args.iface_b) {
            (Some(a), Some(b)) => ForwarderConfig::new(a, b),
            _ => bail!("give --topology NAME, or --iface-a and --iface-b"),
        },
    };
    if let Some((a, b)) = &args.tun_names {
        cfg.tun_a2b = a.clone();
        cfg.tun_b2a = b.clone();
    }
    cfg.a2b = a2b;
    cfg.b2a = b2a;
    cfg.seed = args.seed;
    cfg.table = args.table;
    cfg.spin = args.spin;
    cfg.realtime = (!args.no_realtime).then_some(10);
    let log = match &args.queue_log {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating the queue log {}", path.display()))?;
            let out: Box<dyn std::io::Write + Send> = Box::new(std::io::BufWriter::new(f));
            Some((out, args.log_interval))
        }
        None => None,
    };
    let ns = match &topology {
        Some(t) => Some(t.ns_m.as_str()),
        None => args.netns.as_deref(),
    };
    let imp = Impairer::spawn(ns, cfg.clone(), log).context("starting the forwarder")?;
    match &topology {
        Some(t) => eprintln!(
            "forwarding: netns {} ({}) <-> netns {} <-> netns {} ({}); e.g. \
             `ip netns exec {} ping {}`. Ctrl-C to stop and remove them.",
            t.ns_a, t.addr_a, t.ns_m, t.ns_b, t.addr_b, t.ns_a, t.addr_b
        ),
        None => eprintln!(
            "forwarding {} <-> {} through {} and {}. Ctrl-C to stop.",
            cfg.iface_a, cfg.iface_b, cfg.tun_a2b, cfg.tun_b2a
        ),
    }
    while !stop.load(Ordering::Relaxed) && imp.is_running() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = imp.stop().context("forwarding")?;
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &Summary) {
    for (dir, l) in [("A->B", &s.a2b), ("B->A", &s.b2a)] {
        println!(
            "{dir}: {} packets in, {} out; dropped {} (queue {}, random {}, burst {}); \
             duplicated {}, reordered {}; max queue {} B",
            l.packets_in,
            l.packets_out,
            l.dropped_total(),
            l.dropped_queue,
            l.dropped_random,
            l.dropped_burst,
            l.duplicated,
            l.reordered,
            l.max_queue_bytes
        );
    }
    println!(
        "timing: packets written {:?} late on average, {:?} at most, {} over 100 us; {} write errors",
        s.lateness.mean(),
        s.lateness.max,
        s.lateness.over_100us,
        s.write_errors
    );
}

type Parser<T> = fn(&str) -> Result<T, String>;

/// A clap value parser for `V` or `A2B/B2A`.
fn per_dir<T: Copy + Send + Sync + 'static>(
    one: Parser<T>,
) -> impl Fn(&str) -> Result<PerDir<T>, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.split_once('/') {
        Some((a, b)) => Ok(PerDir {
            a2b: one(a)?,
            b2a: one(b)?,
        }),
        None => {
            let v = one(s)?;
            Ok(PerDir { a2b: v, b2a: v })
        }
    }
}

fn parse_number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} must be a non-negative number"));
    }
    Ok(v)
}

/// Percent (`1`, `0.5%`) as a probability.
fn parse_percent(s: &str) -> Result<f64, String> {
    let v = parse_number(s.trim().trim_end_matches('%'))?;
    if v > 100.0 {
        return Err(format!("{s:?} is above 100 %"));
    }
    Ok(v / 100.0)
}

/// `5mbit`, `800kbit`, `1gbit` (case-insensitive, `bit` optional, also `bps`); a bare number is
/// bit/s.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bit")
        .or(t.strip_suffix("bps"))
        .or(t.strip_suffix("bit/s"))
        .unwrap_or(&t);
    let (num, scale) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v = parse_number(num).map_err(|_| format!("{s:?} is not a rate (5mbit, 800kbit)"))?;
    Ok((v * scale).round() as u64)
}

/// Bytes, with an optional k/m suffix (powers of 1000).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, scale) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v = parse_number(num).map_err(|_| format!("{s:?} is not a byte count"))?;
    Ok((v * scale).round() as usize)
}

/// `P,R[,LG,LB]` in percent.
fn parse_gilbert(s: &str) -> Result<GilbertElliott, String> {
    let v = s
        .split(',')
        .map(parse_percent)
        .collect::<Result<Vec<_>, _>>()?;
    match v[..] {
        [p, r] => Ok(GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }),
        [p, r, loss_good, loss_bad] => Ok(GilbertElliott {
            p,
            r,
            loss_good,
            loss_bad,
        }),
        _ => Err(format!(
            "{s:?}: give P,R or P,R,LOSS_GOOD,LOSS_BAD (percent)"
        )),
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: give two names, A2B,B2A"))?;
    for n in [a, b] {
        if n.is_empty() || n.len() > 15 {
            return Err(format!("{n:?}: an interface name has 1 to 15 characters"));
        }
    }
    Ok((a.to_owned(), b.to_owned()))
}

fn parse_net(s: &str) -> Result<[u8; 3], String> {
    let parts: Vec<u8> = s
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not A.B.C"))?;
    parts
        .try_into()
        .map_err(|_| format!("{s:?}: give the first three octets, A.B.C"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ImpairArgs,
    }

    fn parse(line: &str) -> Result<ImpairArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("impair").chain(line.split_whitespace()))
            .map(|c| c.args)
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        // A bare number is refused (it once meant milliseconds here).
        assert!(parse_duration("7").unwrap_err().contains("no unit"));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_percent("1"), Ok(0.01));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert!(parse_percent("101").is_err());
        assert_eq!(parse_rate("5mbit"), Ok(5_000_000));
        assert_eq!(parse_rate("2.5Mbit"), Ok(2_500_000));
        assert_eq!(parse_rate("800kbit"), Ok(800_000));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_bytes("64k"), Ok(64_000));
        assert_eq!(parse_net("10.214.3"), Ok([10, 214, 3]));
        assert!(parse_net("10.214").is_err());
    }

    #[test]
    fn flags_make_each_direction() {
        let a = parse(
            "--topology wvx --delay 10ms/30ms --loss 1 --burst-loss 2/0 --burst-len 4 \
             --rate 5mbit/0 --queue-ms 50ms --duplicate 0.5 --reorder 3 --jitter 2ms",
        )
        .unwrap();
        let (ab, ba) = a.links().unwrap();
        assert_eq!(ab.delay, Duration::from_millis(10));
        assert_eq!(ba.delay, Duration::from_millis(30));
        assert_eq!((ab.loss, ba.loss), (0.01, 0.01));
        let ge = ab.burst_loss.unwrap();
        assert!((ge.mean_loss() - 0.02).abs() < 1e-12 && (ge.r - 0.25).abs() < 1e-12);
        assert_eq!(ba.burst_loss, None);
        assert_eq!(ab.rate_bps, Some(5_000_000));
        assert_eq!(ab.queue_limit_bytes(), Some(31_250));
        assert_eq!((ba.rate_bps, ba.queue_time), (None, None));
        assert_eq!((ab.duplicate, ab.reorder), (0.005, 0.03));
        assert_eq!(ab.reorder_delay, Duration::from_millis(5));
        assert_eq!(ab.jitter, Duration::from_millis(2));
        assert!(!ab.jitter_reorders);
        assert_eq!(ba.jitter, Duration::from_millis(2));
        let e = parse("--topology wvx --delay 10")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no unit"), "{e}");
        assert!(parse("--topology wvx --delay 10ms/30").is_err());
    }

    #[test]
    fn where_to_forward_is_required_and_exclusive() {
        assert!(parse("--delay 10ms").is_err());
        assert!(parse("--topology wvx --iface-a a --iface-b b").is_err());
        assert!(parse("--iface-a a").is_err());
        assert!(parse("--iface-a a --iface-b b --netns m").is_ok());
        assert!(parse("--topology wvx --burst-loss 2 --gilbert 1,20").is_err());
        let g = parse("--topology wvx --gilbert 1,20")
            .unwrap()
            .links()
            .unwrap()
            .0;
        assert_eq!(g.burst_loss.map(|g| (g.p, g.r)), Some((0.01, 0.2)));
    }
}
