//! The hub's error type: where a failure came from, whether a retry is safe, and therefore
//! which HTTP status the client gets and which metric label counts it.

use http::StatusCode;

use crate::config::ConfigError;

/// Why a client request did not get a worker's answer. Each maps to one status code and one
/// `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No route matched (client).
    #[error("no route matches this request")]
    NoRoute,
    /// The request head is larger than the hub accepts (client).
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// The request body is larger than the pool accepts (client).
    #[error("request body too large")]
    BodyTooLarge,
    /// The request could not be turned into a head view (client).
    #[error("malformed request")]
    BadRequest,
    /// The pool's queue is full (hub, retryable later).
    #[error("queue full")]
    QueueFull,
    /// The request waited longer than the pool's queue timeout (hub, retryable later).
    #[error("timed out waiting for a worker")]
    QueueTimeout,
    /// The worker did not answer within the request's deadline (worker).
    #[error("worker did not answer in time")]
    Deadline,
    /// The worker failed: its link broke, or it sent something unusable (worker).
    #[error("worker failed")]
    WorkerError,
    /// The worker refused the request (worker).
    #[error("worker rejected the request")]
    Rejected,
    /// The hub is shutting down (hub).
    #[error("hub is shutting down")]
    ShuttingDown,
    /// Filter mode: no filter answered in time or none was there, and the pool fails closed
    /// (hub, retryable later).
    #[error("no filter available")]
    FilterUnavailable,
    /// Filter mode: the upstream could not be reached or failed (upstream).
    #[error("upstream failed")]
    UpstreamError,
    /// Filter mode: the upstream did not send its response head in time (upstream).
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// The client went away before its answer (client; never sent, only counted).
    #[error("client went away")]
    ClientGone,
}

impl RequestError {
    /// The status code the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            RequestError::NoRoute => StatusCode::NOT_FOUND,
            RequestError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BadRequest | RequestError::ClientGone => StatusCode::BAD_REQUEST,
            RequestError::QueueFull | RequestError::QueueTimeout | RequestError::Rejected => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::ShuttingDown | RequestError::FilterUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::UpstreamError => StatusCode::BAD_GATEWAY,
            RequestError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Deadline => StatusCode::GATEWAY_TIMEOUT,
            RequestError::WorkerError => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `outcome` label of `pullman_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            RequestError::NoRoute => "no_route",
            RequestError::HeadersTooLarge
            | RequestError::BodyTooLarge
            | RequestError::BadRequest => "client_error",
            RequestError::QueueFull => "queue_full",
            RequestError::QueueTimeout => "queue_timeout",
            RequestError::Deadline => "deadline",
            RequestError::WorkerError | RequestError::Rejected => "worker_error",
            RequestError::ShuttingDown => "shutting_down",
            RequestError::FilterUnavailable => "filter_unavailable",
            RequestError::UpstreamError => "upstream_error",
            RequestError::UpstreamTimeout => "upstream_timeout",
            RequestError::ClientGone => "client_gone",
        }
    }

    /// Whether the client may simply try again later (and is told when with Retry-After).
    pub fn retry_after(self) -> Option<u32> {
        match self {
            RequestError::QueueFull
            | RequestError::Rejected
            | RequestError::ShuttingDown
            | RequestError::FilterUnavailable => Some(1),
            _ => None,
        }
    }
}

/// Why the hub could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A reload was refused; the hub kept its configuration.
    #[error("reload refused: {0}")]
    Reload(String),
}
