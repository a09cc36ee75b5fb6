//! A client request as the front parsed it, handed to its pool's mode.

use hyper::body::Incoming;
use pullman_proto::HeadView;
use tokio::time::Instant;

/// A client request on its way to a pool's workers.
pub(crate) struct ClientRequest<'a> {
    /// Method, target, version and fields, as hyper parsed them.
    pub(crate) parts: http::request::Parts,
    /// The same head as workers see it.
    pub(crate) head: HeadView,
    /// The body, unless the request has none.
    pub(crate) body: Option<Incoming>,
    /// The client's address as text.
    pub(crate) peer: &'a str,
    /// When the request arrived: its deadlines count from here.
    pub(crate) started: Instant,
}
