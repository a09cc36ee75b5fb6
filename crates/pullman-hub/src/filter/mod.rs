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

mod forward;

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Response};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full, Limited};
use pullman_link::Stream;
use pullman_proto::{HeadView, Mode, Verdict};
use tokio::time::Instant;

use crate::body::HubBody;
use crate::config::{FailureMode, FilterBody, PoolConfig};
use crate::dispatch::{
    dispatch, read_whole, Answer, Failed, First, InFlight, Job, Payload, Pool, Record,
};
use crate::error::RequestError;
use crate::hop::strip_hop_by_hop;
use crate::metrics::{count, FilterStats};
use crate::request::{Client, ClientBody, ClientRequest, TRACEPARENT, X_REQUEST_ID};
use crate::respond::worker_response;
use crate::upstream::UpstreamBody;
use forward::{apply_edits, client_response, upstream_request};

/// A filter's answer to one phase.
enum Decision {
    /// Pass on; `body` is the stream carrying the filter's body, if it sends one.
    Pass {
        verdict: Verdict,
        body: Option<(Stream, InFlight)>,
    },
    /// The filter answered with a response of its own.
    Respond(Response<HubBody>),
    /// No filter answered; the body, as far as the hub still has it.
    Unavailable(Payload<UpstreamBody>),
}

/// Answers one client request routed to a filter pool.
pub(crate) async fn serve(
    pool: &Arc<Pool>,
    config: &PoolConfig,
    record: &Record<'_>,
    request: ClientRequest<'_>,
) -> Result<Response<HubBody>, RequestError> {
    let ClientRequest {
        mut parts,
        head,
        id,
        body,
        client,
        started,
    } = request;
    let request_id = id.as_str();
    let Some(upstream) = pool.upstream() else {
        tracing::error!(
            request_id,
            pool = pool.name(),
            "filter pool without an upstream client"
        );
        return Err(RequestError::Internal);
    };
    // The upstream gets the request's id as the worker does: a filter's edits apply to it
    // as to any field.
    if id.is_new {
        parts.headers.insert(X_REQUEST_ID, id.value.clone());
    }
    if let Some(trace) = &id.new_trace {
        parts.headers.insert(TRACEPARENT, trace.to_header_value());
    }
    let stats = &pool.filter_stats;
    let is_head = parts.method == Method::HEAD;
    let phase = Phase {
        pool,
        config,
        record,
        head: &head,
        client,
        is_head,
    };

    // The request phase: what the filter sees of the body, and what the hub keeps.
    let (mode, payload, mut kept) = match config.filter_body {
        FilterBody::None => (Mode::Filter, Payload::Empty, Kept::Client(body.map(boxed))),
        FilterBody::Buffered => {
            let limit = config.filter_body_limit.min(config.max_body_bytes);
            let bytes = match body {
                None => Bytes::new(),
                Some(body) => read_whole(body, limit, started + config.timeout).await?,
            };
            let payload = Payload::from_bytes(bytes.clone());
            (Mode::Filter, payload, Kept::Bytes(bytes))
        }
        FilterBody::Streamed => {
            let payload = body.map_or(Payload::Empty, |b| Payload::Stream(boxed(b)));
            (Mode::FilterStreamed, payload, Kept::Client(None))
        }
    };
    let upstream_req = match phase.ask(mode, None, payload).await? {
        Decision::Respond(resp) => {
            count(&stats.answered);
            return Ok(resp);
        }
        Decision::Pass { verdict, body } => {
            let from_filter = body.is_some();
            let forward = match body {
                Some((stream, in_flight)) => HubBody::worker(stream, in_flight, None)
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
        Decision::Unavailable(payload) => {
            let can_forward = !matches!(payload, Payload::Gone);
            if let Payload::Stream(b) = payload {
                kept = Kept::Client(Some(b));
            }
            fail(config, stats, can_forward, "request", request_id)?;
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
    let payload = if rbody.is_end_stream() {
        Payload::Empty
    } else {
        Payload::Stream(rbody)
    };
    let decision = phase
        .ask(Mode::FilterResponse, Some(&response_head), payload)
        .await?;
    match decision {
        Decision::Respond(resp) => {
            count(&stats.responses_replaced);
            Ok(resp)
        }
        Decision::Pass { verdict, body } => {
            count(&stats.responses_passed);
            if verdict.target.is_some() {
                tracing::warn!(
                    request_id,
                    pool = pool.name(),
                    "a response-phase VERDICT carries a target; ignored"
                );
            }
            let sets_length =
                apply_edits(&mut headers, &verdict.edits, config.filter_edit_protected).map_err(
                    |why| {
                        count(&stats.bad_verdicts);
                        tracing::warn!(
                            request_id,
                            pool = pool.name(),
                            %why,
                            "unusable response VERDICT"
                        );
                        RequestError::WorkerError
                    },
                )?;
            if !sets_length {
                headers.remove(CONTENT_LENGTH);
            }
            let length = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .filter(|_| !is_head);
            let body = match body {
                Some((stream, in_flight)) => HubBody::worker(stream, in_flight, length),
                None => HubBody::Full(None),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = rparts.status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
        Decision::Unavailable(payload) => {
            let body = match payload {
                Payload::Stream(b) => Some(HubBody::Http(b)),
                Payload::Empty => Some(HubBody::Full(None)),
                Payload::Kept(_) | Payload::Gone => None,
            };
            fail(config, stats, body.is_some(), "response", request_id)?;
            let mut resp = Response::new(body.unwrap_or(HubBody::Full(None)));
            *resp.status_mut() = rparts.status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
    }
}

/// What both phases of one filtered request hand a filter.
struct Phase<'a> {
    pool: &'a Arc<Pool>,
    config: &'a PoolConfig,
    record: &'a Record<'a>,
    head: &'a HeadView,
    client: &'a Client,
    is_head: bool,
}

impl Phase<'_> {
    /// Hands one phase of the request to a filter and waits for its answer, within the
    /// pool's `filter_timeout` (queueing included). A filter that cannot answer leaves the
    /// decision to `failure_mode`, unless the request cannot go on anyway (its body too
    /// large, its client gone, the hub shutting down).
    async fn ask(
        &self,
        mode: Mode,
        response_head: Option<&pullman_proto::Response>,
        payload: Payload<UpstreamBody>,
    ) -> Result<Decision, RequestError> {
        let now = Instant::now();
        let deadline = now + self.config.filter_timeout;
        let job = Job {
            pool: self.pool,
            record: self.record,
            mode,
            head: self.head,
            client: self.client,
            response_head,
            since: now,
            deadline,
            queue_deadline: deadline.min(now + self.config.queue_timeout),
            retry_failed: false,
            body_limit: self.config.max_body_bytes,
        };
        match dispatch(&job, payload).await {
            Ok(Answer::Link {
                first: First::Verdict(verdict),
                stream,
                mut in_flight,
            }) => {
                let body = if verdict.end {
                    in_flight.complete();
                    None
                } else {
                    Some((stream, in_flight))
                };
                Ok(Decision::Pass { verdict, body })
            }
            Ok(Answer::Link {
                first: First::Response(r),
                stream,
                in_flight,
            }) => worker_response(r, stream, in_flight, self.is_head).map(Decision::Respond),
            // A PTTH worker answered (its listener names this pool, which a reload made a
            // filter pool): it cannot filter. Logged where it was found.
            Ok(Answer::Http(_)) => Err(RequestError::WorkerError),
            Err(Failed {
                error:
                    e @ (RequestError::BodyTooLarge
                    | RequestError::ClientGone
                    | RequestError::ShuttingDown),
                ..
            }) => Err(e),
            Err(Failed { body, .. }) => Ok(Decision::Unavailable(body)),
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
    request_id: &str,
) -> Result<(), RequestError> {
    if config.failure_mode == FailureMode::Open && can_forward {
        count(&stats.failed_open);
        tracing::warn!(request_id, pool = %config.name, phase, "no filter answered: forwarding unfiltered");
        Ok(())
    } else {
        count(&stats.failed_closed);
        tracing::warn!(request_id, pool = %config.name, phase, "no filter answered: 503");
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
fn boxed(body: ClientBody) -> UpstreamBody {
    body.boxed_unsync()
}
