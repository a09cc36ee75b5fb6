//! A "worker" that does the handshake by the book (docs/protocol.md section 7), takes one
//! request, and then answers it with something the hub cannot use. The hub must close or
//! refuse that one link and give the request's client a documented answer (502, a cut-off
//! body), never a wrong one; the other workers are not to notice.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pullman_proto::{Frame, Mode, Modes, Response};

use crate::support::opening;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the junk worker waits for its one request before it gives up: the load sends
/// the `tcp` pool dozens a second, so it waits this long only when the load has stopped (a
/// junk worker started just before the run's end), and the run's end waits for it.
const WAIT_FOR_REQUEST: Duration = Duration::from_secs(5);

/// How long it listens, after its junk, for the hub to close the link; then it closes.
const LINGER: Duration = Duration::from_secs(3);

/// What the junk worker answers its request with.
#[derive(Debug, Clone, Copy)]
pub enum Junk {
    /// Bytes that are no frame (an unknown type byte first): the hub closes the link.
    Noise,
    /// A frame header announcing a payload larger than any frame allowed.
    Oversized,
    /// RESPONSE with status 42: an unusable head, 502 and CANCEL `refused`.
    BadStatus,
    /// RESPONSE 200 with `content-length: 1000`, then a BODY that ends at once: the client's
    /// body is cut off.
    ShortBody,
    /// RESPONSE on a stream the hub never opened.
    StrayStream,
    /// RESPONSE 200 (no length: a streamed body, as `/echo` answers), then the link closes:
    /// a worker that dies between its head and its body.
    HeadThenClose,
}

/// The junk the fault injector sends.
pub const JUNKS: [Junk; 6] = [
    Junk::Noise,
    Junk::Oversized,
    Junk::BadStatus,
    Junk::ShortBody,
    Junk::StrayStream,
    Junk::HeadThenClose,
];

impl Junk {
    pub fn name(self) -> &'static str {
        match self {
            Junk::Noise => "junk_noise",
            Junk::Oversized => "junk_oversized",
            Junk::BadStatus => "junk_bad_status",
            Junk::ShortBody => "junk_short_body",
            Junk::StrayStream => "junk_stray_stream",
            Junk::HeadThenClose => "junk_head_then_close",
        }
    }
}

/// What became of a junk worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JunkEnd {
    /// It got a request and sent its junk.
    Sent,
    /// It got no request in time (or the hub refused it): nothing was sent.
    Idle,
}

/// Dials `addr` (the hub's TCP worker port), joins `pool` with `token`, grants one credit,
/// and answers the first REQUEST with `junk`.
pub async fn run(addr: &str, pool: &str, token: &str, junk: Junk) -> JunkEnd {
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        return JunkEnd::Idle;
    };
    let mut out = opening(pool, token, Modes::of(Mode::Respond), junk.name());
    encode(&Frame::Credit { n: 1 }, &mut out);
    if sock.write_all(&out).await.is_err() {
        return JunkEnd::Idle;
    }
    let mut buf = BytesMut::new();
    let stream =
        match tokio::time::timeout(WAIT_FOR_REQUEST, first_request(&mut sock, &mut buf)).await {
            Ok(Some(stream)) => stream,
            _ => return JunkEnd::Idle,
        };
    let mut out = BytesMut::new();
    match junk {
        Junk::Noise => out.extend_from_slice(b"\xee\xff junk that is no frame at all \x00\x01"),
        Junk::Oversized => {
            out.extend_from_slice(&u32::MAX.to_be_bytes());
            out.extend_from_slice(&[0x05, 0]);
            out.extend_from_slice(&stream.to_be_bytes());
        }
        Junk::BadStatus => response(&mut out, stream, 42, vec![], true),
        Junk::ShortBody => {
            let length = (
                Bytes::from_static(b"content-length"),
                Bytes::from_static(b"1000"),
            );
            response(&mut out, stream, 200, vec![length], false);
            let end = Frame::Body {
                stream,
                data: Bytes::new(),
                end: true,
            };
            encode(&end, &mut out);
        }
        Junk::StrayStream => response(&mut out, stream + 1_000_001, 200, vec![], true),
        Junk::HeadThenClose => response(&mut out, stream, 200, vec![], false),
    }
    let _ = sock.write_all(&out).await;
    if matches!(junk, Junk::HeadThenClose) {
        return JunkEnd::Sent;
    }
    // Wait for the hub to close the link, or close it ourselves: either way the request
    // ends, and the suite checks how.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    JunkEnd::Sent
}

fn encode(frame: &Frame, out: &mut BytesMut) {
    pullman_proto::encode(frame, out, 1 << 20).expect("a frame the junk worker can encode");
}

fn response(out: &mut BytesMut, stream: u64, status: u16, headers: Vec<(Bytes, Bytes)>, end: bool) {
    let head = Response {
        stream,
        end,
        status,
        headers,
    };
    encode(&Frame::Response(head), out);
}

/// Reads frames until the first REQUEST, answering pings; `None` if the link closes first.
async fn first_request(sock: &mut TcpStream, buf: &mut BytesMut) -> Option<u64> {
    loop {
        loop {
            match pullman_proto::decode(buf, 1 << 20) {
                Ok(Some(Frame::Request(req))) => return Some(req.stream),
                Ok(Some(Frame::Ping { opaque })) => {
                    let mut pong = BytesMut::new();
                    encode(&Frame::Pong { opaque }, &mut pong);
                    sock.write_all(&pong).await.ok()?;
                }
                Ok(Some(Frame::Close { .. })) | Err(_) => return None,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
