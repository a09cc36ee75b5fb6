//! Property tests of the frame codec: whatever frame a peer encodes, the other side decodes
//! back, whole or in pieces, alone or in a stream of frames; no input makes the decoder
//! panic; and no frame makes the encoder panic or write past a limit.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use pullman_proto::error::Field;
use pullman_proto::frame::{FLAG_END, FLAG_RETRYABLE};
use pullman_proto::{
    decode, encode, CancelReason, CloseCode, DecodeError, EditOp, EncodeError, Frame, FrameType,
    HeadBuilder, HeadView, HeaderEdit, Hello, Mode, Modes, Request, Response, Verdict, Version,
    Welcome, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, MAX_FRAME_LIMIT,
};

/// Cases per property: enough to reach every frame family many times, few enough that the
/// file runs in a few seconds in a debug build.
const CASES: u32 = 512;

/// Longest string field generated, in characters (up to 4 bytes each in UTF-8).
const MAX_STRING: usize = 24;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// Any Unicode text, so multi-byte UTF-8 sequences are exercised too.
fn text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=MAX_STRING).prop_map(|chars| chars.into_iter().collect())
}

fn stream_id() -> impl Strategy<Value = u64> {
    prop_oneof![1..=16u64, 1..=u64::MAX]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::Http10),
        Just(Version::Http11),
        Just(Version::Http2),
        Just(Version::Http3),
    ]
}

/// The pieces of a request head: version, method, target, header fields, and how many more
/// fields to declare than are written (the builder then shrinks its span table).
type HeadParts = (Version, Bytes, Bytes, Vec<(Bytes, Bytes)>, usize);

fn head_parts() -> impl Strategy<Value = HeadParts> {
    (
        version(),
        bytes(12),
        bytes(40),
        vec((bytes(16), bytes(32)), 0..6),
        0..3usize,
    )
}

fn build_head((version, method, target, headers, spare): &HeadParts) -> HeadView {
    let mut b = HeadBuilder::new(*version, method, target, headers.len() + spare);
    for (name, value) in headers {
        b.header(name, value).expect("declared enough fields");
    }
    b.finish()
}

/// A head built the way the hub builds one, from arbitrary bytes.
fn head() -> impl Strategy<Value = HeadView> {
    head_parts().prop_map(|parts| build_head(&parts))
}

/// Calls every accessor of a decoded frame that slices peer-supplied offsets, so a head
/// block the decoder accepted but cannot serve shows up as a panic here.
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
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Respond),
        Just(Mode::Filter),
        Just(Mode::FilterResponse),
        Just(Mode::FilterStreamed)
    ]
}

fn cancel_reason() -> impl Strategy<Value = CancelReason> {
    (0..4u8).prop_map(|b| CancelReason::from_u8(b).expect("reasons 0..4 exist"))
}

fn close_code() -> impl Strategy<Value = CloseCode> {
    (0..9u16).prop_map(|v| CloseCode::from_u16(v).expect("codes 0..9 exist"))
}

fn hello() -> impl Strategy<Value = Frame> {
    (
        any::<(u16, u16, u32, u32, u32, u8)>(),
        text(),
        text(),
        text(),
    )
        .prop_map(
            |(
                (min_version, max_version, max_frame, initial_window, features, modes),
                pool,
                token,
                name,
            )| {
                Frame::Hello(Hello {
                    min_version,
                    max_version,
                    max_frame,
                    initial_window,
                    features,
                    modes: Modes(modes),
                    pool,
                    token,
                    name,
                })
            },
        )
}

fn welcome() -> impl Strategy<Value = Frame> {
    any::<(u16, u32, u32, u32, u64, u32)>().prop_map(
        |(version, max_frame, initial_window, features, worker_id, ping_interval_ms)| {
            Frame::Welcome(Welcome {
                version,
                max_frame,
                initial_window,
                features,
                worker_id,
                ping_interval_ms,
            })
        },
    )
}

fn request() -> impl Strategy<Value = Frame> {
    (
        stream_id(),
        any::<bool>(),
        any::<u32>(),
        mode(),
        text(),
        any::<bool>(),
        head(),
    )
        .prop_map(|(stream, end, deadline_ms, mode, peer, tls, head)| {
            Frame::Request(Request {
                stream,
                end,
                deadline_ms,
                mode,
                peer,
                tls,
                head,
            })
        })
}

fn response() -> impl Strategy<Value = Frame> {
    (
        stream_id(),
        any::<bool>(),
        100..=999u16,
        vec((bytes(16), bytes(48)), 0..6),
    )
        .prop_map(|(stream, end, status, headers)| {
            Frame::Response(Response {
                stream,
                end,
                status,
                headers,
            })
        })
}

fn edit() -> impl Strategy<Value = HeaderEdit> {
    (0..3u8, bytes(16), bytes(32)).prop_map(|(op, name, value)| {
        let op = EditOp::from_u8(op).expect("operations 0..3 exist");
        // A remove carries no value on the wire.
        let value = if op == EditOp::Remove {
            Bytes::new()
        } else {
            value
        };
        HeaderEdit { op, name, value }
    })
}

fn verdict() -> impl Strategy<Value = Frame> {
    (
        stream_id(),
        any::<bool>(),
        vec(edit(), 0..6),
        proptest::option::of(vec(any::<u8>(), 1..40).prop_map(Bytes::from)),
    )
        .prop_map(|(stream, end, edits, target)| {
            Frame::Verdict(Verdict {
                stream,
                end,
                edits,
                target,
            })
        })
}

/// One frame of any family the codec can encode.
fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        hello(),
        welcome(),
        any::<u32>().prop_map(|n| Frame::Credit { n }),
        request(),
        (stream_id(), bytes(300), any::<bool>()).prop_map(|(stream, data, end)| Frame::Body {
            stream,
            data,
            end
        }),
        (stream_id(), any::<u32>())
            .prop_map(|(stream, increment)| Frame::Window { stream, increment }),
        response(),
        verdict(),
        (stream_id(), cancel_reason())
            .prop_map(|(stream, reason)| Frame::Cancel { stream, reason }),
        (stream_id(), any::<bool>(), text()).prop_map(|(stream, retryable, reason)| {
            Frame::Reject {
                stream,
                retryable,
                reason,
            }
        }),
        any::<u64>().prop_map(|opaque| Frame::Ping { opaque }),
        any::<u64>().prop_map(|opaque| Frame::Pong { opaque }),
        any::<u64>().prop_map(|last_stream| Frame::Drain { last_stream }),
        (close_code(), text()).prop_map(|(code, reason)| Frame::Close { code, reason }),
    ]
}

fn encoded(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(frame, &mut buf, MAX_FRAME_LIMIT).expect("generated frames fit the wire");
    buf
}

/// One byte, or one item, more than a u16 prefix can count.
const PAST_U16: usize = u16::MAX as usize + 1;

/// `frame` with one of its length-prefixed fields (chosen by `pick`) made too long for its
/// prefix, and which field that is; `None` for frames without such a field.
fn oversize(frame: Frame, pick: prop::sample::Index) -> Option<(Frame, Field)> {
    let long = || "x".repeat(PAST_U16);
    let long_bytes = || Bytes::from(vec![b'x'; PAST_U16]);
    let short = Bytes::from_static(b"a");
    Some(match frame {
        Frame::Hello(mut h) => match pick.index(3) {
            0 => {
                h.pool = long();
                (Frame::Hello(h), Field::Pool)
            }
            1 => {
                h.token = long();
                (Frame::Hello(h), Field::Token)
            }
            _ => {
                h.name = long();
                (Frame::Hello(h), Field::Name)
            }
        },
        Frame::Request(mut r) => {
            r.peer = long();
            (Frame::Request(r), Field::Peer)
        }
        Frame::Response(mut r) => {
            let field = if pick.index(2) == 0 {
                r.headers.resize(PAST_U16, (short.clone(), short));
                Field::HeaderCount
            } else {
                r.headers.push((long_bytes(), short));
                Field::HeaderName
            };
            (Frame::Response(r), field)
        }
        Frame::Verdict(mut v) => {
            let edit = |name| HeaderEdit {
                op: EditOp::Append,
                name,
                value: Bytes::from_static(b"v"),
            };
            let field = match pick.index(3) {
                0 => {
                    v.edits.resize(PAST_U16, edit(short));
                    Field::EditCount
                }
                1 => {
                    v.edits.push(edit(long_bytes()));
                    Field::EditName
                }
                _ => {
                    v.target = Some(long_bytes());
                    Field::Target
                }
            };
            (Frame::Verdict(v), field)
        }
        Frame::Reject {
            stream, retryable, ..
        } => (
            Frame::Reject {
                stream,
                retryable,
                reason: long(),
            },
            Field::Reason,
        ),
        Frame::Close { code, .. } => (
            Frame::Close {
                code,
                reason: long(),
            },
            Field::Reason,
        ),
        _ => return None,
    })
}

/// The flag bits a frame type gives meaning to; the encoder writes only these.
fn defined_flags(kind: FrameType) -> u8 {
    match kind {
        FrameType::Request | FrameType::Response | FrameType::Body | FrameType::Verdict => FLAG_END,
        FrameType::Reject => FLAG_RETRYABLE,
        _ => 0,
    }
}

proptest! {
    #![proptest_config(config())]

    /// A frame decodes back to itself and consumes exactly its own bytes; the length prefix
    /// counts the payload only, and a limit equal to it is enough while one byte less is not.
    #[test]
    fn encode_then_decode_gives_the_frame_back(frame in frame()) {
        let buf = encoded(&frame);
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        prop_assert_eq!(len as usize, buf.len() - FRAME_HEADER_LEN);
        prop_assert_eq!(buf[4], frame.frame_type() as u8);
        prop_assert_eq!(&buf[6..14], &frame.stream().to_be_bytes()[..]);
        prop_assert_eq!(frame.frame_type().is_control(), frame.stream() == 0);

        let mut exact = buf.clone();
        prop_assert_eq!(decode(&mut exact, len), Ok(Some(frame.clone())));
        prop_assert!(exact.is_empty());

        if len > 0 {
            let mut short = buf.clone();
            prop_assert_eq!(
                decode(&mut short, len - 1),
                Err(DecodeError::TooLarge { len, max: len - 1 })
            );
        }
    }

    /// The limit bounds the payload: the payload's own length is enough, one byte less is
    /// refused, and a refusal leaves what the buffer already held untouched.
    #[test]
    fn encoding_honours_the_limit_and_a_refusal_writes_nothing(
        frame in frame(),
        before in bytes(32),
    ) {
        let len = encoded(&frame).len() - FRAME_HEADER_LEN;
        let mut buf = BytesMut::from(&before[..]);
        if len > 0 {
            let max = len as u32 - 1;
            prop_assert_eq!(
                encode(&frame, &mut buf, max),
                Err(EncodeError::TooLarge { kind: frame.frame_type(), len, max })
            );
            prop_assert_eq!(&buf[..], &before[..]);
        }
        prop_assert_eq!(encode(&frame, &mut buf, len as u32), Ok(()));
        prop_assert_eq!(&buf[..before.len()], &before[..]);
        let mut rest = buf.split_off(before.len());
        prop_assert_eq!(decode(&mut rest, len as u32), Ok(Some(frame)));
    }

    /// Whichever field is made too long for its length prefix (or whichever list too long
    /// for its count), the encoder refuses the frame naming that field, whatever the limit,
    /// and writes nothing: encoding never panics on what a caller hands it.
    #[test]
    fn an_oversized_field_is_refused_by_name(
        frame in frame(),
        pick in any::<prop::sample::Index>(),
        before in bytes(32),
    ) {
        let Some((frame, field)) = oversize(frame, pick) else {
            return Ok(());
        };
        let mut buf = BytesMut::from(&before[..]);
        let refused = encode(&frame, &mut buf, MAX_FRAME_LIMIT);
        prop_assert!(
            matches!(
                refused,
                Err(EncodeError::FieldTooLong { kind, field: f, len: PAST_U16, max: 65_535 })
                    if kind == frame.frame_type() && f == field
            ),
            "{:?} for {}", refused, field
        );
        prop_assert_eq!(&buf[..], &before[..]);
    }

    /// Until the whole frame has arrived the decoder asks for more and leaves the buffer as
    /// it was; once the rest arrives, the frame comes out.
    #[test]
    fn a_prefix_needs_more_bytes(frame in frame(), cut in any::<prop::sample::Index>()) {
        let whole = encoded(&frame);
        let cut = cut.index(whole.len());
        let mut buf = BytesMut::from(&whole[..cut]);
        prop_assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME), Ok(None));
        prop_assert_eq!(&buf[..], &whole[..cut]);

        buf.extend_from_slice(&whole[cut..]);
        prop_assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME), Ok(Some(frame)));
        prop_assert!(buf.is_empty());
    }

    /// Frames written back to back come out one by one, in order, with nothing left over.
    #[test]
    fn concatenated_frames_decode_in_order(frames in vec(frame(), 1..8)) {
        let mut buf = BytesMut::new();
        for frame in &frames {
            encode(frame, &mut buf, DEFAULT_MAX_FRAME).expect("generated frames fit");
        }
        for frame in &frames {
            prop_assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME), Ok(Some(frame.clone())));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME), Ok(None));
    }

    /// Random bytes never make the decoder panic, whatever the limit in force.
    #[test]
    fn random_bytes_never_panic(
        data in vec(any::<u8>(), 0..512),
        max_frame in prop_oneof![0..64u32, Just(DEFAULT_MAX_FRAME), Just(MAX_FRAME_LIMIT)],
    ) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(frame)) = decode(&mut buf, max_frame) {
            read_everything(&frame);
        }
    }

    /// A well-formed header in front of a random payload reaches every payload parser. The
    /// decoder never panics, and whatever it accepts is the canonical encoding of the frame
    /// it returns (flag bits the type does not define aside).
    #[test]
    fn random_payloads_never_panic_and_decode_canonically(
        type_byte in 0..=0x0fu8,
        flags in any::<u8>(),
        stream in prop_oneof![Just(0u64), 1..=4u64],
        payload in prop_oneof![vec(any::<u8>(), 0..=16), vec(any::<u8>(), 0..200)],
    ) {
        let mut buf = BytesMut::new();
        buf.put_u32(payload.len() as u32);
        buf.put_u8(type_byte);
        buf.put_u8(flags);
        buf.put_u64(stream);
        buf.extend_from_slice(&payload);
        let sent = buf.clone();
        if let Ok(Some(frame)) = decode(&mut buf, DEFAULT_MAX_FRAME) {
            read_everything(&frame);
            prop_assert!(buf.is_empty());
            let mut expected = sent.to_vec();
            expected[5] &= defined_flags(frame.frame_type());
            prop_assert_eq!(&encoded(&frame)[..], &expected[..]);
        }
    }

    /// A valid frame with some payload bytes changed (the header left intact) is either
    /// refused or decoded into a frame whose canonical encoding is exactly those bytes.
    #[test]
    fn corrupted_payloads_never_panic_and_decode_canonically(
        frame in frame(),
        edits in vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
    ) {
        let mut buf = encoded(&frame);
        if buf.len() > FRAME_HEADER_LEN {
            for (at, xor) in &edits {
                let at = FRAME_HEADER_LEN + at.index(buf.len() - FRAME_HEADER_LEN);
                buf[at] ^= xor;
            }
        }
        let sent = buf.clone();
        if let Ok(Some(decoded)) = decode(&mut buf, DEFAULT_MAX_FRAME) {
            read_everything(&decoded);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&encoded(&decoded)[..], &sent[..]);
        }
    }

    /// A worker reading a decoded REQUEST finds exactly the method, target and header fields
    /// the hub put in, in order, and the head text the hub would have written.
    #[test]
    fn head_fields_survive_the_trip(parts in head_parts(), stream in stream_id()) {
        let frame = Frame::Request(Request {
            stream,
            end: true,
            deadline_ms: 0,
            mode: Mode::Respond,
            peer: String::new(),
            tls: false,
            head: build_head(&parts),
        });
        let mut buf = encoded(&frame);
        let Ok(Some(Frame::Request(r))) = decode(&mut buf, DEFAULT_MAX_FRAME) else {
            return Err(TestCaseError::fail("REQUEST did not decode"));
        };
        let (version, method, target, headers, _) = &parts;
        let h = &r.head;
        prop_assert_eq!(h.version(), *version);
        prop_assert_eq!(h.method(), &method[..]);
        prop_assert_eq!(h.target(), &target[..]);
        prop_assert_eq!(h.header_count(), headers.len());
        for (i, (name, value)) in headers.iter().enumerate() {
            prop_assert_eq!(h.header(i), Some((&name[..], &value[..])));
        }
        prop_assert_eq!(h.header(headers.len()), None);

        let mut raw = Vec::new();
        raw.extend_from_slice(method);
        raw.push(b' ');
        raw.extend_from_slice(target);
        raw.push(b' ');
        raw.extend_from_slice(version.as_str().as_bytes());
        raw.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            raw.extend_from_slice(name);
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        prop_assert_eq!(h.raw(), &raw[..]);
    }

    /// A REQUEST whose head block lies about itself (a span past the raw text, a block
    /// shorter or longer than its table says, an unknown HTTP version) is refused whole,
    /// never handed to a worker that would slice out of bounds.
    #[test]
    fn lying_head_blocks_are_refused(
        parts in head_parts(),
        span in any::<prop::sample::Index>(),
        past_end in prop_oneof![1..=8u32, 9..=u32::MAX],
        version_byte in 4..=255u8,
        lie in 0..4u8,
    ) {
        let request = Request {
            stream: 1,
            end: true,
            deadline_ms: 0,
            mode: Mode::Respond,
            peer: "10.0.0.1:4000".into(),
            tls: false,
            head: build_head(&parts),
        };
        let block_len = request.head.as_block().len();
        let mut buf = encoded(&Frame::Request(request));
        let at = buf.len() - block_len;
        let raw_len = u32::from_be_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        let spans = 2 + 2 * u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
        match lie {
            0 => {
                // One span ends past the raw text, by a little or by a lot.
                let s = at + 8 + 8 * span.index(spans);
                let off = u32::from_be_bytes([buf[s], buf[s + 1], buf[s + 2], buf[s + 3]]);
                let len = (raw_len - off).saturating_add(past_end);
                buf[s + 4..s + 8].copy_from_slice(&len.to_be_bytes());
            }
            1 => {
                // One byte missing at the end.
                buf.truncate(buf.len() - 1);
                let len = (buf.len() - FRAME_HEADER_LEN) as u32;
                buf[..4].copy_from_slice(&len.to_be_bytes());
            }
            2 => {
                // One byte too many.
                buf.put_u8(b'x');
                let len = (buf.len() - FRAME_HEADER_LEN) as u32;
                buf[..4].copy_from_slice(&len.to_be_bytes());
            }
            _ => buf[at] = version_byte,
        }
        prop_assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME),
            Err(DecodeError::Malformed { kind: FrameType::Request, what: "bad head block" })
        );
    }
}
