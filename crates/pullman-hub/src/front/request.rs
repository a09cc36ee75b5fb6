//! One client request, from the front's point of view: route it, hand it to its pool's
//! mode, and make sure it ends with exactly one response: the answer, or the hub's own
//! error answer for the [`RequestError`] that stopped it.

use std::sync::Arc;

use std::sync::atomic::Ordering;

use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::head::head_view;
use super::Front;
use crate::body::HubBody;
use crate::config::PoolMode;
use crate::dispatch::{dispatch, keep_small, Payload, Pool, Record};
use crate::error::RequestError;
use crate::rate::MinRate;
use crate::request::{Client, ClientRequest, EndNoted, RequestId, X_REQUEST_ID};
use crate::respond;

/// Answers one client request. Its id (the client's `x-request-id` or the hub's) goes on
/// the response whoever made it (a worker, a filter, the upstream or the hub; a field of
/// the same name the answer carried is replaced) and on the log lines about the request.
pub(crate) async fn serve(
    front: &Front,
    req: Request<Incoming>,
    client: &Client,
) -> Response<HubBody> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let mut id = front.ids.assign(&mut parts.headers);
    id.new_trace = front.traces.context(&mut parts.headers);
    let pool = match front.state.route(&parts) {
        Ok(pool) => pool,
        Err(e) => return error_response(e, id),
    };
    let mut record = Record::new(&pool, front.state.is_recording());
    let (body, body_ended) = EndNoted::new(body, parts.version);
    let result = handle(front, &pool, &record, parts, body, &id, client, started).await;
    record.finish(result.as_ref().map(|_| ()).map_err(|e| *e));
    if let Err(RequestError::BodyTooSlow) = result {
        tracing::info!(peer = %client.addr, pool = pool.name(), request_id = id.as_str(), "request body slower than hub.min_body_rate: 408");
    }
    let mut resp = match result {
        Ok(resp) => with_id(resp, id),
        Err(e) => error_response(e, id),
    };
    if body_ended.is_some_and(|ended| !ended.load(Ordering::Acquire)) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `resp` with the request's id, in place of any the answer carried.
fn with_id(mut resp: Response<HubBody>, id: RequestId) -> Response<HubBody> {
    resp.headers_mut().insert(X_REQUEST_ID, id.value);
    resp
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    front: &Front,
    pool: &Arc<Pool>,
    record: &Record<'_>,
    parts: http::request::Parts,
    body: EndNoted<Incoming>,
    id: &RequestId,
    client: &Client,
    started: Instant,
) -> Result<Response<HubBody>, RequestError> {
    let config = pool.config();
    let head = head_view(&parts, id)?;
    // The head as it travels (request line and fields) is what the limit bounds; for
    // HTTP/1.1 hyper's read buffer has refused most oversized heads already.
    if head.raw().len() > front.max_header_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    if body.size_hint().lower() > config.max_body_bytes {
        return Err(RequestError::BodyTooLarge);
    }
    let mut request = ClientRequest {
        parts,
        head,
        id,
        body: (!body.is_end_stream()).then(|| MinRate::new(body, front.min_body_rate)),
        client,
        started,
    };
    match config.mode {
        PoolMode::Respond => {
            // A bodiless request (most) does not wait on keep_small's future at all.
            let body = match request.body.take() {
                None => Payload::Empty,
                Some(body) => {
                    let deadline = started + config.timeout;
                    keep_small(
                        body,
                        config.retry_body_bytes,
                        config.max_body_bytes,
                        deadline,
                    )
                    .await?
                }
            };
            let job = respond::job(pool, &config, record, &request);
            let answered = dispatch(&job, body).await;
            respond::answer(answered, request.parts.method == Method::HEAD)
        }
        // Boxed: the filter path's state (an upstream request, two worker streams) would
        // otherwise make every respond-mode request's future as large as its own.
        PoolMode::Filter => {
            let boxed = Box::pin(crate::filter::serve(pool, &config, record, request));
            boxed.await
        }
    }
}

/// The hub's own answer for a request that failed, said at debug level (the failures an
/// operator must hear of are logged where they happen, at info or warn).
fn error_response(e: RequestError, id: RequestId) -> Response<HubBody> {
    tracing::debug!(
        request_id = id.as_str(),
        status = e.status().as_u16(),
        error = %e,
        "answered with an error"
    );
    let mut resp = Response::new(HubBody::full(format!("pullman: {e}\n")));
    *resp.status_mut() = e.status();
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(secs) = e.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    with_id(resp, id)
}
