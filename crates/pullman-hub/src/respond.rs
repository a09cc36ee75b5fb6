//! Respond mode: a worker produces the response. Also the one place a worker's RESPONSE
//! becomes the client's response, which a filter answering a request itself uses too.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Method, Response, StatusCode};
use pullman_link::Stream;
use pullman_proto::Mode;

use crate::body::HubBody;
use crate::config::PoolConfig;
use crate::dispatch::{Answer, Failed, First, InFlight, Job, Pool, PtthBody, Record};
use crate::error::RequestError;
use crate::hop::{is_hop_by_hop, strip_hop_by_hop};
use crate::metrics::WorkerFault;
use crate::request::ClientRequest;
use http_body_util::BodyExt;

/// What handing a request of a respond pool to a worker takes: its deadlines, and whether
/// a worker that failed with it may be replaced (`retry_idempotent`, for an idempotent
/// method). The front awaits `dispatch` itself, so respond mode adds no future of its own
/// around the request's.
pub(crate) fn job<'a>(
    pool: &'a Arc<Pool>,
    config: &PoolConfig,
    record: &'a Record<'a>,
    request: &'a ClientRequest<'a>,
) -> Job<'a> {
    let idempotent = matches!(
        request.parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    Job {
        pool,
        record,
        mode: Mode::Respond,
        head: &request.head,
        client: request.client,
        response_head: None,
        since: request.started,
        deadline: request.started + config.timeout,
        queue_deadline: request.started + config.queue_timeout,
        retry_failed: config.retry_idempotent && idempotent,
        body_limit: config.max_body_bytes,
    }
}

/// The client's response from what `dispatch` brought back for a respond pool.
pub(crate) fn answer<B>(
    answered: Result<Answer, Failed<B>>,
    is_head: bool,
) -> Result<Response<HubBody>, RequestError> {
    let (first, stream, mut in_flight) = match answered.map_err(|failed| failed.error)? {
        Answer::Link {
            first,
            stream,
            in_flight,
        } => (first, stream, in_flight),
        Answer::Http(response) => return Ok(http_response(response)),
    };
    match first {
        First::Response(r) => worker_response(r, stream, in_flight, is_head),
        First::Verdict(_) => {
            in_flight.refuse(
                WorkerFault::BadAnswer,
                "VERDICT from a worker of a respond pool",
            );
            Err(RequestError::WorkerError)
        }
    }
}

/// The client's response from a PTTH worker's: its status, its end-to-end fields, and its
/// body as it streams from the worker's connection (framed by the hub for the client).
fn http_response(response: Response<PtthBody>) -> Response<HubBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, HubBody::Http(body.boxed_unsync()))
}

/// The client's response from a worker's RESPONSE frame, without hop-by-hop fields (and
/// those `connection` names); the body, if any, streams on `stream`. An unusable head (a
/// status that is not final, a bad header name or value, a `content-length` that is not one
/// number) is the worker's fault: it is refused and the client gets 502.
pub(crate) fn worker_response(
    r: pullman_proto::Response,
    stream: Stream,
    mut in_flight: InFlight,
    is_head: bool,
) -> Result<Response<HubBody>, RequestError> {
    let mut refuse = |what: String| {
        in_flight.refuse(WorkerFault::BadAnswer, &what);
        RequestError::WorkerError
    };
    // A 1xx is not a final response: the client would get 500 (HTTP/1.1) or a reset.
    let status = match StatusCode::from_u16(r.status) {
        Ok(status) if !status.is_informational() => status,
        _ => return Err(refuse(format!("invalid final status {}", r.status))),
    };
    // One more for the request's id, which the front adds.
    let mut headers = HeaderMap::with_capacity(r.headers.len() + 1);
    let mut length = None;
    let mut hop_by_hop = false;
    for (name, value) in r.headers {
        let Ok(name) = HeaderName::from_bytes(&name) else {
            let name = String::from_utf8_lossy(&name);
            return Err(refuse(format!("invalid response header name {name:?}")));
        };
        let Ok(value) = HeaderValue::from_maybe_shared(value) else {
            return Err(refuse(format!("invalid value of response header {name}")));
        };
        if name == CONTENT_LENGTH {
            let parsed = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            if parsed.is_none() || length.is_some() {
                return Err(refuse("content-length is not one number".into()));
            }
            length = parsed;
        }
        hop_by_hop |= is_hop_by_hop(&name);
        headers.append(name, value);
    }
    if hop_by_hop {
        strip_hop_by_hop(&mut headers);
    }
    // A response to HEAD, and 204 and 304 responses, carry no body whatever their length
    // says.
    let bodiless =
        is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let body = if r.end {
        in_flight.complete();
        HubBody::Full(None)
    } else {
        HubBody::worker(stream, in_flight, length.filter(|_| !bodiless))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}
