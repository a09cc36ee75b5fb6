//! Filter mode: a worker decides on each request (pass, pass with edits, or answer it
//! itself); passed requests go to the pool's upstream; with `filter_response`, a worker of
//! the same pool then sees the upstream's response and passes, edits or replaces it.
//!
//! Who holds the body decides what "pass" forwards. With `filter_body = "none"` or
//! `"buffered"` the hub keeps the request body (the client's stream, or its buffered copy)
//! and forwards it after a VERDICT with END. With `"streamed"`, and in the response phase,
//! the body goes through the filter, and what the filter streams back after its VERDICT is
//! what goes on: one path whether the filter transforms the body or echoes it, with the
//! filter's flow-control windows bounding what the hub holds.
//!
//! When no filter answers in time or none is connected, `failure_mode` decides: `closed`
//! answers 503; `open` forwards unfiltered, as long as the body has not already gone to a
//! filter (otherwise the hub has nothing left to forward, and the request fails closed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use pullman_link::{RecvBody, Stream};
use pullman_proto::{CancelReason, EditOp, Frame, HeadView, HeaderEdit, Mode, Verdict};
use tokio::time::Instant;

use crate::body::{HubBody, WorkerBody};
use crate::config::{FailureMode, FilterBody, PoolConfig};
use crate::error::RequestError;
use crate::exchange::{pump_body, response, wait_head, Head, InFlight, Pump, Record};
use crate::hop::strip_hop_by_hop;
use crate::pool::{Acquire, Pool};
use crate::upstream::{is_protected, BoxError, UpstreamBody, UpstreamClient};

/// What a filter pool's filters decided, counted since the hub started: for the metrics
/// endpoint (`pullman_filter_total{pool, outcome}`).
#[derive(Debug, Default)]
pub(crate) struct FilterStats {
    /// Requests a filter passed, with or without edits.
    pub(crate) passed: AtomicU64,
    /// Requests a filter answered itself (blocked, say).
    pub(crate) answered: AtomicU64,
    /// Requests no filter decided on, forwarded unfiltered (`failure_mode = "open"`).
    pub(crate) failed_open: AtomicU64,
    /// Requests no filter decided on, answered 503 (`failure_mode = "closed"`, or the body
    /// had already gone to the filter).
    pub(crate) failed_closed: AtomicU64,
    /// Filters that sent an unusable verdict (a protected or malformed edit): 502.
    pub(crate) bad_verdicts: AtomicU64,
    /// Upstream responses a filter passed, with or without edits.
    pub(crate) responses_passed: AtomicU64,
    /// Upstream responses a filter replaced.
    pub(crate) responses_replaced: AtomicU64,
}

impl FilterStats {
    /// `(outcome, count)` pairs, for exporting.
    pub(crate) fn counts(&self) -> [(&'static str, u64); 7] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("passed", n(&self.passed)),
            ("answered", n(&self.answered)),
            ("failed_open", n(&self.failed_open)),
            ("failed_closed", n(&self.failed_closed)),
            ("bad_verdict", n(&self.bad_verdicts)),
            ("response_passed", n(&self.responses_passed)),
            ("response_replaced", n(&self.responses_replaced)),
        ]
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the hub hands a filter after the REQUEST (and after the RESPONSE head, in the
/// response phase), and what it gets back when no filter took it.
enum Handoff {
    /// No body.
    Nothing,
    /// A buffered body; the hub keeps its own copy.
    Bytes(Bytes),
    /// A body the hub streams through the filter: once started, the hub has no copy.
    Stream(UpstreamBody),
    /// The streamed body went (at least partly) to a filter that then failed.
    Gone,
}

/// A filter's answer.
enum Answer {
    /// Pass on; `body` is the stream carrying the filter's body, if it sends one.
    Pass {
        verdict: Verdict,
        body: Option<(Stream, InFlight)>,
    },
    /// The filter answered with a response of its own.
    Respond(Response<HubBody>),
    /// No filter answered; the body, if the hub still has it.
    Unavailable(Handoff),
}

/// Answers one client request routed to a filter pool.
pub(crate) async fn exchange(
    pool: Arc<Pool>,
    parts: Parts,
    head: HeadView,
    body: Option<Incoming>,
    peer: &str,
    started: Instant,
    record: &Record<'_>,
) -> Result<Response<HubBody>, RequestError> {
    let config = pool.config();
    let Some(upstream) = pool.upstream() else {
        tracing::error!(pool = pool.name(), "filter pool without an upstream client");
        return Err(RequestError::WorkerError);
    };
    let stats = &pool.filter_stats;

    // The request phase: what the filter sees of the body, and what the hub keeps.
    let (mode, handoff, mut kept) = match config.filter_body {
        FilterBody::None => (
            Mode::Filter,
            Handoff::Nothing,
            Kept::Client(body.map(boxed)),
        ),
        FilterBody::Buffered => {
            let limit = config.filter_body_limit.min(config.max_body_bytes);
            let bytes = buffer(body, limit, started + config.timeout).await?;
            let handoff = if bytes.is_empty() {
                Handoff::Nothing
            } else {
                Handoff::Bytes(bytes.clone())
            };
            (Mode::Filter, handoff, Kept::Bytes(bytes))
        }
        FilterBody::Streamed => {
            let handoff = body.map_or(Handoff::Nothing, |b| Handoff::Stream(boxed(b)));
            (Mode::FilterStreamed, handoff, Kept::Client(None))
        }
    };
    let answer = ask(&pool, record, mode, &head, peer, None, handoff).await?;
    let upstream_req = match answer {
        Answer::Respond(resp) => {
            count(&stats.answered);
            return Ok(resp);
        }
        Answer::Pass { verdict, body } => {
            let from_filter = body.is_some();
            let forward = match body {
                Some((stream, in_flight)) => filter_body(stream, in_flight, None)
                    .map_err(Into::into)
                    .boxed_unsync(),
                None => kept.into_body(config.max_body_bytes),
            };
            let req = upstream_request(
                &upstream,
                parts,
                verdict.target.as_deref(),
                &verdict.edits,
                config.filter_edit_protected,
                from_filter,
                forward,
            );
            match req {
                Ok(req) => {
                    count(&stats.passed);
                    req
                }
                Err(e) => {
                    count(&stats.bad_verdicts);
                    return Err(e);
                }
            }
        }
        Answer::Unavailable(handoff) => {
            let can_forward = !matches!(handoff, Handoff::Gone);
            if let Handoff::Stream(b) = handoff {
                kept = Kept::Client(Some(b));
            }
            fail(&config, stats, can_forward, "request")?;
            let forward = kept.into_body(config.max_body_bytes);
            upstream_request(&upstream, parts, None, &[], true, false, forward)?
        }
    };

    let sent_at = record.start();
    let upstream_resp = upstream.send(upstream_req).await;
    record.upstream(sent_at);
    let upstream_resp = upstream_resp?;
    if !config.filter_response {
        return Ok(client_response(upstream_resp));
    }

    // The response phase.
    let (rparts, rbody) = upstream_resp.into_parts();
    let mut headers = rparts.headers;
    strip_hop_by_hop(&mut headers);
    let response_head = pullman_proto::Response {
        stream: 0,
        end: rbody.is_end_stream(),
        status: rparts.status.as_u16(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::copy_from_slice(n.as_str().as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect(),
    };
    let handoff = if rbody.is_end_stream() {
        Handoff::Nothing
    } else {
        Handoff::Stream(rbody)
    };
    match ask(
        &pool,
        record,
        Mode::FilterResponse,
        &head,
        peer,
        Some(response_head),
        handoff,
    )
    .await?
    {
        Answer::Respond(resp) => {
            count(&stats.responses_replaced);
            Ok(resp)
        }
        Answer::Pass { verdict, body } => {
            count(&stats.responses_passed);
            if verdict.target.is_some() {
                tracing::warn!(
                    pool = pool.name(),
                    "a response-phase VERDICT carries a target; ignored"
                );
            }
            let mut headers = headers;
            let sets_length =
                apply_edits(&mut headers, &verdict.edits, config.filter_edit_protected).map_err(
                    |why| {
                        count(&stats.bad_verdicts);
                        tracing::warn!(pool = pool.name(), %why, "unusable response VERDICT");
                        RequestError::WorkerError
                    },
                )?;
            if !sets_length {
                headers.remove(CONTENT_LENGTH);
            }
            let length = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = match body {
                Some((stream, in_flight)) => filter_body(stream, in_flight, length),
                None => HubBody::Full(None),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = rparts.status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
        Answer::Unavailable(handoff) => {
            let body = match handoff {
                Handoff::Stream(b) => Some(HubBody::Upstream(b)),
                Handoff::Nothing => Some(HubBody::Full(None)),
                Handoff::Bytes(_) | Handoff::Gone => None,
            };
            fail(&config, stats, body.is_some(), "response")?;
            let mut resp = Response::new(body.unwrap_or(HubBody::Full(None)));
            *resp.status_mut() = rparts.status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
    }
}

/// No filter decided: fail open (forward unfiltered) when the pool says so and the hub
/// still has what to forward; otherwise fail closed.
fn fail(
    config: &PoolConfig,
    stats: &FilterStats,
    can_forward: bool,
    phase: &str,
) -> Result<(), RequestError> {
    if config.failure_mode == FailureMode::Open && can_forward {
        count(&stats.failed_open);
        tracing::warn!(pool = %config.name, phase, "no filter answered: forwarding unfiltered");
        Ok(())
    } else {
        count(&stats.failed_closed);
        tracing::warn!(pool = %config.name, phase, "no filter answered: 503");
        Err(RequestError::FilterUnavailable)
    }
}

/// The request body the hub kept for forwarding.
enum Kept {
    /// The client's body, still unread (or none).
    Client(Option<UpstreamBody>),
    /// The body as buffered for the filter.
    Bytes(Bytes),
}

impl Kept {
    fn into_body(self, limit: u64) -> UpstreamBody {
        match self {
            Kept::Client(Some(b)) => {
                Limited::new(b, usize::try_from(limit).unwrap_or(usize::MAX)).boxed_unsync()
            }
            Kept::Client(None) => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            Kept::Bytes(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        }
    }
}

/// The client's body as it crosses to a filter or the upstream.
fn boxed(body: Incoming) -> UpstreamBody {
    body.map_err(BoxError::from).boxed_unsync()
}

/// Reads the client's body whole for a buffered filter: 413 past `limit`.
async fn buffer(
    body: Option<Incoming>,
    limit: u64,
    deadline: Instant,
) -> Result<Bytes, RequestError> {
    let Some(body) = body else {
        return Ok(Bytes::new());
    };
    if body.size_hint().lower() > limit {
        return Err(RequestError::BodyTooLarge);
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Err(_) => Err(RequestError::Deadline),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(RequestError::BodyTooLarge)
        }
        Ok(Err(_)) => Err(RequestError::ClientGone),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// A body a filter streams back (to the upstream, or to the client in the response phase).
fn filter_body(stream: Stream, in_flight: InFlight, length: Option<u64>) -> HubBody {
    HubBody::Worker(WorkerBody {
        body: RecvBody::new(stream, length),
        in_flight,
    })
}

/// Hands one phase of a request to a filter of `pool` and waits for its answer, within the
/// pool's `filter_timeout` (queueing included).
async fn ask(
    pool: &Arc<Pool>,
    record: &Record<'_>,
    mode: Mode,
    head: &HeadView,
    peer: &str,
    response_head: Option<pullman_proto::Response>,
    mut handoff: Handoff,
) -> Result<Answer, RequestError> {
    let config = pool.config();
    let now = Instant::now();
    let deadline = now + config.filter_timeout;
    let queue_deadline = deadline.min(now + config.queue_timeout);
    let mut front = false;
    loop {
        let queued_since = if front { Instant::now() } else { now };
        if queued_since >= deadline {
            return Ok(Answer::Unavailable(handoff));
        }
        // As in respond mode: a retry waits again from now, the first try from the asking,
        // and the clock is read again only after a wait.
        let (lease, leased) = match pool.acquire(front) {
            Acquire::Ready(lease) => (lease, queued_since),
            Acquire::Full => return Ok(Answer::Unavailable(handoff)),
            Acquire::Wait(mut waiting) => {
                match tokio::time::timeout_at(queue_deadline, waiting.lease()).await {
                    Ok(Some(lease)) => (lease, Instant::now()),
                    Ok(None) => return Err(RequestError::ShuttingDown),
                    Err(_) => return Ok(Answer::Unavailable(handoff)),
                }
            }
        };
        record.queue_wait(leased.saturating_duration_since(queued_since));
        let remaining = deadline.saturating_duration_since(leased);
        let request = pullman_proto::Request {
            stream: 0,
            // In the response phase the body follows the RESPONSE head, not the REQUEST.
            end: response_head.is_some() || matches!(handoff, Handoff::Nothing),
            deadline_ms: remaining.as_millis().clamp(1, u32::MAX as u128) as u32,
            mode,
            peer: peer.to_string(),
            head: head.clone(),
        };
        let Ok(mut stream) = lease.link().open(request) else {
            lease.cancel();
            front = true;
            continue;
        };
        let mut in_flight = InFlight::new(stream.sender(), pool.clone(), lease.spend());
        if let Some(r) = &response_head {
            let mut r = r.clone();
            r.stream = stream.id();
            stream.sender().send_frame(Frame::Response(r));
        }
        let streamed = matches!(handoff, Handoff::Stream(_));
        let mut pump = match std::mem::replace(&mut handoff, Handoff::Gone) {
            Handoff::Nothing => {
                handoff = Handoff::Nothing;
                None
            }
            Handoff::Bytes(b) => {
                handoff = Handoff::Bytes(b.clone());
                Some(Pump(Some(tokio::spawn(pump_body(
                    Full::new(b),
                    stream.sender(),
                    u64::MAX,
                )))))
            }
            Handoff::Stream(b) => Some(Pump(Some(tokio::spawn(pump_body(
                b,
                stream.sender(),
                config.max_body_bytes,
            ))))),
            Handoff::Gone => None,
        };
        let service_start = record.start();
        let head = wait_head(&mut stream, &mut pump, deadline).await;
        record.service(service_start);
        match head {
            Head::Verdict(verdict) => {
                if let Some(p) = pump.as_mut() {
                    p.detach();
                }
                let body = if verdict.end {
                    in_flight.complete();
                    None
                } else {
                    Some((stream, in_flight))
                };
                return Ok(Answer::Pass { verdict, body });
            }
            Head::Response(r) => {
                if let Some(p) = pump.as_mut() {
                    p.detach();
                }
                return response(r, stream, in_flight).map(Answer::Respond);
            }
            Head::Undelivered | Head::Rejected { retryable: true } if !streamed => {
                in_flight.complete();
                front = true;
                continue;
            }
            Head::Undelivered | Head::Rejected { .. } | Head::WorkerFailed => {
                in_flight.complete();
                return Ok(Answer::Unavailable(handoff));
            }
            Head::Deadline => {
                in_flight.cancel(CancelReason::Deadline);
                return Ok(Answer::Unavailable(handoff));
            }
            Head::BodyTooLarge => {
                in_flight.cancel(CancelReason::Refused);
                return Err(RequestError::BodyTooLarge);
            }
            Head::ClientGone => {
                in_flight.cancel(CancelReason::ClientGone);
                return Err(RequestError::ClientGone);
            }
        }
    }
}

/// The request to send upstream: the client's method, target (or the filter's), and
/// end-to-end header fields with the filter's edits.
fn upstream_request(
    upstream: &UpstreamClient,
    parts: Parts,
    target: Option<&[u8]>,
    edits: &[HeaderEdit],
    allow_protected: bool,
    body_from_filter: bool,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, RequestError> {
    let uri = match target {
        None => {
            let original = parts.uri.path_and_query().cloned();
            upstream.uri(original.unwrap_or_else(|| PathAndQuery::from_static("/")))?
        }
        Some(t) => {
            let parsed = PathAndQuery::try_from(t)
                .ok()
                .filter(|_| t.first() == Some(&b'/') && !t.contains(&b'#'));
            let Some(target) = parsed else {
                tracing::warn!(target = %String::from_utf8_lossy(t), "filter gave an invalid target");
                return Err(RequestError::WorkerError);
            };
            upstream
                .uri(target)
                .map_err(|_| RequestError::WorkerError)?
        }
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // HTTP/2 clients send the authority, not a host field; the upstream gets one either way.
    if !headers.contains_key(HOST) {
        if let Some(value) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(HOST, value);
        }
    }
    let sets_length = apply_edits(&mut headers, edits, allow_protected).map_err(|why| {
        tracing::warn!(%why, "unusable VERDICT");
        RequestError::WorkerError
    })?;
    if body_from_filter && !sets_length {
        // The filter's body may differ in length from the client's.
        headers.remove(CONTENT_LENGTH);
    }
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Applies a VERDICT's edits in order. Returns whether one of them sets `content-length`;
/// fails on a malformed name or value, or a protected field the pool does not let filters
/// edit.
fn apply_edits(
    headers: &mut HeaderMap,
    edits: &[HeaderEdit],
    allow_protected: bool,
) -> Result<bool, String> {
    let mut sets_length = false;
    for edit in edits {
        let name = HeaderName::from_bytes(&edit.name).map_err(|_| {
            format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&edit.name)
            )
        })?;
        if !allow_protected && is_protected(&name) {
            return Err(format!(
                "edit of protected field {name} (allow with filter_edit_protected = true)"
            ));
        }
        match edit.op {
            EditOp::Remove => {
                headers.remove(&name);
            }
            op => {
                let value = HeaderValue::from_maybe_shared(edit.value.clone())
                    .map_err(|_| format!("invalid value for {name}"))?;
                if name == CONTENT_LENGTH {
                    let valid = value
                        .to_str()
                        .ok()
                        .is_some_and(|v| v.parse::<u64>().is_ok());
                    if !valid || op == EditOp::Append {
                        return Err("content-length must be set to one number".into());
                    }
                    sets_length = true;
                }
                if op == EditOp::Set {
                    headers.insert(name, value);
                } else {
                    headers.append(name, value);
                }
            }
        }
    }
    Ok(sets_length)
}

/// The upstream's response as the client gets it, unfiltered.
fn client_response(resp: Response<UpstreamBody>) -> Response<HubBody> {
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(HubBody::Upstream(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    strip_hop_by_hop(out.headers_mut());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(op: EditOp, name: &'static str, value: &'static str) -> HeaderEdit {
        HeaderEdit {
            op,
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
        }
    }

    #[test]
    fn edits_apply_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("cookie", HeaderValue::from_static("secret"));
        let sets_length = apply_edits(
            &mut headers,
            &[
                edit(EditOp::Append, "x-a", "2"),
                edit(EditOp::Set, "x-b", "3"),
                edit(EditOp::Set, "x-b", "4"),
                edit(EditOp::Remove, "cookie", ""),
            ],
            false,
        )
        .unwrap();
        assert!(!sets_length);
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(headers.get_all("x-b").iter().collect::<Vec<_>>(), ["4"]);
        assert!(!headers.contains_key("cookie"));
    }

    #[test]
    fn protected_fields_need_the_pool_to_allow_them() {
        for name in ["host", "connection", "transfer-encoding", "te", "upgrade"] {
            let edits = [edit(EditOp::Set, name, "x")];
            let err = apply_edits(&mut HeaderMap::new(), &edits, false).unwrap_err();
            assert!(err.contains("protected"), "{name}: {err}");
        }
        let mut headers = HeaderMap::new();
        apply_edits(&mut headers, &[edit(EditOp::Set, "host", "b")], true).unwrap();
        assert_eq!(headers["host"], "b");
    }

    #[test]
    fn malformed_edits_are_refused() {
        for edits in [
            [edit(EditOp::Set, "bad name", "x")],
            [edit(EditOp::Set, "x-a", "line\nbreak")],
            [edit(EditOp::Set, "content-length", "ten")],
            [edit(EditOp::Append, "content-length", "10")],
        ] {
            assert!(apply_edits(&mut HeaderMap::new(), &edits, false).is_err());
        }
        let mut headers = HeaderMap::new();
        let sets = apply_edits(
            &mut headers,
            &[edit(EditOp::Set, "content-length", "10")],
            false,
        )
        .unwrap();
        assert!(sets);
    }
}
