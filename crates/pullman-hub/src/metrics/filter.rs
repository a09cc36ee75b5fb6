//! What a filter pool's filters decided (`pullman_filter_total{pool, outcome}`).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a filter pool's filters decided, counted since the hub started: for the metrics
/// endpoint (`pullman_filter_total{pool, outcome}`).
#[derive(Debug, Default)]
pub(crate) struct FilterStats {
    /// Requests a filter passed, with or without edits.
    pub(crate) passed: AtomicU64,
    /// Requests a filter answered itself (blocked, say).
    pub(crate) answered: AtomicU64,
    /// Requests no filter decided on, forwarded unfiltered (`failure_mode = "open"`).
    pub(crate) failed_open: AtomicU64,
    /// Requests no filter decided on, answered 503 (`failure_mode = "closed"`, or the body
    /// had already gone to the filter).
    pub(crate) failed_closed: AtomicU64,
    /// Filters that sent an unusable verdict (a protected or malformed edit): 502.
    pub(crate) bad_verdicts: AtomicU64,
    /// Upstream responses a filter passed, with or without edits.
    pub(crate) responses_passed: AtomicU64,
    /// Upstream responses a filter replaced.
    pub(crate) responses_replaced: AtomicU64,
}

impl FilterStats {
    /// `(outcome, count)` pairs, for exporting.
    pub(crate) fn counts(&self) -> [(&'static str, u64); 7] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("passed", n(&self.passed)),
            ("answered", n(&self.answered)),
            ("failed_open", n(&self.failed_open)),
            ("failed_closed", n(&self.failed_closed)),
            ("bad_verdict", n(&self.bad_verdicts)),
            ("response_passed", n(&self.responses_passed)),
            ("response_replaced", n(&self.responses_replaced)),
        ]
    }
}

/// Adds one to a counter of [`FilterStats`].
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
