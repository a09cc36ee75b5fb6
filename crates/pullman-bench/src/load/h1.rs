//! The load generator's HTTP/1.1 connection: each request written as one buffer, each
//! answer's head parsed with httparse and its body counted (or kept, for probes) as it
//! arrives, nothing else. The generator shares the machine's 2 cores with the systems it
//! measures, so every microsecond it spends per request is one they cannot have; this costs
//! it less per request than hyper's client (the figures are in docs/bench/findings.md), as
//! wrk's hand-written client does.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::{RequestSpec, Target};
use crate::error::Error;

/// Most header fields an answer may have.
const MAX_HEADERS: usize = 64;
/// Longest answer head, or chunk-size line, the connection waits for.
const MAX_HEAD: usize = 64 * 1024;
/// How much the read buffer grows by at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Bodies up to this size are written in the same buffer as their head.
const INLINE_BODY: usize = 16 * 1024;

/// A byte stream: TCP, or TLS over it.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// What one exchange brought back.
pub(super) struct Reply {
    pub(super) status: http::StatusCode,
    pub(super) body_bytes: u64,
    /// The body, when asked to keep it.
    pub(super) body: Bytes,
}

/// One HTTP/1.1 connection, one request at a time.
pub struct H1Conn {
    io: Box<dyn Io>,
    /// Bytes read and not yet parsed.
    buf: BytesMut,
    /// The server closed, or said it would, or an exchange failed half way.
    closed: bool,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// How an answer's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl H1Conn {
    pub(super) fn new(io: impl Io + 'static) -> H1Conn {
        H1Conn {
            io: Box::new(io),
            buf: BytesMut::with_capacity(READ_CHUNK),
            closed: false,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes `spec`'s request and reads the answer. With `keep`, the body's bytes are
    /// returned, else only counted.
    pub(super) async fn exchange(
        &mut self,
        target: &Target,
        spec: &RequestSpec,
        keep: bool,
    ) -> Result<Reply, Error> {
        let mut head = spec.h1_head(target);
        let body = &spec.body[..];
        // The answer to a HEAD request has no body, whatever its fields say.
        let no_body = spec.method == http::Method::HEAD;
        if self.closed {
            return Err(bad("the connection is closed"));
        }
        // Marked closed until the exchange ends well: an error half way leaves the
        // connection in an unknown state.
        self.closed = true;
        if body.len() <= INLINE_BODY {
            head.extend_from_slice(body);
            self.io.write_all(&head).await?;
        } else {
            self.io.write_all(&head).await?;
            self.io.write_all(body).await?;
        }
        let (status, framing, close) = self.read_head(no_body).await?;
        let mut kept = BytesMut::new();
        let body_bytes = match framing {
            Framing::None => 0,
            Framing::Length(n) => self.read_exact_body(n, keep.then_some(&mut kept)).await?,
            Framing::Chunked => self.read_chunked(keep.then_some(&mut kept)).await?,
            Framing::UntilClose => {
                let n = self.read_to_close(keep.then_some(&mut kept)).await?;
                return Ok(Reply {
                    status,
                    body_bytes: n,
                    body: kept.freeze(),
                });
            }
        };
        self.closed = close;
        Ok(Reply {
            status,
            body_bytes,
            body: kept.freeze(),
        })
    }

    /// Reads more bytes into the buffer; an error at the end of the stream.
    async fn fill(&mut self) -> Result<(), Error> {
        self.buf.reserve(READ_CHUNK);
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(bad("the server closed the connection mid-answer"));
        }
        Ok(())
    }

    /// The answer's status, how its body is delimited, and whether the server closes after
    /// it. Interim (1xx) answers are skipped.
    async fn read_head(
        &mut self,
        no_body: bool,
    ) -> Result<(http::StatusCode, Framing, bool), Error> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut fields);
            let parsed = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let code = resp.code.unwrap_or(0);
                    let status = http::StatusCode::from_u16(code)
                        .map_err(|_| bad(format!("status {code}")))?;
                    let mut framing = Framing::UntilClose;
                    let mut close = resp.version == Some(0);
                    for f in resp.headers.iter() {
                        if f.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(f.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .ok_or_else(|| bad("a content-length that is not a number"))?;
                            framing = Framing::Length(n);
                        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
                            framing = Framing::Chunked;
                        } else if f.name.eq_ignore_ascii_case("connection") {
                            close = f.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    if no_body || matches!(code, 204 | 304) {
                        framing = Framing::None;
                    }
                    Some((n, status, framing, close))
                }
                Ok(httparse::Status::Partial) => None,
                Err(e) => return Err(bad(format!("an answer head that does not parse: {e}"))),
            };
            match parsed {
                Some((n, status, framing, close)) => {
                    self.buf.advance(n);
                    if status.is_informational() {
                        continue;
                    }
                    return Ok((status, framing, close));
                }
                None if self.buf.len() >= MAX_HEAD => {
                    return Err(bad("an answer head longer than 64 KiB"))
                }
                None => self.fill().await?,
            }
        }
    }

    /// Takes up to `n` buffered bytes of the body, into `keep` if given; how many.
    fn take(&mut self, n: u64, keep: &mut Option<&mut BytesMut>) -> u64 {
        let k = (self.buf.len() as u64).min(n) as usize;
        let part = self.buf.split_to(k);
        if let Some(kept) = keep {
            kept.extend_from_slice(&part);
        }
        k as u64
    }

    async fn read_exact_body(
        &mut self,
        n: u64,
        mut keep: Option<&mut BytesMut>,
    ) -> Result<u64, Error> {
        let mut left = n;
        loop {
            left -= self.take(left, &mut keep);
            if left == 0 {
                return Ok(n);
            }
            self.fill().await?;
        }
    }

    /// One CRLF-ended line (a chunk size or a trailer field), without its CRLF.
    async fn line(&mut self) -> Result<BytesMut, Error> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at);
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(bad("a chunk-size line longer than 64 KiB"));
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(&mut self, mut keep: Option<&mut BytesMut>) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            let line = self.line().await?;
            let size = line[..].split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| bad("a chunk size that is not a hex number"))?;
            if size == 0 {
                // Trailer fields, if any, up to the blank line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            total += self.read_exact_body(size, keep.as_deref_mut()).await?;
            if !self.line().await?.is_empty() {
                return Err(bad("a chunk longer than its size"));
            }
        }
    }

    async fn read_to_close(&mut self, mut keep: Option<&mut BytesMut>) -> Result<u64, Error> {
        let mut total = self.take(u64::MAX, &mut keep);
        loop {
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(total);
            }
            total += self.take(u64::MAX, &mut keep);
        }
    }
}

fn bad(why: impl Into<String>) -> Error {
    Error::peer("HTTP/1.1 answer", why)
}
