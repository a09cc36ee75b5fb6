//! What can stop a worker.

use pullman_proto::CloseCode;

/// Why a worker stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The hub address could not be parsed.
    #[error("bad hub address {0}")]
    Address(String),
    /// The hub refused this worker for a reason retrying will not fix (wrong token, unknown
    /// pool, no common version, a pool whose mode the worker does not serve).
    #[error("hub refused the worker ({code:?}): {reason}")]
    Refused {
        /// The hub's code.
        code: CloseCode,
        /// The hub's reason.
        reason: String,
    },
    /// The hub address answers in HTTP: it is the hub's HTTP listener (or another HTTP
    /// server), not a worker port. Retrying will not help.
    #[error(
        "{0} is an HTTP server, not a pullman worker port \
         (workers dial an address of the hub's workers_listen)"
    )]
    NotWorkerPort(String),
    /// A setting is missing or out of range.
    #[error("worker settings: {0}")]
    Settings(String),
}
