//! The HTTP/1.1 client of an `http://` upstream: kept-alive connections, each carrying one
//! request at a time, driven by the request's own task (no connection task, no channel
//! between them).
//!
//! A request takes the most recently idle connection (or dials one) and runs one exchange
//! on it (`http1::conn`): the response body puts the connection back among the idle ones
//! when it has ended cleanly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, Method, Request, Response};
use http_body::{Body, SizeHint};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::UpstreamBody;
use crate::http1::codec::{encode_request, Framing};
use crate::http1::conn::{exchange, Conn, Failure, Home};

/// An upstream response's body, read from its connection.
pub(crate) type ResponseBody = crate::http1::conn::ResponseBody<Arc<H1Client>>;

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
            match exchange(
                conn,
                head.clone(),
                body.take(),
                framing,
                head_request,
                self.clone(),
            )
            .await
            {
                Err(Failure::Closed) if reused && replayable => continue,
                result => return result,
            }
        }
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

    fn keep_idle(&self, conn: Conn) {
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
        Ok(Conn::new(stream))
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

/// A connection whose response ended cleanly goes back among the idle ones.
impl Home for Arc<H1Client> {
    fn checkin(self, conn: Conn) {
        self.keep_idle(conn);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;
    use crate::upstream::{BoxError, Fed};

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
