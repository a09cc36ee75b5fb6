//! Filters: workers of a filter pool decide on requests instead of answering them.
//!
//! The hub sends a filter each request of the pool. The filter returns a [`Verdict`]:
//! [`Verdict::Pass`] (optionally with header edits, a new target, or a new body), and the
//! hub forwards the request to the pool's upstream; or [`Verdict::Respond`] with a response
//! of its own (a 403, say), and the upstream never sees the request. With
//! `filter_response = true` the hub also sends each upstream response to a filter, which
//! passes it (optionally edited) or replaces it.
//!
//! What a filter sees of the request body depends on the pool's `filter_body`: nothing
//! (`none`), the whole body (`buffered`), or the body as it streams (`streamed`). When the
//! body streams through the filter, passing forwards it unchanged unless the filter took
//! it from the request and gave a new one with [`Pass::body`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http_body::Body;
use pullman_link::{Inbound, RecvBody, Stream, StreamSender};
use pullman_proto::{EditOp, Frame, HeaderEdit, Mode};

use crate::body::ResponseBody;
use crate::handler::{reject, send_body, send_response, to_http_head, to_http_request, Service};
use crate::RequestBody;

/// What a filter pool's worker runs.
///
/// Both methods get the request's head as the hub parsed it (with a
/// [`RequestInfo`](crate::RequestInfo) in its extensions). Implement it on a type of your
/// own and run it with [`Worker::run_filter`](crate::Worker::run_filter).
pub trait Filter: Send + Sync + 'static {
    /// Decides on a request. Its body is readable when the pool's `filter_body` is
    /// `buffered` or `streamed`; a filter that reads it in `streamed` mode must hand a body
    /// back with [`Pass::body`], since what it read is gone.
    fn request(&self, req: &mut http::Request<RequestBody>)
        -> impl Future<Output = Verdict> + Send;

    /// Decides on the upstream's response to `req` (pools with `filter_response = true`).
    /// `resp` has the upstream's status, headers and streaming body. The default passes
    /// the response unchanged.
    fn response(
        &self,
        req: &http::Request<()>,
        resp: &mut http::Response<RequestBody>,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (req, resp);
        std::future::ready(Verdict::pass())
    }
}

/// A filter's decision.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the request upstream (or the response to the client), as edited.
    Pass(Pass),
    /// Answer with this response instead: in the request phase the upstream never sees
    /// the request; in the response phase it replaces the upstream's response.
    Respond(http::Response<ResponseBody>),
}

impl Verdict {
    /// Pass unchanged.
    pub fn pass() -> Verdict {
        Verdict::Pass(Pass::new())
    }

    /// Answer with `resp`.
    pub fn respond(resp: http::Response<ResponseBody>) -> Verdict {
        Verdict::Respond(resp)
    }
}

impl From<Pass> for Verdict {
    fn from(pass: Pass) -> Verdict {
        Verdict::Pass(pass)
    }
}

/// A pass verdict and its edits, built in the order they apply.
///
/// ```
/// use http::header::{HeaderName, HeaderValue};
/// use pullman_worker::Pass;
///
/// let pass = Pass::new()
///     .set(HeaderName::from_static("x-user"), HeaderValue::from_static("42"))
///     .remove(HeaderName::from_static("cookie"))
///     .target("/v2/items");
/// ```
///
/// The hub refuses (502) edits of hop-by-hop fields and `host` unless the pool sets
/// `filter_edit_protected = true`.
#[derive(Debug, Default)]
pub struct Pass {
    edits: Vec<HeaderEdit>,
    target: Option<Bytes>,
    body: Option<ResponseBody>,
}

impl Pass {
    /// A pass with no edits.
    pub fn new() -> Pass {
        Pass::default()
    }

    fn edit(mut self, op: EditOp, name: HeaderName, value: Bytes) -> Pass {
        self.edits.push(HeaderEdit {
            op,
            name: Bytes::copy_from_slice(name.as_str().as_bytes()),
            value,
        });
        self
    }

    /// Replaces every field named `name` with one of value `value`.
    pub fn set(self, name: HeaderName, value: HeaderValue) -> Pass {
        let value = Bytes::copy_from_slice(value.as_bytes());
        self.edit(EditOp::Set, name, value)
    }

    /// Adds a field, keeping those already there.
    pub fn append(self, name: HeaderName, value: HeaderValue) -> Pass {
        let value = Bytes::copy_from_slice(value.as_bytes());
        self.edit(EditOp::Append, name, value)
    }

    /// Removes every field named `name`.
    pub fn remove(self, name: HeaderName) -> Pass {
        self.edit(EditOp::Remove, name, Bytes::new())
    }

    /// Sends the request to this target (path and query, starting with `/`) on the
    /// upstream. Request phase only.
    pub fn target(mut self, target: impl Into<String>) -> Pass {
        let target: String = target.into();
        self.target = (!target.is_empty()).then(|| Bytes::from(target));
        self
    }

    /// Forwards `body` instead of the original one (request or response). Unless an edit
    /// sets `content-length`, the hub sends it with the length `body` announces, or
    /// without one (chunked).
    pub fn body(mut self, body: ResponseBody) -> Pass {
        self.body = Some(body);
        self
    }
}

/// A filter as a [`Service`].
pub(crate) struct Filtered<F>(pub(crate) F);

impl<F: Filter> Service for Filtered<F> {
    const MODES: pullman_proto::Modes = pullman_proto::Modes::FILTER;

    async fn serve(self: Arc<Self>, req: pullman_proto::Request, stream: Stream) {
        let sender = stream.sender();
        let id = stream.id();
        let work = async {
            match req.mode {
                Mode::Filter | Mode::FilterStreamed => {
                    let carries_body = req.mode == Mode::FilterStreamed;
                    let Some(mut http_req) = to_http_request(req, stream) else {
                        reject(&sender, "request head is not valid HTTP");
                        return Ok(());
                    };
                    let verdict = self.0.request(&mut http_req).await;
                    let carried = carries_body
                        .then(|| std::mem::replace(http_req.body_mut(), RecvBody::empty()));
                    send_verdict(&sender, verdict, carried, true).await
                }
                Mode::FilterResponse => {
                    let Some(http_req) = to_http_head(req) else {
                        reject(&sender, "request head is not valid HTTP");
                        return Ok(());
                    };
                    let Some(mut resp) = upstream_response(stream).await else {
                        reject(&sender, "no valid upstream response head");
                        return Ok(());
                    };
                    let verdict = self.0.response(&http_req, &mut resp).await;
                    let carried = std::mem::replace(resp.body_mut(), RecvBody::empty());
                    send_verdict(&sender, verdict, Some(carried), false).await
                }
                Mode::Respond => {
                    reject(&sender, "this worker runs a filter, not a handler");
                    Ok(())
                }
            }
        };
        tokio::select! {
            done = work => {
                if let Err(why) = done {
                    tracing::debug!(stream = id, %why, "verdict not delivered");
                }
            }
            reason = sender.cancelled() => {
                tracing::debug!(stream = id, ?reason, "filter cancelled by the hub");
                reject(&sender, "cancelled");
            }
        }
    }
}

/// Reads the upstream's response head (a RESPONSE frame from the hub) and makes the
/// response whose body is the rest of the stream.
async fn upstream_response(mut stream: Stream) -> Option<http::Response<RequestBody>> {
    let Inbound::Frame(Frame::Response(head)) = stream.recv().await else {
        return None;
    };
    let mut headers = http::HeaderMap::with_capacity(head.headers.len());
    for (name, value) in head.headers {
        let name = HeaderName::from_bytes(&name).ok()?;
        let value = HeaderValue::from_maybe_shared(value).ok()?;
        headers.append(name, value);
    }
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = if head.end {
        RecvBody::empty()
    } else {
        RecvBody::new(stream, length)
    };
    let mut resp = http::Response::new(body);
    *resp.status_mut() = http::StatusCode::from_u16(head.status).ok()?;
    *resp.headers_mut() = headers;
    Some(resp)
}

/// Writes a verdict to the hub. `carried` is the body that flows through this filter (a
/// streamed request body, or the upstream's response body): passed on unless the verdict
/// brings its own. `request_phase` says whether a new target means anything.
async fn send_verdict(
    sender: &StreamSender,
    verdict: Verdict,
    carried: Option<RecvBody>,
    request_phase: bool,
) -> Result<(), String> {
    let mut pass = match verdict {
        Verdict::Respond(resp) => return send_response(sender, resp).await,
        Verdict::Pass(pass) => pass,
    };
    if !request_phase && pass.target.is_some() {
        tracing::warn!("a response verdict cannot change the target; ignored");
        pass.target = None;
    }
    let body = match pass.body.take() {
        Some(body) => Some(body),
        None => carried.map(ResponseBody::from_body),
    };
    let body = body.filter(|b| !b.is_end_stream());
    if let Some(n) = body.as_ref().and_then(|b| b.size_hint().exact()) {
        let sets_length = pass
            .edits
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(b"content-length"));
        if !sets_length {
            pass.edits.push(HeaderEdit {
                op: EditOp::Set,
                name: Bytes::from_static(b"content-length"),
                value: Bytes::from(n.to_string()),
            });
        }
    }
    sender.send_frame(Frame::Verdict(pullman_proto::Verdict {
        stream: sender.id(),
        end: body.is_none(),
        edits: pass.edits,
        target: pass.target,
    }));
    match body {
        Some(body) => send_body(sender, body).await,
        None => Ok(()),
    }
}
