//! One HTTP/1.1 exchange on a connection the hub holds: write a request (head, then its body
//! from a task of its own), read the response head, then stream the response body from the
//! connection. Who dialed the connection does not matter here: the upstream client dials
//! its own (`upstream::h1`), a PTTH worker dials the hub (`dispatch::ptth`). When the body
//! has ended cleanly and the connection may carry another request, it goes back to its
//! [`Home`]; otherwise it is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::codec::{
    chunk_size_line, decode_response, BodyDecoder, CodecError, Decoded, Framing, ResponseHead,
    CHUNK_END, LAST_CHUNK,
};

/// Any error a body crossing the connection may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body on its way out.
pub(crate) type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Free room made in a connection's read buffer when it runs low: a typical response head
/// and body in one read, and big bodies in pieces of about this size.
const READ_RESERVE: usize = 16 * 1024;
/// Below this much free room the buffer gets new room before a read. The heads and bodies
/// split off the buffer keep its allocation shared, so making room always allocates: this
/// way small responses share one allocation instead of costing one each.
const READ_LOW: usize = 4 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    /// The connection ended before any byte of a response: on a reused connection, the
    /// upstream had closed it while it was idle.
    #[error("the connection closed before a response")]
    Closed,
    #[error(transparent)]
    Io(io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("request body: {0}")]
    Body(BoxError),
    #[error("the request body's length differs from its content-length")]
    BodyLength,
    #[error("the request body's task failed")]
    Task,
}

impl Failure {
    /// An I/O error on a connection: a reset or broken pipe means the upstream closed it.
    fn io(e: io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Failure::Closed,
            _ => Failure::Io(e),
        }
    }
}

/// A connection between exchanges.
pub(crate) struct Conn {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    /// Bytes read and not yet used (empty between requests).
    buf: BytesMut,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        let (read, write) = stream.into_split();
        Conn {
            read,
            write,
            buf: BytesMut::with_capacity(READ_RESERVE),
        }
    }

    /// Whether an idle connection can take a request: the peer has neither closed it nor
    /// sent anything unasked. Costs no system call unless the socket became readable.
    pub(crate) fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.read.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Where a connection goes back to when a response on it ended cleanly and it can carry
/// another request. Dropped instead when the connection is closed.
pub(crate) trait Home: Send + Unpin + 'static {
    /// Takes the connection back for the next request.
    fn checkin(self, conn: Conn);

    /// The response body broke off with `error`; the connection will be closed.
    fn broken(&self, _error: &BoxError) {}
}

/// Writes `head` and then `body` (framed as `framing`) on `conn` and returns the response
/// once its head has arrived; its body streams from the connection and hands the connection
/// to `home` when it ends cleanly. `head_request`: the request is HEAD, so no body follows.
pub(crate) async fn exchange<H: Home>(
    conn: Conn,
    head: Bytes,
    body: Option<OutBody>,
    framing: Framing,
    head_request: bool,
    home: H,
) -> Result<Response<ResponseBody<H>>, Failure> {
    let Conn {
        mut read,
        mut write,
        mut buf,
    } = conn;
    let mut write = match body {
        None => {
            write.write_all(&head).await.map_err(Failure::io)?;
            WriteSide::Idle(write)
        }
        Some(body) => WriteSide::Sending(BodyTask(tokio::spawn(send_body(
            write, head, body, framing,
        )))),
    };
    let response = loop {
        if write.is_sending() {
            tokio::select! {
                head = read_head(&mut read, &mut buf, head_request) => break head?,
                sent = write.sent() => sent?,
            }
        } else {
            break read_head(&mut read, &mut buf, head_request).await?;
        }
    };
    let ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    } = response;
    let mut body = ResponseBody {
        conn: Some(Open { read, buf, write }),
        decoder: BodyDecoder::new(framing),
        keep_alive,
        home: Some(home),
    };
    if body.decoder.is_done() {
        body.finish(None);
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Writes the request head and then its body, framed; gives the write half back when the
/// whole body went out.
async fn send_body(
    mut write: OwnedWriteHalf,
    head: Bytes,
    mut body: OutBody,
    framing: Framing,
) -> Result<OwnedWriteHalf, Failure> {
    write.write_all(&head).await.map_err(Failure::io)?;
    let mut sent = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame.map_err(Failure::Body)?.into_data() else {
            continue; // trailers do not cross the hop
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            Framing::Length(n) if sent > n => return Err(Failure::BodyLength),
            Framing::Chunked => {
                let mut chunk = chunk_size_line(data.len())
                    .chain(data)
                    .chain(Bytes::from_static(CHUNK_END));
                write.write_all_buf(&mut chunk).await.map_err(Failure::io)?;
            }
            _ => write.write_all_buf(&mut data).await.map_err(Failure::io)?,
        }
    }
    match framing {
        Framing::Chunked => write.write_all(LAST_CHUNK).await.map_err(Failure::io)?,
        Framing::Length(n) if sent != n => return Err(Failure::BodyLength),
        _ => {}
    }
    Ok(write)
}

/// Reads until a whole response head is in `buf`. Cancel-safe: what was read stays in
/// `buf`, and the head is parsed afresh from it.
async fn read_head(
    read: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<ResponseHead, Failure> {
    loop {
        if let Some(head) = decode_response(buf, head_request)? {
            return Ok(head);
        }
        match std::future::poll_fn(|cx| poll_read_some(read, cx, buf)).await {
            Ok(0) if buf.is_empty() => return Err(Failure::Closed),
            Ok(0) => return Err(CodecError::Head("the connection closed inside it".into()).into()),
            Ok(_) => {}
            Err(e) if buf.is_empty() => return Err(Failure::io(e)),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Reads what the connection has into `buf`. Through `AsyncRead`, whose short read tells
/// the runtime that the socket is drained: the next read then waits for readiness instead of
/// spending a system call that returns `EAGAIN` (`try_read` keeps the readiness it had).
fn poll_read_some(
    read: &mut OwnedReadHalf,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_LOW {
        buf.reserve(READ_RESERVE);
    }
    std::pin::pin!(read.read_buf(buf)).poll(cx)
}

/// The write half of a connection in use.
enum WriteSide {
    /// Nothing (more) to send.
    Idle(OwnedWriteHalf),
    /// The request body's task has it.
    Sending(BodyTask),
    /// The body did not go out whole: the connection cannot be reused.
    Broken,
}

impl WriteSide {
    fn is_sending(&self) -> bool {
        matches!(self, WriteSide::Sending(_))
    }

    /// Waits for the body's task; pending forever when there is none.
    async fn sent(&mut self) -> Result<(), Failure> {
        let WriteSide::Sending(task) = self else {
            return std::future::pending().await;
        };
        let done = (&mut task.0).await;
        match done {
            Ok(Ok(write)) => {
                *self = WriteSide::Idle(write);
                Ok(())
            }
            Ok(Err(e)) => {
                *self = WriteSide::Broken;
                Err(e)
            }
            Err(_) => {
                *self = WriteSide::Broken;
                Err(Failure::Task)
            }
        }
    }

    /// The write half, if the body went out whole by now.
    fn take(&mut self, cx: Option<&mut Context<'_>>) -> Option<OwnedWriteHalf> {
        match std::mem::replace(self, WriteSide::Broken) {
            WriteSide::Idle(write) => Some(write),
            // Not finished: the upstream answered without reading the whole body (the
            // task is aborted as it drops).
            WriteSide::Sending(mut task) => match cx {
                Some(cx) if task.0.is_finished() => match Pin::new(&mut task.0).poll(cx) {
                    Poll::Ready(Ok(Ok(write))) => Some(write),
                    _ => None,
                },
                _ => None,
            },
            WriteSide::Broken => None,
        }
    }
}

/// The task sending a request body, aborted if dropped before it ends: the response
/// failed or ended, or the request was given up.
struct BodyTask(JoinHandle<Result<OwnedWriteHalf, Failure>>);

impl Drop for BodyTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection whose response is being read.
struct Open {
    read: OwnedReadHalf,
    buf: BytesMut,
    write: WriteSide,
}

/// A response's body, read from its connection; the connection goes back to its [`Home`]
/// when the body has ended cleanly, and is closed if it is dropped before.
pub(crate) struct ResponseBody<H: Home> {
    /// `None` once the body has ended (or failed).
    conn: Option<Open>,
    decoder: BodyDecoder,
    keep_alive: bool,
    /// `None` once the connection went back to it.
    home: Option<H>,
}

impl<H: Home> std::fmt::Debug for ResponseBody<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("open", &self.conn.is_some())
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<H: Home> ResponseBody<H> {
    /// The body ended: the connection goes back for reuse if it can carry another request.
    fn finish(&mut self, cx: Option<&mut Context<'_>>) {
        let Some(mut open) = self.conn.take() else {
            return;
        };
        // Bytes past the response's end were never asked for: the connection is unusable.
        if !self.keep_alive || !open.buf.is_empty() {
            return;
        }
        if let (Some(write), Some(home)) = (open.write.take(cx), self.home.take()) {
            home.checkin(Conn {
                read: open.read,
                write,
                buf: open.buf,
            });
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let e = e.into();
        self.conn = None;
        if let Some(home) = self.home.take() {
            home.broken(&e);
        }
        Poll::Ready(Some(Err(e)))
    }
}

impl<H: Home> Body for ResponseBody<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(open) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut open.buf) {
                Ok(Decoded::Data(data)) => {
                    // Given back now: a consumer that knows the length stops polling here.
                    if this.decoder.is_done() {
                        this.finish(Some(cx));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::Done) => {
                    this.finish(Some(cx));
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return this.fail(e),
            }
            match ready!(poll_read_some(&mut open.read, cx, &mut open.buf)) {
                Ok(0) => {
                    return match this.decoder.eof() {
                        Ok(()) => {
                            this.conn = None;
                            Poll::Ready(None)
                        }
                        Err(e) => this.fail(e),
                    };
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
