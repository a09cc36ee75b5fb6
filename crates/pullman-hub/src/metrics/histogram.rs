//! A fixed-bucket latency histogram made of atomics: recording is a few relaxed adds, with
//! no lock, so every request can afford it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from 1 ms (a request that found a worker at once,
/// or a trivial handler) to 60 s (past most pools' deadlines); roughly ×2.5 apart, the usual
/// Prometheus spacing, so a quantile estimate is off by less than one step.
pub(crate) const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// The same bounds in nanoseconds, compared against on the request path.
const BOUNDS_NS: [u64; BUCKETS.len()] = {
    let mut out = [0u64; BUCKETS.len()];
    let mut i = 0;
    while i < BUCKETS.len() {
        out[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// Counts per bucket (not cumulative; the last is +Inf) and the sum in nanoseconds.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram read at one moment: cumulative counts as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// Observations at or below each of [`BUCKETS`].
    pub(crate) cumulative: [u64; BUCKETS.len()],
    pub(crate) count: u64,
    pub(crate) sum_seconds: f64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; BUCKETS.len()];
        let mut running = 0u64;
        for (i, slot) in cumulative.iter_mut().enumerate() {
            running += self.counts[i].load(Ordering::Relaxed);
            *slot = running;
        }
        let count = running + self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // <= 1 ms
        h.observe(Duration::from_millis(1)); // exactly on a bound: that bucket
        h.observe(Duration::from_millis(30)); // <= 50 ms
        h.observe(Duration::from_secs(100)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative[0], 2);
        assert_eq!(s.cumulative[4], 2, "25 ms bucket");
        assert_eq!(s.cumulative[5], 3, "50 ms bucket");
        assert_eq!(s.cumulative[BUCKETS.len() - 1], 3, "60 s bucket");
        assert!((s.sum_seconds - 100.0315).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn bounds_are_increasing() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_NS[0], 1_000_000);
    }
}
