//! Feeds arbitrary bytes to both ends of the link handshake, as a stranger would.
//!
//! The first byte picks the side; the rest is what the other end sent.
//!
//! - Even: the hub's side of a worker port. The bytes go through `preface::classify`, prefix
//!   by prefix, as `recv_preface` reads them: a verdict, once reached, never changes with
//!   more bytes, and every peer is told apart within [`DECIDED_BY`] bytes (so trickling
//!   bytes cannot hold a connection undecided). After the preface, HELLO is decoded with
//!   `HANDSHAKE_MAX_FRAME` as `recv_frame` does; a HELLO re-encodes to the bytes it came
//!   from, and the hub's version choice lies in both ranges.
//! - Odd: the worker's side. The bytes are the hub's answer to HELLO (WELCOME, CLOSE, or an
//!   HTTP server's response), decoded the same way.
//!
//! On both sides the decoder must give the same answer however the bytes are split: on any
//! prefix it needs more bytes or says what it says on the whole.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pullman_proto::handshake::negotiate_version;
use pullman_proto::preface::{classify, is_http_response};
use pullman_proto::{
    decode, encode, Frame, Modes, Opening, FRAME_HEADER_LEN, HANDSHAKE_MAX_FRAME, PREFACE,
    PROTOCOL_VERSION,
};

/// Bytes after which `classify` has an answer for any peer: one past the longest HTTP
/// method it waits for (24 letters), more than the preface (12) or a frame header (14).
const DECIDED_BY: usize = 25;

fuzz_target!(|data: &[u8]| {
    let Some((&side, bytes)) = data.split_first() else {
        return;
    };
    if side % 2 == 0 {
        hub_reads_worker(bytes);
    } else {
        worker_reads_hub(bytes);
    }
});

fn hub_reads_worker(bytes: &[u8]) {
    let mut verdict = Opening::Incomplete;
    for n in 0..=bytes.len().min(2 * DECIDED_BY) {
        let now = classify(&bytes[..n]);
        if verdict != Opening::Incomplete {
            assert_eq!(now, verdict, "more bytes changed the verdict at {n}");
        }
        if n >= DECIDED_BY {
            assert_ne!(now, Opening::Incomplete, "undecided after {n} bytes");
        }
        verdict = now;
    }
    if classify(bytes) != Opening::Preface {
        return;
    }
    let after = &bytes[PREFACE.len()..];
    let Some(frame) = decode_in_pieces(after) else {
        return;
    };
    if let Frame::Hello(hello) = &frame {
        let ours = (PROTOCOL_VERSION, PROTOCOL_VERSION);
        let theirs = (hello.min_version, hello.max_version);
        if let Some(v) = negotiate_version(ours, theirs) {
            assert!(ours.0 <= v && v <= ours.1 && theirs.0 <= v && v <= theirs.1);
        }
        // What the hub tells a worker that lacks a mode.
        let lacking = hello.modes.lacking(Modes::FILTER);
        assert_eq!(lacking.0 & hello.modes.0, 0);
        let _ = format!("{lacking} {}", hello.modes);
    }
}

fn worker_reads_hub(bytes: &[u8]) {
    if decode_in_pieces(bytes).is_none() {
        // What the worker checks before it gives up on an answer that is no frame.
        let _ = is_http_response(bytes);
    }
}

/// Decodes the first frame of `bytes` with the handshake's limit, and checks that every
/// prefix of the bytes is either "need more" or the same answer. A decoded HELLO, WELCOME
/// or CLOSE must re-encode to the bytes it came from.
fn decode_in_pieces(bytes: &[u8]) -> Option<Frame> {
    let mut whole = BytesMut::from(bytes);
    let answer = decode(&mut whole, HANDSHAKE_MAX_FRAME);
    let consumed = bytes.len() - whole.len();
    // Every prefix near the header, then a sample of the rest.
    let step = (bytes.len() / 64).max(1);
    let prefixes =
        (0..=bytes.len().min(FRAME_HEADER_LEN + 8)).chain((0..bytes.len()).step_by(step));
    for n in prefixes {
        let mut part = BytesMut::from(&bytes[..n]);
        match decode(&mut part, HANDSHAKE_MAX_FRAME) {
            Ok(None) => assert!(
                n < consumed || answer.is_err() || answer == Ok(None),
                "a whole frame in {n} bytes is still incomplete"
            ),
            other => assert_eq!(
                other,
                answer,
                "{n} bytes decode differently from {}",
                bytes.len()
            ),
        }
    }
    let frame = answer.ok()??;
    if matches!(
        frame,
        Frame::Hello(_) | Frame::Welcome(_) | Frame::Close { .. }
    ) {
        let mut again = BytesMut::new();
        encode(&frame, &mut again, HANDSHAKE_MAX_FRAME).expect("a decoded frame encodes");
        // The handshake's frames define no flag bits: the encoder writes none.
        let mut expected = bytes[..consumed].to_vec();
        expected[5] = 0;
        assert_eq!(
            &again[..],
            &expected[..],
            "re-encoding differs for {frame:?}"
        );
    }
    Some(frame)
}
