//! The chaos suite's one source of choices: a seeded generator (splitmix64), so that a run's
//! sequence of requests, sizes and faults follows from `PULLMAN_CHAOS_SEED`.

use bytes::Bytes;

/// A splitmix64 generator: small, fast, and good enough to pick requests and faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one task of the run: same seed and task, same sequence.
    pub fn for_task(seed: u64, task: u64) -> Rng {
        let mut mixer = Rng(seed ^ task.wrapping_mul(0xa076_1d64_78bd_642f));
        Rng(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }

    /// An index chosen by weight.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.range(0, weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }

    /// A size up to `max`, mostly small: half under 4 KiB, a third under 128 KiB, the rest
    /// up to `max`, so that large bodies come often enough without slowing every request.
    pub fn size(&mut self, max: u64) -> u64 {
        match self.range(0, 100) {
            0..50 => self.range(0, 4 * 1024),
            50..85 => self.range(4 * 1024, 128 * 1024),
            _ => self.range(128 * 1024, max + 1),
        }
    }

    pub fn bytes(&mut self, n: usize) -> Bytes {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        Bytes::from(out)
    }
}
