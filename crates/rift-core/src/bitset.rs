//! A fixed-length bit set whose storage is reused when it is reset to a new length.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
    len: usize,
    ones: usize,
}

impl BitSet {
    pub fn with_len(len: usize) -> Self {
        let mut b = BitSet::default();
        b.reset(len);
        b
    }

    /// Clear every bit and set the length, keeping the allocation when it is big enough.
    pub fn reset(&mut self, len: usize) {
        self.words.clear();
        self.words.resize(len.div_ceil(64), 0);
        self.len = len;
        self.ones = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.ones
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set bit `i`; returns whether it was newly set. Out-of-range indices are ignored.
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[i / 64];
        let mask = 1 << (i % 64);
        let new = *w & mask == 0;
        *w |= mask;
        self.ones += usize::from(new);
        new
    }

    /// Indices of the clear bits.
    pub fn zeros(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| !self.get(i))
    }
}
