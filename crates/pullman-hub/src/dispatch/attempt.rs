//! Hand a request to a worker and get its answer: the one path every mode takes.
//!
//! A request takes a credit from its pool (at once, or after waiting in the queue), goes to
//! that worker as a REQUEST, its body follows, and the worker's first answer (a RESPONSE or
//! a VERDICT) comes back. When the worker cannot take it, the request goes back to the
//! front of the queue and the next free worker gets it; these are the retry rules, all here:
//! - a request the worker never saw (its link died before the REQUEST left) or rejected as
//!   retryable is tried again, if the hub can send its body again (none, or a copy it kept);
//! - a request a worker failed after it got it is tried again only if the caller allows it
//!   (`Job::retry_failed`: the pool's `retry_idempotent`, for an idempotent method) and the
//!   body can be sent again;
//! - anything else ends the request with the [`RequestError`] that says why.

use bytes::Bytes;
use http_body::Body;
use pullman_link::{Inbound, Stream};
use pullman_proto::{CancelReason, Frame, Verdict};
use tokio::time::Instant;

use super::in_flight::InFlight;
use super::job::{Job, Payload, Tried};
use super::pool::{Acquire, Lease, Leased};
use super::ptth::{try_ptth, PtthBody};
use super::pump::{Pump, PumpEnd};
use crate::error::RequestError;
use crate::http1::conn::BoxError;
use crate::metrics::WorkerFault;
use crate::request::request_id;

/// A worker's first answer to a request.
pub(crate) enum Answer {
    /// A pullman worker's first frame, with the stream the rest of the answer comes on.
    Link {
        first: First,
        stream: Stream,
        in_flight: InFlight,
    },
    /// A PTTH worker's HTTP/1.1 response; its body streams from the worker's connection.
    Http(http::Response<PtthBody>),
}

/// What a worker answered first.
pub(crate) enum First {
    /// A response of its own: respond mode, or a filter answering itself.
    Response(pullman_proto::Response),
    /// A filter passed the request (or the upstream's response) on.
    Verdict(Verdict),
}

/// A request no worker answered, and its body if the hub still has it (a filter pool may
/// then forward it unfiltered).
pub(crate) struct Failed<B> {
    pub(crate) error: RequestError,
    pub(crate) body: Payload<B>,
}

/// Hands `job` with `body` to a worker of its pool and waits for the worker's first answer,
/// trying the next worker where the retry rules allow.
pub(crate) async fn dispatch<B>(job: &Job<'_>, mut body: Payload<B>) -> Result<Answer, Failed<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let pool = job.pool;
    let failed = |error, body| Err(Failed { error, body });
    let mut front = false;
    loop {
        // A retry waits again from now; the first try from when the request began waiting.
        let queued_since = if front { Instant::now() } else { job.since };
        if queued_since >= job.deadline {
            return failed(RequestError::Deadline, body);
        }
        // A lease had at once is had at `queued_since`: the clock is read again only after
        // a wait.
        let (lease, leased) = match pool.acquire(front) {
            Acquire::Ready(lease) => (lease, queued_since),
            Acquire::Full => return failed(RequestError::QueueFull, body),
            Acquire::Wait(mut waiting) => {
                tracing::debug!(
                    request_id = request_id(job.head),
                    pool = pool.name(),
                    front,
                    "request queued"
                );
                let until = job.queue_deadline.min(job.deadline);
                match tokio::time::timeout_at(until, waiting.lease()).await {
                    Ok(Some(lease)) => (lease, Instant::now()),
                    Ok(None) => return failed(RequestError::ShuttingDown, body),
                    Err(_) if job.deadline < job.queue_deadline => {
                        return failed(RequestError::Deadline, body)
                    }
                    Err(_) => {
                        tracing::info!(
                            request_id = request_id(job.head),
                            pool = pool.name(),
                            waited = ?until.saturating_duration_since(queued_since),
                            "no worker was free within queue_timeout: 503"
                        );
                        return failed(RequestError::QueueTimeout, body);
                    }
                }
            }
        };
        job.record
            .queue_wait(leased.saturating_duration_since(queued_since));
        let tried = if lease.is_ptth() {
            match try_ptth(job, lease, &mut body).await {
                Tried::Answered(response) => Tried::Answered(Answer::Http(response)),
                Tried::Again => Tried::Again,
                Tried::Failed(error) => Tried::Failed(error),
            }
        } else {
            try_link(job, lease, leased, &mut body).await
        };
        match tried {
            Tried::Answered(answer) => return Ok(answer),
            Tried::Again => front = true,
            Tried::Failed(error) => return failed(error, body),
        }
    }
}

/// One try at a pullman worker: the REQUEST on a new stream of its link, the body after it,
/// and its first frame back.
async fn try_link<B>(
    job: &Job<'_>,
    mut lease: Lease,
    leased: Instant,
    body: &mut Payload<B>,
) -> Tried<Answer>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    let Leased::Link(link) = lease.reach() else {
        unreachable!("try_link is given a link's lease");
    };
    let link = link.clone();
    let remaining = job.deadline.saturating_duration_since(leased);
    let request = pullman_proto::Request {
        stream: 0,
        // In a response phase the body follows the RESPONSE head, not the REQUEST.
        end: job.response_head.is_some() || body.is_empty(),
        deadline_ms: remaining.as_millis().clamp(1, u32::MAX as u128) as u32,
        mode: job.mode,
        peer: job.client.addr.to_string(),
        tls: job.client.tls,
        head: job.head.clone(),
    };
    let Ok(mut stream) = link.open(request) else {
        // The worker died before the request reached it: next in line, at the front.
        lease.cancel();
        return Tried::Again;
    };
    let mut in_flight = InFlight::new(
        stream.sender(),
        job.pool.clone(),
        lease.spend(),
        job.head.clone(),
    );
    if let Some(head) = job.response_head {
        let mut head = head.clone();
        head.stream = stream.id();
        stream.sender().send_frame(Frame::Response(head));
    }
    let mut pump = match std::mem::replace(body, Payload::Gone) {
        Payload::Empty => {
            *body = Payload::Empty;
            None
        }
        Payload::Kept(bytes) => {
            *body = Payload::Kept(bytes.clone());
            let full = http_body_util::Full::new(bytes);
            Some(Pump::start(full, stream.sender(), job.body_limit))
        }
        Payload::Stream(b) => Some(Pump::start(b, stream.sender(), job.body_limit)),
        Payload::Gone => None,
    };

    let timer = job.record.service();
    let reply = wait_reply(&mut stream, &mut pump, job.deadline).await;
    drop(timer);
    let first = match reply {
        Reply::Response(r) => First::Response(r),
        Reply::Verdict(v) => First::Verdict(v),
        Reply::Undelivered if body.is_replayable() => {
            in_flight.complete();
            return Tried::Again;
        }
        Reply::Rejected { retryable, reason } => {
            let what = format!("worker rejected the request (retryable: {retryable}): {reason}");
            in_flight.note(WorkerFault::Rejected, retryable, &what);
            in_flight.complete();
            if retryable && body.is_replayable() {
                return Tried::Again;
            }
            return Tried::Failed(RequestError::Rejected);
        }
        Reply::WorkerFailed if job.retry_failed && body.is_replayable() => {
            in_flight.complete();
            return Tried::Again;
        }
        Reply::Undelivered | Reply::WorkerFailed => {
            in_flight.complete();
            return Tried::Failed(RequestError::WorkerError);
        }
        Reply::Deadline => {
            in_flight.cancel(CancelReason::Deadline);
            return Tried::Failed(RequestError::Deadline);
        }
        Reply::BodyTooLarge => {
            in_flight.cancel(CancelReason::Refused);
            return Tried::Failed(RequestError::BodyTooLarge);
        }
        Reply::BodyTooSlow => {
            in_flight.cancel(CancelReason::ClientGone);
            return Tried::Failed(RequestError::BodyTooSlow);
        }
        Reply::ClientGone => {
            in_flight.cancel(CancelReason::ClientGone);
            return Tried::Failed(RequestError::ClientGone);
        }
    };
    // Answered: the rest of the body (if any) goes on by itself.
    if let Some(pump) = pump.as_mut() {
        pump.detach();
    }
    Tried::Answered(Answer::Link {
        first,
        stream,
        in_flight,
    })
}

/// What came first on a stream after the request went out.
enum Reply {
    Response(pullman_proto::Response),
    Verdict(Verdict),
    /// The link died before the REQUEST left: the worker never saw it.
    Undelivered,
    Rejected {
        retryable: bool,
        reason: String,
    },
    WorkerFailed,
    Deadline,
    BodyTooLarge,
    BodyTooSlow,
    ClientGone,
}

async fn wait_reply(stream: &mut Stream, pump: &mut Option<Pump>, deadline: Instant) -> Reply {
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        let pumping = pump.is_some();
        tokio::select! {
            biased;
            item = stream.recv() => return match item {
                Inbound::Frame(Frame::Response(r)) => Reply::Response(r),
                Inbound::Frame(Frame::Verdict(v)) => Reply::Verdict(v),
                Inbound::Undelivered(_) => Reply::Undelivered,
                Inbound::Frame(Frame::Reject { retryable, reason, .. }) => {
                    Reply::Rejected { retryable, reason }
                }
                // Data before a RESPONSE, or a reset link: either way the worker failed.
                _ => Reply::WorkerFailed,
            },
            end = async { pump.as_mut().expect("guarded by pumping").wait().await }, if pumping => {
                match end {
                    PumpEnd::Done => *pump = None,
                    PumpEnd::TooLarge => return Reply::BodyTooLarge,
                    PumpEnd::TooSlow => return Reply::BodyTooSlow,
                    PumpEnd::ClientGone => return Reply::ClientGone,
                    // The stream ended under the pump: what ended it is in the inbox.
                    PumpEnd::StreamEnded => *pump = None,
                }
            }
            () = &mut sleep => return Reply::Deadline,
        }
    }
}
