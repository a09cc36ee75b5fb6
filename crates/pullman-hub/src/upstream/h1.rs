//! The HTTP/1.1 client of an `http://` upstream: kept-alive connections, each carrying one
//! request at a time, driven by the request's own task (no connection task, no channel
//! between them).
//!
//! A request takes the most recently idle connection (or dials one), writes its head and
//! reads the response head; the response body then owns the connection and puts it back
//! among the idle ones when the body has ended cleanly. A request body goes out from a task
//! of its own, so the response may arrive (and stream) while the body is still going out.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::codec::{
    chunk_size_line, decode_response, encode_request, BodyDecoder, CodecError, Decoded, Framing,
    ResponseHead, CHUNK_END, LAST_CHUNK,
};
use super::{BoxError, UpstreamBody};

/// How long an idle connection is kept for reuse: long enough to carry bursts that come
/// seconds apart, shorter than the 60 s or more most servers keep them.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept: enough for the concurrency a hub on a few cores forwards, few
/// enough that a burst does not leave hundreds of sockets open afterwards.
const MAX_IDLE: usize = 256;
/// Idle time after which a connection is checked for a close by the upstream before it is
/// reused (one system call). Servers keep idle connections for seconds; one reused sooner
/// is almost never closed, and a request that may be repeated is, when it was.
const PROBE_AFTER: Duration = Duration::from_millis(100);
/// Free room made in a connection's read buffer when it runs low: a typical response head
/// and body in one read, and big bodies in pieces of about this size.
const READ_RESERVE: usize = 16 * 1024;
/// Below this much free room the buffer gets new room before a read. The heads and bodies
/// split off the buffer keep its allocation shared, so making room always allocates: this
/// way small responses share one allocation instead of costing one each.
const READ_LOW: usize = 4 * 1024;

/// Why a request to the upstream failed.
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

/// One connection to the upstream, between requests.
struct Conn {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    /// Bytes read and not yet used (empty between requests).
    buf: BytesMut,
}

impl Conn {
    /// Whether an idle connection can take a request: the upstream has neither closed it
    /// nor sent anything unasked. Costs no system call unless the socket became readable.
    fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.read.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The HTTP/1.1 client of one upstream, with its idle connections.
pub(crate) struct H1Client {
    /// `host:port`, to dial and for the `host` field when a request has none.
    authority: String,
    connect_timeout: Duration,
    /// Oldest at the front; requests take the newest.
    idle: Mutex<VecDeque<Idle>>,
}

impl H1Client {
    pub(crate) fn new(authority: &http::uri::Authority, connect_timeout: Duration) -> H1Client {
        let authority = match authority.port_u16() {
            Some(_) => authority.as_str().to_string(),
            None => format!("{}:80", authority.as_str()),
        };
        H1Client {
            authority,
            connect_timeout,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// Sends `req` and returns the response once its head has arrived; its body streams
    /// from the connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, Failure> {
        let (parts, body) = req.into_parts();
        let mut body = (!body.is_end_stream()).then_some(body);
        let framing = match &body {
            None => Framing::Length(0),
            Some(b) => request_framing(b.size_hint(), &parts.headers),
        };
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut head = BytesMut::with_capacity(256 + 64 * parts.headers.len());
        encode_request(
            &parts.method,
            target.as_bytes(),
            &parts.headers,
            framing,
            &self.authority,
            &mut head,
        );
        let head = head.freeze();
        let head_request = parts.method == Method::HEAD;
        // A request without a body that may be repeated (RFC 9110 section 9.2.2) is sent
        // again on a new connection when a reused one turns out closed.
        let replayable = body.is_none() && parts.method.is_idempotent();
        loop {
            let (conn, reused) = match self.checkout() {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            match self
                .exchange(conn, head.clone(), body.take(), framing, head_request)
                .await
            {
                Err(Failure::Closed) if reused && replayable => continue,
                result => return result,
            }
        }
    }

    async fn exchange(
        self: &Arc<Self>,
        conn: Conn,
        head: Bytes,
        body: Option<UpstreamBody>,
        framing: Framing,
        head_request: bool,
    ) -> Result<Response<ResponseBody>, Failure> {
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
            client: Arc::clone(self),
        };
        if body.decoder.is_done() {
            body.finish(None);
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(Idle { conn, since }) = idle.pop_back() {
            let unused = since.elapsed();
            if unused > IDLE_TIMEOUT {
                // The newest is too old: so are all the others.
                idle.clear();
                return None;
            }
            if unused < PROBE_AFTER || conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| Failure::ConnectTimeout)?
        .map_err(Failure::Connect)?;
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        let (read, write) = stream.into_split();
        Ok(Conn {
            read,
            write,
            buf: BytesMut::with_capacity(READ_RESERVE),
        })
    }
}

/// How a request body of `hint` crosses the hop: by its exact length when known (or as the
/// request's own `content-length` says, which the sender then holds the body to), else
/// chunked.
fn request_framing(hint: SizeHint, headers: &HeaderMap) -> Framing {
    if let Some(n) = hint.exact() {
        return Framing::Length(n);
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    declared.map_or(Framing::Chunked, Framing::Length)
}

/// Writes the request head and then its body, framed; gives the write half back when the
/// whole body went out.
async fn send_body(
    mut write: OwnedWriteHalf,
    head: Bytes,
    mut body: UpstreamBody,
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

/// An upstream response's body, read from its connection; the connection goes back among
/// the idle ones when the body has ended cleanly, and is closed if it is dropped before.
pub(crate) struct ResponseBody {
    /// `None` once the body has ended (or failed).
    conn: Option<Open>,
    decoder: BodyDecoder,
    keep_alive: bool,
    client: Arc<H1Client>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("open", &self.conn.is_some())
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The body ended: the connection goes back for reuse if it can carry another request.
    fn finish(&mut self, cx: Option<&mut Context<'_>>) {
        let Some(mut open) = self.conn.take() else {
            return;
        };
        // Bytes past the response's end were never asked for: the connection is unusable.
        if !self.keep_alive || !open.buf.is_empty() {
            return;
        }
        if let Some(write) = open.write.take(cx) {
            self.client.checkin(Conn {
                read: open.read,
                write,
                buf: open.buf,
            });
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for ResponseBody {
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::upstream::Fed;

    /// A scripted upstream on port 0: `serve` runs for each accepted connection. Returns
    /// the client of it and the count of connections accepted.
    async fn upstream<F, Fut>(serve: F) -> (Arc<H1Client>, Arc<AtomicUsize>)
    where
        F: Fn(BufReader<TcpStream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(BufReader::new(socket)));
            }
        });
        let client = Arc::new(H1Client::new(&authority, Duration::from_secs(5)));
        (client, accepted)
    }

    /// Reads one request head; `None` at the connection's end.
    async fn read_head(socket: &mut BufReader<TcpStream>) -> Option<String> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if socket.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            head.push_str(&line);
            if line == "\r\n" {
                return Some(head);
            }
        }
    }

    fn get(path: &str) -> Request<UpstreamBody> {
        let mut req = Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
        *req.uri_mut() = path.parse().unwrap();
        req
    }

    fn post(path: &str, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = Method::POST;
        *req.uri_mut() = path.parse().unwrap();
        req
    }

    async fn text(resp: Response<ResponseBody>) -> Result<String, BoxError> {
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn fed() -> (mpsc::Sender<Bytes>, UpstreamBody) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Fed(rx).boxed_unsync())
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (client, accepted) = upstream(|mut s| async move {
            while let Some(head) = read_head(&mut s).await {
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                    path.len()
                );
                s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        })
        .await;
        for path in ["/a", "/bb", "/ccc"] {
            let resp = client.send(get(path)).await.unwrap();
            assert_eq!(text(resp).await.unwrap(), path);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn chunked_and_close_delimited_bodies_arrive_whole() {
        let (client, accepted) = upstream(|mut s| async move {
            while let Some(head) = read_head(&mut s).await {
                if head.starts_with("GET /chunked") {
                    let reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n";
                    s.get_mut().write_all(reply).await.unwrap();
                } else {
                    let reply = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
                    s.get_mut().write_all(reply).await.unwrap();
                    // A close-delimited body ends only when the connection does.
                    s.get_mut().shutdown().await.unwrap();
                }
            }
        })
        .await;
        let resp = client.send(get("/chunked")).await.unwrap();
        assert_eq!(text(resp).await.unwrap(), "abcdefg");
        let resp = client.send(get("/close")).await.unwrap();
        assert_eq!(text(resp).await.unwrap(), "until the end");
        // The chunked response's connection was reused; the close-delimited one cannot be.
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let resp = client.send(get("/chunked")).await.unwrap();
        assert_eq!(text(resp).await.unwrap(), "abcdefg");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_retried_only_for_a_repeatable_request() {
        let (closed_tx, mut closed) = mpsc::unbounded_channel();
        let (client, accepted) = upstream(move |mut s| {
            let closed_tx = closed_tx.clone();
            async move {
                if read_head(&mut s).await.is_some() {
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    s.get_mut().write_all(reply).await.unwrap();
                }
                // Closes without saying so, as a server whose keep-alive timer ran out.
                drop(s);
                let _ = closed_tx.send(());
            }
        })
        .await;
        assert_eq!(
            text(client.send(get("/")).await.unwrap()).await.unwrap(),
            "ok"
        );
        closed.recv().await.unwrap();
        assert_eq!(
            text(client.send(get("/")).await.unwrap()).await.unwrap(),
            "ok"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        closed.recv().await.unwrap();
        // A POST is not repeated: it fails on the closed connection.
        let body = Full::new(Bytes::from_static(b"once")).map_err(|never| match never {});
        let failed = client.send(post("/", body.boxed_unsync())).await;
        assert!(matches!(failed, Err(Failure::Closed)), "{failed:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_body_streams_both_ways_at_once() {
        // An echo upstream that answers each chunk as it arrives, before the body's end.
        let (client, _) = upstream(|mut s| async move {
            let head = read_head(&mut s).await.unwrap();
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            let reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            s.get_mut().write_all(reply).await.unwrap();
            loop {
                let mut size = String::new();
                s.read_line(&mut size).await.unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut data = vec![0; n + 2];
                s.read_exact(&mut data).await.unwrap();
                let out = [size.as_bytes(), &data].concat();
                s.get_mut().write_all(&out).await.unwrap();
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"ping")).await.unwrap();
        let resp = client.send(post("/echo", body)).await.unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"ping");
        tx.send(Bytes::from_static(b"pong")).await.unwrap();
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"pong");
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn an_early_answer_ends_the_upload() {
        let (client, _) = upstream(|mut s| async move {
            read_head(&mut s).await.unwrap();
            let reply =
                b"HTTP/1.1 413 Too Large\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbig";
            s.get_mut().write_all(reply).await.unwrap();
            // Reads no body, and keeps the connection until the client drops it.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let (tx, body) = fed();
        let resp = client.send(post("/upload", body)).await.unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(text(resp).await.unwrap(), "big");
        // The body's task is gone: the sender sees its receiver dropped.
        tx.closed().await;
    }

    #[tokio::test]
    async fn broken_upstreams_are_errors() {
        let (client, _) = upstream(|mut s| async move {
            let head = read_head(&mut s).await.unwrap();
            let reply: &[u8] = if head.starts_with("GET /garbage") {
                b"SMTP ready\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"
            };
            s.get_mut().write_all(reply).await.unwrap();
        })
        .await;
        let failed = client.send(get("/garbage")).await;
        assert!(matches!(failed, Err(Failure::Codec(_))), "{failed:?}");
        let resp = client.send(get("/short")).await.unwrap();
        assert!(text(resp).await.is_err());
    }

    #[tokio::test]
    async fn an_upstream_that_is_down_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let client = Arc::new(H1Client::new(&authority, Duration::from_secs(5)));
        let failed = client.send(get("/")).await;
        assert!(matches!(failed, Err(Failure::Connect(_))), "{failed:?}");
    }
}
