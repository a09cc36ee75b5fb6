//! What can stop a worker.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// TLS to the hub could not be set up (a file), or its handshake failed for a reason
    /// retrying will not fix (a certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// A setting is missing or out of range.
    #[error("worker settings: {0}")]
    Settings(String),
    /// A setting's value is out of its range.
    #[error("{setting} = {value}: {expected}")]
    OutOfRange {
        /// The setting, as the builder names it.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A file a gate reads (under `/proc` or `/sys/fs/cgroup`) could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// A file a gate reads holds something other than what the kernel writes there.
    #[error("{path}: expected {expected}, found {found:?}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What should be there.
        expected: &'static str,
        /// The start of what is there.
        found: String,
    },
    /// The redirect server's listener could not bind.
    #[error("the redirect server cannot listen on {addr}: {source}")]
    RedirectBind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS's reason.
        source: std::io::Error,
    },
}
