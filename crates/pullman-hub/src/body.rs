//! The body the hub sends a client: its own short answers, a worker's streamed body, or a
//! body read from an HTTP connection (a filter pool's upstream, a PTTH worker).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pullman_link::{RecvBody, Stream, StreamError};

use crate::dispatch::InFlight;
use crate::metrics::WorkerFault;
use crate::upstream::UpstreamBody;

/// A response body as the front serves it.
#[derive(Debug)]
pub enum HubBody {
    /// A body the hub wrote itself (errors, short answers).
    Full(Option<Bytes>),
    /// A worker's body, streamed from its link.
    Worker(WorkerBody),
    /// A body read from an HTTP connection the hub holds, streamed as it arrives: a filter
    /// pool's upstream, or a PTTH worker.
    Http(UpstreamBody),
}

impl HubBody {
    /// A body of fixed bytes.
    pub fn full(bytes: impl Into<Bytes>) -> HubBody {
        HubBody::Full(Some(bytes.into()))
    }

    /// The body a worker streams on `stream` after its answer's head. `length` is the
    /// `content-length` the head announced: a body that turns out longer or shorter is the
    /// worker's fault, and is cut off.
    pub(crate) fn worker(stream: Stream, in_flight: InFlight, length: Option<u64>) -> HubBody {
        HubBody::Worker(WorkerBody {
            body: RecvBody::new(stream, length),
            in_flight,
            length,
            received: 0,
            head_out: false,
            held: None,
        })
    }
}

/// A worker's response body. Dropping it before the end (client gone) cancels the stream.
#[derive(Debug)]
pub struct WorkerBody {
    body: RecvBody,
    in_flight: InFlight,
    /// The announced `content-length`, if any.
    length: Option<u64>,
    received: u64,
    /// Whether the client's HTTP layer has had a chance to send the response head: it
    /// writes the head, polls the body, and sends the head out only when the body is not
    /// ready with an error; a failure at once would lose the head and leave the client
    /// with no answer at all.
    head_out: bool,
    /// A failure held back for one poll, so that the head goes out first.
    held: Option<StreamError>,
}

impl WorkerBody {
    /// The next frame; a failure before anything else is held for one poll, so the client
    /// gets the response head and then a cut-off body (the documented answer to a worker
    /// failing mid-response), never nothing.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        if let Some(held) = self.held.take() {
            return Poll::Ready(Some(Err(held)));
        }
        let polled = self.poll_checked(cx);
        if self.head_out {
            return polled;
        }
        self.head_out = true;
        match polled {
            Poll::Ready(Some(Err(e))) => {
                self.held = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            polled => polled,
        }
    }

    fn poll_checked(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match (&polled, self.length) {
            (Poll::Ready(Some(Ok(frame))), Some(length)) => {
                self.received += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.received > length {
                    return self.mismatch(length, "longer than");
                }
            }
            (Poll::Ready(None), Some(length)) if self.received != length => {
                return self.mismatch(length, "shorter than");
            }
            (Poll::Ready(None), _) => self.in_flight.complete(),
            _ => {}
        }
        polled
    }

    /// The body does not match its length: the client's response is cut off (its head is
    /// gone already), the worker is told, and the fault is logged and counted.
    fn mismatch(
        &mut self,
        length: u64,
        how: &str,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let what = format!(
            "response body {how} its content-length {length} (at least {} bytes seen): cut off",
            self.received
        );
        self.in_flight.refuse(WorkerFault::LengthMismatch, &what);
        self.length = None;
        Poll::Ready(Some(Err(StreamError::Aborted)))
    }
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
            HubBody::Worker(w) => w.poll_frame(cx),
            // The upstream broke off: end the client's response as broken too.
            HubBody::Http(b) => Pin::new(b).poll_frame(cx).map_err(|_| StreamError::Aborted),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            HubBody::Full(bytes) => bytes.is_none(),
            HubBody::Worker(w) => w.body.is_end_stream(),
            HubBody::Http(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            HubBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            HubBody::Full(None) => SizeHint::with_exact(0),
            HubBody::Worker(w) => w.body.size_hint(),
            HubBody::Http(b) => b.size_hint(),
        }
    }
}
