//! Feeds arbitrary bytes to the frame decoder, as a hostile peer would.
//!
//! The first four bytes (big-endian) choose `max_frame`, folded into `0..=MAX_FRAME_LIMIT`
//! (the largest limit a link ever passes, so a huge length prefix cannot make the decoder
//! reserve more than a real link would); shorter inputs use `DEFAULT_MAX_FRAME`. The rest is
//! the byte stream. Frames are decoded in a loop until the decoder wants more bytes or
//! refuses the input. Every frame that decodes must re-encode, within the same limit, to the
//! bytes it came from (flag bits the frame type does not define are dropped) and decode back
//! to itself, and a decoded request head must answer every accessor without panicking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pullman_proto::frame::{FLAG_END, FLAG_RETRYABLE, FLAG_TLS};
use pullman_proto::{decode, encode, Frame, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, MAX_FRAME_LIMIT};

fuzz_target!(|data: &[u8]| {
    let (max_frame, stream) = match data {
        [a, b, c, d, rest @ ..] => (
            u32::from_be_bytes([*a, *b, *c, *d]) % (MAX_FRAME_LIMIT + 1),
            rest,
        ),
        _ => (DEFAULT_MAX_FRAME, data),
    };
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.clone();
        let frame = match decode(&mut buf, max_frame) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        read_everything(&frame);
        let consumed = before.len() - buf.len();
        assert!(consumed >= FRAME_HEADER_LEN);
        assert!(consumed - FRAME_HEADER_LEN <= max_frame as usize);

        let mut again = BytesMut::new();
        encode(&frame, &mut again, max_frame).expect("a decoded frame encodes within its limit");
        let mut expected = before[..consumed].to_vec();
        expected[5] &= defined_flags(&frame);
        assert_eq!(
            &again[..],
            &expected[..],
            "re-encoding differs for {frame:?}"
        );

        assert_eq!(decode(&mut again, max_frame), Ok(Some(frame)));
        assert!(again.is_empty());
    }
});

/// Calls every accessor that slices peer-supplied offsets, so a head block the decoder
/// accepted but cannot serve shows up as a panic.
fn read_everything(frame: &Frame) {
    if let Frame::Request(r) = frame {
        let h = &r.head;
        let _ = (
            h.version(),
            h.method(),
            h.target(),
            h.path(),
            h.query(),
            h.raw(),
        );
        for i in 0..=h.header_count() {
            let _ = (h.header(i), h.header_bytes(i));
        }
        let _ = h.headers().count();
        let _ = h.header_value(b"host");
        let _ = format!("{frame:?}");
    }
    if let Frame::Verdict(v) = frame {
        for edit in &v.edits {
            let _ = (edit.op, edit.name.len(), edit.value.len());
        }
        let _ = v.target.as_deref().map(<[u8]>::len);
    }
}

/// The flag bits a frame type gives meaning to; the encoder writes only these.
fn defined_flags(frame: &Frame) -> u8 {
    match frame {
        Frame::Request(_) => FLAG_END | FLAG_TLS,
        Frame::Response(_) | Frame::Body { .. } | Frame::Verdict(_) => FLAG_END,
        Frame::Reject { .. } => FLAG_RETRYABLE,
        _ => 0,
    }
}
