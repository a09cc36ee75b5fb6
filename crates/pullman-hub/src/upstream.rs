//! A filter pool's upstream: the HTTP client that forwards passed requests, and the rules
//! for which header fields cross the hop.
//!
//! One client per filter pool, with its own keep-alive connection pool: HTTP/1.1 for
//! `http://` upstreams, HTTP/2 with prior knowledge for `h2c://`. Bodies stream both ways;
//! the client holds no more of a body than hyper's buffers.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HOST};
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{PoolConfig, PoolMode, Upstream};
use crate::error::RequestError;
use crate::hop::is_hop_by_hop;

/// Any error a forwarded body may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body on its way upstream: the client's, the hub's buffered copy, or a filter's.
pub(crate) type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long an idle upstream connection is kept for reuse: long enough to carry bursts
/// that come seconds apart, shorter than the 60 s or more most servers keep them.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per upstream: enough for the concurrency a hub on a few cores
/// forwards, few enough that a burst does not leave hundreds of sockets open afterwards.
const UPSTREAM_MAX_IDLE: usize = 256;

/// The client of one filter pool's upstream.
pub(crate) struct UpstreamClient {
    client: Client<HttpConnector, UpstreamBody>,
    upstream: Upstream,
    timeout: Duration,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("upstream", &self.upstream.to_string())
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// The upstream client of a filter pool; `None` for a respond pool.
    pub(crate) fn for_pool(config: &PoolConfig) -> Option<UpstreamClient> {
        if config.mode != PoolMode::Filter {
            return None;
        }
        let upstream = config.upstream.as_ref()?;
        Some(UpstreamClient::new(
            upstream,
            config.upstream_connect_timeout,
            config.upstream_timeout,
        ))
    }

    /// Whether `a` and `b` would build the same client.
    pub(crate) fn same_settings(a: &PoolConfig, b: &PoolConfig) -> bool {
        a.mode == b.mode
            && a.upstream == b.upstream
            && a.upstream_connect_timeout == b.upstream_connect_timeout
            && a.upstream_timeout == b.upstream_timeout
    }

    pub(crate) fn new(
        upstream: &Upstream,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
            .pool_max_idle_per_host(UPSTREAM_MAX_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .timer(hyper_util::rt::TokioTimer::new());
        if upstream.h2c {
            builder.http2_only(true);
        }
        UpstreamClient {
            client: builder.build(connector),
            upstream: upstream.clone(),
            timeout,
        }
    }

    /// The absolute URI of `target` (path and query) on the upstream.
    pub(crate) fn uri(&self, target: &[u8]) -> Result<http::Uri, RequestError> {
        let mut text =
            Vec::with_capacity(8 + self.upstream.authority.as_str().len() + target.len());
        text.extend_from_slice(b"http://");
        text.extend_from_slice(self.upstream.authority.as_str().as_bytes());
        text.extend_from_slice(target);
        http::Uri::from_maybe_shared(Bytes::from(text)).map_err(|_| RequestError::BadRequest)
    }

    /// Sends `req` and waits for the response head, within the upstream timeout.
    pub(crate) async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, RequestError> {
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                tracing::debug!(upstream = %self.upstream, error = %error_chain(&e), "upstream failed");
                Err(RequestError::UpstreamError)
            }
            Err(_) => Err(RequestError::UpstreamTimeout),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Fields a filter may edit only with `filter_edit_protected = true`.
pub(crate) fn is_protected(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == HOST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_hop_by_hop_fields_are_protected() {
        assert!(is_protected(&HOST));
        assert!(is_protected(&HeaderName::from_static("upgrade")));
        assert!(!is_protected(&HeaderName::from_static(
            "x-pullman-filtered"
        )));
    }
}
