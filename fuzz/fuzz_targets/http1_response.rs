//! HTTP/1.1 responses as the hub reads them from a PTTH (POTHEAD reverse-HTTP) worker or a
//! filter pool's upstream: `decode_response`, then a `BodyDecoder` of the framing it chose.
//!
//! The first byte: bit 0 says whether the request was HEAD; the rest (+1) is the size of
//! the reads the bytes arrive in. The remaining bytes are what the peer sent.
//!
//! Checked: no panic; the head and the body come out the same whether the bytes arrive at
//! once or in reads of that size; a body piece is never empty (a caller would spin); a body
//! of a length ends exactly at it, never takes the next response's bytes, and counts
//! `remaining` down; the end of the connection is a clean end only for a body delimited by
//! it or already complete; and the body re-framed in chunks by the hub's own encoder
//! decodes back to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pullman_hub::fuzzing::{
    chunk_size_line, decode_response, BodyDecoder, CodecError, Decoded, Framing, ResponseHead,
    CHUNK_END, LAST_CHUNK,
};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, wire)) = data.split_first() else {
        return;
    };
    let head_request = shape & 1 == 1;
    let step = usize::from(shape >> 1) + 1;

    let mut whole = BytesMut::from(wire);
    let at_once = decode_response(&mut whole, head_request);
    let (pieces, in_reads) = head_in_reads(wire, step, head_request);
    match (&at_once, &in_reads) {
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_same(a, b);
            assert_eq!(whole, pieces, "bytes left after the head");
        }
        _ => panic!("at once {at_once:?}, in reads of {step}: {in_reads:?}"),
    }
    let Ok(Some(head)) = at_once else {
        return;
    };
    let body = whole.to_vec();
    let read = read_body(head.framing, &body, body.len().max(1));
    let stepped = read_body(head.framing, &body, step);
    assert_eq!(read, stepped, "the body depends on the reads");

    if let Some((data, _)) = read {
        let rechunked = read_body(Framing::Chunked, &chunked(&data, step), step);
        assert_eq!(
            rechunked.map(|(d, _)| d),
            Some(data),
            "chunks of the hub's own"
        );
    }
});

/// The head decoded from `wire` arriving `step` bytes at a time: feeds reads until the
/// decoder answers. Returns what is left in the buffer, and the answer.
fn head_in_reads(
    wire: &[u8],
    step: usize,
    head_request: bool,
) -> (BytesMut, Result<Option<ResponseHead>, CodecError>) {
    let mut buf = BytesMut::new();
    let mut reads = wire.chunks(step);
    loop {
        match decode_response(&mut buf, head_request) {
            Ok(None) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => return (buf, Ok(None)),
            },
            answer => {
                // The rest of the bytes arrive behind the head.
                for read in reads {
                    buf.extend_from_slice(read);
                }
                return (buf, answer);
            }
        }
    }
}

fn assert_same(a: &ResponseHead, b: &ResponseHead) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.framing, b.framing);
    assert_eq!(a.keep_alive, b.keep_alive);
}

/// The body of `framing` read from `wire` in reads of `step` bytes, then the end of the
/// connection: `Some((body, bytes left after it))` if it ended cleanly, `None` if it broke.
fn read_body(framing: Framing, wire: &[u8], step: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut decoder = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut reads = wire.chunks(step);
    loop {
        match decoder.decode(&mut buf).ok()? {
            Decoded::Data(piece) => {
                assert!(!piece.is_empty(), "an empty body piece");
                body.extend_from_slice(&piece);
                if let Framing::Length(n) = framing {
                    let left = n.checked_sub(body.len() as u64).expect("past the length");
                    assert_eq!(decoder.remaining(), Some(left));
                }
            }
            Decoded::NeedMore => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => break,
            },
            Decoded::Done => {
                if let Framing::Length(n) = framing {
                    assert_eq!(body.len() as u64, n, "ended short of the length");
                }
                assert!(decoder.is_done());
                let mut left = buf.to_vec();
                for read in reads {
                    left.extend_from_slice(read);
                }
                if let Framing::Length(_) = framing {
                    assert_eq!(left, wire[body.len()..], "the bytes after the body");
                }
                return Some((body, left));
            }
        }
    }
    let clean = decoder.eof();
    match framing {
        Framing::Close => assert!(clean.is_ok()),
        Framing::Length(n) => match clean {
            Err(CodecError::Truncated(short)) => assert_eq!(short, n - body.len() as u64),
            other => panic!("a body short of its length ended with {other:?}"),
        },
        Framing::Chunked => assert!(clean.is_err(), "a chunked body without its last chunk"),
    }
    clean.ok().map(|()| (body, Vec::new()))
}

/// `data` as the hub frames a body in chunks of `size` bytes.
fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in data.chunks(size) {
        wire.extend_from_slice(&chunk_size_line(piece.len()));
        wire.extend_from_slice(piece);
        wire.extend_from_slice(CHUNK_END);
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire
}
