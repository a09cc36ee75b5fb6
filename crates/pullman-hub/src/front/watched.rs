//! The client socket that notes when a request head starts to arrive, for the front's
//! header read timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Activity;
use crate::rate::RateGuard;

/// A client's stream (its socket, or the TLS session over it, whose plain text is what
/// counts) that notes when the first bytes of a new HTTP/1 request head arrive:
/// bytes read while no request is in progress. HTTP/2 connections (their preface first) are
/// left alone: between requests their bytes are control frames, not heads. A write (a
/// response going out) clears the mark: bytes that came in meanwhile are a pipelined head,
/// not a slow one.
pub(super) struct Watched<S> {
    sock: S,
    activity: Arc<Activity>,
    protocol: Protocol,
    /// The rate the client must read at while a write waits on it.
    reading: RateGuard,
}

/// What a client connection speaks, as far as its first bytes tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Protocol {
    /// Every byte so far matches the HTTP/2 preface (none yet, or fewer than it has).
    Unknown {
        preface_seen: usize,
    },
    Http1,
    Http2,
}

/// The start of the HTTP/2 connection preface; no HTTP/1 request line begins with it.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

impl Protocol {
    /// Takes the next bytes read from the client.
    fn after(self, read: &[u8]) -> Protocol {
        let Protocol::Unknown { preface_seen } = self else {
            return self;
        };
        let rest = &H2_PREFACE_START[preface_seen..];
        let n = read.len().min(rest.len());
        if read[..n] != rest[..n] {
            Protocol::Http1
        } else if preface_seen + n == H2_PREFACE_START.len() {
            Protocol::Http2
        } else {
            Protocol::Unknown {
                preface_seen: preface_seen + n,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.sock).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if read.is_empty() {
            return Poll::Ready(Ok(()));
        }
        this.protocol = this.protocol.after(read);
        // Until the preface is whole, the bytes count as a head: a client cannot escape the
        // timeout by sending "P" and stopping.
        match this.protocol {
            Protocol::Http2 => this.activity.head_done(),
            Protocol::Http1 | Protocol::Unknown { .. } => this.activity.head_bytes(),
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Poll::Ready(written) = Pin::new(&mut this.sock).poll_write(cx, buf)? else {
            return this.wait_on_reader(cx);
        };
        this.reading.moved(written);
        this.activity.head_done();
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Poll::Ready(written) = Pin::new(&mut this.sock).poll_write_vectored(cx, bufs)? else {
            return this.wait_on_reader(cx);
        };
        this.reading.moved(written);
        this.activity.head_done();
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.sock.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_shutdown(cx)
    }
}

impl<S> Watched<S> {
    pub(super) fn new(sock: S, activity: Arc<Activity>, min_rate: u64) -> Watched<S> {
        Watched {
            sock,
            activity,
            protocol: Protocol::Unknown { preface_seen: 0 },
            reading: RateGuard::new(min_rate),
        }
    }

    /// A write returned Pending: the client does not read. An error once it has read too
    /// little for too long (`hub.min_body_rate`).
    fn wait_on_reader(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match self.reading.poll_wait(cx) {
            Poll::Ready(Err(slow)) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, slow)))
            }
            Poll::Ready(Ok(())) | Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_told_by_the_preface_across_reads() {
        let unknown = Protocol::Unknown { preface_seen: 0 };
        assert_eq!(unknown.after(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(unknown.after(b"PRI * HTTP/2.0\r\n\r\nSM"), Protocol::Http2);
        // A request line can start like the preface; the first difference decides.
        let p = unknown.after(b"P");
        assert_eq!(p, Protocol::Unknown { preface_seen: 1 });
        assert_eq!(p.after(b"OST / HTTP/1.1"), Protocol::Http1);
        let split = unknown.after(b"PRI * H");
        assert_eq!(split.after(b"TTP/2.0"), Protocol::Http2);
        assert_eq!(Protocol::Http1.after(b"PRI * HTTP/2"), Protocol::Http1);
    }
}
