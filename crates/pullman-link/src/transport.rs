//! The seam under the link task: frames in, frames out, whatever carries them.
//!
//! The link logic (streams, windows, credits, pings, drain) lives in `link.rs` and sees only
//! this trait. [`StreamTransport`] carries frames over a byte stream (TCP, a Unix socket) with
//! the codec; `shm::ShmTransport` carries them over shared-memory rings.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use pullman_proto::{decode, encode, Frame, MAX_FRAME_LIMIT};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{LinkError, PushError};

/// Read buffer growth step; also the most one read system call takes.
const READ_CHUNK: usize = 64 * 1024;
/// Write-buffer capacity past which an emptied buffer is given back, so one burst does not
/// keep its memory for the life of the link.
const WRITE_KEEP: usize = 4 * 1024 * 1024;

/// What carries a link's frames. Driven by one task; every method is non-blocking.
pub trait Transport: Send + 'static {
    /// The next frame from the peer, once one has arrived whole. `Pending` registers the
    /// task to be woken when more may have arrived. An error ends the link.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, LinkError>>;

    /// Queues a frame behind the ones already queued. It reaches the peer on a later
    /// [`poll_send`](Transport::poll_send); nothing queued is ever dropped. A frame that
    /// cannot be encoded for the peer (a field too long for the wire, a payload over
    /// [`peer_max_frame`](Transport::peer_max_frame)) is refused with
    /// [`PushError::Unencodable`] and nothing else changes: the link goes on.
    fn push(&mut self, frame: Frame) -> Result<(), PushError>;

    /// The largest payload the peer accepts: [`push`](Transport::push) refuses larger
    /// frames, and body bytes go out in chunks no larger.
    fn peer_max_frame(&self) -> u32;

    /// Bytes queued and not yet handed to the peer: the link stops taking new work past its
    /// high-water mark, which is what bounds this.
    fn queued(&self) -> usize;

    /// Hands queued frames to the peer as far as it can take them now; `Ok(true)` if any
    /// went. While some remain, the task is woken when the peer makes room.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError>;

    /// The link is over: hands over what it still can, then closes its side. The caller
    /// bounds how long this may take.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// Where the frames pushed so far end, in the transport's own unit: a frame pushed
    /// before this call has been handed to the peer once [`handed_over`](Transport::handed_over)
    /// reaches this mark. The link uses it to tell, when it dies, which requests never left.
    fn pushed_mark(&self) -> u64;

    /// How far the frames handed to the peer (written to the socket, published in the ring)
    /// reach, in the unit of [`pushed_mark`](Transport::pushed_mark).
    fn handed_over(&self) -> u64;
}

/// Frames over a byte stream, encoded with the codec: many frames per system call.
#[derive(Debug)]
pub struct StreamTransport<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    max_frame: u32,
    peer_max_frame: u32,
    shut_down: bool,
    /// Bytes ever encoded into `wbuf`, and bytes ever written from it: the marks.
    encoded: u64,
    written: u64,
}

impl<S> StreamTransport<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    /// Frames over `io`. `leftover` holds bytes read past the handshake; `max_frame` is the
    /// largest payload accepted from the peer. Frames to the peer are bounded by
    /// MAX_FRAME_LIMIT, the most any peer may accept, until
    /// [`with_peer_max_frame`](StreamTransport::with_peer_max_frame) says what this one does.
    pub fn new(io: S, leftover: BytesMut, max_frame: u32) -> StreamTransport<S> {
        StreamTransport {
            io,
            rbuf: leftover,
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            max_frame,
            peer_max_frame: MAX_FRAME_LIMIT,
            shut_down: false,
            encoded: 0,
            written: 0,
        }
    }

    /// Holds frames to the peer to the `max_frame` it announced in the handshake (a value
    /// above MAX_FRAME_LIMIT counts as that limit, as the protocol says).
    pub fn with_peer_max_frame(mut self, max: u32) -> Self {
        self.peer_max_frame = max.min(MAX_FRAME_LIMIT);
        self
    }
}

impl<S> Transport for StreamTransport<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, LinkError>> {
        loop {
            match decode(&mut self.rbuf, self.max_frame) {
                Ok(Some(frame)) => return Poll::Ready(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(LinkError::Protocol(e.to_string()))),
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(LinkError::Eof)),
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), PushError> {
        let before = self.wbuf.len();
        encode(&frame, &mut self.wbuf, self.peer_max_frame).map_err(PushError::Unencodable)?;
        self.encoded += (self.wbuf.len() - before) as u64;
        Ok(())
    }

    fn peer_max_frame(&self) -> u32 {
        self.peer_max_frame
    }

    fn queued(&self) -> usize {
        self.wbuf.len()
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError> {
        let mut progressed = false;
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into())
                }
                Poll::Ready(Ok(n)) => {
                    progressed = true;
                    self.wbuf.advance(n);
                    self.written += n as u64;
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(progressed),
            }
        }
        if self.wbuf.capacity() > WRITE_KEEP {
            self.wbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        // Stream sockets need no flush; TLS and buffered transports do.
        if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
            return Err(e.into());
        }
        Ok(progressed)
    }

    fn pushed_mark(&self) -> u64 {
        self.encoded
    }

    fn handed_over(&self) -> u64 {
        self.written
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shut_down {
            match self.poll_send(cx) {
                Ok(_) if !self.wbuf.is_empty() => return Poll::Pending,
                _ => self.shut_down = true,
            }
        }
        Pin::new(&mut self.io).poll_shutdown(cx).map(drop)
    }
}
