//! A request a worker holds: delivered and not yet answered in full.

use std::sync::Arc;

use pullman_link::StreamSender;
use pullman_proto::{CancelReason, Frame, HeadView};

use super::pool::Pool;
use crate::metrics::WorkerFault;
use crate::request::request_id;

/// A request delivered to a worker and not yet answered in full. Ending it counts the
/// request down on its worker; dropped early (the client went away), it tells the worker
/// CANCEL.
#[derive(Debug)]
pub(crate) struct InFlight {
    sender: StreamSender,
    pool: Arc<Pool>,
    /// The worker's key in its pool and its id.
    worker: (usize, u64),
    /// The request's head, whose `x-request-id` names the request in log lines: kept, not
    /// read, so that a request no fault is logged for pays a reference count.
    head: HeadView,
    done: bool,
}

impl InFlight {
    pub(crate) fn new(
        sender: StreamSender,
        pool: Arc<Pool>,
        worker: (usize, u64),
        head: HeadView,
    ) -> InFlight {
        InFlight {
            sender,
            pool,
            worker,
            head,
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

    /// Tells the worker to stop (unless its answer is complete) and counts it down.
    pub(crate) fn cancel(&mut self, reason: CancelReason) {
        if !self.done {
            self.sender.send_frame(Frame::Cancel {
                stream: self.sender.id(),
                reason,
            });
            self.complete();
        }
    }

    /// The worker's answer to this request is one the hub cannot use: logs `what` once,
    /// counts it in the pool's worker faults, and cancels the stream (CANCEL `Refused`) so
    /// that the worker hears of it too.
    pub(crate) fn refuse(&mut self, fault: WorkerFault, what: &str) {
        self.note(fault, false, what);
        // Sent even when the worker's side of the stream has ended (a body shorter than its
        // length): the worker learns which of its answers the hub could not use.
        self.sender.send_frame(Frame::Cancel {
            stream: self.sender.id(),
            reason: CancelReason::Refused,
        });
        self.complete();
    }

    /// Logs and counts a fault of the worker's on this request; `expected` ones (a
    /// retryable REJECT, which the design uses to move work between hubs) only at debug level.
    pub(crate) fn note(&self, fault: WorkerFault, expected: bool, what: &str) {
        self.pool.metrics.worker_faults.count(fault);
        let (pool, worker_id, stream) = (self.pool.name(), self.worker.1, self.sender.id());
        let (fault, request_id) = (fault.label(), request_id(&self.head));
        if expected {
            tracing::debug!(request_id, pool, worker_id, stream, fault, "{what}");
        } else {
            tracing::warn!(request_id, pool, worker_id, stream, fault, "{what}");
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cancel(CancelReason::ClientGone);
    }
}
