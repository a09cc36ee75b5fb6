//! One multiplexed stream: the state the link task and the stream's user share.
//!
//! Each stream has one small shared cell: an inbox of frames and body chunks that the link
//! task fills and the stream's user drains, the send window that WINDOW frames refill and
//! BODY frames spend, and (on the worker) the hub's CANCEL. One mutex guards it; the link
//! task and at most two users touch it, so it is nearly never contended.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use pullman_proto::window::MAX_WINDOW;
use pullman_proto::{CancelReason, Frame, WindowError};

use crate::error::{LinkError, StreamError};
use crate::link::{Command, Link};
use crate::BODY_CHUNK;

/// Something that arrived on a stream.
#[derive(Debug)]
pub enum Inbound {
    /// A stream frame other than BODY: RESPONSE or REJECT on the hub.
    Frame(Frame),
    /// A chunk of body.
    Data(Bytes),
    /// The body ended.
    End,
    /// The link died; nothing more will arrive.
    Reset(LinkError),
    /// The link died before this stream's REQUEST reached the wire: the peer never saw it,
    /// so the request may safely go to another worker.
    Undelivered(LinkError),
}

#[derive(Debug, Default)]
struct State {
    inbox: VecDeque<Inbound>,
    recv_waker: Option<Waker>,
    send_window: u64,
    send_waker: Option<Waker>,
    send_closed: Option<StreamError>,
    cancelled: Option<CancelReason>,
    cancel_waker: Option<Waker>,
}

/// The cell shared by the link task and the stream's users.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(send_window: u32) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                send_window: send_window as u64,
                ..State::default()
            }),
        })
    }

    /// Changes the state under the lock; wakes whichever waiter `change` hands back, after
    /// the lock is released.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> (T, Option<Waker>)) -> T {
        let (out, waker) = change(&mut self.state.lock());
        if let Some(w) = waker {
            w.wake();
        }
        out
    }

    pub(crate) fn push(&self, item: Inbound) {
        self.update(|s| {
            s.inbox.push_back(item);
            ((), s.recv_waker.take())
        })
    }

    /// The peer granted `n` more bytes; a window past 2^31-1 breaks the protocol.
    pub(crate) fn grant_send(&self, n: u32) -> Result<(), WindowError> {
        self.update(|s| {
            let next = s.send_window + n as u64;
            if next > MAX_WINDOW {
                return (Err(WindowError::Overflow), None);
            }
            s.send_window = next;
            (Ok(()), s.send_waker.take())
        })
    }

    /// No more body may be sent on this stream.
    pub(crate) fn close_send(&self, why: StreamError) {
        self.update(|s| {
            s.send_closed.get_or_insert(why);
            ((), s.send_waker.take())
        })
    }

    pub(crate) fn cancel(&self, reason: CancelReason) {
        self.update(|s| {
            s.cancelled.get_or_insert(reason);
            ((), s.cancel_waker.take())
        })
    }

    /// The link died: wake everyone with the reason.
    pub(crate) fn reset(&self, err: &LinkError) {
        self.end_with(Inbound::Reset(err.clone()), err);
    }

    /// The link died before the stream was sent.
    pub(crate) fn undelivered(&self, err: &LinkError) {
        self.end_with(Inbound::Undelivered(err.clone()), err);
    }

    fn end_with(&self, last: Inbound, err: &LinkError) {
        self.push(last);
        self.close_send(StreamError::Link(err.clone()));
        self.cancel(CancelReason::Shutdown);
    }

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Inbound> {
        let mut s = self.state.lock();
        match s.inbox.pop_front() {
            Some(item) => Poll::Ready(item),
            None => {
                s.recv_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Takes up to `want` bytes of send window, waiting while it is empty.
    fn poll_reserve(&self, cx: &mut Context<'_>, want: usize) -> Poll<Result<usize, StreamError>> {
        let mut s = self.state.lock();
        if let Some(why) = &s.send_closed {
            return Poll::Ready(Err(why.clone()));
        }
        if s.send_window == 0 {
            s.send_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = (want as u64).min(s.send_window) as usize;
        s.send_window -= n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<CancelReason> {
        let mut s = self.state.lock();
        match s.cancelled {
            Some(r) => Poll::Ready(r),
            None => {
                s.cancel_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The receiving end of a stream, held by whoever consumes what the peer sends.
#[derive(Debug)]
pub struct Stream {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) link: Link,
}

impl Stream {
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
            link: self.link.clone(),
        }
    }

    /// Returns receive window to the peer for `n` consumed body bytes.
    pub fn release(&self, n: usize) {
        if n > 0 {
            let increment = u32::try_from(n).unwrap_or(u32::MAX);
            self.link.send(Frame::Window {
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
    link: Link,
}

impl StreamSender {
    /// The stream id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a stream frame that carries no body bytes (RESPONSE, REJECT, CANCEL).
    pub fn send_frame(&self, frame: Frame) {
        debug_assert_eq!(frame.stream(), self.id);
        self.link.send(frame);
    }

    /// Sends body bytes, waiting for window as needed; `end` marks the last of the body.
    /// Large buffers go out in [`BODY_CHUNK`] pieces so other streams interleave.
    pub async fn send_data(&self, mut data: Bytes, end: bool) -> Result<(), StreamError> {
        if data.is_empty() {
            if end {
                self.link.queue(Command::Frame(Frame::Body {
                    stream: self.id,
                    data,
                    end,
                }))?;
            }
            return Ok(());
        }
        while !data.is_empty() {
            let want = data.len().min(BODY_CHUNK);
            let n = poll_fn(|cx| self.shared.poll_reserve(cx, want)).await?;
            let chunk = data.split_to(n);
            let last = end && data.is_empty();
            self.link.queue(Command::Frame(Frame::Body {
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
