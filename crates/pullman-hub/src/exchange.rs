//! One client request's trip through the hub: route, queue, worker, answer.
//!
//! Every accepted request leaves here with exactly one response: the worker's, or the hub's
//! own error answer for the [`RequestError`] that stopped it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pullman_link::{Inbound, RecvBody, Stream, StreamSender};
use pullman_proto::{CancelReason, Frame, HeadBuilder, HeadView, Mode, Version};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::body::{HubBody, WorkerBody};
use crate::config::PoolMode;
use crate::error::RequestError;
use crate::hop::is_hop_by_hop;
use crate::hub::HubShared;
use crate::metrics::outcome_index;
use crate::pool::{Acquire, Pool};

/// Answers one client request.
pub(crate) async fn serve(
    hub: Arc<HubShared>,
    req: Request<Incoming>,
    peer: &str,
) -> Response<HubBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let recording = hub.metrics_enabled.load(Ordering::Relaxed);
    let pool = match hub.route(&parts) {
        Ok(pool) => pool,
        Err(e) => {
            if recording {
                hub.unrouted.fetch_add(1, Ordering::Relaxed);
            }
            return error_response(e);
        }
    };
    let mut record = Record {
        pool: &pool,
        on: recording,
        done: false,
    };
    let result = exchange(&hub, &pool, parts, body, peer, started, &record).await;
    record.finish(result.as_ref().map(|_| ()).map_err(|e| *e));
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(e),
    }
}

/// Records one request in its pool's metrics, when recording is on. Dropped before
/// [`Record::finish`] (the client went away and hyper dropped the request), it counts
/// `client_gone`.
pub(crate) struct Record<'a> {
    pool: &'a Pool,
    on: bool,
    done: bool,
}

impl Record<'_> {
    pub(crate) fn queue_wait(&self, waited: Duration) {
        if self.on {
            self.pool.metrics.queue_wait.observe(waited);
        }
    }

    /// Reads the clock only when recording: that is the one `Instant::now` metrics add.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.on.then(Instant::now)
    }

    pub(crate) fn service(&self, since: Option<Instant>) {
        if let Some(since) = since {
            self.pool.metrics.service.observe(since.elapsed());
        }
    }

    /// A filter pool's upstream answered (or failed) after `since`, from [`Record::start`].
    pub(crate) fn upstream(&self, since: Option<Instant>) {
        if let Some(since) = since {
            self.pool.metrics.upstream.observe(since.elapsed());
        }
    }

    fn finish(&mut self, outcome: Result<(), RequestError>) {
        if self.on && !self.done {
            self.pool.metrics.count(outcome_index(outcome));
        }
        self.done = true;
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.finish(Err(RequestError::ClientGone));
    }
}

fn error_response(e: RequestError) -> Response<HubBody> {
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
    resp
}

async fn exchange(
    hub: &HubShared,
    pool: &Arc<Pool>,
    parts: http::request::Parts,
    body: Incoming,
    peer: &str,
    started: Instant,
    record: &Record<'_>,
) -> Result<Response<HubBody>, RequestError> {
    let config = pool.config();

    let head = head_view(&parts)?;
    // The head as it travels (request line and fields) is what the limit bounds; for
    // HTTP/1.1 hyper's read buffer has refused most oversized heads already.
    if head.raw().len() > hub.max_header_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    if body.size_hint().lower() > config.max_body_bytes {
        return Err(RequestError::BodyTooLarge);
    }
    let mut body = (!body.is_end_stream()).then_some(body);
    if config.mode == PoolMode::Filter {
        // Boxed: the filter path's state (an upstream request, two worker streams) would
        // otherwise make every respond-mode request's future as large as its own.
        return Box::pin(crate::filter::exchange(
            pool.clone(),
            parts,
            head,
            body,
            peer,
            started,
            record,
        ))
        .await;
    }
    // Only a request without a body can be given to another worker: a body already
    // streamed to the first one is gone.
    let bodiless = body.is_none();
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let deadline = started + config.timeout;
    let queue_deadline = started + config.queue_timeout;
    let mut front = false;

    loop {
        // A retry (front) waits again from now; the first try waits from arrival.
        let queued_since = if front { Instant::now() } else { started };
        // A lease had at once is had at `queued_since`: the clock is read again only after
        // a wait.
        let (lease, now) = match pool.acquire(front) {
            Acquire::Ready(lease) => (lease, queued_since),
            Acquire::Full => return Err(RequestError::QueueFull),
            Acquire::Wait(mut waiting) => {
                tracing::debug!(pool = pool.name(), front, "request queued");
                let until = queue_deadline.min(deadline);
                match tokio::time::timeout_at(until, waiting.lease()).await {
                    Ok(Some(lease)) => (lease, Instant::now()),
                    Ok(None) => return Err(RequestError::ShuttingDown),
                    Err(_) if until == deadline && deadline < queue_deadline => {
                        return Err(RequestError::Deadline)
                    }
                    Err(_) => return Err(RequestError::QueueTimeout),
                }
            }
        };
        record.queue_wait(now.saturating_duration_since(queued_since));
        let remaining = deadline.saturating_duration_since(now);
        let request = pullman_proto::Request {
            stream: 0,
            end: body.is_none(),
            deadline_ms: remaining.as_millis().clamp(1, u32::MAX as u128) as u32,
            mode: Mode::Respond,
            peer: peer.to_string(),
            head: head.clone(),
        };
        let Ok(mut stream) = lease.link().open(request) else {
            // The worker died before the request reached it: next in line, at the front.
            lease.cancel();
            front = true;
            continue;
        };
        let mut in_flight = InFlight::new(stream.sender(), pool.clone(), lease.spend());
        let mut pump = body.take().map(|b| {
            Pump(Some(tokio::spawn(pump_body(
                b,
                stream.sender(),
                config.max_body_bytes,
            ))))
        });

        let service_start = record.start();
        let head = wait_head(&mut stream, &mut pump, deadline).await;
        record.service(service_start);
        match head {
            Head::Verdict(_) => {
                tracing::debug!(
                    pool = pool.name(),
                    "VERDICT from a worker of a respond pool"
                );
                in_flight.cancel(CancelReason::Refused);
                return Err(RequestError::WorkerError);
            }
            Head::Response(r) => {
                if let Some(p) = pump.as_mut() {
                    p.detach();
                }
                return response(r, stream, in_flight);
            }
            Head::Rejected { retryable } => {
                in_flight.complete();
                if retryable && bodiless {
                    front = true;
                    continue;
                }
                return Err(RequestError::Rejected);
            }
            Head::Undelivered if bodiless => {
                in_flight.complete();
                front = true;
                continue;
            }
            Head::Undelivered | Head::WorkerFailed => {
                in_flight.complete();
                if config.retry_idempotent && idempotent && bodiless {
                    front = true;
                    continue;
                }
                return Err(RequestError::WorkerError);
            }
            Head::Deadline => {
                in_flight.cancel(CancelReason::Deadline);
                return Err(RequestError::Deadline);
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

/// What came first on a stream after the request went out.
pub(crate) enum Head {
    Response(pullman_proto::Response),
    /// A filter passed the request (filter pools only).
    Verdict(pullman_proto::Verdict),
    /// The link died before the REQUEST left: the worker never saw it.
    Undelivered,
    Rejected {
        retryable: bool,
    },
    WorkerFailed,
    Deadline,
    BodyTooLarge,
    ClientGone,
}

pub(crate) async fn wait_head(
    stream: &mut Stream,
    pump: &mut Option<Pump>,
    deadline: Instant,
) -> Head {
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        let pumping = pump.is_some();
        tokio::select! {
            biased;
            item = stream.recv() => return match item {
                Inbound::Frame(Frame::Response(r)) => Head::Response(r),
                Inbound::Frame(Frame::Verdict(v)) => Head::Verdict(v),
                Inbound::Undelivered(_) => Head::Undelivered,
                Inbound::Frame(Frame::Reject { retryable, reason, .. }) => {
                    tracing::debug!(%reason, retryable, "worker rejected a request");
                    Head::Rejected { retryable }
                }
                // Data before a RESPONSE, or a reset link: either way the worker failed.
                _ => Head::WorkerFailed,
            },
            end = async { pump.as_mut().expect("guarded by pumping").wait().await }, if pumping => {
                match end {
                    PumpEnd::Done => *pump = None,
                    PumpEnd::TooLarge => return Head::BodyTooLarge,
                    PumpEnd::ClientGone => return Head::ClientGone,
                    // The stream ended under the pump: what ended it is in the inbox.
                    PumpEnd::StreamEnded => *pump = None,
                }
            }
            () = &mut sleep => return Head::Deadline,
        }
    }
}

/// Builds the client's response from the worker's RESPONSE frame.
pub(crate) fn response(
    r: pullman_proto::Response,
    stream: Stream,
    mut in_flight: InFlight,
) -> Result<Response<HubBody>, RequestError> {
    let fail = |in_flight: &mut InFlight| {
        in_flight.cancel(CancelReason::Refused);
        RequestError::WorkerError
    };
    let Ok(status) = StatusCode::from_u16(r.status) else {
        return Err(fail(&mut in_flight));
    };
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    let mut length = None;
    for (name, value) in r.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_maybe_shared(value),
        ) else {
            return Err(fail(&mut in_flight));
        };
        if is_hop_by_hop(&name) {
            continue;
        }
        if name == CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        }
        headers.append(name, value);
    }
    let body = if r.end {
        in_flight.complete();
        HubBody::Full(None)
    } else {
        HubBody::Worker(WorkerBody {
            body: RecvBody::new(stream, length),
            in_flight,
        })
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The request head as the view every transport carries. HTTP/2's authority becomes a
/// `host` field so that workers see one shape whatever the client spoke.
fn head_view(parts: &http::request::Parts) -> Result<HeadView, RequestError> {
    let version = match parts.version {
        http::Version::HTTP_10 => Version::Http10,
        http::Version::HTTP_2 => Version::Http2,
        http::Version::HTTP_3 => Version::Http3,
        _ => Version::Http11,
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let authority = parts
        .uri
        .authority()
        .filter(|_| !parts.headers.contains_key(HOST));
    let count = parts.headers.len() + usize::from(authority.is_some());
    if count > u16::MAX as usize {
        return Err(RequestError::HeadersTooLarge);
    }
    let mut b = HeadBuilder::new(
        version,
        parts.method.as_str().as_bytes(),
        target.as_bytes(),
        count,
    );
    if let Some(a) = authority {
        b.header(b"host", a.as_str().as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    for (name, value) in &parts.headers {
        b.header(name.as_str().as_bytes(), value.as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    Ok(b.finish())
}

/// A request delivered to a worker and not yet answered in full. Dropped early (the client
/// went away), it tells the worker CANCEL.
#[derive(Debug)]
pub(crate) struct InFlight {
    sender: StreamSender,
    pool: Arc<Pool>,
    worker: (usize, u64),
    done: bool,
}

impl InFlight {
    pub(crate) fn new(sender: StreamSender, pool: Arc<Pool>, worker: (usize, u64)) -> InFlight {
        InFlight {
            sender,
            pool,
            worker,
            done: false,
        }
    }

    /// The worker's answer is complete.
    pub(crate) fn complete(&mut self) {
        if !self.done {
            self.done = true;
            self.pool.finished(self.worker.0, self.worker.1);
        }
    }

    pub(crate) fn cancel(&mut self, reason: CancelReason) {
        if !self.done {
            self.sender.send_frame(Frame::Cancel {
                stream: self.sender.id(),
                reason,
            });
            self.complete();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cancel(CancelReason::ClientGone);
    }
}

/// How streaming the request body to the worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    Done,
    TooLarge,
    ClientGone,
    StreamEnded,
}

/// The task copying a request body to the worker; aborted if the exchange fails first.
pub(crate) struct Pump(pub(crate) Option<JoinHandle<PumpEnd>>);

impl Pump {
    async fn wait(&mut self) -> PumpEnd {
        match &mut self.0 {
            Some(task) => task.await.unwrap_or(PumpEnd::ClientGone),
            None => PumpEnd::Done,
        }
    }

    /// The exchange succeeded: let the body finish on its own.
    pub(crate) fn detach(&mut self) {
        self.0 = None;
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

pub(crate) async fn pump_body<B>(mut body: B, sender: StreamSender, limit: u64) -> PumpEnd
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut sent = 0u64;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                }; // trailers are not forwarded
                sent += data.len() as u64;
                if sent > limit {
                    return PumpEnd::TooLarge;
                }
                let end = body.is_end_stream();
                if sender.send_data(data, end).await.is_err() {
                    return PumpEnd::StreamEnded;
                }
                if end {
                    return PumpEnd::Done;
                }
            }
            Some(Err(_)) => return PumpEnd::ClientGone,
            None => {
                return match sender.send_data(Bytes::new(), true).await {
                    Ok(()) => PumpEnd::Done,
                    Err(_) => PumpEnd::StreamEnded,
                }
            }
        }
    }
}
