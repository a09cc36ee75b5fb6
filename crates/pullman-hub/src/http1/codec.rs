//! HTTP/1.1 as the hub speaks it to an upstream or a PTTH worker, apart from I/O (RFC
//! 9112): the request head as bytes, the response head parsed, and the body framings both
//! ways.
//!
//! `decode` style as in `pullman-proto`: functions take the bytes read so far and answer
//! "need more" (`None`) until a whole unit is there, then split it off the buffer.

use std::fmt::Write as _;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use pullman_proto::HeadView;

use crate::hop::is_hop_by_hop_name;

/// Largest response head the hub reads from an upstream: heads are a few hundred bytes,
/// and 64 KiB is what common servers accept as the largest request head.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one response head: far above what real responses carry, and it
/// bounds the parser's table on the stack.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) or trailer line: a size is at most 16 hex
/// digits, so anything near this is an attack or a broken peer.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted (and dropped) after a chunked body.
const MAX_TRAILERS: usize = 64 * 1024;

/// What went wrong in an upstream's bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
    #[error("the connection closed {0} bytes before the body's end")]
    Truncated(u64),
    #[error("the connection closed in a chunked body")]
    TruncatedChunked,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Writes the head of a request for `target` with the end-to-end `headers`, framing its
/// body as `framing` (the caller's choice: the hub, not the client or a filter, decides how
/// a body crosses this hop, so `content-length` and `transfer-encoding` in `headers` are
/// replaced). `authority` is the `host` when `headers` has none.
pub(crate) fn encode_request(
    method: &Method,
    target: &[u8],
    headers: &HeaderMap,
    framing: Framing,
    authority: &str,
    out: &mut BytesMut,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        field(out, b"host", authority.as_bytes());
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    framing_field(out, framing, headers.contains_key(CONTENT_LENGTH));
    out.extend_from_slice(b"\r\n");
}

/// Writes the head of the request `head` as HTTP/1.1 for a worker that speaks it (PTTH):
/// its method, its target in origin form, and its end-to-end fields; framing its body as
/// `framing`. Hop-by-hop fields stay on the client's hop, and so does `expect` (the front
/// answered a `100-continue` itself), and `content-length` and `transfer-encoding` are the
/// hub's to write.
pub fn encode_head_view(head: &HeadView, framing: Framing, out: &mut BytesMut) {
    out.extend_from_slice(head.method());
    out.extend_from_slice(b" ");
    out.extend_from_slice(origin_form(head.target()));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in head.headers() {
        let dropped = is_hop_by_hop_name(name) || name == b"content-length" || name == b"expect";
        if !dropped {
            field(out, name, value);
        }
    }
    framing_field(out, framing, false);
    out.extend_from_slice(b"\r\n");
}

/// A request target in origin form: an absolute URI's path and query (`/` if it has no
/// path); any other target as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let Some(scheme_end) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let rest = &target[scheme_end + 3..];
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => &rest[i..],
        _ => b"/",
    }
}

fn framing_field(out: &mut BytesMut, framing: Framing, declared_length: bool) {
    match framing {
        Framing::Length(0) if !declared_length => {}
        Framing::Length(n) => {
            let mut text = String::with_capacity(20);
            let _ = write!(text, "{n}");
            field(out, b"content-length", text.as_bytes());
        }
        Framing::Chunked => field(out, b"transfer-encoding", b"chunked"),
        Framing::Close => {}
    }
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The size line before a chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// What ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk of a chunked body, without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// An upstream's response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buf`, skipping interim (1xx) responses.
/// `None`: more bytes are needed. On success the head is split off `buf`, which keeps the
/// body bytes that came with it. `head_request`: the request was HEAD, so no body follows.
pub fn decode_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, CodecError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialised: httparse writes only the fields it finds.
        let mut fields = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let parser = httparse::ParserConfig::default();
        let len = match parser.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            // Refused whole as it is in pieces: the limit does not depend on how reads fall.
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                return Err(CodecError::HeadTooLarge)
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(CodecError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(CodecError::Head(e.to_string())),
        };
        let code = parsed.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| CodecError::Head(format!("status {code}")))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(CodecError::Head(
                "101 to a request that asked no upgrade".into(),
            ));
        }
        if status.is_informational() {
            let _ = buf.split_to(len);
            continue;
        }
        let http11 = parsed.version == Some(1);
        // Field values are kept as slices of the head, without a copy.
        let base = buf.as_ptr() as usize;
        let mut spans = Vec::with_capacity(parsed.headers.len());
        let mut delimiters = Delimiters::default();
        for f in parsed.headers.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| CodecError::Head(format!("field name {:?}", f.name)))?;
            delimiters.note(&name, f.value);
            let start = f.value.as_ptr() as usize - base;
            spans.push((name, start, start + f.value.len()));
        }
        let (framing, delimited) = delimiters.framing(status, head_request)?;
        let keep_alive = delimited && delimiters.keep_alive(http11);
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, start, end) in spans {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| CodecError::Head(format!("value of {name}")))?;
            headers.append(name, value);
        }
        return Ok(Some(ResponseHead {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// What the framing and the connection's reuse depend on, noted while a response's fields
/// are read, so no field is looked up again afterwards.
#[derive(Default)]
struct Delimiters {
    /// Whether a `transfer-encoding` field came, and whether chunked is the last coding of
    /// the last one.
    transfer_encoding: bool,
    chunked_last: bool,
    /// The `content-length` (all its values agree), or why it is unusable.
    content_length: Option<Result<u64, &'static str>>,
    close: bool,
    keep_alive: bool,
}

impl Delimiters {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // As `HeaderValue::to_str`: a value with other than visible ASCII names no coding.
            let text = value
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
            self.chunked_last = text
                && value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONTENT_LENGTH {
            for part in value.split(|&b| b == b',') {
                let n = parse_decimal(part.trim_ascii()).ok_or("invalid content-length");
                self.content_length = Some(match (self.content_length, n) {
                    (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                    (Some(Ok(l)), Ok(n)) if l != n => Err("conflicting content-lengths"),
                    (_, Ok(n)) => Ok(n),
                });
            }
        } else if name == CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    /// The body framing of a response (RFC 9112 section 6.3), and whether the connection
    /// can carry on after it.
    fn framing(
        &self,
        status: StatusCode,
        head_request: bool,
    ) -> Result<(Framing, bool), CodecError> {
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok((Framing::Length(0), true));
        }
        if self.transfer_encoding {
            // With a content-length beside it, the message may be a smuggling attempt: read
            // it by its transfer coding, and do not reuse the connection.
            let alone = self.content_length.is_none();
            return Ok(if self.chunked_last {
                (Framing::Chunked, alone)
            } else {
                (Framing::Close, false)
            });
        }
        match self.content_length {
            Some(Ok(n)) => Ok((Framing::Length(n), true)),
            Some(Err(e)) => Err(CodecError::Head(e.into())),
            None => Ok((Framing::Close, false)),
        }
    }

    /// Whether the peer lets the connection carry another request.
    fn keep_alive(&self, http11: bool) -> bool {
        !self.close && (http11 || self.keep_alive)
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Takes a response body out of the bytes read, by its framing.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

#[derive(Debug)]
enum State {
    /// This many bytes still to come.
    Length(u64),
    /// Up to the connection's end.
    Close,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk's data: this many bytes left.
    ChunkData(u64),
    /// After a chunk's data: its CRLF.
    ChunkEnd,
    /// After the last chunk: trailer lines (dropped), this many bytes so far.
    Trailers(usize),
    Done,
}

/// What the decoder made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body is complete.
    Done,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        BodyDecoder { state }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Body bytes still to come, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, CodecError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Length(n) | State::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::ChunkSize => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(CodecError::Chunked("no CRLF after chunk data"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Err(CodecError::Chunked("trailers too large"));
                    }
                    self.state = if line.is_empty() {
                        State::Done
                    } else {
                        State::Trailers(seen)
                    };
                }
            }
        }
    }

    /// The connection ended: fine only for a body delimited by the close.
    pub fn eof(&mut self) -> Result<(), CodecError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(n) => Err(CodecError::Truncated(n)),
            _ => Err(CodecError::TruncatedChunked),
        }
    }
}

/// One CRLF-terminated line off the front of `buf`, without its CRLF.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > MAX_LINE => Err(CodecError::Chunked("line too long")),
        Some(end) => {
            let mut line = buf.split_to(end + 2);
            line.truncate(end);
            Ok(Some(line))
        }
        // Without its CRLF, a line of MAX_LINE bytes may have its CR in the buffer already.
        None if buf.len() > MAX_LINE + 1 => Err(CodecError::Chunked("line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (hex digits, then optional extensions, which are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, CodecError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = line[digits_end..].trim_ascii_start();
    if digits_end == 0 || !(rest.is_empty() || rest[0] == b';') {
        return Err(CodecError::Chunked("invalid chunk size"));
    }
    line[..digits_end].iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        n.checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(v)))
            .ok_or(CodecError::Chunked("chunk size overflows"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, wire: &[u8], step: usize) -> Result<Vec<u8>, CodecError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Done => return Ok(out),
                Decoded::NeedMore if fed == wire.len() => {
                    decoder.eof()?;
                    return Ok(out);
                }
                Decoded::NeedMore => {
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn request_heads_carry_the_hubs_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.com".parse().unwrap());
        headers.insert("content-length", "99".parse().unwrap());
        headers.insert("transfer-encoding", "gzip".parse().unwrap());
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        let mut out = BytesMut::new();
        encode_request(
            &Method::POST,
            b"/p?q=1",
            &headers,
            Framing::Chunked,
            "up:80",
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\n\
transfer-encoding: chunked\r\n\r\n"
        );
        out.clear();
        encode_request(
            &Method::GET,
            b"/",
            &HeaderMap::new(),
            Framing::Length(0),
            "up:80",
            &mut out,
        );
        assert_eq!(&out[..], b"GET / HTTP/1.1\r\nhost: up:80\r\n\r\n");
        out.clear();
        encode_request(
            &Method::PUT,
            b"/",
            &HeaderMap::new(),
            Framing::Length(12),
            "up:80",
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"PUT / HTTP/1.1\r\nhost: up:80\r\ncontent-length: 12\r\n\r\n"
        );
    }

    #[test]
    fn response_heads_parse_with_their_framing() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhel"[..],
        );
        let head = decode_response(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(&buf[..], b"hel");

        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-le"[..]);
        assert!(decode_response(&mut partial, false).unwrap().is_none());

        let cases: [(&[u8], bool, Framing, bool); 11] = [
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
                true,
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                false,
                Framing::Length(1),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n",
                false,
                Framing::Length(1),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            // The transfer coding decides; a content-length beside it, even a broken one,
            // only stops the connection's reuse.
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: x\r\ntransfer-encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            // The last transfer-encoding field's last coding counts.
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n\r\n",
                false,
                Framing::Close,
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\n",
                false,
                Framing::Length(1),
                true,
            ),
            // close wins wherever it stands.
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: close\r\nconnection: keep-alive\r\n\r\n",
                false,
                Framing::Length(1),
                false,
            ),
        ];
        for (wire, head_request, framing, keep_alive) in cases {
            let mut buf = BytesMut::from(wire);
            let head = decode_response(&mut buf, head_request).unwrap().unwrap();
            assert_eq!(head.framing, framing, "{}", String::from_utf8_lossy(wire));
            assert_eq!(
                head.keep_alive,
                keep_alive,
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn bad_response_heads_are_errors() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"SMTP hello\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(decode_response(&mut buf, false).is_err(), "{wire:?}");
        }
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        while huge.len() <= MAX_HEAD {
            huge.extend_from_slice(b"x-filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert!(matches!(
            decode_response(&mut huge, false),
            Err(CodecError::HeadTooLarge) | Err(CodecError::Head(_))
        ));
    }

    #[test]
    fn limits_hold_however_the_bytes_arrive() {
        // A head past MAX_HEAD is refused when it arrives whole, as when it arrives in reads
        // (in fields few enough for the parser's table).
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        let field = [&b"x-filler: "[..], &[b'a'; 2000], b"\r\n"].concat();
        while huge.len() <= MAX_HEAD {
            huge.extend_from_slice(&field);
        }
        huge.extend_from_slice(b"\r\n");
        assert!(matches!(
            decode_response(&mut huge, false),
            Err(CodecError::HeadTooLarge)
        ));
        // A chunk-size line of exactly MAX_LINE bytes is taken whether its CRLF arrives with
        // it or split across two reads.
        let mut wire = b"5;".to_vec();
        wire.resize(MAX_LINE, b'x');
        wire.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        for step in [MAX_LINE, MAX_LINE + 1, MAX_LINE + 2, wire.len()] {
            assert_eq!(
                decode_all(Framing::Chunked, &wire, step).unwrap(),
                b"hello",
                "reads of {step}"
            );
        }
    }

    #[test]
    fn bodies_decode_whatever_the_read_sizes() {
        let chunked = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(
                decode_all(Framing::Chunked, chunked, step).unwrap(),
                b"hello world"
            );
            assert_eq!(
                decode_all(Framing::Length(5), b"hello", step).unwrap(),
                b"hello"
            );
            assert_eq!(
                decode_all(Framing::Close, b"until the end", step).unwrap(),
                b"until the end"
            );
        }
        assert!(decode_all(Framing::Length(0), b"", 1).unwrap().is_empty());
    }

    #[test]
    fn broken_bodies_are_errors() {
        for wire in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"zz\r\n",
            b"\r\n",
            b"ffffffffffffffffff\r\n",
            b"5\r\nhel",
        ] {
            assert!(decode_all(Framing::Chunked, wire, 3).is_err(), "{wire:?}");
        }
        assert!(matches!(
            decode_all(Framing::Length(10), b"short", 2),
            Err(CodecError::Truncated(5))
        ));
        let long_line = vec![b'1'; MAX_LINE + 10];
        assert!(decode_all(Framing::Chunked, &long_line, 100).is_err());
    }

    #[test]
    fn data_never_includes_the_next_response() {
        let mut buf = BytesMut::from(&b"abcHTTP/1.1 200 OK\r\n"[..]);
        let mut decoder = BodyDecoder::new(Framing::Length(3));
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..4], b"HTTP");
    }

    proptest::proptest! {
        /// Whatever bodies the hub frames as chunks decode back to the same bytes, however
        /// the reads split them.
        #[test]
        fn chunked_bodies_round_trip(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..300), 0..8),
            step in 1usize..64,
        ) {
            let mut wire = Vec::new();
            for piece in &pieces {
                wire.extend_from_slice(&chunk_size_line(piece.len()));
                wire.extend_from_slice(piece);
                wire.extend_from_slice(CHUNK_END);
            }
            wire.extend_from_slice(LAST_CHUNK);
            let body = decode_all(Framing::Chunked, &wire, step).unwrap();
            proptest::prop_assert_eq!(body, pieces.concat());
        }

        /// Arbitrary bytes from an upstream are a response, "need more", or an error; never
        /// a panic.
        #[test]
        fn any_bytes_decode_without_panic(
            wire in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            head_request in proptest::bool::ANY,
        ) {
            let mut prefixed = b"HTTP/1.1 200 OK\r\n".to_vec();
            prefixed.extend_from_slice(&wire);
            for bytes in [&wire[..], &prefixed[..]] {
                let mut buf = BytesMut::from(bytes);
                if let Ok(Some(head)) = decode_response(&mut buf, head_request) {
                    let _ = decode_all(head.framing, &buf, 7);
                }
            }
            let _ = decode_all(Framing::Chunked, &wire, 5);
        }
    }
}
