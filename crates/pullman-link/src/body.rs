//! A stream's inbound body as an `http_body::Body`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame as BodyFrame, SizeHint};

use crate::error::StreamError;
use crate::shared::Inbound;
use crate::stream::Stream;

/// Receive window is returned to the peer in grants of at least this many bytes (or at the
/// end), so a stream of small chunks does not cost one WINDOW frame each.
const RELEASE_BATCH: usize = 16 * 1024;

/// The body of a request (on a worker) or of a response (on the hub), read from a stream.
/// Consuming it returns window to the peer, which is what lets the peer send more.
#[derive(Debug)]
pub struct RecvBody {
    stream: Option<Stream>,
    unreleased: usize,
    size_hint: SizeHint,
}

impl RecvBody {
    /// A body over `stream`'s inbound data. `length` is the announced content length, if any.
    pub fn new(stream: Stream, length: Option<u64>) -> RecvBody {
        let size_hint = length.map(SizeHint::with_exact).unwrap_or_default();
        RecvBody {
            stream: Some(stream),
            unreleased: 0,
            size_hint,
        }
    }

    /// A body that ended before it started.
    pub fn empty() -> RecvBody {
        RecvBody {
            stream: None,
            unreleased: 0,
            size_hint: SizeHint::with_exact(0),
        }
    }
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, StreamError>>> {
        let this = &mut *self;
        let Some(stream) = &this.stream else {
            return Poll::Ready(None);
        };
        let item = match stream.shared.poll_recv(cx) {
            Poll::Ready(item) => item,
            // Bytes consumed but not yet released stay below RELEASE_BATCH, far less than the
            // window: the peer always has room left, so holding them back cannot stall it.
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(match item {
            Inbound::Data(data) => {
                this.unreleased += data.len();
                if this.unreleased >= RELEASE_BATCH {
                    stream.release(std::mem::take(&mut this.unreleased));
                }
                Some(Ok(BodyFrame::data(data)))
            }
            Inbound::End => {
                this.stream = None;
                None
            }
            Inbound::Reset(e) | Inbound::Undelivered(e) => {
                this.stream = None;
                Some(Err(StreamError::Link(e)))
            }
            Inbound::Unsendable(e) => {
                this.stream = None;
                Some(Err(StreamError::Unsendable(e)))
            }
            // A REJECT (or any head frame) in the middle of a body ends it badly.
            Inbound::Frame(_) => {
                this.stream = None;
                Some(Err(StreamError::Aborted))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}
