//! The library's one error type, by where the failure came from.

/// Why a benchmark step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target or path the user or a peer gave is not a loopback `http://IP:PORT` URL (or
    /// `https://IP:PORT`, for a system serving TLS).
    #[error("bad URL {0:?}: expected http://IP:PORT, or https://IP:PORT for a system serving TLS")]
    BadUrl(String),
    /// A socket, file or child process failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange with the system under test failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// A peer (nginx, HAProxy, pullman, POTHEAD, ...) could not be started or did not answer.
    #[error("{system}: {reason}")]
    Peer { system: String, reason: String },
}

impl Error {
    pub(crate) fn peer(system: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Peer {
            system: system.into(),
            reason: reason.into(),
        }
    }
}
