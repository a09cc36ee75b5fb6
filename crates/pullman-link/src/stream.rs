//! One multiplexed stream, as its users hold it: [`Stream`] receives what the peer sends,
//! [`StreamSender`] sends head frames and body bytes within the peer's window.
//!
//! Both are thin handles over the stream's shared cell (`shared.rs`) and the link task's
//! command queue (`outbox.rs`).

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use pullman_proto::{CancelReason, Frame};

pub use crate::shared::Inbound;

use crate::error::StreamError;
use crate::outbox::{Command, Outbox};
use crate::shared::Shared;

/// The receiving end of a stream, held by whoever consumes what the peer sends.
#[derive(Debug)]
pub struct Stream {
    id: u64,
    pub(crate) shared: Arc<Shared>,
    outbox: Outbox,
}

impl Stream {
    pub(crate) fn new(id: u64, shared: Arc<Shared>, outbox: Outbox) -> Stream {
        Stream { id, shared, outbox }
    }

    /// The stream id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the next thing the peer sent.
    pub async fn recv(&mut self) -> Inbound {
        poll_fn(|cx| self.shared.poll_recv(cx)).await
    }

    /// A handle that sends on this stream.
    pub fn sender(&self) -> StreamSender {
        StreamSender {
            id: self.id,
            shared: self.shared.clone(),
            outbox: self.outbox.clone(),
        }
    }

    /// Returns receive window to the peer for `n` consumed body bytes.
    pub fn release(&self, n: usize) {
        if n > 0 {
            let increment = u32::try_from(n).unwrap_or(u32::MAX);
            self.outbox.send(Frame::Window {
                stream: self.id,
                increment,
            });
        }
    }

    /// Resolves when the hub cancels this stream or the link dies (worker side).
    pub async fn cancelled(&self) -> CancelReason {
        poll_fn(|cx| self.shared.poll_cancelled(cx)).await
    }
}

/// The sending end of a stream: head frames, and body bytes within the peer's window.
#[derive(Debug, Clone)]
pub struct StreamSender {
    id: u64,
    shared: Arc<Shared>,
    outbox: Outbox,
}

impl StreamSender {
    /// The stream id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a stream frame that carries no body bytes (RESPONSE, REJECT, CANCEL).
    pub fn send_frame(&self, frame: Frame) {
        debug_assert_eq!(frame.stream(), self.id);
        self.outbox.send(frame);
    }

    /// Sends body bytes, waiting for window as needed; `end` marks the last of the body.
    /// Large buffers go out in [`BODY_CHUNK`](crate::BODY_CHUNK) pieces (smaller if the
    /// peer takes smaller frames) so other streams interleave.
    pub async fn send_data(&self, mut data: Bytes, end: bool) -> Result<(), StreamError> {
        if data.is_empty() {
            if end {
                self.outbox.queue(Command::Frame(Frame::Body {
                    stream: self.id,
                    data,
                    end,
                }))?;
            }
            return Ok(());
        }
        while !data.is_empty() {
            let want = data.len().min(self.outbox.body_chunk());
            let n = poll_fn(|cx| self.shared.poll_reserve(cx, want)).await?;
            let chunk = data.split_to(n);
            let last = end && data.is_empty();
            self.outbox.queue(Command::Frame(Frame::Body {
                stream: self.id,
                data: chunk,
                end: last,
            }))?;
        }
        Ok(())
    }

    /// Resolves when the hub cancels this stream or the link dies (worker side).
    pub async fn cancelled(&self) -> CancelReason {
        poll_fn(|cx| self.shared.poll_cancelled(cx)).await
    }
}
