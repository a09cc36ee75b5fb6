//! An upstream response body that fails when the upstream pauses too long in the middle of
//! it, so a stalled upstream cannot hold a client (and a connection of each) forever.
//!
//! The pause allowed is the pool's `upstream_timeout`, the same bound as for the response
//! head (nginx's `proxy_read_timeout` works the same way: between two reads). The timer is
//! armed only once the body has to wait, so a body that arrived with its head costs none.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{sleep, Instant, Sleep};

use super::BoxError;

/// `body`, failing with [`Stalled`] once it has waited `limit` for its next frame.
pub(crate) struct IdleTimeout<B> {
    body: B,
    limit: Duration,
    /// Counts the bodies cut off.
    stalls: Arc<AtomicU64>,
    /// Armed the first time the body waits.
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame arrived since the timer was last set: the next wait restarts it.
    progressed: bool,
    /// The timer fired: the body has ended, with the error.
    stalled: bool,
}

impl<B> IdleTimeout<B> {
    pub(crate) fn new(body: B, limit: Duration, stalls: Arc<AtomicU64>) -> IdleTimeout<B> {
        IdleTimeout {
            body,
            limit,
            stalls,
            timer: None,
            progressed: false,
            stalled: false,
        }
    }
}

/// The error a body stalled past its limit ends with.
#[derive(Debug)]
pub(crate) struct Stalled(Duration);

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the upstream sent nothing of its response body for {:?} (upstream_timeout)",
            self.0
        )
    }
}

impl std::error::Error for Stalled {}

impl<B> Body for IdleTimeout<B>
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
        if this.stalled {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.progressed = true;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timer = match &mut this.timer {
            Some(timer) => {
                if this.progressed {
                    timer.as_mut().reset(Instant::now() + this.limit);
                }
                timer
            }
            None => this.timer.insert(Box::pin(sleep(this.limit))),
        };
        this.progressed = false;
        ready!(timer.as_mut().poll(cx));
        this.stalled = true;
        this.stalls.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(limit = ?this.limit, "upstream response body stalled: cut off");
        Poll::Ready(Some(Err(Stalled(this.limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.stalled || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;
    use crate::upstream::Fed;

    const LIMIT: Duration = Duration::from_secs(10);

    fn fed() -> (mpsc::Sender<Bytes>, IdleTimeout<Fed>) {
        let (tx, rx) = mpsc::channel(4);
        (tx, IdleTimeout::new(Fed(rx), LIMIT, Arc::default()))
    }

    /// Polls `body` once: whether a frame was ready.
    fn ready_now(body: &mut IdleTimeout<Fed>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(body).poll_frame(&mut cx).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_coming_within_the_limit_is_not_cut() {
        let (tx, mut body) = fed();
        for chunk in ["a", "b", "c"] {
            // Waiting for the chunk arms (or restarts) the timer.
            assert!(!ready_now(&mut body));
            tokio::time::sleep(LIMIT - Duration::from_secs(1)).await;
            tx.send(Bytes::from_static(chunk.as_bytes())).await.unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), chunk.as_bytes());
        }
        drop(tx);
        assert!(body.frame().await.is_none());
        assert_eq!(body.stalls.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_past_the_limit_ends_the_body_with_an_error() {
        let (tx, mut body) = fed();
        tx.send(Bytes::from_static(b"the start")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<Stalled>(), "{err}");
        assert!(started.elapsed() >= LIMIT);
        assert!(body.is_end_stream());
        assert_eq!(body.stalls.load(Ordering::Relaxed), 1, "counted once");
        // Nothing more comes out, even if the upstream wakes up.
        tx.send(Bytes::from_static(b"late")).await.unwrap();
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_waits_arms_no_timer() {
        let (tx, mut body) = fed();
        tx.send(Bytes::from_static(b"all")).await.unwrap();
        drop(tx);
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.is_none());
        assert!(body.timer.is_none());
    }
}
