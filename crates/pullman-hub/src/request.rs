//! A client request as the front parsed it, handed to its pool's mode, and the id that
//! names it (`x-request-id`) wherever it goes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::Version;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pullman_proto::HeadView;
use tokio::time::Instant;

/// The field a request's id travels in: in the head the worker gets, in a filter pool's
/// request upstream, in the response the client gets (the rule is in `front::request_id`).
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The W3C Trace Context fields: passed on as the client sent them when usable, else a new
/// `traceparent` (the rule is in `front::trace_context`).
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A new `traceparent`'s length: `00-` + 32 + `-` + 16 + `-` + 2.
pub(crate) const TRACEPARENT_LEN: usize = 55;

/// A `traceparent` the hub made, held in place: the head view copies its bytes, and only a
/// filter pool's request upstream needs it as a field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traceparent(pub(crate) [u8; TRACEPARENT_LEN]);

impl Traceparent {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn to_header_value(self) -> HeaderValue {
        // Hex digits and `-` are always a valid value.
        HeaderValue::from_bytes(&self.0).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// A request's id, and where it comes from.
#[derive(Debug, Clone)]
pub(crate) struct RequestId {
    /// The value, visible ASCII.
    pub(crate) value: HeaderValue,
    /// Whether the hub made it: then it is not among the client's fields, and whatever
    /// passes the request on adds it.
    pub(crate) is_new: bool,
    /// The W3C `traceparent` the hub made because the client sent no usable one
    /// (`front::trace_context`): like a new id, not among the client's fields, and added by
    /// whatever passes the request on.
    pub(crate) new_trace: Option<Traceparent>,
}

impl RequestId {
    /// The id as text, for log lines.
    pub(crate) fn as_str(&self) -> &str {
        self.value.to_str().unwrap_or_default()
    }
}

/// The id a request's head carries, for the log lines of the stages that have only the
/// head: every head the front builds has one.
pub(crate) fn request_id(head: &HeadView) -> &str {
    head.header_value(X_REQUEST_ID.as_str().as_bytes())
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or_default()
}

/// The connection a request came on: the client's address and whether it came over TLS.
/// Made once per connection.
#[derive(Debug)]
pub(crate) struct Client {
    /// The client's address as text (`ip:port`).
    pub(crate) addr: Box<str>,
    /// It came to the TLS listener (`[hub.tls]`): workers hear the request is `https`.
    pub(crate) tls: bool,
}

/// A client's request body, which must keep `hub.min_body_rate` while the hub reads it.
pub(crate) type ClientBody = crate::rate::MinRate<EndNoted<Incoming>>;

/// An HTTP/1 request body that notes when it has been read to its end. A response that
/// goes out before then (the hub's own error, a filter's block, a worker's early answer)
/// must say `connection: close`: the rest of the body is still on the connection, where
/// the client's next request would be, and the connection cannot be reused.
pub(crate) struct EndNoted<B> {
    body: B,
    ended: Option<Arc<AtomicBool>>,
}

impl<B: Body> EndNoted<B> {
    /// `body`, noting its end in the flag returned: none for a request without a body, or
    /// over HTTP/2, where an unread body costs only its stream.
    pub(crate) fn new(body: B, version: Version) -> (EndNoted<B>, Option<Arc<AtomicBool>>) {
        let watch = version < Version::HTTP_2 && !body.is_end_stream();
        let ended = watch.then(|| Arc::new(AtomicBool::new(false)));
        let noted = EndNoted {
            body,
            ended: ended.clone(),
        };
        (noted, ended)
    }

    fn note_end(&self) {
        if let Some(ended) = &self.ended {
            ended.store(true, Ordering::Release);
        }
    }
}

impl<B: Body + Unpin> Body for EndNoted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.body.is_end_stream() {
            this.note_end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client request on its way to a pool's workers.
pub(crate) struct ClientRequest<'a> {
    /// Method, target, version and fields, as hyper parsed them.
    pub(crate) parts: http::request::Parts,
    /// The same head as workers see it.
    pub(crate) head: HeadView,
    /// The request's id.
    pub(crate) id: &'a RequestId,
    /// The body, unless the request has none.
    pub(crate) body: Option<ClientBody>,
    /// The connection it came on.
    pub(crate) client: &'a Client,
    /// When the request arrived: its deadlines count from here.
    pub(crate) started: Instant,
}
