//! The handler a worker runs, and how a REQUEST frame becomes an `http::Request` and an
//! `http::Response` becomes frames.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http_body::Body;
use pullman_link::{RecvBody, SendBodyError, Stream, StreamSender};
use pullman_proto::{Frame, HeadView, Response};

use crate::body::ResponseBody;
use crate::RequestBody;

/// What a worker runs for each request.
///
/// Implemented for every `Fn(Request) -> Future<Output = Response>` closure; implement it
/// by hand for a handler with state of its own.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        req: http::Request<RequestBody>,
    ) -> impl Future<Output = http::Response<ResponseBody>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(http::Request<RequestBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<ResponseBody>> + Send,
{
    fn call(
        &self,
        req: http::Request<RequestBody>,
    ) -> impl Future<Output = http::Response<ResponseBody>> + Send {
        self(req)
    }
}

/// What a worker runs for each request, taken as the hub sent it: the head read in place
/// ([`RequestInfo::head`]; no `http::Request` is built) and the body. For bindings to
/// other languages, which read the head through accessors of their own (the C API).
pub trait ViewHandler: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        info: RequestInfo,
        body: RequestBody,
    ) -> impl Future<Output = RawResponse> + Send;
}

/// A response as a [`ViewHandler`] gives it: the head as the RESPONSE frame carries it,
/// with no `http::HeaderMap` in between.
#[derive(Debug)]
pub struct RawResponse {
    /// The status, 100 to 999.
    pub status: u16,
    /// Header fields in order: names in lowercase, values free of CR, LF and NUL (the hub
    /// answers 502 for a response that breaks this). A `content-length` is added when
    /// there is none and the body knows its size.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body.
    pub body: ResponseBody,
}

impl RawResponse {
    /// A response of `status` with `headers` and `body`.
    pub fn new(status: u16, headers: Vec<(Bytes, Bytes)>, body: ResponseBody) -> RawResponse {
        RawResponse {
            status,
            headers,
            body,
        }
    }
}

impl From<http::Response<ResponseBody>> for RawResponse {
    fn from(resp: http::Response<ResponseBody>) -> RawResponse {
        let (parts, body) = resp.into_parts();
        let headers = (parts.headers.iter())
            .map(|(name, value)| {
                (
                    Bytes::copy_from_slice(name.as_str().as_bytes()),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect();
        RawResponse::new(parts.status.as_u16(), headers, body)
    }
}

impl From<RawResponse> for http::Response<ResponseBody> {
    /// The fields of a `RawResponse` were checked as they were added (the pull API checks
    /// them the way `http` does); one that is not valid anyway is left out.
    fn from(resp: RawResponse) -> http::Response<ResponseBody> {
        let mut out = http::Response::new(resp.body);
        *out.status_mut() = http::StatusCode::from_u16(resp.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in resp.headers {
            let name = HeaderName::from_bytes(&name);
            let value = HeaderValue::from_maybe_shared(value);
            if let (Ok(name), Ok(value)) = (name, value) {
                out.headers_mut().append(name, value);
            }
        }
        out
    }
}

/// What the hub said about a request besides its head and body; in the request's
/// extensions.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The client's address as the hub saw it (`ip:port`), or empty.
    pub peer: String,
    /// The client reached the hub over TLS: the request's URL is `https`.
    pub tls: bool,
    /// Milliseconds the hub gives this request, counted from its arrival here; 0 for none.
    pub deadline_ms: u32,
    /// The head exactly as the hub parsed it: raw bytes plus span table, read without a copy.
    pub head: HeadView,
}

/// What a worker runs on each stream the hub opens: a [`Handler`] (respond pools) or a
/// [`Filter`](crate::Filter) (filter pools).
pub(crate) trait Service: Send + Sync + 'static {
    /// The REQUEST modes it serves, announced in HELLO.
    const MODES: pullman_proto::Modes;

    /// Serves one stream to its end.
    fn serve(
        self: Arc<Self>,
        req: pullman_proto::Request,
        stream: Stream,
    ) -> impl Future<Output = ()> + Send;
}

/// A handler as a [`Service`].
pub(crate) struct Handled<H>(pub(crate) H);

impl<H: Handler> Service for Handled<H> {
    const MODES: pullman_proto::Modes = pullman_proto::Modes::RESPOND;

    async fn serve(self: Arc<Self>, req: pullman_proto::Request, stream: Stream) {
        if req.mode != pullman_proto::Mode::Respond {
            // A filter pool's request: answering it would block it with this response.
            reject(&stream.sender(), "this worker runs a handler, not a filter");
            return;
        }
        serve_stream(&self.0, req, stream).await
    }
}

/// A view handler as a [`Service`].
pub(crate) struct Viewed<H>(pub(crate) H);

impl<H: ViewHandler> Service for Viewed<H> {
    const MODES: pullman_proto::Modes = pullman_proto::Modes::RESPOND;

    async fn serve(self: Arc<Self>, req: pullman_proto::Request, stream: Stream) {
        let sender = stream.sender();
        if req.mode != pullman_proto::Mode::Respond {
            reject(&sender, "this worker runs a handler, not a filter");
            return;
        }
        let length = (req.head.header_value(b"content-length"))
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok());
        let body = request_body(req.end, length, stream);
        let info = RequestInfo {
            peer: req.peer,
            tls: req.tls,
            deadline_ms: req.deadline_ms,
            head: req.head,
        };
        let resp = self.0.call(info, body);
        answer(&sender, async {
            send_raw_response(&sender, resp.await).await
        })
        .await
    }
}

/// Builds the handler's request from a REQUEST frame; `None` if the head is not valid HTTP.
pub(crate) fn to_http_request(
    req: pullman_proto::Request,
    stream: Stream,
) -> Option<http::Request<RequestBody>> {
    let end = req.end;
    let head = to_http_head(req)?;
    let length = head
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Some(head.map(|()| request_body(end, length, stream)))
}

/// The body of a request whose REQUEST frame said `end` (no body) or not, and whose head
/// gave its `length` or not.
fn request_body(end: bool, length: Option<u64>, stream: Stream) -> RequestBody {
    if end {
        RecvBody::empty()
    } else {
        RecvBody::new(stream, length)
    }
}

/// The request head of a REQUEST frame, with its [`RequestInfo`]; `None` if it is not
/// valid HTTP.
pub(crate) fn to_http_head(req: pullman_proto::Request) -> Option<http::Request<()>> {
    let head = &req.head;
    let method = http::Method::from_bytes(head.method()).ok()?;
    let uri = http::Uri::from_maybe_shared(head.target_bytes()).ok()?;
    let version = match head.version() {
        pullman_proto::Version::Http10 => http::Version::HTTP_10,
        pullman_proto::Version::Http11 => http::Version::HTTP_11,
        pullman_proto::Version::Http2 => http::Version::HTTP_2,
        pullman_proto::Version::Http3 => http::Version::HTTP_3,
    };
    let mut headers = http::HeaderMap::with_capacity(head.header_count());
    for i in 0..head.header_count() {
        let (name, value) = head.header_bytes(i)?;
        let name = HeaderName::from_bytes(&name).ok()?;
        let value = HeaderValue::from_maybe_shared(value).ok()?;
        headers.append(name, value);
    }
    let mut out = http::Request::new(());
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.version_mut() = version;
    *out.headers_mut() = headers;
    out.extensions_mut().insert(RequestInfo {
        peer: req.peer,
        tls: req.tls,
        deadline_ms: req.deadline_ms,
        head: req.head,
    });
    Some(out)
}

/// Runs `handler` on one request and writes its answer to the stream. Ends the stream in
/// every case: with the response's last byte, or a REJECT if the hub cancelled.
pub(crate) async fn serve_stream<H: Handler>(
    handler: &H,
    req: pullman_proto::Request,
    stream: Stream,
) {
    let sender = stream.sender();
    let Some(http_req) = to_http_request(req, stream) else {
        reject(&sender, "request head is not valid HTTP");
        return;
    };
    let resp = handler.call(http_req);
    answer(&sender, async { send_response(&sender, resp.await).await }).await
}

/// Runs `sent` (which answers the request on its stream), or REJECTs if the hub cancels
/// first.
async fn answer(sender: &StreamSender, sent: impl Future<Output = Result<(), String>>) {
    let id = sender.id();
    tokio::select! {
        resp = sent => {
            if let Err(why) = resp {
                tracing::debug!(stream = id, %why, "response not delivered");
            }
        }
        reason = sender.cancelled() => {
            tracing::debug!(stream = id, ?reason, "request cancelled by the hub");
            reject(sender, "cancelled");
        }
    }
}

pub(crate) fn reject(sender: &StreamSender, reason: &str) {
    sender.send_frame(Frame::Reject {
        stream: sender.id(),
        retryable: false,
        reason: reason.into(),
    });
}

pub(crate) async fn send_response(
    sender: &StreamSender,
    resp: http::Response<ResponseBody>,
) -> Result<(), String> {
    send_raw_response(sender, resp.into()).await
}

/// Writes `resp` to the stream: its head as a RESPONSE frame (with a `content-length` from
/// the body when it has none and the body knows its size), then its body.
pub(crate) async fn send_raw_response(
    sender: &StreamSender,
    resp: RawResponse,
) -> Result<(), String> {
    let RawResponse {
        status,
        mut headers,
        body,
    } = resp;
    let has_length = (headers.iter()).any(|(name, _)| name.eq_ignore_ascii_case(b"content-length"));
    if !has_length {
        if let Some(n) = body.size_hint().exact() {
            headers.push((
                Bytes::from_static(b"content-length"),
                Bytes::from(n.to_string()),
            ));
        }
    }
    let end = body.is_end_stream();
    sender.send_frame(Frame::Response(Response {
        stream: sender.id(),
        end,
        status,
        headers,
    }));
    if end {
        return Ok(());
    }
    send_body(sender, body).await
}

/// Streams `body` on the stream after its head (RESPONSE or VERDICT) went out.
pub(crate) async fn send_body(sender: &StreamSender, body: ResponseBody) -> Result<(), String> {
    match pullman_link::send_body(body, sender, u64::MAX).await {
        Ok(()) => Ok(()),
        Err(SendBodyError::Body(e)) => {
            // Headers are gone already; aborting the stream tells the hub to cut the
            // client's response short instead of pretending it ended well.
            reject(sender, "response body failed");
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
