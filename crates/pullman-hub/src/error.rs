//! The hub's error types. A [`RequestError`] says where a failure came from
//! ([`ErrorSource`]) and whether the client may try again ([`Retry`]); the status code, the
//! `Retry-After` field and the metric label the request is counted under follow from those.

use http::StatusCode;

use crate::config::ConfigError;

/// Why a client request did not get a worker's (or an upstream's) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No route matched.
    #[error("no route matches this request")]
    NoRoute,
    /// The request head is larger than the hub accepts.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request body is larger than the pool accepts.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request could not be turned into a head view.
    #[error("malformed request")]
    BadRequest,
    /// The client sent its body slower than `hub.min_body_rate`.
    #[error("request body too slow")]
    BodyTooSlow,
    /// The client went away before its answer (never sent, only counted).
    #[error("client went away")]
    ClientGone,
    /// The pool's queue is full.
    #[error("queue full")]
    QueueFull,
    /// The request waited longer than the pool's queue timeout.
    #[error("timed out waiting for a worker")]
    QueueTimeout,
    /// The hub is shutting down.
    #[error("hub is shutting down")]
    ShuttingDown,
    /// Filter mode: no filter answered in time or none was there, and the pool fails closed.
    #[error("no filter available")]
    FilterUnavailable,
    /// The worker did not answer within the request's deadline.
    #[error("worker did not answer in time")]
    Deadline,
    /// The worker failed: its link broke, or it sent something unusable.
    #[error("worker failed")]
    WorkerError,
    /// The worker refused the request.
    #[error("worker rejected the request")]
    Rejected,
    /// Filter mode: the upstream could not be reached or failed.
    #[error("upstream failed")]
    UpstreamError,
    /// Filter mode: the upstream did not send its response head in time.
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// Something the hub itself got wrong (a bug, not the client's or a worker's doing).
    #[error("internal error")]
    Internal,
}

/// Who a failure is due to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client's request, or the client leaving.
    Client,
    /// A worker: it failed, answered wrongly, or too late.
    Worker,
    /// A filter pool's upstream server.
    Upstream,
    /// The hub: its limits, its state, or a fault of its own.
    Hub,
}

/// Whether the same request may succeed if the client sends it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not without a change on one side or the other.
    No,
    /// Later, when the pool has room again: the answer is 503 with `Retry-After`.
    Later,
}

/// Seconds a client is asked to wait before sending a [`Retry::Later`] request again.
const RETRY_AFTER_SECS: u32 = 1;

impl RequestError {
    /// Who the failure is due to.
    pub fn source(self) -> ErrorSource {
        use RequestError::*;
        match self {
            NoRoute | HeadersTooLarge | BodyTooLarge | BodyTooSlow | BadRequest | ClientGone => {
                ErrorSource::Client
            }
            QueueFull | QueueTimeout | ShuttingDown | FilterUnavailable | Internal => {
                ErrorSource::Hub
            }
            Deadline | WorkerError | Rejected => ErrorSource::Worker,
            UpstreamError | UpstreamTimeout => ErrorSource::Upstream,
        }
    }

    /// Whether the client may send the request again.
    pub fn retry(self) -> Retry {
        use RequestError::*;
        match self {
            QueueFull | QueueTimeout | ShuttingDown | FilterUnavailable | Rejected => Retry::Later,
            _ => Retry::No,
        }
    }

    /// Whether the failure is a deadline passing (a gateway timeout, when it is not the
    /// client's).
    fn is_timeout(self) -> bool {
        matches!(self, RequestError::Deadline | RequestError::UpstreamTimeout)
    }

    /// The status code the client gets: 503 for what may succeed later; a 4xx naming the
    /// client's fault; 504 or 502 for a worker or upstream that was too slow or failed; 500
    /// for the hub's own faults.
    pub fn status(self) -> StatusCode {
        if self.retry() == Retry::Later {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match self.source() {
            ErrorSource::Client => match self {
                RequestError::NoRoute => StatusCode::NOT_FOUND,
                RequestError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                RequestError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                RequestError::BodyTooSlow => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            },
            ErrorSource::Worker | ErrorSource::Upstream if self.is_timeout() => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ErrorSource::Worker | ErrorSource::Upstream => StatusCode::BAD_GATEWAY,
            ErrorSource::Hub => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After` in seconds, for the requests that may succeed later.
    pub fn retry_after(self) -> Option<u32> {
        (self.retry() == Retry::Later).then_some(RETRY_AFTER_SECS)
    }

    /// The `outcome` label of `pullman_requests_total`. The client's faults share one
    /// label but for the two an operator tells apart (no route, client gone); the others
    /// name their cause.
    pub fn label(self) -> &'static str {
        use RequestError::*;
        match self {
            NoRoute => "no_route",
            ClientGone => "client_gone",
            HeadersTooLarge | BodyTooLarge | BodyTooSlow | BadRequest => "client_error",
            QueueFull => "queue_full",
            QueueTimeout => "queue_timeout",
            ShuttingDown => "shutting_down",
            FilterUnavailable => "filter_unavailable",
            Deadline => "deadline",
            WorkerError | Rejected => "worker_error",
            UpstreamError => "upstream_error",
            UpstreamTimeout => "upstream_timeout",
            Internal => "internal_error",
        }
    }

    /// Every variant, for tests and for the metrics' label list.
    pub const ALL: [RequestError; 16] = {
        use RequestError::*;
        [
            NoRoute,
            HeadersTooLarge,
            BodyTooLarge,
            BodyTooSlow,
            BadRequest,
            ClientGone,
            QueueFull,
            QueueTimeout,
            ShuttingDown,
            FilterUnavailable,
            Deadline,
            WorkerError,
            Rejected,
            UpstreamError,
            UpstreamTimeout,
            Internal,
        ]
    };
}

/// Why the hub could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened. The OS error is part of the message, not its
    /// source, so that it is said once whether the error is printed alone or as a chain.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        error: std::io::Error,
    },
    /// A Unix worker listener's path holds something that is not a stale socket.
    #[error("cannot listen on {}: {why}", path.display())]
    SocketPath {
        /// The path.
        path: std::path::PathBuf,
        /// What is in the way.
        why: String,
    },
    /// The OS gave no random bytes for the prefix that makes this hub's request ids unique.
    #[error("cannot read random bytes for request ids from the OS: {0}")]
    Entropy(getrandom::Error),
    /// A TLS listener's certificates could not be read, or a key does not go with its
    /// certificate.
    #[error("TLS: {0}")]
    Tls(String),
    /// A reload was refused; the hub kept its configuration.
    #[error("reload refused: {0}")]
    Reload(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_may_succeed_later_is_503_with_retry_after_and_nothing_else_is() {
        for e in RequestError::ALL {
            let later = e.retry() == Retry::Later;
            assert_eq!(e.retry_after().is_some(), later, "{e:?}");
            assert_eq!(
                e.status() == StatusCode::SERVICE_UNAVAILABLE,
                later,
                "{e:?}"
            );
        }
        assert_eq!(RequestError::QueueTimeout.retry_after(), Some(1));
    }

    #[test]
    fn the_status_class_follows_the_source() {
        for e in RequestError::ALL
            .into_iter()
            .filter(|e| e.retry() == Retry::No)
        {
            let status = e.status();
            match e.source() {
                ErrorSource::Client => assert!(status.is_client_error(), "{e:?}"),
                ErrorSource::Worker | ErrorSource::Upstream => assert!(
                    status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT,
                    "{e:?}"
                ),
                ErrorSource::Hub => assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR),
            }
        }
        assert_eq!(RequestError::Deadline.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(RequestError::WorkerError.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn an_internal_fault_is_not_counted_as_a_worker_error() {
        assert_eq!(RequestError::Internal.source(), ErrorSource::Hub);
        assert_eq!(RequestError::Internal.label(), "internal_error");
    }
}
