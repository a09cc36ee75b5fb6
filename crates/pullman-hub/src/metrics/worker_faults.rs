//! What workers got wrong on requests whose link stayed up: each is logged once where it is
//! found, counted here, and told to the worker (`pullman_worker_faults_total{pool, fault}`).

use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of answer the hub could not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerFault {
    /// The worker sent REJECT.
    Rejected,
    /// A RESPONSE or VERDICT the hub cannot use: an invalid or non-final status, an invalid
    /// header name or value, a `content-length` that is not one number, or a VERDICT from a
    /// worker of a respond pool.
    BadAnswer,
    /// A response body longer or shorter than its `content-length`.
    LengthMismatch,
}

impl WorkerFault {
    const ALL: [WorkerFault; 3] = [
        WorkerFault::Rejected,
        WorkerFault::BadAnswer,
        WorkerFault::LengthMismatch,
    ];

    /// The `fault` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            WorkerFault::Rejected => "rejected",
            WorkerFault::BadAnswer => "bad_answer",
            WorkerFault::LengthMismatch => "length_mismatch",
        }
    }
}

/// One pool's worker fault counters.
#[derive(Debug, Default)]
pub(crate) struct WorkerFaults {
    counts: [AtomicU64; WorkerFault::ALL.len()],
}

impl WorkerFaults {
    pub(crate) fn count(&self, fault: WorkerFault) {
        self.counts[fault as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `(fault, count)` pairs, for exporting.
    pub(crate) fn counts(&self) -> [(&'static str, u64); WorkerFault::ALL.len()] {
        WorkerFault::ALL.map(|f| (f.label(), self.counts[f as usize].load(Ordering::Relaxed)))
    }
}
