//! One stream's shared cell: the state the link task and the stream's users both touch.
//!
//! Each stream has one small cell: an inbox of frames and body chunks that the link task
//! fills and the stream's user drains, the send window that WINDOW frames refill and BODY
//! frames spend, and (on the worker) the hub's CANCEL. One mutex guards it; the link task and
//! at most two users touch it, so it is nearly never contended.
//!
//! The lowest layer of the crate's stream handling: the command queue ([`crate::outbox`]),
//! the stream handles ([`crate::stream`]) and the link task ([`crate::link`]) build on it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use pullman_proto::window::MAX_WINDOW;
use pullman_proto::{CancelReason, EncodeError, Frame, WindowError};

use crate::error::{LinkError, StreamError};

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
    /// A frame this end queued on the stream could not be encoded for the peer (a field too
    /// long for the wire, or a frame over the peer's `max_frame`). The stream has ended: the
    /// peer was told (a worker answers in the frame's place, a hub cancels) unless it never
    /// saw the stream. The link and its other streams go on.
    Unsendable(EncodeError),
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

    /// A frame for this stream could not be encoded and the link ended the stream: whoever
    /// waits on it (for the peer's data, for window, for a cancel) hears so now.
    pub(crate) fn unsendable(&self, err: EncodeError) {
        self.push(Inbound::Unsendable(err.clone()));
        self.close_send(StreamError::Unsendable(err));
        self.cancel(CancelReason::Refused);
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
    pub(crate) fn poll_reserve(
        &self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, StreamError>> {
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

    pub(crate) fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<CancelReason> {
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
