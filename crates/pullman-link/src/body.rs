//! Bodies over streams, both ways: [`RecvBody`], a stream's inbound body as an
//! `http_body::Body`, and [`send_body`], which sends any `http_body::Body` on a stream.

use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame as BodyFrame, SizeHint};

use crate::error::{SendBodyError, StreamError};
use crate::shared::Inbound;
use crate::stream::{Stream, StreamSender};

/// Sends `body` on the stream of `sender` after its head (REQUEST, RESPONSE or VERDICT) went
/// out: each data chunk as it comes, END on the last (an empty BODY with END if the body
/// only knows it has ended once it has), waiting for the peer's window as needed. Trailers
/// are dropped: the protocol has no frame for them.
///
/// Stops short with an error, without ending the stream, once more than `limit` bytes came
/// (nothing past the limit is sent) or the body fails; the caller decides what the peer
/// hears then (a hub answers 413 and cancels, a worker aborts with REJECT). Stops too if the
/// stream ends under it: the peer answered or refused, or the link died.
///
/// The one copy of this loop: the hub runs it for request bodies, the worker SDK for
/// response bodies.
pub async fn send_body<B>(
    body: B,
    sender: &StreamSender,
    limit: u64,
) -> Result<(), SendBodyError<B::Error>>
where
    B: Body<Data = Bytes>,
{
    let mut body = pin!(body);
    let mut sent = 0u64;
    loop {
        match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                sent += data.len() as u64;
                if sent > limit {
                    return Err(SendBodyError::TooLarge { limit });
                }
                let end = body.is_end_stream();
                sender.send_data(data, end).await?;
                if end {
                    return Ok(());
                }
            }
            Some(Err(e)) => return Err(SendBodyError::Body(e)),
            None => return Ok(sender.send_data(Bytes::new(), true).await?),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use bytes::BytesMut;
    use pullman_proto::{
        decode, encode, Frame, HeadBuilder, Mode, Request, Response, Version,
        DEFAULT_INITIAL_WINDOW, DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::{Control, ControlError, Link, LinkError, Role, Settings};

    /// Hang guard only: the clock is paused, so waiting it out costs nothing.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A body that yields what the test scripted, then ends; it knows it has ended once the
    /// script is spent only if `knows_end`.
    struct Scripted {
        frames: VecDeque<Result<BodyFrame<Bytes>, &'static str>>,
        knows_end: bool,
    }

    impl Scripted {
        fn new(knows_end: bool, frames: Vec<Result<BodyFrame<Bytes>, &'static str>>) -> Scripted {
            Scripted {
                frames: frames.into(),
                knows_end,
            }
        }
    }

    fn data(bytes: &'static [u8]) -> Result<BodyFrame<Bytes>, &'static str> {
        Ok(BodyFrame::data(Bytes::from_static(bytes)))
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<BodyFrame<Bytes>, &'static str>>> {
            Poll::Ready(self.frames.pop_front())
        }

        fn is_end_stream(&self) -> bool {
            self.knows_end && self.frames.is_empty()
        }
    }

    struct Quiet;

    impl Control for Quiet {
        fn on_frame(&mut self, _link: &Link, _frame: Frame) -> Result<(), ControlError> {
            Ok(())
        }
        fn on_closed(&mut self, _err: &LinkError) {}
    }

    /// A hub's stream whose REQUEST the peer (driven by hand) has read.
    struct Harness {
        stream: Stream,
        peer: DuplexStream,
        buf: BytesMut,
    }

    impl Harness {
        async fn start() -> Harness {
            let (ours, peer) = tokio::io::duplex(256 * 1024);
            let settings = Settings {
                role: Role::Hub,
                recv_max_frame: DEFAULT_MAX_FRAME,
                send_max_frame: pullman_proto::MAX_FRAME_LIMIT,
                recv_initial_window: DEFAULT_INITIAL_WINDOW,
                send_initial_window: DEFAULT_INITIAL_WINDOW,
                ping_interval: None,
            };
            let (link, _task) = Link::spawn(ours, BytesMut::new(), settings, Quiet);
            let stream = link
                .open(Request {
                    stream: 0,
                    end: false,
                    deadline_ms: 0,
                    mode: Mode::Respond,
                    peer: String::new(),
                    tls: false,
                    head: HeadBuilder::new(Version::Http11, b"POST", b"/", 0).finish(),
                })
                .unwrap();
            let mut h = Harness {
                stream,
                peer,
                buf: BytesMut::new(),
            };
            assert!(matches!(h.recv().await, Some(Frame::Request(_))));
            h
        }

        /// The next frame the link wrote; `None` if none comes.
        async fn recv(&mut self) -> Option<Frame> {
            tokio::time::timeout(PATIENCE, async {
                loop {
                    if let Some(frame) = decode(&mut self.buf, MAX_FRAME_LIMIT).unwrap() {
                        return frame;
                    }
                    assert!(self.peer.read_buf(&mut self.buf).await.unwrap() > 0);
                }
            })
            .await
            .ok()
        }

        async fn send(&mut self, frame: &Frame) {
            let mut out = BytesMut::new();
            encode(frame, &mut out, MAX_FRAME_LIMIT).unwrap();
            self.peer.write_all(&out).await.unwrap();
        }

        async fn send_body(
            &self,
            body: Scripted,
            limit: u64,
        ) -> Result<(), SendBodyError<&'static str>> {
            tokio::time::timeout(PATIENCE, send_body(body, &self.stream.sender(), limit))
                .await
                .expect("send_body hung")
        }
    }

    fn body(data: &'static [u8], end: bool) -> Option<Frame> {
        Some(Frame::Body {
            stream: 1,
            data: Bytes::from_static(data),
            end,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_chunk_carries_end_when_the_body_knows_it() {
        let mut h = Harness::start().await;
        let script = Scripted::new(true, vec![data(b"ab"), data(b"cd")]);
        h.send_body(script, u64::MAX).await.unwrap();
        assert_eq!(h.recv().await, body(b"ab", false));
        assert_eq!(h.recv().await, body(b"cd", true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_learns_its_end_late_ends_with_an_empty_chunk_and_drops_trailers() {
        let mut h = Harness::start().await;
        let trailers = Ok(BodyFrame::trailers(http::HeaderMap::new()));
        let script = Scripted::new(false, vec![data(b"ab"), trailers, data(b"cd")]);
        h.send_body(script, u64::MAX).await.unwrap();
        assert_eq!(h.recv().await, body(b"ab", false));
        assert_eq!(h.recv().await, body(b"cd", false));
        assert_eq!(h.recv().await, body(b"", true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_past_the_limit_stops_before_the_chunk_that_crosses_it() {
        let mut h = Harness::start().await;
        let script = Scripted::new(true, vec![data(b"ab"), data(b"c"), data(b"de")]);
        assert!(matches!(
            h.send_body(script, 4).await,
            Err(SendBodyError::TooLarge { limit: 4 })
        ));
        assert_eq!(h.recv().await, body(b"ab", false));
        assert_eq!(h.recv().await, body(b"c", false));
        // Neither the crossing chunk nor an END: the caller decides how the stream ends.
        assert_eq!(h.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_fails_stops_with_its_error_and_leaves_the_stream_open() {
        let mut h = Harness::start().await;
        let script = Scripted::new(true, vec![data(b"ab"), Err("client gone")]);
        assert!(matches!(
            h.send_body(script, u64::MAX).await,
            Err(SendBodyError::Body("client gone"))
        ));
        assert_eq!(h.recv().await, body(b"ab", false));
        assert_eq!(h.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_ended_under_the_body_stops_it() {
        let mut h = Harness::start().await;
        // The worker answers (and so ends the stream) before the body has gone.
        h.send(&Frame::Response(Response {
            stream: 1,
            end: true,
            status: 413,
            headers: Vec::new(),
        }))
        .await;
        assert!(matches!(h.stream.recv().await, Inbound::Frame(_)));
        let script = Scripted::new(true, vec![data(b"ab")]);
        assert!(matches!(
            h.send_body(script, u64::MAX).await,
            Err(SendBodyError::Stream(StreamError::Ended))
        ));
        assert_eq!(h.recv().await, None);
    }
}
