//! A request body the hub reads whole: [`read_whole`], for a buffered filter and for
//! [`keep_small`], a respond pool's `retry_body_bytes`. A body whose announced length
//! (`content-length`) is at most that is read whole before the request goes to a worker
//! ([`Payload::Kept`]), so a retry can send it again; any other body streams to the worker
//! as it arrives ([`Payload::Stream`]) and cannot be sent again. A body of unknown length
//! may be a long-lived stream the worker answers as it goes, so it is never held back.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;

use super::job::Payload;
use crate::error::RequestError;
use crate::http1::conn::BoxError;
use crate::rate::too_slow;

/// What the hub has of `body` for its worker: the whole body when its announced length is
/// at most `keep` bytes (read as [`read_whole`] does), else the body to stream.
pub(crate) async fn keep_small<B>(
    body: B,
    keep: u64,
    limit: u64,
    deadline: Instant,
) -> Result<Payload<B>, RequestError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    match body.size_hint().exact() {
        Some(len) if len <= keep => Ok(Payload::from_bytes(
            read_whole(body, limit, deadline).await?,
        )),
        _ => Ok(Payload::Stream(body)),
    }
}

/// Reads a client's body whole within `deadline`: 413 when its announced length or what
/// arrives passes `limit`, 408 when it comes slower than `hub.min_body_rate`.
pub(crate) async fn read_whole<B>(
    body: B,
    limit: u64,
    deadline: Instant,
) -> Result<Bytes, RequestError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit {
        return Err(RequestError::BodyTooLarge);
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Err(_) => Err(RequestError::Deadline),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(RequestError::BodyTooLarge)
        }
        Ok(Err(e)) if too_slow(&*e).is_some() => Err(RequestError::BodyTooSlow),
        Ok(Err(_)) => Err(RequestError::ClientGone),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::Full;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// A body arriving in the given chunks, its length unannounced.
    struct Chunked(VecDeque<Bytes>);

    impl Body for Chunked {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
        }
    }

    fn chunked(parts: &[&'static [u8]]) -> Chunked {
        Chunked(parts.iter().map(|p| Bytes::from_static(p)).collect())
    }

    fn full(data: &'static [u8]) -> Full<Bytes> {
        Full::new(Bytes::from_static(data))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn an_announced_length_within_the_bound_is_kept_whole() {
        let kept = keep_small(full(b"abcd"), 4, 100, soon()).await;
        assert!(matches!(kept, Ok(Payload::Kept(b)) if b == "abcd"));
        let empty = keep_small(full(b""), 4, 100, soon()).await;
        assert!(matches!(empty, Ok(Payload::Empty)));
    }

    #[tokio::test]
    async fn a_longer_or_unannounced_body_streams_unread() {
        let longer = keep_small(full(b"abcde"), 4, 100, soon()).await;
        let Ok(Payload::Stream(body)) = longer else {
            panic!("expected a stream");
        };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcde");
        let unannounced = keep_small(chunked(&[b"ab"]), 4, 100, soon()).await;
        let Ok(Payload::Stream(body)) = unannounced else {
            panic!("expected a stream");
        };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "ab");
    }

    #[tokio::test]
    async fn keep_zero_streams_every_body() {
        let kept = keep_small(full(b"a"), 0, 100, soon()).await;
        assert!(matches!(kept, Ok(Payload::Stream(_))));
    }

    #[tokio::test]
    async fn an_announced_length_past_the_limit_is_413() {
        let kept = keep_small(full(b"abcdef"), 10, 5, soon()).await;
        assert!(matches!(kept, Err(RequestError::BodyTooLarge)));
    }
}
