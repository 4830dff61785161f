use super::*;

const MS: Duration = Duration::from_millis(1);

/// A packet carrying its sequence number, padded to `len` bytes.
fn packet(seq: u64, len: usize) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.resize(len.max(8), 0);
    p
}

fn seq_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[..8].try_into().unwrap())
}

/// Feed `arrivals` (time, packet) in order, polling at every wake-up on the way, like the
/// forwarder does; returns each packet with the time it left.
fn run(link: &mut Link, arrivals: Vec<(Instant, Vec<u8>)>) -> Vec<(Instant, Vec<u8>)> {
    let mut out = Vec::new();
    let mut drain = |link: &mut Link, until: Option<Instant>| {
        while let Some(w) = link.next_wakeup().filter(|&w| until.is_none_or(|u| w <= u)) {
            while let Some(p) = link.poll(w) {
                assert_eq!(p.due, w);
                out.push((w, p.data));
            }
        }
    };
    for (t, p) in arrivals {
        drain(link, Some(t));
        link.push(t, p);
    }
    drain(link, None);
    out
}

/// `n` packets of `len` bytes, one every `gap` from `t0`.
fn stream(t0: Instant, n: u64, gap: Duration, len: usize) -> Vec<(Instant, Vec<u8>)> {
    (0..n)
        .map(|i| (t0 + gap * i as u32, packet(i, len)))
        .collect()
}

/// `measured` is within 4.5 standard deviations of a binomial rate `p` over `n` trials.
fn within_binomial(measured: f64, p: f64, n: u64) -> bool {
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    (measured - p).abs() <= 4.5 * sd
}

#[test]
fn delay_is_added_exactly() {
    let t0 = Instant::now();
    let mut link = Link::new(
        LinkConfig {
            delay: 10 * MS,
            ..LinkConfig::default()
        },
        1,
    )
    .unwrap();
    link.push(t0, packet(0, 100));
    link.push(t0 + MS, packet(1, 100));
    assert_eq!(link.next_wakeup(), Some(t0 + 10 * MS));
    assert!(link.poll(t0 + 10 * MS - Duration::from_nanos(1)).is_none());
    assert_eq!(link.poll(t0 + 10 * MS).map(|p| seq_of(&p.data)), Some(0));
    assert!(link.poll(t0 + 10 * MS).is_none());
    assert_eq!(link.next_wakeup(), Some(t0 + 11 * MS));
    assert_eq!(link.poll(t0 + 11 * MS).map(|p| seq_of(&p.data)), Some(1));
    assert_eq!(link.next_wakeup(), None);
    let s = link.stats();
    assert_eq!((s.packets_in, s.packets_out, s.bytes_out), (2, 2, 200));
}

#[test]
fn random_loss_rate_within_statistical_bounds() {
    let t0 = Instant::now();
    let n = 100_000;
    let mut link = Link::new(
        LinkConfig {
            loss: 0.05,
            ..LinkConfig::default()
        },
        7,
    )
    .unwrap();
    let out = run(&mut link, stream(t0, n, MS, 100));
    let lost = n - out.len() as u64;
    assert_eq!(lost, link.stats().dropped_random);
    let rate = lost as f64 / n as f64;
    assert!(within_binomial(rate, 0.05, n), "loss rate {rate}");
}

/// Lengths of the runs of consecutive lost sequence numbers.
fn loss_bursts(out: &[(Instant, Vec<u8>)], n: u64) -> Vec<u64> {
    let mut got = vec![false; n as usize];
    for (_, p) in out {
        got[seq_of(p) as usize] = true;
    }
    let mut bursts = vec![];
    let mut run = 0;
    for g in got {
        if g {
            if run > 0 {
                bursts.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    if run > 0 {
        bursts.push(run);
    }
    bursts
}

#[test]
fn burst_loss_matches_the_gilbert_elliott_model() {
    let t0 = Instant::now();
    let n = 400_000;
    let ge = GilbertElliott::from_loss_and_burst(0.02, 4.0).unwrap();
    assert!((ge.mean_loss() - 0.02).abs() < 1e-12);
    let mut link = Link::new(
        LinkConfig {
            burst_loss: Some(ge),
            ..LinkConfig::default()
        },
        3,
    )
    .unwrap();
    let out = run(&mut link, stream(t0, n, MS, 64));
    let bursts = loss_bursts(&out, n);
    let lost: u64 = bursts.iter().sum();
    let rate = lost as f64 / n as f64;
    let mean_burst = lost as f64 / bursts.len() as f64;
    // Bursts are geometric with parameter r: a share r of them is one packet long.
    let singles = bursts.iter().filter(|&&b| b == 1).count() as f64 / bursts.len() as f64;
    println!(
        "loss {rate:.4}, {} bursts, mean {mean_burst:.2}, singles {singles:.3}",
        bursts.len()
    );
    // Losses come in bursts, so their count varies more than a binomial's: about 4 bursts'
    // worth of ~2000 bursts, a few percent of the rate.
    assert!((rate - 0.02).abs() < 0.0015, "loss rate {rate}");
    assert!((mean_burst - 4.0).abs() < 0.25, "mean burst {mean_burst}");
    assert!(
        within_binomial(singles, 0.25, bursts.len() as u64),
        "single-packet bursts {singles}"
    );
    // Random loss alone at the same rate gives bursts of ~1.02.
    let mut random = Link::new(
        LinkConfig {
            loss: 0.02,
            ..LinkConfig::default()
        },
        3,
    )
    .unwrap();
    let out = run(&mut random, stream(t0, n, MS, 64));
    let b = loss_bursts(&out, n);
    let mean = b.iter().sum::<u64>() as f64 / b.len() as f64;
    assert!(mean < 1.1, "random loss burst mean {mean}");
}

#[test]
fn rate_limit_sets_throughput_and_queueing_delay() {
    let t0 = Instant::now();
    // 8 Mbit/s = 1000 packets of 1000 bytes per second, offered twice that for 2 s, with a
    // 50 ms queue (50 000 bytes) and 5 ms propagation delay.
    let mut link = Link::new(
        LinkConfig {
            delay: 5 * MS,
            rate_bps: Some(8_000_000),
            queue_time: Some(50 * MS),
            ..LinkConfig::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(link.config().queue_limit_bytes(), Some(50_000));
    let sent = stream(t0, 4000, Duration::from_micros(500), 1000);
    let arrival: Vec<Instant> = sent.iter().map(|(t, _)| *t).collect();
    let out = run(&mut link, sent);
    let s = link.stats();
    assert_eq!(s.packets_out, out.len() as u64);
    assert_eq!(s.packets_out + s.dropped_queue, 4000);
    assert!(s.max_queue_bytes <= 50_000);
    assert_eq!((s.queue_bytes, s.queue_packets), (0, 0));
    // Departures are spaced exactly by one packet's serialisation time: 1 ms.
    for w in out.windows(2) {
        assert_eq!(w[1].0 - w[0].0, MS);
    }
    // Throughput over the run: 8 Mbit/s.
    let span = out.last().unwrap().0 - out[0].0;
    let mbps = (out.len() - 1) as f64 * 8000.0 / span.as_secs_f64() / 1e6;
    assert!((mbps - 8.0).abs() < 0.01, "throughput {mbps} Mbit/s");
    // Once full, a packet waits the queue's 50 ms (49-50 ms, whole packets) plus its own 1 ms
    // serialisation and the 5 ms delay.
    for (t, p) in &out[200..] {
        let d = *t - arrival[seq_of(p) as usize];
        assert!(d >= 54 * MS && d <= 56 * MS, "delay {d:?}");
    }
    // The first packet found the queue empty: serialisation and delay only.
    assert_eq!(out[0].0 - t0, 6 * MS);
}

#[test]
fn drop_tail_drops_when_full() {
    let t0 = Instant::now();
    let mut link = Link::new(
        LinkConfig {
            rate_bps: Some(1_000_000),
            queue_bytes: Some(10_000),
            ..LinkConfig::default()
        },
        1,
    )
    .unwrap();
    for i in 0..20 {
        link.push(t0, packet(i, 1000));
    }
    let s = link.stats();
    assert_eq!(
        (s.queue_packets, s.queue_bytes, s.dropped_queue),
        (10, 10_000, 10)
    );
    // The ten that fit leave in order, 8 ms apart (1000 bytes at 1 Mbit/s); the rest are gone.
    let out = run(&mut link, vec![]);
    let seqs: Vec<u64> = out.iter().map(|(_, p)| seq_of(p)).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    for (i, (t, _)) in out.iter().enumerate() {
        assert_eq!(*t - t0, 8 * MS * (i as u32 + 1));
    }
    // Room again after draining.
    link.push(t0 + Duration::from_secs(1), packet(99, 1000));
    assert_eq!(link.stats().dropped_queue, 10);
    // A packet larger than the whole limit still passes an empty queue.
    let mut tiny = Link::new(
        LinkConfig {
            rate_bps: Some(1_000_000),
            queue_bytes: Some(100),
            ..LinkConfig::default()
        },
        1,
    )
    .unwrap();
    tiny.push(t0, packet(0, 1500));
    tiny.push(t0, packet(1, 1500));
    assert_eq!(tiny.stats().queue_packets, 1);
    assert_eq!(tiny.stats().dropped_queue, 1);
}

#[test]
fn duplicates_at_the_configured_rate() {
    let t0 = Instant::now();
    let n = 50_000;
    let mut link = Link::new(
        LinkConfig {
            delay: 2 * MS,
            duplicate: 0.1,
            ..LinkConfig::default()
        },
        11,
    )
    .unwrap();
    let out = run(&mut link, stream(t0, n, MS, 100));
    let extra = out.len() as u64 - n;
    assert_eq!(extra, link.stats().duplicated);
    assert!(within_binomial(extra as f64 / n as f64, 0.1, n));
    // A copy follows its original directly: no reordering.
    assert!(out.windows(2).all(|w| seq_of(&w[0].1) <= seq_of(&w[1].1)));
}

/// Packets that leave after one with a higher sequence number.
fn late_packets(out: &[(Instant, Vec<u8>)]) -> u64 {
    let mut late = 0;
    let mut highest = None;
    for (_, p) in out {
        let s = seq_of(p);
        if highest.is_some_and(|h| s < h) {
            late += 1;
        }
        highest = highest.max(Some(s));
    }
    late
}

#[test]
fn reorders_at_the_configured_rate() {
    let t0 = Instant::now();
    let n = 50_000;
    let mut link = Link::new(
        LinkConfig {
            delay: 10 * MS,
            reorder: 0.05,
            reorder_delay: 5 * MS,
            ..LinkConfig::default()
        },
        5,
    )
    .unwrap();
    let out = run(&mut link, stream(t0, n, MS, 100));
    assert_eq!(out.len() as u64, n);
    let late = late_packets(&out);
    assert_eq!(late, link.stats().reordered);
    assert!(within_binomial(late as f64 / n as f64, 0.05, n), "{late}");
}

#[test]
fn jitter_alone_never_reorders() {
    let t0 = Instant::now();
    let n = 20_000;
    let cfg = LinkConfig {
        delay: 10 * MS,
        jitter: 5 * MS,
        ..LinkConfig::default()
    };
    let mut link = Link::new(cfg.clone(), 9).unwrap();
    let sent = stream(t0, n, MS, 100);
    let arrival: Vec<Instant> = sent.iter().map(|(t, _)| *t).collect();
    let out = run(&mut link, sent);
    assert_eq!(late_packets(&out), 0);
    let delays: Vec<Duration> = out
        .iter()
        .map(|(t, p)| *t - arrival[seq_of(p) as usize])
        .collect();
    assert!(delays.iter().all(|&d| d >= 5 * MS && d <= 15 * MS));
    // The delay does vary.
    let spread = *delays.iter().max().unwrap() - *delays.iter().min().unwrap();
    assert!(spread > 8 * MS, "{spread:?}");

    // Allowed to, the same jitter reorders, and every delay is delay ± jitter.
    let mut link = Link::new(
        LinkConfig {
            jitter_reorders: true,
            ..cfg
        },
        9,
    )
    .unwrap();
    let sent = stream(t0, n, MS, 100);
    let out = run(&mut link, sent);
    assert!(late_packets(&out) > n / 10);
    for (t, p) in &out {
        let d = *t - arrival[seq_of(p) as usize];
        assert!(d >= 5 * MS && d <= 15 * MS);
    }
}

#[test]
fn same_seed_same_run() {
    let t0 = Instant::now();
    let cfg = LinkConfig {
        delay: 3 * MS,
        jitter: 2 * MS,
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        reorder_delay: 4 * MS,
        ..LinkConfig::default()
    };
    let go = |seed| {
        let mut l = Link::new(cfg.clone(), seed).unwrap();
        run(&mut l, stream(t0, 2000, MS, 50))
    };
    assert_eq!(go(42), go(42));
    assert_ne!(go(42), go(43));
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = |cfg: LinkConfig| Link::new(cfg, 0).err();
    assert!(matches!(
        bad(LinkConfig {
            loss: 1.5,
            ..LinkConfig::default()
        }),
        Some(ConfigError::Probability { name: "loss", .. })
    ));
    assert_eq!(
        bad(LinkConfig {
            queue_time: Some(MS),
            ..LinkConfig::default()
        }),
        Some(ConfigError::QueueWithoutRate)
    );
    assert_eq!(
        bad(LinkConfig {
            rate_bps: Some(0),
            ..LinkConfig::default()
        }),
        Some(ConfigError::ZeroRate)
    );
    assert!(GilbertElliott::from_loss_and_burst(0.02, 0.5).is_err());
    assert!(GilbertElliott::from_loss_and_burst(1.0, 2.0).is_err());
}
