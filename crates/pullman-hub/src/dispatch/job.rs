//! What a request is when it is handed to a worker: the [`Job`], its body as far as the hub
//! still has it ([`Payload`]), and how one try at one worker ended ([`Tried`]).

use bytes::Bytes;
use pullman_proto::{HeadView, Mode};
use std::sync::Arc;
use tokio::time::Instant;

use super::pool::Pool;
use super::record::Record;
use crate::error::RequestError;

/// One request (or one phase of a filtered request) to hand to a worker of `pool`.
pub(crate) struct Job<'a> {
    pub(crate) pool: &'a Arc<Pool>,
    pub(crate) record: &'a Record<'a>,
    pub(crate) mode: Mode,
    pub(crate) head: &'a HeadView,
    pub(crate) client: &'a crate::request::Client,
    /// A filter's response phase: the upstream's response head, sent after the REQUEST;
    /// the body then follows it.
    pub(crate) response_head: Option<&'a pullman_proto::Response>,
    /// When the request started to wait: the first try's queue wait counts from here.
    pub(crate) since: Instant,
    /// When the worker's answer must have come.
    pub(crate) deadline: Instant,
    /// When a request still waiting for a worker gives up.
    pub(crate) queue_deadline: Instant,
    /// Whether a request a worker failed after receiving it may go to another worker.
    pub(crate) retry_failed: bool,
    /// The most body bytes the worker may be sent.
    pub(crate) body_limit: u64,
}

/// The body that follows the REQUEST, as far as the hub still has it.
pub(crate) enum Payload<B> {
    /// No body.
    Empty,
    /// A body the hub holds in full: it can be sent again to another worker.
    Kept(Bytes),
    /// A body streamed as it arrives: once it starts going to a worker, the hub has no copy.
    Stream(B),
    /// A streamed body that went (at least in part) to a worker that then failed.
    Gone,
}

impl<B> Payload<B> {
    /// A body the hub holds in full: [`Payload::Kept`], or [`Payload::Empty`] for no bytes.
    pub(crate) fn from_bytes(bytes: Bytes) -> Payload<B> {
        match bytes.is_empty() {
            true => Payload::Empty,
            false => Payload::Kept(bytes),
        }
    }

    /// Whether the request can go to another worker body and all.
    pub(super) fn is_replayable(&self) -> bool {
        matches!(self, Payload::Empty | Payload::Kept(_))
    }

    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Payload::Empty)
    }
}

/// How one try at one worker ended, with `A` the worker's answer.
pub(super) enum Tried<A> {
    Answered(A),
    /// The worker never saw the request, or failed it in a way the rules let another
    /// worker try: back to the front of the queue.
    Again,
    Failed(RequestError),
}
