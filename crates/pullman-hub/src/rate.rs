//! The least rate a client must keep while the hub waits on it: for a request body the hub
//! is reading, and for a response the hub is writing. A client that sends or reads a byte a
//! second (slowloris, both ways) would otherwise hold a worker and a connection for ever.
//!
//! Only the time the hub spends waiting on the client counts: a body the hub stops reading
//! while a worker catches up, or a response the worker is slow to produce, is not the
//! client's fault. Over each [`RATE_WINDOW`] of such waiting, at least `min_rate` bytes a
//! second must have moved.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http1::conn::BoxError;

/// The waiting time each check of the rate covers.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Tells whether a client keeps up: told of each wait on it and of the bytes that moved.
pub(crate) struct RateGuard {
    /// Bytes a second; 0 checks nothing.
    min_rate: u64,
    /// Waiting time in the current window, before `waiting_since`.
    waited: Duration,
    /// Since when the hub waits, if it does now.
    waiting_since: Option<Instant>,
    /// Bytes moved in the current window.
    bytes: u64,
    /// Wakes the waiter when the window would end.
    timer: Option<Pin<Box<Sleep>>>,
}

/// The client fell below the rate.
#[derive(Debug, thiserror::Error)]
#[error("the client moved fewer than {min_rate} bytes a second over {window:?} of waiting on it")]
pub(crate) struct TooSlow {
    min_rate: u64,
    window: Duration,
}

/// The [`TooSlow`] somewhere in `error`'s chain (an I/O error carries it), if any.
pub(crate) fn too_slow<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TooSlow> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(slow) = e.downcast_ref::<TooSlow>() {
            return Some(slow);
        }
        if let Some(slow) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<TooSlow>())
        {
            return Some(slow);
        }
        next = e.source();
    }
    None
}

impl RateGuard {
    pub(crate) fn new(min_rate: u64) -> RateGuard {
        RateGuard {
            min_rate,
            waited: Duration::ZERO,
            waiting_since: None,
            bytes: 0,
            timer: None,
        }
    }

    /// `n` bytes moved: the wait, if any, ends.
    pub(crate) fn moved(&mut self, n: usize) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.bytes += n as u64;
        if self.waited >= RATE_WINDOW && self.kept_up() {
            self.next_window();
        }
    }

    /// The hub waits on the client (the inner stream said Pending): `Ready(Err)` once a
    /// window of waiting has passed with too few bytes, else Pending with a timer armed for
    /// the window's end.
    pub(crate) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TooSlow>> {
        if self.min_rate == 0 {
            return Poll::Pending;
        }
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        loop {
            let waited = self.waited + now.saturating_duration_since(since);
            if waited >= RATE_WINDOW {
                if !self.kept_up() {
                    return Poll::Ready(Err(TooSlow {
                        min_rate: self.min_rate,
                        window: RATE_WINDOW,
                    }));
                }
                self.next_window();
                self.waiting_since = Some(now);
                continue;
            }
            let end = now + (RATE_WINDOW - waited);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
            timer.as_mut().reset(end);
            if timer.as_mut().poll(cx).is_ready() {
                // The window ended just now: check again.
                continue;
            }
            return Poll::Pending;
        }
    }

    fn kept_up(&self) -> bool {
        self.bytes >= self.min_rate.saturating_mul(RATE_WINDOW.as_secs())
    }

    fn next_window(&mut self) {
        self.waited = Duration::ZERO;
        self.bytes = 0;
    }
}

/// A client's request body under a [`RateGuard`].
pub(crate) struct MinRate<B> {
    body: B,
    guard: RateGuard,
}

impl<B> MinRate<B> {
    pub(crate) fn new(body: B, min_rate: u64) -> MinRate<B> {
        MinRate {
            body,
            guard: RateGuard::new(min_rate),
        }
    }
}

impl<B> Body for MinRate<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.guard.moved(frame.data_ref().map_or(0, Buf::remaining));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.guard.poll_wait(cx) {
                Poll::Ready(Err(slow)) => Poll::Ready(Some(Err(slow.into()))),
                Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(guard: &mut RateGuard) -> Poll<Result<(), TooSlow>> {
        guard.poll_wait(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_of_waiting_with_too_few_bytes_fails_and_enough_starts_another() {
        let mut guard = RateGuard::new(100);
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(5)).await;
        guard.moved(600);
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(5)).await;
        guard.moved(500);
        // 1,100 bytes over 10 s of waiting: a new window starts.
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(10)).await;
        guard.moved(10);
        assert!(matches!(poll(&mut guard), Poll::Ready(Err(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_hub_does_not_wait_does_not_count() {
        let mut guard = RateGuard::new(100);
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        guard.moved(1);
        // Not waiting for a minute (a worker is slow to take the body).
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(poll(&mut guard), Poll::Ready(Err(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_checks_nothing() {
        let mut guard = RateGuard::new(0);
        assert!(poll(&mut guard).is_pending());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(poll(&mut guard).is_pending());
    }
}
