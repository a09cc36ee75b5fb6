//! The link task's command queue: how link handles and streams hand it frames to send.
//!
//! [`Link`](crate::Link) and every [`Stream`](crate::Stream) hold an [`Outbox`]; the link
//! task holds the receiving end. Both handles build on this module, and it on nothing but a
//! stream's [`Shared`] cell, so the crate's arrows point one way: link, then stream, then
//! outbox, then the cell.

use std::sync::Arc;

use parking_lot::Mutex;
use pullman_proto::{CloseCode, Frame, Request};
use tokio::sync::mpsc;

use crate::error::LinkError;
use crate::shared::Shared;

/// Body bytes per BODY frame at most. Smaller than the largest frame so that the bodies of
/// concurrent streams interleave finely: a 100 MiB response holds a small one up by at most
/// one chunk.
pub const BODY_CHUNK: usize = 64 * 1024;

/// What the link task is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Hub: register a new stream, then send its REQUEST.
    Open {
        id: u64,
        shared: Arc<Shared>,
        frame: Frame,
    },
    /// Send a frame.
    Frame(Frame),
    /// Send CLOSE and end the link.
    Close { code: CloseCode, reason: String },
}

/// The sending end of a link task's command queue. Cheap to clone: one reference count.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    /// The next stream id. Locked across queueing the REQUEST, so that ids reach the wire
    /// in increasing order however many tasks open streams at once.
    next_stream: Mutex<u64>,
    send_initial_window: u32,
    /// Body bytes per BODY frame at most: [`BODY_CHUNK`], or less if the peer takes smaller
    /// frames.
    body_chunk: usize,
}

impl Outbox {
    /// A queue whose streams start with `send_initial_window` bytes to send, to a peer that
    /// takes payloads of at most `peer_max_frame` bytes; the receiving end goes to the link
    /// task.
    pub(crate) fn new(
        send_initial_window: u32,
        peer_max_frame: u32,
    ) -> (Outbox, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            inner: Arc::new(Inner {
                commands: tx,
                next_stream: Mutex::new(1),
                send_initial_window,
                // At least a byte, so that sending always progresses; a peer that takes no
                // body bytes at all fails the stream instead.
                body_chunk: BODY_CHUNK.min(peer_max_frame as usize).max(1),
            }),
        };
        (outbox, rx)
    }

    /// Body bytes per BODY frame at most.
    pub(crate) fn body_chunk(&self) -> usize {
        self.inner.body_chunk
    }

    /// Queues `request` on a new stream (its `stream` field is assigned here); returns the
    /// stream's id and cell.
    pub(crate) fn open(&self, mut request: Request) -> Result<(u64, Arc<Shared>), LinkError> {
        let shared = Shared::new(self.inner.send_initial_window);
        let mut next = self.inner.next_stream.lock();
        let id = *next;
        request.stream = id;
        self.queue(Command::Open {
            id,
            shared: shared.clone(),
            frame: Frame::Request(request),
        })?;
        *next += 1;
        Ok((id, shared))
    }

    /// Queues a frame; dropped if the link is gone (see [`crate::Link::send`]).
    pub(crate) fn send(&self, frame: Frame) {
        let _ = self.inner.commands.send(Command::Frame(frame));
    }

    /// Queues a command; an error if the link task has ended.
    pub(crate) fn queue(&self, cmd: Command) -> Result<(), LinkError> {
        self.inner
            .commands
            .send(cmd)
            .map_err(|_| LinkError::Closed {
                code: CloseCode::Normal,
                reason: "link ended".into(),
            })
    }

    /// Whether the link task has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }
}
