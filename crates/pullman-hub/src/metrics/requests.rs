//! What a pool counts about its requests: outcomes, queue wait, service time. Per-pool
//! atomics, found through the `Arc<Pool>` a request already holds, so recording takes no
//! lock and no lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::histogram::Histogram;
use super::worker_faults::WorkerFaults;
use crate::error::RequestError;

/// The `outcome` labels of `pullman_requests_total`: `ok` (the worker answered, whatever
/// its status) and every label [`RequestError::label`] gives.
pub(crate) const OUTCOMES: [&str; 13] = [
    "ok",
    "client_error",
    "queue_full",
    "queue_timeout",
    "deadline",
    "worker_error",
    "shutting_down",
    "client_gone",
    "no_route",
    "filter_unavailable",
    "upstream_error",
    "upstream_timeout",
    "internal_error",
];

/// The index in [`OUTCOMES`] of how a request ended.
pub(crate) fn outcome_index(result: Result<(), RequestError>) -> usize {
    match result {
        Ok(()) => 0,
        Err(
            RequestError::HeadersTooLarge
            | RequestError::BodyTooLarge
            | RequestError::BodyTooSlow
            | RequestError::BadRequest,
        ) => 1,
        Err(RequestError::QueueFull) => 2,
        Err(RequestError::QueueTimeout) => 3,
        Err(RequestError::Deadline) => 4,
        Err(RequestError::WorkerError | RequestError::Rejected) => 5,
        Err(RequestError::ShuttingDown) => 6,
        Err(RequestError::ClientGone) => 7,
        Err(RequestError::NoRoute) => 8,
        Err(RequestError::FilterUnavailable) => 9,
        Err(RequestError::UpstreamError) => 10,
        Err(RequestError::UpstreamTimeout) => 11,
        Err(RequestError::Internal) => 12,
    }
}

/// One pool's request counters.
#[derive(Debug, Default)]
pub(crate) struct RequestMetrics {
    outcomes: [AtomicU64; OUTCOMES.len()],
    /// From arrival to the moment a worker's credit was taken, for requests that got one.
    pub(crate) queue_wait: Histogram,
    /// From the request going to the worker to the worker's response head or verdict (or its
    /// failure, or the deadline).
    pub(crate) service: Histogram,
    /// Filter pools: from sending a request upstream to the upstream's response head (or
    /// its failure, or `upstream_timeout`).
    pub(crate) upstream: Histogram,
    /// Filter pools: upstream response bodies cut off because nothing of them came for
    /// `upstream_timeout`. Shared with the pool's upstream client, which counts them.
    pub(crate) upstream_stalls: Arc<AtomicU64>,
    /// Answers of this pool's workers that the hub could not use.
    pub(crate) worker_faults: WorkerFaults,
}

impl RequestMetrics {
    pub(crate) fn count(&self, outcome: usize) {
        self.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of each of [`OUTCOMES`].
    pub(crate) fn outcomes(&self) -> [u64; OUTCOMES.len()] {
        std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_error_has_its_label_at_its_index() {
        for e in RequestError::ALL {
            assert_eq!(OUTCOMES[outcome_index(Err(e))], e.label(), "{e:?}");
        }
        assert_eq!(OUTCOMES[outcome_index(Ok(()))], "ok");
    }
}
