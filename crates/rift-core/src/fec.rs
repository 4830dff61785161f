//! Forward error correction over the data fragments of one media frame.
//!
//! Parity covers *plaintext* fragments: each parity packet is then encrypted like any other
//! packet, so FEC never needs to know keys or packet numbers, and a recovered fragment is
//! indistinguishable from a received one.
//!
//! Two schemes, chosen per frame and named in every packet of it:
//! - XOR: `fec_count` interleaved groups; parity `g` is the XOR of every fragment `i` with
//!   `i % fec_count == g`, each zero-padded to the longest fragment. One loss per group is
//!   recovered, so any burst of up to `fec_count` consecutive losses is.
//! - Reed-Solomon (reed-solomon-simd): any `frag_count` of the `frag_count + fec_count` shards
//!   rebuild the frame, whatever the pattern. Costs more CPU; used when losses come in bursts.

use crate::bitset::BitSet;
use crate::wire::{FecScheme, MediaHeader};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FecError {
    #[error("{scheme:?} cannot protect {frag_count} fragments with {fec_count} parity packets")]
    Unsupported {
        scheme: FecScheme,
        frag_count: u16,
        fec_count: u16,
    },
    #[error("reed-solomon: {0}")]
    ReedSolomon(#[from] reed_solomon_simd::Error),
}

/// Length of every parity payload of a frame: the longest fragment, rounded up to even for
/// Reed-Solomon (its shards must have an even length).
pub fn shard_len(scheme: FecScheme, frame_len: u32, frag_count: u16) -> usize {
    if frag_count == 0 {
        return 0;
    }
    let longest = (frame_len as usize).div_ceil(frag_count as usize);
    match scheme {
        FecScheme::None => 0,
        FecScheme::Xor => longest,
        FecScheme::ReedSolomon => longest + (longest & 1),
    }
}

/// Whether Reed-Solomon can code `originals` data shards with `recovery` parity shards.
pub fn rs_supported(originals: usize, recovery: usize) -> bool {
    originals > 0 && recovery > 0 && ReedSolomonEncoder::supports(originals, recovery)
}

/// Number of parity packets for `frag_count` fragments at redundancy `ratio` (parity / data).
/// Rounded up so a protected frame always has at least one parity packet.
pub fn parity_count(scheme: FecScheme, frag_count: u16, ratio: f64) -> u16 {
    if scheme == FecScheme::None || ratio <= 0.0 || frag_count == 0 {
        return 0;
    }
    let want = (frag_count as f64 * ratio.min(1.0)).ceil() as u16;
    let want = want.clamp(1, frag_count);
    match scheme {
        FecScheme::ReedSolomon if !rs_supported(frag_count as usize, want as usize) => 0,
        _ => want,
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= *s;
    }
}

/// Computes the parity packets of a frame; its buffers are reused from frame to frame.
#[derive(Default)]
pub struct FecEncoder {
    rs: Option<ReedSolomonEncoder>,
    pad: Vec<u8>,
    parity: Vec<u8>,
    shard: usize,
    count: usize,
}

impl FecEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compute the `fec_count` parity payloads of `frame`, split into `frag_count` fragments.
    pub fn encode(
        &mut self,
        scheme: FecScheme,
        frame: &[u8],
        frag_count: u16,
        fec_count: u16,
    ) -> Result<(), FecError> {
        let unsupported = FecError::Unsupported {
            scheme,
            frag_count,
            fec_count,
        };
        let frame_len = frame.len() as u32;
        self.count = 0;
        if scheme == FecScheme::None || fec_count == 0 {
            return Ok(());
        }
        if frag_count == 0 || frame.len() < frag_count as usize || fec_count > frag_count {
            return Err(unsupported);
        }
        let shard = shard_len(scheme, frame_len, frag_count);
        let fragments = (0..frag_count).map(|i| {
            let off = MediaHeader::fragment_offset(frame_len, frag_count, i);
            &frame[off..off + MediaHeader::fragment_len(frame_len, frag_count, i)]
        });
        self.parity.clear();
        match scheme {
            FecScheme::None => {}
            FecScheme::Xor => {
                if fec_count > frag_count {
                    return Err(unsupported);
                }
                self.parity.resize(fec_count as usize * shard, 0);
                for (i, frag) in fragments.enumerate() {
                    let g = i % fec_count as usize;
                    xor_into(&mut self.parity[g * shard..(g + 1) * shard], frag);
                }
            }
            FecScheme::ReedSolomon => {
                if !rs_supported(frag_count as usize, fec_count as usize) {
                    return Err(unsupported);
                }
                let rs = match self.rs.as_mut() {
                    Some(rs) => {
                        rs.reset(frag_count as usize, fec_count as usize, shard)?;
                        rs
                    }
                    None => self.rs.insert(ReedSolomonEncoder::new(
                        frag_count as usize,
                        fec_count as usize,
                        shard,
                    )?),
                };
                self.pad.resize(shard, 0);
                for frag in fragments {
                    if frag.len() == shard {
                        rs.add_original_shard(frag)?;
                    } else {
                        self.pad[..frag.len()].copy_from_slice(frag);
                        self.pad[frag.len()..].fill(0);
                        rs.add_original_shard(&self.pad)?;
                    }
                }
                let result = rs.encode()?;
                for p in result.recovery_iter() {
                    self.parity.extend_from_slice(p);
                }
            }
        }
        self.shard = shard;
        self.count = fec_count as usize;
        Ok(())
    }

    /// Parity payload `i` of the last encoded frame.
    pub fn parity(&self, i: usize) -> Option<&[u8]> {
        (i < self.count).then(|| &self.parity[i * self.shard..(i + 1) * self.shard])
    }
}

/// The received state of one frame, as the reassembler keeps it.
pub struct FrameShards<'a> {
    pub scheme: FecScheme,
    pub frame_len: u32,
    pub frag_count: u16,
    pub fec_count: u16,
    /// The frame buffer; fragment `i` lives at `MediaHeader::fragment_offset(i)`.
    pub frame: &'a mut [u8],
    /// Which data fragments are present; recovered ones are added.
    pub have: &'a mut BitSet,
    /// Parity payloads, `shard_len` bytes each, at `index * shard_len`.
    pub parity: &'a [u8],
    pub parity_have: &'a BitSet,
}

impl FrameShards<'_> {
    /// Whether the missing data fragments can be rebuilt from what is present.
    pub fn recoverable(&self) -> bool {
        let n = self.frag_count as usize;
        let missing = n - self.have.count();
        if missing == 0 {
            return true;
        }
        match self.scheme {
            FecScheme::None => false,
            FecScheme::ReedSolomon => self.have.count() + self.parity_have.count() >= n,
            FecScheme::Xor => (0..self.fec_count as usize).all(|g| {
                let lost = (g..n)
                    .step_by(self.fec_count as usize)
                    .filter(|&i| !self.have.get(i))
                    .count();
                lost == 0 || (lost == 1 && self.parity_have.get(g))
            }),
        }
    }

    /// Data fragments that must still arrive (or be retransmitted) for the frame to complete:
    /// for each XOR group the losses its parity cannot cover; for Reed-Solomon the shortfall.
    pub fn needed(&self, mut f: impl FnMut(u16)) {
        let n = self.frag_count as usize;
        match self.scheme {
            FecScheme::None => (0..n)
                .filter(|&i| !self.have.get(i))
                .for_each(|i| f(i as u16)),
            FecScheme::ReedSolomon => {
                let short = n.saturating_sub(self.have.count() + self.parity_have.count());
                (0..n)
                    .filter(|&i| !self.have.get(i))
                    .take(short)
                    .for_each(|i| f(i as u16));
            }
            FecScheme::Xor => {
                let g_count = self.fec_count as usize;
                for g in 0..g_count {
                    let lost = (g..n).step_by(g_count).filter(|&i| !self.have.get(i));
                    let covered = usize::from(self.parity_have.get(g));
                    if lost.clone().count() > covered {
                        lost.skip(covered).for_each(|i| f(i as u16));
                    }
                }
            }
        }
    }
}

/// Rebuilds lost fragments; its buffers are reused from frame to frame.
#[derive(Default)]
pub struct FecDecoder {
    rs: Option<ReedSolomonDecoder>,
    pad: Vec<u8>,
}

impl FecDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild every fragment that can be rebuilt; returns how many were.
    pub fn recover(&mut self, s: &mut FrameShards<'_>) -> Result<usize, FecError> {
        let n = s.frag_count as usize;
        if s.have.count() == n {
            return Ok(0);
        }
        let shard = shard_len(s.scheme, s.frame_len, s.frag_count);
        let frag = |i: usize| {
            let i = i as u16;
            let off = MediaHeader::fragment_offset(s.frame_len, s.frag_count, i);
            off..off + MediaHeader::fragment_len(s.frame_len, s.frag_count, i)
        };
        let mut recovered = 0;
        match s.scheme {
            FecScheme::None => {}
            FecScheme::Xor => {
                let g_count = s.fec_count as usize;
                for g in 0..g_count {
                    if !s.parity_have.get(g) {
                        continue;
                    }
                    let mut lost = (g..n).step_by(g_count).filter(|&i| !s.have.get(i));
                    let (Some(missing), None) = (lost.next(), lost.next()) else {
                        continue;
                    };
                    self.pad.clear();
                    self.pad
                        .extend_from_slice(&s.parity[g * shard..(g + 1) * shard]);
                    for i in (g..n).step_by(g_count).filter(|&i| i != missing) {
                        xor_into(&mut self.pad, &s.frame[frag(i)]);
                    }
                    let range = frag(missing);
                    let len = range.len();
                    s.frame[range].copy_from_slice(&self.pad[..len]);
                    s.have.set(missing);
                    recovered += 1;
                }
            }
            FecScheme::ReedSolomon => {
                if s.have.count() + s.parity_have.count() < n {
                    return Ok(0);
                }
                let m = s.fec_count as usize;
                let rs = match self.rs.as_mut() {
                    Some(rs) => {
                        rs.reset(n, m, shard)?;
                        rs
                    }
                    None => self.rs.insert(ReedSolomonDecoder::new(n, m, shard)?),
                };
                self.pad.resize(shard, 0);
                for i in (0..n).filter(|&i| s.have.get(i)) {
                    let data = &s.frame[frag(i)];
                    self.pad[..data.len()].copy_from_slice(data);
                    self.pad[data.len()..].fill(0);
                    rs.add_original_shard(i, &self.pad)?;
                }
                for j in (0..m).filter(|&j| s.parity_have.get(j)) {
                    rs.add_recovery_shard(j, &s.parity[j * shard..(j + 1) * shard])?;
                }
                let result = rs.decode()?;
                for (i, data) in result.restored_original_iter() {
                    let range = frag(i);
                    let len = range.len();
                    s.frame[range].copy_from_slice(&data[..len]);
                    s.have.set(i);
                    recovered += 1;
                }
            }
        }
        Ok(recovered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    /// Encode, drop the fragments in `lost`, recover, and check the frame byte for byte.
    fn roundtrip(
        scheme: FecScheme,
        len: usize,
        n: u16,
        m: u16,
        lost: &[usize],
        lost_parity: &[usize],
    ) -> bool {
        let src = frame(len);
        let mut enc = FecEncoder::new();
        enc.encode(scheme, &src, n, m).unwrap();
        let shard = shard_len(scheme, len as u32, n);
        let mut parity = vec![0u8; m as usize * shard];
        let mut parity_have = BitSet::with_len(m as usize);
        for j in 0..m as usize {
            if !lost_parity.contains(&j) {
                parity[j * shard..(j + 1) * shard].copy_from_slice(enc.parity(j).unwrap());
                parity_have.set(j);
            }
        }
        let mut buf = src.clone();
        let mut have = BitSet::with_len(n as usize);
        for i in 0..n as usize {
            if lost.contains(&i) {
                let off = MediaHeader::fragment_offset(len as u32, n, i as u16);
                let l = MediaHeader::fragment_len(len as u32, n, i as u16);
                buf[off..off + l].fill(0xEE);
            } else {
                have.set(i);
            }
        }
        let mut shards = FrameShards {
            scheme,
            frame_len: len as u32,
            frag_count: n,
            fec_count: m,
            frame: &mut buf,
            have: &mut have,
            parity: &parity,
            parity_have: &parity_have,
        };
        let claimed = shards.recoverable();
        let mut needed = 0;
        shards.needed(|_| needed += 1);
        assert_eq!(claimed, needed == 0);
        FecDecoder::new().recover(&mut shards).unwrap();
        let complete = have.count() == n as usize;
        assert_eq!(claimed, complete, "recoverable() must predict recover()");
        if complete {
            assert_eq!(buf, src);
        }
        complete
    }

    #[test]
    fn xor_recovers_one_loss_per_group_and_bursts_up_to_group_count() {
        // 10 fragments, 3 groups: any burst of 3 consecutive losses is recoverable.
        for start in 0..8 {
            assert!(roundtrip(
                FecScheme::Xor,
                11_999,
                10,
                3,
                &[start, start + 1, start + 2],
                &[]
            ));
        }
        // Two losses in one group are not.
        assert!(!roundtrip(FecScheme::Xor, 11_999, 10, 3, &[0, 3], &[]));
        // A lost parity only matters for its own group.
        assert!(roundtrip(FecScheme::Xor, 11_999, 10, 3, &[1], &[0]));
        assert!(!roundtrip(FecScheme::Xor, 11_999, 10, 3, &[0], &[0]));
    }

    #[test]
    fn reed_solomon_recovers_any_pattern_up_to_parity_count() {
        let n = 20u16;
        let m = 5u16;
        for pattern in [vec![0, 1, 2, 3, 4], vec![19, 18, 10, 2, 0], vec![5, 6]] {
            assert!(roundtrip(
                FecScheme::ReedSolomon,
                23_457,
                n,
                m,
                &pattern,
                &[]
            ));
        }
        assert!(roundtrip(
            FecScheme::ReedSolomon,
            23_457,
            n,
            m,
            &[1, 2, 3],
            &[0, 4]
        ));
        assert!(!roundtrip(
            FecScheme::ReedSolomon,
            23_457,
            n,
            m,
            &[1, 2, 3],
            &[0, 1, 4]
        ));
        assert!(!roundtrip(
            FecScheme::ReedSolomon,
            23_457,
            n,
            m,
            &[0, 1, 2, 3, 4, 5],
            &[]
        ));
    }

    #[test]
    fn single_fragment_frames_and_odd_lengths() {
        assert!(roundtrip(FecScheme::Xor, 1, 1, 1, &[0], &[]));
        assert!(roundtrip(FecScheme::ReedSolomon, 3, 1, 1, &[0], &[]));
        assert!(roundtrip(FecScheme::ReedSolomon, 1201, 2, 1, &[1], &[]));
    }

    #[test]
    fn parity_counts_follow_ratio() {
        assert_eq!(parity_count(FecScheme::Xor, 20, 0.05), 1);
        assert_eq!(parity_count(FecScheme::Xor, 20, 0.5), 10);
        assert_eq!(parity_count(FecScheme::Xor, 1, 0.05), 1);
        assert_eq!(parity_count(FecScheme::ReedSolomon, 84, 0.2), 17);
        assert_eq!(parity_count(FecScheme::None, 84, 0.2), 0);
        assert_eq!(parity_count(FecScheme::Xor, 84, 0.0), 0);
    }
}
