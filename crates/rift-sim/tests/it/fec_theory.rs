//! FEC delivers the frame rates the binomial theory predicts under independent loss, and
//! Reed-Solomon beats XOR under burst loss at the same overhead.

use rift_core::media::{
    FecPlan, MediaReceiver, MediaReceiverConfig, MediaSender, MediaSenderConfig, OutgoingFrame,
};
use rift_core::wire::{Body, FecScheme, PacketType, MAX_DATAGRAM};
use rift_sim::link::{Link, LinkConfig, LossModel};
use std::time::{Duration, Instant};

const DATA: usize = 24;
const PARITY: usize = 6;
const FRAMES: usize = 20_000;

/// Fraction of frames delivered when every packet goes through `loss`.
fn delivered_fraction(scheme: FecScheme, loss: LossModel, seed: u64) -> f64 {
    let t0 = Instant::now();
    let mut link: Link<(bool, Vec<u8>)> = Link::new(
        LinkConfig {
            loss,
            seed,
            ..LinkConfig::default()
        },
        t0,
    );
    let mut tx = MediaSender::new(MediaSenderConfig::default());
    let mut rx = MediaReceiver::new(MediaReceiverConfig::default());
    // No NACK: FEC alone.
    rx.set_rtt(Duration::from_secs(1));
    let frame = vec![0x5Au8; DATA * 1200];
    let plan = FecPlan {
        scheme,
        ratio: PARITY as f64 / DATA as f64,
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut now = t0;
    for _ in 0..FRAMES {
        // Every frame a keyframe, so one lost frame does not gate the next.
        let f = OutgoingFrame {
            data: &frame,
            keyframe: true,
            recovery_point: false,
            capture_us: 0,
        };
        tx.push_frame(f, plan).unwrap();
        while let Some(m) = tx.poll_transmit(&mut buf).unwrap() {
            link.send(now, m.len, (m.parity, buf[..m.len].to_vec()));
        }
        while let Some((_, (parity, bytes))) = link.poll(now) {
            let t = if parity {
                PacketType::MediaParity
            } else {
                PacketType::MediaData
            };
            match Body::decode(t, &bytes).unwrap() {
                Body::MediaData { header, payload } | Body::MediaParity { header, payload } => {
                    rx.on_packet(now, &header, payload, parity).unwrap()
                }
                _ => unreachable!(),
            }
        }
        now += Duration::from_millis(16);
        rx.handle_timeout(now);
        while rx.poll_frame().is_some() {}
        while rx.poll_event().is_some() {}
    }
    rx.stats.frames_delivered as f64 / FRAMES as f64
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Reed-Solomon: the frame survives when at most PARITY of its DATA + PARITY packets are lost.
fn theory_rs(p: f64) -> f64 {
    let n = DATA + PARITY;
    (0..=PARITY)
        .map(|i| binomial(n, i) * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32))
        .sum()
}

/// XOR: every one of the PARITY groups (DATA / PARITY data packets and one parity) loses at
/// most one packet.
fn theory_xor(p: f64) -> f64 {
    let k = DATA / PARITY + 1;
    let group = (1.0 - p).powi(k as i32) + k as f64 * p * (1.0 - p).powi(k as i32 - 1);
    group.powi(PARITY as i32)
}

#[test]
fn random_loss_matches_the_binomial_theory() {
    println!("{DATA} data + {PARITY} parity packets per frame, {FRAMES} frames, independent loss:");
    for p in [0.01, 0.05, 0.10] {
        for (scheme, theory) in [
            (FecScheme::Xor, theory_xor(p)),
            (FecScheme::ReedSolomon, theory_rs(p)),
        ] {
            let got = delivered_fraction(scheme, LossModel::Random { p }, 7);
            // Four standard errors of a binomial proportion over FRAMES frames.
            let tol = 4.0 * (theory * (1.0 - theory) / FRAMES as f64).sqrt() + 0.002;
            println!(
                "  {:>4.0} % loss, {:<12} delivered {:.4}, theory {:.4}",
                p * 100.0,
                format!("{scheme:?}"),
                got,
                theory
            );
            assert!(
                (got - theory).abs() <= tol,
                "{scheme:?} at {p}: delivered {got:.4}, theory {theory:.4} ± {tol:.4}"
            );
        }
    }
}

#[test]
fn reed_solomon_beats_xor_under_burst_loss() {
    println!("Gilbert-Elliott burst loss, mean burst 4 packets (binomial theory shown for the same mean loss):");
    for p in [0.01, 0.05, 0.10] {
        let loss = LossModel::burst(p, 4.0);
        let xor = delivered_fraction(FecScheme::Xor, loss, 11);
        let rs = delivered_fraction(FecScheme::ReedSolomon, loss, 11);
        println!(
            "  {:>4.0} % loss: XOR {:.4} (binomial {:.4}), Reed-Solomon {:.4} (binomial {:.4})",
            p * 100.0,
            xor,
            theory_xor(p),
            rs,
            theory_rs(p)
        );
        assert!(rs > xor, "RS {rs:.4} vs XOR {xor:.4} at {p}");
    }
}
