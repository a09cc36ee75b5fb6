//! The body the hub sends a client: its own short answers, or a worker's streamed body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pullman_link::{RecvBody, StreamError};

use crate::exchange::InFlight;

/// A response body as the front serves it.
#[derive(Debug)]
pub enum HubBody {
    /// A body the hub wrote itself (errors, short answers).
    Full(Option<Bytes>),
    /// A worker's body, streamed from its link.
    Worker(WorkerBody),
    /// Filter mode: the upstream's body, streamed as it arrives.
    Upstream(crate::upstream::UpstreamBody),
}

impl HubBody {
    /// A body of fixed bytes.
    pub fn full(bytes: impl Into<Bytes>) -> HubBody {
        HubBody::Full(Some(bytes.into()))
    }
}

/// A worker's response body. Dropping it before the end (client gone) cancels the stream.
#[derive(Debug)]
pub struct WorkerBody {
    pub(crate) body: RecvBody,
    pub(crate) in_flight: InFlight,
}

impl Body for HubBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        match self.get_mut() {
            HubBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            HubBody::Worker(w) => {
                let polled = Pin::new(&mut w.body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    w.in_flight.complete();
                }
                polled
            }
            // The upstream broke off: end the client's response as broken too.
            HubBody::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(|_| StreamError::Aborted),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            HubBody::Full(bytes) => bytes.is_none(),
            HubBody::Worker(w) => w.body.is_end_stream(),
            HubBody::Upstream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            HubBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            HubBody::Full(None) => SizeHint::with_exact(0),
            HubBody::Worker(w) => w.body.size_hint(),
            HubBody::Upstream(b) => b.size_hint(),
        }
    }
}
