//! A filter pool's upstream: the HTTP client that forwards passed requests, and the rules
//! for which header fields cross the hop.
//!
//! One client per filter pool, with its own kept-alive connections: HTTP/1.1 for `http://`
//! upstreams (the hub's own client, `h1`, over `http1`), HTTP/2 with prior
//! knowledge for `h2c://` (hyper's), and TLS for `https://`, then HTTP/2 or HTTP/1.1 as ALPN
//! settles (hyper's, with rustls). Bodies stream both ways; the client holds no more of a
//! body than one read or one frame.
//!
//! # Layout
//! - `h1`: the HTTP/1.1 client: idle connections, one request at a time on each.
//! - `https`: the TLS settings of an `https://` upstream, and the files they were read from.
//! - `idle`: the bound on a pause within a response body, for both protocols.

mod h1;
mod https;
mod idle;

pub(crate) use https::check as check_tls;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HOST};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{PoolConfig, PoolMode, Upstream, UpstreamScheme, UpstreamTls};
use crate::error::RequestError;
use crate::hop::is_hop_by_hop;
use h1::H1Client;
use idle::IdleTimeout;

pub(crate) use crate::http1::conn::BoxError;
/// A body crossing the upstream hop: a request body on its way (the client's, the hub's
/// buffered copy, or a filter's), or the upstream's response body.
pub(crate) type UpstreamBody = crate::http1::conn::OutBody;

/// How long an idle h2c or https connection is kept for reuse: long enough to carry bursts
/// that come seconds apart, shorter than the 60 s or more most servers keep them.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client of one filter pool's upstream.
pub(crate) struct UpstreamClient {
    client: Protocol,
    /// For `https://`: the TLS files as they were read to build `client`.
    tls_files: Option<https::TlsFiles>,
    upstream: Upstream,
    timeout: Duration,
    /// Response bodies cut off for pausing `timeout`.
    stalls: Arc<AtomicU64>,
}

enum Protocol {
    H1(Arc<H1Client>),
    H2c(Box<Client<HttpConnector, UpstreamBody>>),
    Https(Box<Client<HttpsConnector<HttpConnector>, UpstreamBody>>),
    /// The TLS files went missing after the config's check: every request fails (502),
    /// and this says why.
    Unusable(String),
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("upstream", &self.upstream.to_string())
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// The client of a filter pool (`None` for a respond pool); it counts the response
    /// bodies it cuts off in `stalls`.
    pub(crate) fn for_pool(config: &PoolConfig, stalls: &Arc<AtomicU64>) -> Option<UpstreamClient> {
        if config.mode != PoolMode::Filter {
            return None;
        }
        let upstream = config.upstream.as_ref()?;
        Some(UpstreamClient::new(
            upstream,
            config.upstream_tls.as_ref(),
            config.upstream_connect_timeout,
            config.upstream_timeout,
            stalls.clone(),
        ))
    }

    /// Whether `a` and `b` would build the same client.
    pub(crate) fn same_settings(a: &PoolConfig, b: &PoolConfig) -> bool {
        a.mode == b.mode
            && a.upstream == b.upstream
            && a.upstream_tls == b.upstream_tls
            && a.upstream_connect_timeout == b.upstream_connect_timeout
            && a.upstream_timeout == b.upstream_timeout
    }

    /// Whether the TLS files `config` names read differently now than when this client
    /// was built (renewed in place on disk), or could not be read then: a reload then
    /// builds a new client, as for new settings.
    pub(crate) fn tls_files_changed(&self, config: &PoolConfig) -> bool {
        match (&self.client, &self.tls_files) {
            (Protocol::Unusable(_), _) => true,
            (_, Some(built_from)) => https::TlsFiles::read(config.upstream_tls.as_ref())
                .map_or(true, |now| now != *built_from),
            (_, None) => false,
        }
    }

    pub(crate) fn new(
        upstream: &Upstream,
        tls: Option<&UpstreamTls>,
        connect_timeout: Duration,
        timeout: Duration,
        stalls: Arc<AtomicU64>,
    ) -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .timer(hyper_util::rt::TokioTimer::new());
        let mut tls_files = None;
        let client = match upstream.scheme {
            UpstreamScheme::Http => Protocol::H1(Arc::new(H1Client::new(
                &upstream.authority,
                connect_timeout,
            ))),
            UpstreamScheme::H2c => {
                builder.http2_only(true);
                Protocol::H2c(Box::new(builder.build(connector)))
            }
            UpstreamScheme::Https => match https::TlsFiles::read(tls).and_then(|files| {
                let config = files.client_config()?;
                tls_files = Some(files);
                Ok(config)
            }) {
                Ok(config) => {
                    connector.enforce_http(false);
                    let connector = HttpsConnectorBuilder::new()
                        .with_tls_config(config)
                        .https_only()
                        .enable_all_versions()
                        .wrap_connector(connector);
                    Protocol::Https(Box::new(builder.build(connector)))
                }
                Err(why) => {
                    tracing::error!(%upstream, %why, "the upstream's TLS settings cannot be read; its requests fail until they can and the config is reloaded");
                    Protocol::Unusable(why)
                }
            },
        };
        UpstreamClient {
            client,
            tls_files,
            upstream: upstream.clone(),
            timeout,
            stalls,
        }
    }

    /// The absolute URI of `target` on the upstream.
    pub(crate) fn uri(&self, target: PathAndQuery) -> Result<http::Uri, RequestError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(match self.upstream.scheme {
            UpstreamScheme::Https => Scheme::HTTPS,
            UpstreamScheme::Http | UpstreamScheme::H2c => Scheme::HTTP,
        });
        parts.authority = Some(self.upstream.authority.clone());
        parts.path_and_query = Some(target);
        http::Uri::from_parts(parts).map_err(|_| RequestError::BadRequest)
    }

    /// Sends `req` and waits for the response head, within the upstream timeout; the body
    /// then fails if the upstream pauses within it for as long.
    pub(crate) async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        let sent = async {
            match &self.client {
                Protocol::H1(client) => client
                    .send(req)
                    .await
                    .map(|resp| resp.map(|b| self.guard(b)))
                    .map_err(|e| error_chain(&e)),
                Protocol::H2c(client) => hyper_request(client, req)
                    .await
                    .map(|resp| resp.map(|b| self.guard(b))),
                Protocol::Https(client) => hyper_request(client, req)
                    .await
                    .map(|resp| resp.map(|b| self.guard(b))),
                Protocol::Unusable(why) => Err(why.clone()),
            }
        };
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(error)) => {
                tracing::debug!(upstream = %self.upstream, %error, "upstream failed");
                Err(RequestError::UpstreamError)
            }
            Err(_) => Err(RequestError::UpstreamTimeout),
        }
    }

    /// A response body that fails, and is counted in `stalls`, once the upstream pauses in
    /// it for `timeout`.
    fn guard<B>(&self, body: B) -> UpstreamBody
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        IdleTimeout::new(body, self.timeout, self.stalls.clone()).boxed_unsync()
    }
}

/// A request on one of hyper's clients (h2c, https): the response head, or why not.
async fn hyper_request<C>(
    client: &Client<C, UpstreamBody>,
    req: Request<UpstreamBody>,
) -> Result<Response<Incoming>, String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    client.request(req).await.map_err(|e| error_chain(&e))
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

/// A body the test feeds chunk by chunk, ended when the sender is dropped: for the tests of
/// `h1` and `idle`.
#[cfg(test)]
pub(crate) struct Fed(pub(crate) tokio::sync::mpsc::Receiver<Bytes>);

#[cfg(test)]
impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|d| d.map(|d| Ok(http_body::Frame::data(d))))
    }
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
