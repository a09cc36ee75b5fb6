//! Redirect mode: large responses go from the worker straight to the client.
//!
//! When the hub's bandwidth is what limits a pool, a worker in redirect mode answers a `200`
//! whose body is at least [`Redirect::min_bytes`] long with `303 See Other` and a `Location`
//! on a small HTTP/1.1 server of its own: `http://HOST:PORT/KEY`. It parks the response
//! (status, headers and body, the body not yet read) under `KEY` until the client fetches it,
//! once: `GET /KEY` serves it and forgets it; a wrong, used or expired key gets `404`.
//! Parked responses expire after [`Redirect::expiry`] and are dropped with their bodies,
//! fetched or not. The hub passes the 303 through like any response.
//!
//! A body's length is its `content-length`, or else its exact size hint. A body of unknown
//! length is read until `min_bytes` have arrived or it ends: one that ends short is answered
//! directly (with the bytes read, now of known length), a longer one is parked with the bytes
//! read put back in front. So at most `min_bytes` per response are held in memory to decide.
//!
//! Only `200` answers to methods other than `HEAD` are redirected. `KEY` is 128 random bits
//! from the OS, in hex.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, LOCATION};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::addr::HubAddr;
use crate::body::{BoxError, ResponseBody};
use crate::error::WorkerError;
use crate::handler::{Handler, RawResponse, RequestInfo, ViewHandler};
use crate::RequestBody;

/// Default [`Redirect::min_bytes`]: 64 KiB. Below that, a second round trip from the client
/// costs more than the bytes it takes off the hub; set 0 to redirect every `200`, as POTHEAD
/// does.
pub const DEFAULT_MIN_BYTES: u64 = 64 * 1024;

/// Default [`Redirect::expiry`]: 20 s, POTHEAD's, time enough for a client to follow a
/// redirect even across a slow network.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(20);

/// Longest [`Redirect::expiry`] accepted: a parked response holds its body (and what makes
/// it) until then, and a client that follows a redirect does so within seconds.
pub const MAX_EXPIRY: Duration = Duration::from_secs(3600);

/// Most responses parked at once; past it, responses are answered directly through the hub.
/// Each holds its body, so this bounds the memory clients that never fetch can pin.
pub const MAX_PARKED: usize = 1024;

/// Most connections the redirect server serves at once; past it, new ones are closed.
const MAX_CONNECTIONS: usize = 1024;

/// How long a connection to the redirect server may take to send a request head: a client
/// that was just told where to go sends it at once.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Random bytes in a key: 128 bits cannot be guessed within an expiry.
const KEY_BYTES: usize = 16;

/// Redirect mode's settings, for [`WorkerBuilder::redirect`](crate::WorkerBuilder::redirect).
/// Applies to [`Worker::run`](crate::Worker::run)'s handler, not to filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Where the worker's server for parked responses listens; port 0 takes any free port
    /// (the worker logs the one it bound). Default `0.0.0.0:0`. Clients must be able to reach
    /// it.
    pub listen: SocketAddr,
    /// The host clients are sent to (a name or an IP address). Default: the worker's own
    /// address on its TCP link to the hub, as POTHEAD does; required with a `unix://` hub.
    pub host: Option<String>,
    /// Smallest body redirected, in bytes. Default [`DEFAULT_MIN_BYTES`].
    pub min_bytes: u64,
    /// How long a response stays parked unfetched. Default [`DEFAULT_EXPIRY`].
    pub expiry: Duration,
}

impl Default for Redirect {
    fn default() -> Redirect {
        Redirect {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            host: None,
            min_bytes: DEFAULT_MIN_BYTES,
            expiry: DEFAULT_EXPIRY,
        }
    }
}

impl Redirect {
    /// Checks the settings against the hub address the worker dials.
    pub(crate) fn validate(&self, hub: &HubAddr) -> Result<(), WorkerError> {
        if self.expiry.is_zero() || self.expiry > MAX_EXPIRY {
            return Err(WorkerError::OutOfRange {
                setting: "redirect expiry",
                value: format!("{:?}", self.expiry),
                expected: "more than zero and at most an hour",
            });
        }
        match &self.host {
            Some(host) => {
                let uri = format!("http://{}:1/", url_host(host));
                if host.is_empty() || uri.parse::<http::Uri>().is_err() {
                    return Err(WorkerError::OutOfRange {
                        setting: "redirect host",
                        value: host.clone(),
                        expected: "a host name or an IP address",
                    });
                }
            }
            None if matches!(hub, HubAddr::Unix(_)) => {
                return Err(WorkerError::OutOfRange {
                    setting: "redirect host",
                    value: "(none)".into(),
                    expected: "a host clients can reach: a unix:// hub gives no address of \
                               this worker to send them to",
                });
            }
            None => {}
        }
        Ok(())
    }
}

/// A host as it goes in a URL: IPv6 addresses in brackets.
fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_string(),
    }
}

/// The running redirect server; stops (with every connection) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    parking: Arc<Parking>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `settings.listen` and serves parked responses there.
    pub(crate) async fn start(settings: Redirect) -> Result<Server, WorkerError> {
        let listener = TcpListener::bind(settings.listen).await.map_err(|source| {
            WorkerError::RedirectBind {
                addr: settings.listen,
                source,
            }
        })?;
        let bound = listener
            .local_addr()
            .map_err(|source| WorkerError::RedirectBind {
                addr: settings.listen,
                source,
            })?;
        tracing::info!(listen = %bound, port = bound.port(), "redirect server listening");
        let parking = Arc::new(Parking {
            port: bound.port(),
            host: settings.host.as_deref().map(url_host),
            link_ip: Mutex::new(None),
            min_bytes: settings.min_bytes,
            expiry: settings.expiry,
            parked: Mutex::new(HashMap::new()),
            emptied: Notify::new(),
        });
        let task = tokio::spawn(serve(listener, parking.clone()));
        Ok(Server { parking, task })
    }

    pub(crate) fn parking(&self) -> Arc<Parking> {
        self.parking.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Responses waiting for their client, by key.
#[derive(Debug)]
pub(crate) struct Parking {
    port: u16,
    /// The configured host, ready for a URL.
    host: Option<String>,
    /// The worker's address on its current TCP link to the hub.
    link_ip: Mutex<Option<IpAddr>>,
    min_bytes: u64,
    expiry: Duration,
    parked: Mutex<HashMap<String, http::Response<ResponseBody>>>,
    /// Told when the last parked response goes.
    emptied: Notify,
}

impl Parking {
    /// Notes the worker's address on a new link to the hub, the default host of `Location`.
    pub(crate) fn set_link_ip(&self, ip: IpAddr) {
        *lock(&self.link_ip) = Some(ip);
    }

    /// Resolves once no response is parked.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if lock(&self.parked).is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// The handler's response, or a 303 to it parked here (see the module docs).
    async fn offer(
        self: &Arc<Self>,
        resp: http::Response<ResponseBody>,
    ) -> http::Response<ResponseBody> {
        let (parts, body) = resp.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (body, long) = self.long_enough(declared, body).await;
        let resp = http::Response::from_parts(parts, body);
        if !long {
            return resp;
        }
        match self.park(resp) {
            Ok(location) => {
                let mut see_other = http::Response::new(ResponseBody::empty());
                *see_other.status_mut() = StatusCode::SEE_OTHER;
                if let Ok(location) = http::HeaderValue::try_from(location) {
                    see_other.headers_mut().insert(LOCATION, location);
                }
                see_other
            }
            Err(resp) => *resp,
        }
    }

    /// [`offer`](Self::offer) for a view handler's response.
    async fn offer_raw(self: &Arc<Self>, resp: RawResponse) -> RawResponse {
        let declared = (resp.headers.iter())
            .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (body, long) = self.long_enough(declared, resp.body).await;
        let resp = RawResponse { body, ..resp };
        if !long {
            return resp;
        }
        match self.park(resp.into()) {
            Ok(location) => {
                let location = (Bytes::from_static(b"location"), Bytes::from(location));
                RawResponse::new(303, vec![location], ResponseBody::empty())
            }
            Err(resp) => (*resp).into(),
        }
    }

    /// Whether a body of `declared` length (or else its exact size hint, or else what
    /// reading it shows) is at least `min_bytes` long, and the body to send: any bytes read
    /// to decide are put back in front.
    async fn long_enough(&self, declared: Option<u64>, body: ResponseBody) -> (ResponseBody, bool) {
        match declared.or(body.size_hint().exact()) {
            Some(n) => (body, n >= self.min_bytes),
            None => peek(body, self.min_bytes).await,
        }
    }

    /// Parks `resp`; its URL, or `resp` back (boxed: the rare path) when it cannot be parked.
    fn park(
        self: &Arc<Self>,
        resp: http::Response<ResponseBody>,
    ) -> Result<String, Box<http::Response<ResponseBody>>> {
        let host = match &self.host {
            Some(host) => host.clone(),
            None => match *lock(&self.link_ip) {
                Some(ip) => url_host(&ip.to_string()),
                None => return Err(Box::new(resp)),
            },
        };
        let mut random = [0u8; KEY_BYTES];
        if let Err(e) = getrandom::fill(&mut random) {
            tracing::warn!(error = %e, "no random bytes for a key: answering through the hub");
            return Err(Box::new(resp));
        }
        let key: String = random.iter().map(|b| format!("{b:02x}")).collect();
        {
            let mut parked = lock(&self.parked);
            if parked.len() >= MAX_PARKED {
                tracing::debug!("{MAX_PARKED} responses parked already: answering through the hub");
                return Err(Box::new(resp));
            }
            parked.insert(key.clone(), resp);
        }
        let parking: Weak<Parking> = Arc::downgrade(self);
        let expiring = key.clone();
        let expiry = self.expiry;
        tokio::spawn(async move {
            tokio::time::sleep(expiry).await;
            if let Some(parking) = parking.upgrade() {
                if parking.take(&expiring).is_some() {
                    tracing::debug!("a parked response expired unfetched");
                }
            }
        });
        Ok(format!("http://{host}:{}/{key}", self.port))
    }

    /// The response parked under `key`, which is then forgotten.
    fn take(&self, key: &str) -> Option<http::Response<ResponseBody>> {
        let mut parked = lock(&self.parked);
        let resp = parked.remove(key);
        if parked.is_empty() {
            self.emptied.notify_waiters();
        }
        resp
    }

    /// The redirect server's answer to one request.
    fn fetch(&self, req: &http::Request<Incoming>) -> http::Response<ResponseBody> {
        if req.method() != Method::GET {
            let mut resp = status(StatusCode::METHOD_NOT_ALLOWED, "");
            resp.headers_mut()
                .insert(ALLOW, http::HeaderValue::from_static("GET"));
            return resp;
        }
        let key = req.uri().path().trim_start_matches('/');
        match self.take(key) {
            Some(resp) => resp,
            None => status(
                StatusCode::NOT_FOUND,
                "no such response: fetched already, expired, or never here\n",
            ),
        }
    }
}

fn status(code: StatusCode, text: &'static str) -> http::Response<ResponseBody> {
    let mut resp = http::Response::new(ResponseBody::from(text));
    *resp.status_mut() = code;
    resp
}

/// A lock whose holder cannot leave its data half changed: a panic elsewhere does not
/// poison it for the rest of the worker.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts connections to the redirect server and serves each in a task the server owns.
async fn serve(listener: TcpListener, parking: Arc<Parking>) {
    let mut connections = JoinSet::new();
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close.
                tracing::warn!(error = %e, "redirect server cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            continue;
        }
        let parking = parking.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = parking.fetch(&req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(sock), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "redirect server connection ended");
            }
        });
    }
}

/// Reads `body` until `min` bytes have come or it ends; the body to send (what was read put
/// back in front) and whether it is at least `min` long. A body that fails while read ends
/// with its error in the same place.
async fn peek(mut body: ResponseBody, min: u64) -> (ResponseBody, bool) {
    let mut read = VecDeque::new();
    let mut seen = 0u64;
    loop {
        if seen >= min {
            return (Replay::body(read, Some(body), None), true);
        }
        match body.frame().await {
            None => return (Replay::body(read, None, None), false),
            Some(Ok(frame)) => {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                read.push_back(frame);
            }
            Some(Err(e)) => return (Replay::body(read, None, Some(e)), false),
        }
    }
}

/// Frames already read, then an error or the rest of the body.
struct Replay {
    read: VecDeque<Frame<Bytes>>,
    error: Option<BoxError>,
    rest: Option<ResponseBody>,
}

impl Replay {
    fn body(
        read: VecDeque<Frame<Bytes>>,
        rest: Option<ResponseBody>,
        error: Option<BoxError>,
    ) -> ResponseBody {
        ResponseBody::from_body(Replay { read, error, rest })
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match (&self.rest, &self.error) {
            (None, None) => SizeHint::with_exact(read),
            _ => SizeHint::default(),
        }
    }
}

/// The user's handler in redirect mode: its large `200`s are parked and answered with 303.
pub(crate) struct Redirecting<H> {
    pub(crate) handler: H,
    pub(crate) parking: Arc<Parking>,
}

impl<H: Handler> Handler for Redirecting<H> {
    async fn call(&self, req: http::Request<RequestBody>) -> http::Response<ResponseBody> {
        let head = req.method() == Method::HEAD;
        let resp = self.handler.call(req).await;
        if head || resp.status() != StatusCode::OK {
            return resp;
        }
        self.parking.offer(resp).await
    }
}

impl<H: ViewHandler> ViewHandler for Redirecting<H> {
    async fn call(&self, info: RequestInfo, body: RequestBody) -> RawResponse {
        let head = info.head.method() == b"HEAD";
        let resp = self.handler.call(info, body).await;
        if head || resp.status != 200 {
            return resp;
        }
        self.parking.offer_raw(resp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parking(min_bytes: u64) -> Arc<Parking> {
        Arc::new(Parking {
            port: 8081,
            host: Some("worker.example".into()),
            link_ip: Mutex::new(None),
            min_bytes,
            expiry: DEFAULT_EXPIRY,
            parked: Mutex::new(HashMap::new()),
            emptied: Notify::new(),
        })
    }

    /// A 200 whose body comes through a channel: its length is not known.
    fn streamed(chunks: &[&'static str]) -> http::Response<ResponseBody> {
        let (tx, body) = ResponseBody::channel(chunks.len());
        for c in chunks {
            tx.try_send(Bytes::from_static(c.as_bytes())).unwrap();
        }
        http::Response::new(body)
    }

    async fn body_of(resp: http::Response<ResponseBody>) -> Bytes {
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    fn key_of(resp: &http::Response<ResponseBody>) -> String {
        let location = resp.headers()[LOCATION].to_str().unwrap();
        let key = location
            .strip_prefix("http://worker.example:8081/")
            .unwrap_or_else(|| panic!("{location}"));
        assert_eq!(key.len(), 2 * KEY_BYTES);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        key.to_string()
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_read_only_as_far_as_the_threshold() {
        let p = parking(10);
        // Ends short: answered directly, the bytes read now of known length.
        let (tx, body) = ResponseBody::channel(4);
        tx.try_send(Bytes::from_static(b"12345")).unwrap();
        drop(tx);
        let direct = p.offer(http::Response::new(body)).await;
        assert_eq!(direct.status(), StatusCode::OK);
        assert_eq!(direct.body().size_hint().exact(), Some(5));
        assert_eq!(body_of(direct).await, "12345");

        // Reaches the threshold with the rest still to come: parked whole.
        let (tx, body) = ResponseBody::channel(4);
        tx.try_send(Bytes::from_static(b"123456")).unwrap();
        tx.try_send(Bytes::from_static(b"7890")).unwrap();
        let redirected = p.offer(http::Response::new(body)).await;
        assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
        let parked = p.take(&key_of(&redirected)).unwrap();
        tx.try_send(Bytes::from_static(b"-and the rest")).unwrap();
        drop(tx);
        assert_eq!(body_of(parked).await, "1234567890-and the rest");
    }

    #[tokio::test]
    async fn a_declared_length_decides_without_reading() {
        let p = parking(4);
        let mut small = streamed(&["abcdef"]);
        small
            .headers_mut()
            .insert(CONTENT_LENGTH, http::HeaderValue::from_static("3"));
        assert_eq!(p.offer(small).await.status(), StatusCode::OK);
        let big = http::Response::new(ResponseBody::from("abcd"));
        let redirected = p.offer(big).await;
        assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
        assert_eq!(redirected.body().size_hint().exact(), Some(0));
        // Fetched once, then gone.
        let key = key_of(&redirected);
        assert_eq!(body_of(p.take(&key).unwrap()).await, "abcd");
        assert!(p.take(&key).is_none());
    }

    #[tokio::test]
    async fn a_view_handlers_response_is_parked_the_same_way() {
        let p = parking(4);
        let declared = |n: &'static str| {
            let length = (
                Bytes::from_static(b"Content-Length"),
                Bytes::from_static(n.as_bytes()),
            );
            RawResponse::new(200, vec![length], ResponseBody::from("abcdef"))
        };
        assert_eq!(p.offer_raw(declared("3")).await.status, 200);
        let redirected = p.offer_raw(declared("6")).await;
        assert_eq!(redirected.status, 303);
        let (name, location) = &redirected.headers[0];
        assert_eq!(&name[..], b"location");
        let redirected: http::Response<ResponseBody> = RawResponse::new(
            303,
            vec![(name.clone(), location.clone())],
            ResponseBody::empty(),
        )
        .into();
        let parked = p.take(&key_of(&redirected)).unwrap();
        assert_eq!(parked.headers()[CONTENT_LENGTH], "6");
        assert_eq!(body_of(parked).await, "abcdef");

        // Of unknown length and short: answered directly, every byte kept.
        let (tx, body) = ResponseBody::channel(1);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        drop(tx);
        let direct = p.offer_raw(RawResponse::new(200, Vec::new(), body)).await;
        assert_eq!(direct.status, 200);
        assert_eq!(direct.body.collect().await.unwrap().to_bytes(), "abc");
    }

    #[tokio::test]
    async fn past_the_bound_responses_are_answered_directly() {
        let p = parking(0);
        for _ in 0..MAX_PARKED {
            assert_eq!(
                p.offer(streamed(&["x"])).await.status(),
                StatusCode::SEE_OTHER
            );
        }
        assert_eq!(p.offer(streamed(&["x"])).await.status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfetched_response_expires_and_takes_its_body_with_it() {
        let p = parking(0);
        let (tx, body) = ResponseBody::channel(1);
        let redirected = p.offer(http::Response::new(body)).await;
        let key = key_of(&redirected);
        tokio::time::sleep(DEFAULT_EXPIRY + Duration::from_millis(1)).await;
        assert!(p.take(&key).is_none());
        // The body was dropped: whoever fed it learns nobody reads it.
        assert!(tx.is_closed());
        tokio::time::timeout(Duration::from_secs(1), p.wait_empty())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_filter_worker_refuses_redirect_mode() {
        struct PassAll;
        impl crate::Filter for PassAll {
            async fn request(&self, _: &mut http::Request<RequestBody>) -> crate::Verdict {
                crate::Verdict::Pass(crate::Pass::new())
            }
        }
        let worker = crate::Worker::builder()
            .hub("tcp://127.0.0.1:1".parse().unwrap())
            .pool("p")
            .token("t")
            .redirect(Redirect::default())
            .build();
        let refused = worker.run_filter(PassAll, std::future::pending()).await;
        let Err(WorkerError::Settings(why)) = refused else {
            panic!("{refused:?}");
        };
        assert!(why.contains("respond pools"), "{why}");
    }

    #[test]
    fn settings_are_checked() {
        let tcp: HubAddr = "tcp://127.0.0.1:7070".parse().unwrap();
        let unix: HubAddr = "unix:///tmp/w.sock".parse().unwrap();
        assert!(Redirect::default().validate(&tcp).is_ok());
        assert!(Redirect::default().validate(&unix).is_err());
        let with = |host: &str| Redirect {
            host: Some(host.into()),
            ..Redirect::default()
        };
        assert!(with("cdn.example").validate(&unix).is_ok());
        assert!(with("::1").validate(&unix).is_ok());
        assert!(with("").validate(&tcp).is_err());
        assert!(with("a b").validate(&tcp).is_err());
        let expiry = |expiry| Redirect {
            expiry,
            ..Redirect::default()
        };
        assert!(expiry(Duration::ZERO).validate(&tcp).is_err());
        assert!(expiry(MAX_EXPIRY * 2).validate(&tcp).is_err());
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("10.0.0.1"), "10.0.0.1");
    }
}
