//! One try at a PTTH worker (reverse HTTP, as POTHEAD's workers speak it): the worker
//! dialed the hub and waits; the hub writes the request onto that connection as HTTP/1.1,
//! reads the response, and streams its body to the client. The exchange itself is
//! `http1::conn`'s; this file decides what its outcomes mean for the request, and gives the
//! connection back to the pool when the worker keeps it open.
//!
//! The retry rules are the link's: a connection found closed before the request was
//! written is a worker that never saw it (the request goes back to the front of the queue);
//! a worker that closes after is a failed worker (502, or the next worker where the job
//! allows it).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use super::job::{Job, Payload, Tried};
use super::pool::{Lease, Leased, Pool};
use crate::error::RequestError;
use crate::http1::codec::{encode_head_view, CodecError, Framing};
use crate::http1::conn::{exchange, BoxError, Conn, Failure, Home, OutBody, ResponseBody};
use crate::metrics::WorkerFault;
use crate::request::request_id;

/// A PTTH worker's response body, read from its connection.
pub(crate) type PtthBody = ResponseBody<PtthHome>;

/// The slot of the pool a PTTH worker's connection belongs to. The connection goes back to
/// it when a response ends cleanly and the worker keeps the connection open; if the
/// connection is closed instead (the usual `Connection: close`, a failure, a client gone),
/// dropping this removes the worker from the pool.
pub(crate) struct PtthHome {
    pool: Arc<Pool>,
    /// The worker's key in the pool and its id.
    worker: (usize, u64),
    returned: bool,
}

impl Home for PtthHome {
    fn checkin(mut self, conn: Conn) {
        self.returned = true;
        self.pool
            .ptth_idle_again(self.worker.0, self.worker.1, conn);
    }

    fn broken(&self, error: &BoxError) {
        let fault = match error.downcast_ref::<CodecError>() {
            Some(CodecError::Truncated(_) | CodecError::TruncatedChunked) => {
                Some(WorkerFault::LengthMismatch)
            }
            Some(_) => Some(WorkerFault::BadAnswer),
            None => None,
        };
        if let Some(fault) = fault {
            self.pool.metrics.worker_faults.count(fault);
        }
        tracing::warn!(
            pool = self.pool.name(),
            worker_id = self.worker.1,
            %error,
            "PTTH worker's response body broke off: the client's response is cut off"
        );
    }
}

impl Drop for PtthHome {
    fn drop(&mut self) {
        if !self.returned {
            self.pool.ptth_gone(self.worker.0, self.worker.1);
        }
    }
}

/// Writes `job`'s request with `body` on the leased PTTH connection and waits for the
/// response head, within the job's deadline.
pub(super) async fn try_ptth<B>(
    job: &Job<'_>,
    mut lease: Lease,
    body: &mut Payload<B>,
) -> Tried<http::Response<PtthBody>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Leased::Ptth(conn) = lease.reach() else {
        unreachable!("try_ptth is given a PTTH lease");
    };
    let conn = conn
        .take()
        .expect("a PTTH lease holds its connection until it is used");
    let home = PtthHome {
        pool: job.pool.clone(),
        worker: lease.worker(),
        returned: false,
    };
    lease.spend();
    if !conn.is_usable() {
        // Closed while it waited (or it sent bytes nobody asked for): the worker never saw
        // this request. Dropping the home removes it from the pool.
        tracing::debug!(
            pool = job.pool.name(),
            "PTTH worker had closed its connection"
        );
        return Tried::Again;
    }
    if job.response_head.is_some() {
        // Only a filter pool has a response phase, and PTTH listeners serve respond pools
        // (a reload that made the pool a filter pool leaves this listener's workers useless).
        tracing::warn!(
            pool = job.pool.name(),
            "a PTTH worker cannot filter: the pool's PTTH listener serves a filter pool"
        );
        return Tried::Failed(RequestError::WorkerError);
    }
    let (out, framing) = outgoing(body, job.body_limit);
    let mut head = BytesMut::with_capacity(job.head.raw().len() + 64);
    encode_head_view(job.head, framing, &mut head);
    let head_request = job.head.method() == b"HEAD";

    let timer = job.record.service();
    let exchanged = tokio::time::timeout_at(
        job.deadline,
        exchange(conn, head.freeze(), out, framing, head_request, home),
    )
    .await;
    drop(timer);
    let failure = match exchanged {
        Ok(Ok(response)) => return Tried::Answered(response),
        // The exchange was dropped: its connection is closed, and the worker sees it.
        Err(_) => return Tried::Failed(RequestError::Deadline),
        Ok(Err(failure)) => failure,
    };
    let pool = job.pool.name();
    let request_id = request_id(job.head);
    match failure {
        Failure::Body(e) if e.is::<LengthLimitError>() => Tried::Failed(RequestError::BodyTooLarge),
        Failure::Body(e) if crate::rate::too_slow(&*e).is_some() => {
            Tried::Failed(RequestError::BodyTooSlow)
        }
        Failure::Body(_) => Tried::Failed(RequestError::ClientGone),
        Failure::Codec(e) => {
            job.pool.metrics.worker_faults.count(WorkerFault::BadAnswer);
            tracing::warn!(pool, request_id, error = %e, "PTTH worker answered what is not HTTP/1.1: 502");
            Tried::Failed(RequestError::WorkerError)
        }
        failure if job.retry_failed && body.is_replayable() => {
            tracing::info!(pool, request_id, %failure, "PTTH worker failed the request: trying another");
            Tried::Again
        }
        failure => {
            tracing::warn!(pool, request_id, %failure, "PTTH worker failed the request: 502");
            Tried::Failed(RequestError::WorkerError)
        }
    }
}

/// The request body as it goes out, at most `limit` bytes, and how it is framed: by its
/// length when known, else chunked. A body the hub keeps stays kept for another try.
fn outgoing<B>(body: &mut Payload<B>, limit: u64) -> (Option<OutBody>, Framing)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match std::mem::replace(body, Payload::Gone) {
        Payload::Empty => {
            *body = Payload::Empty;
            (None, Framing::Length(0))
        }
        // Only a replayable body is tried again, so this is not met.
        Payload::Gone => (None, Framing::Length(0)),
        Payload::Kept(bytes) => {
            *body = Payload::Kept(bytes.clone());
            let framing = Framing::Length(bytes.len() as u64);
            let full = Full::new(bytes).map_err(|never| match never {});
            (Some(full.boxed_unsync()), framing)
        }
        Payload::Stream(b) => {
            let framing = b
                .size_hint()
                .exact()
                .map_or(Framing::Chunked, Framing::Length);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            (Some(Limited::new(b, limit).boxed_unsync()), framing)
        }
    }
}
