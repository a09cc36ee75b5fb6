//! Frames to bytes and back. No I/O: the caller owns the buffers.
//!
//! `decode` takes bytes from the front of a read buffer and returns `Ok(None)` while a whole
//! frame has not arrived yet. Payload slices (body chunks, head blocks) share the read
//! buffer's memory instead of being copied. `encode` appends a frame to a write buffer, or
//! refuses one that the wire cannot carry (a field longer than its length prefix, a payload
//! over the receiver's limit) without writing anything: whatever the frame holds, encoding
//! never panics.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError, Field};
use crate::frame::{
    CancelReason, CloseCode, EditOp, Frame, FrameType, HeaderEdit, Hello, Mode, Modes, Request,
    Response, Verdict, Welcome, FLAG_END, FLAG_RETRYABLE, FLAG_TLS,
};
use crate::head::HeadView;

/// Bytes before every payload: length u32, type u8, flags u8, stream u64.
pub const FRAME_HEADER_LEN: usize = 14;

/// Decodes one frame from the front of `buf`, if a whole one is there.
///
/// `max_frame` bounds the payload length a peer may announce; anything longer is an error
/// before a single payload byte is buffered.
pub fn decode(buf: &mut BytesMut, max_frame: u32) -> Result<Option<Frame>, DecodeError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let type_byte = buf[4];
    // An unknown type is refused before the length, as docs/protocol.md orders the checks.
    FrameType::from_u8(type_byte).ok_or(DecodeError::UnknownType(type_byte))?;
    if len > max_frame {
        return Err(DecodeError::TooLarge {
            len,
            max: max_frame,
        });
    }
    let total = FRAME_HEADER_LEN + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let flags = buf[5];
    let stream = u64::from_be_bytes([
        buf[6], buf[7], buf[8], buf[9], buf[10], buf[11], buf[12], buf[13],
    ]);
    let mut frame = buf.split_to(total);
    frame.advance(FRAME_HEADER_LEN);
    decode_payload(type_byte, flags, stream, frame.freeze()).map(Some)
}

/// Decodes a frame whose header fields arrived apart from its payload (the shared-memory
/// transport carries them in a ring descriptor). Same checks as [`decode`] but the length
/// limit, which the caller applies. Payload slices share `payload`'s memory.
pub fn decode_payload(
    type_byte: u8,
    flags: u8,
    stream: u64,
    payload: Bytes,
) -> Result<Frame, DecodeError> {
    let kind = FrameType::from_u8(type_byte).ok_or(DecodeError::UnknownType(type_byte))?;
    if kind.is_control() != (stream == 0) {
        return Err(DecodeError::BadStream { kind, stream });
    }
    let mut p = Payload {
        kind,
        bytes: payload,
    };
    let out = match kind {
        FrameType::Hello => Frame::Hello(Hello {
            min_version: p.u16()?,
            max_version: p.u16()?,
            max_frame: p.u32()?,
            initial_window: p.u32()?,
            features: p.u32()?,
            modes: Modes(p.u8()?),
            pool: p.string()?,
            token: p.string()?,
            name: p.string()?,
        }),
        FrameType::Welcome => Frame::Welcome(Welcome {
            version: p.u16()?,
            max_frame: p.u32()?,
            initial_window: p.u32()?,
            features: p.u32()?,
            worker_id: p.u64()?,
            ping_interval_ms: p.u32()?,
        }),
        FrameType::Credit => Frame::Credit { n: p.u32()? },
        FrameType::Request => {
            let deadline_ms = p.u32()?;
            let mode = Mode::from_u8(p.u8()?).ok_or(p.malformed("unknown mode"))?;
            let peer = p.string()?;
            let head = HeadView::from_block(p.rest()).map_err(|_| DecodeError::Malformed {
                kind,
                what: "bad head block",
            })?;
            Frame::Request(Request {
                stream,
                end: flags & FLAG_END != 0,
                deadline_ms,
                mode,
                peer,
                tls: flags & FLAG_TLS != 0,
                head,
            })
        }
        FrameType::Body => Frame::Body {
            stream,
            data: p.rest(),
            end: flags & FLAG_END != 0,
        },
        FrameType::Window => Frame::Window {
            stream,
            increment: p.u32()?,
        },
        FrameType::Response => {
            let status = p.u16()?;
            if !(100..=999).contains(&status) {
                return Err(p.malformed("status outside 100..=999"));
            }
            let count = p.u16()? as usize;
            // Each field takes at least 6 bytes; refuse counts the payload cannot hold
            // before allocating for them.
            if count * 6 > p.bytes.len() {
                return Err(p.malformed("header count exceeds payload"));
            }
            let mut headers = Vec::with_capacity(count);
            for _ in 0..count {
                let name_len = p.u16()? as usize;
                let name = p.take(name_len)?;
                let value_len = p.u32()? as usize;
                let value = p.take(value_len)?;
                headers.push((name, value));
            }
            Frame::Response(Response {
                stream,
                end: flags & FLAG_END != 0,
                status,
                headers,
            })
        }
        FrameType::Verdict => {
            let count = p.u16()? as usize;
            // Each edit takes at least 7 bytes; refuse counts the payload cannot hold before
            // allocating for them.
            if count * 7 > p.bytes.len() {
                return Err(p.malformed("edit count exceeds payload"));
            }
            let mut edits = Vec::with_capacity(count);
            for _ in 0..count {
                let op = EditOp::from_u8(p.u8()?).ok_or(p.malformed("unknown edit"))?;
                let name_len = p.u16()? as usize;
                let name = p.take(name_len)?;
                let value_len = p.u32()? as usize;
                let value = p.take(value_len)?;
                if op == EditOp::Remove && !value.is_empty() {
                    return Err(p.malformed("remove edit with a value"));
                }
                edits.push(HeaderEdit { op, name, value });
            }
            let target_len = p.u16()? as usize;
            let target = p.take(target_len)?;
            Frame::Verdict(Verdict {
                stream,
                end: flags & FLAG_END != 0,
                edits,
                target: (!target.is_empty()).then_some(target),
            })
        }
        FrameType::Cancel => {
            let reason = CancelReason::from_u8(p.u8()?).ok_or(p.malformed("unknown reason"))?;
            Frame::Cancel { stream, reason }
        }
        FrameType::Reject => Frame::Reject {
            stream,
            retryable: flags & FLAG_RETRYABLE != 0,
            reason: p.string()?,
        },
        FrameType::Ping => Frame::Ping { opaque: p.u64()? },
        FrameType::Pong => Frame::Pong { opaque: p.u64()? },
        FrameType::Drain => Frame::Drain {
            last_stream: p.u64()?,
        },
        FrameType::Close => {
            let code = CloseCode::from_u16(p.u16()?).ok_or(p.malformed("unknown code"))?;
            Frame::Close {
                code,
                reason: p.string()?,
            }
        }
    };
    if !p.bytes.is_empty() {
        return Err(p.malformed("trailing bytes"));
    }
    Ok(out)
}

/// Appends the encoding of `frame` to `buf`, if it can be encoded: every field within its
/// length prefix, and the payload within `max_frame`, the receiver's limit (as for
/// [`decode`]). On error `buf` holds what it held before the call.
///
/// Checked as the bytes are written, in the one pass that writes them: a frame costs no
/// more to encode than before the checks.
pub fn encode(frame: &Frame, buf: &mut BytesMut, max_frame: u32) -> Result<(), EncodeError> {
    let start = buf.len();
    let out = encode_at(frame, buf, start, max_frame);
    if out.is_err() {
        buf.truncate(start);
    }
    out
}

fn encode_at(
    frame: &Frame,
    buf: &mut BytesMut,
    start: usize,
    max_frame: u32,
) -> Result<(), EncodeError> {
    let kind = frame.frame_type();
    let mut flags = 0u8;
    buf.put_u32(0); // length, patched below
    buf.put_u8(kind as u8);
    buf.put_u8(0); // flags, patched below
    buf.put_u64(frame.stream());
    match frame {
        Frame::Hello(h) => {
            buf.put_u16(h.min_version);
            buf.put_u16(h.max_version);
            buf.put_u32(h.max_frame);
            buf.put_u32(h.initial_window);
            buf.put_u32(h.features);
            buf.put_u8(h.modes.0);
            put_u16_field(buf, kind, Field::Pool, h.pool.as_bytes())?;
            put_u16_field(buf, kind, Field::Token, h.token.as_bytes())?;
            put_u16_field(buf, kind, Field::Name, h.name.as_bytes())?;
        }
        Frame::Welcome(w) => {
            buf.put_u16(w.version);
            buf.put_u32(w.max_frame);
            buf.put_u32(w.initial_window);
            buf.put_u32(w.features);
            buf.put_u64(w.worker_id);
            buf.put_u32(w.ping_interval_ms);
        }
        Frame::Credit { n } => buf.put_u32(*n),
        Frame::Request(r) => {
            if r.end {
                flags |= FLAG_END;
            }
            if r.tls {
                flags |= FLAG_TLS;
            }
            buf.put_u32(r.deadline_ms);
            buf.put_u8(r.mode as u8);
            put_u16_field(buf, kind, Field::Peer, r.peer.as_bytes())?;
            buf.extend_from_slice(r.head.as_block());
        }
        Frame::Body { data, end, .. } => {
            if *end {
                flags |= FLAG_END;
            }
            buf.extend_from_slice(data);
        }
        Frame::Window { increment, .. } => buf.put_u32(*increment),
        Frame::Response(r) => {
            if r.end {
                flags |= FLAG_END;
            }
            buf.put_u16(r.status);
            buf.put_u16(count_u16(kind, Field::HeaderCount, r.headers.len())?);
            for (name, value) in &r.headers {
                put_u16_field(buf, kind, Field::HeaderName, name)?;
                put_u32_field(buf, kind, Field::HeaderValue, value)?;
            }
        }
        Frame::Verdict(v) => {
            if v.end {
                flags |= FLAG_END;
            }
            buf.put_u16(count_u16(kind, Field::EditCount, v.edits.len())?);
            for edit in &v.edits {
                buf.put_u8(edit.op as u8);
                put_u16_field(buf, kind, Field::EditName, &edit.name)?;
                put_u32_field(buf, kind, Field::EditValue, &edit.value)?;
            }
            let target = v.target.as_deref().unwrap_or_default();
            put_u16_field(buf, kind, Field::Target, target)?;
        }
        Frame::Cancel { reason, .. } => buf.put_u8(*reason as u8),
        Frame::Reject {
            retryable, reason, ..
        } => {
            if *retryable {
                flags |= FLAG_RETRYABLE;
            }
            put_u16_field(buf, kind, Field::Reason, reason.as_bytes())?;
        }
        Frame::Ping { opaque } | Frame::Pong { opaque } => buf.put_u64(*opaque),
        Frame::Drain { last_stream } => buf.put_u64(*last_stream),
        Frame::Close { code, reason } => {
            buf.put_u16(*code as u16);
            put_u16_field(buf, kind, Field::Reason, reason.as_bytes())?;
        }
    }
    let len = buf.len() - start - FRAME_HEADER_LEN;
    if len > max_frame as usize {
        return Err(EncodeError::TooLarge {
            kind,
            len,
            max: max_frame,
        });
    }
    // Below `max_frame`, a u32: the cast cannot truncate.
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    buf[start + 5] = flags;
    Ok(())
}

/// A count as the u16 that prefixes its items.
fn count_u16(kind: FrameType, field: Field, count: usize) -> Result<u16, EncodeError> {
    u16::try_from(count).map_err(|_| EncodeError::FieldTooLong {
        kind,
        field,
        len: count,
        max: u16::MAX as usize,
    })
}

/// A field of bytes after its length as a u16 (strings, header names, the target).
fn put_u16_field(
    buf: &mut BytesMut,
    kind: FrameType,
    field: Field,
    bytes: &[u8],
) -> Result<(), EncodeError> {
    buf.put_u16(count_u16(kind, field, bytes.len())?);
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A field of bytes after its length as a u32 (header values).
fn put_u32_field(
    buf: &mut BytesMut,
    kind: FrameType,
    field: Field,
    bytes: &[u8],
) -> Result<(), EncodeError> {
    let len = u32::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong {
        kind,
        field,
        len: bytes.len(),
        max: u32::MAX as usize,
    })?;
    buf.put_u32(len);
    buf.extend_from_slice(bytes);
    Ok(())
}

/// A cursor over one frame's payload that reports short reads as malformed frames.
struct Payload {
    kind: FrameType,
    bytes: Bytes,
}

impl Payload {
    fn malformed(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed {
            kind: self.kind,
            what,
        }
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.bytes.len() < n {
            Err(self.malformed("payload too short"))
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.bytes.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.bytes.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.bytes.get_u32())
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.bytes.get_u64())
    }

    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.bytes.split_to(n))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.malformed("string is not UTF-8"))
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{HeadBuilder, Version};
    use crate::MAX_FRAME_LIMIT;

    fn round_trip(frame: Frame) {
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf, 1 << 20).unwrap();
        // Byte by byte: every prefix is "need more", the whole is the frame.
        for cut in 0..buf.len() {
            let mut part = BytesMut::from(&buf[..cut]);
            assert_eq!(
                decode(&mut part, 1 << 20),
                Ok(None),
                "prefix of {cut} bytes"
            );
        }
        assert_eq!(decode(&mut buf, 1 << 20), Ok(Some(frame)));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_request_over_tls_carries_the_tls_flag_beside_end() {
        let frame = Frame::Request(Request {
            stream: 3,
            end: true,
            deadline_ms: 0,
            mode: Mode::Respond,
            peer: String::new(),
            tls: true,
            head: HeadBuilder::new(Version::Http2, b"GET", b"/", 0).finish(),
        });
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf, 1 << 20).unwrap();
        // length u32 | type u8 | flags u8 | ...
        assert_eq!(buf[5], FLAG_END | FLAG_TLS);
        round_trip(frame);
    }

    #[test]
    fn every_frame_family_round_trips() {
        let mut head = HeadBuilder::new(Version::Http11, b"GET", b"/hello", 1);
        head.header(b"host", b"h").unwrap();
        round_trip(Frame::Request(Request {
            stream: 7,
            end: true,
            deadline_ms: 30_000,
            mode: Mode::Respond,
            peer: "127.0.0.1:5000".into(),
            tls: false,
            head: head.finish(),
        }));
        round_trip(Frame::Response(Response {
            stream: 7,
            end: false,
            status: 201,
            headers: vec![(Bytes::from_static(b"x-a"), Bytes::from_static(b"b"))],
        }));
        round_trip(Frame::Body {
            stream: 7,
            data: Bytes::from_static(b"abc"),
            end: true,
        });
        round_trip(Frame::Verdict(Verdict {
            stream: 7,
            end: true,
            edits: vec![
                HeaderEdit {
                    op: EditOp::Set,
                    name: Bytes::from_static(b"x-filtered"),
                    value: Bytes::from_static(b"1"),
                },
                HeaderEdit {
                    op: EditOp::Append,
                    name: Bytes::from_static(b"via"),
                    value: Bytes::from_static(b"pullman"),
                },
                HeaderEdit {
                    op: EditOp::Remove,
                    name: Bytes::from_static(b"cookie"),
                    value: Bytes::new(),
                },
            ],
            target: Some(Bytes::from_static(b"/v2/items?x=1")),
        }));
        round_trip(Frame::Verdict(Verdict {
            stream: 9,
            end: false,
            edits: Vec::new(),
            target: None,
        }));
        let head = HeadBuilder::new(Version::Http11, b"GET", b"/", 0);
        round_trip(Frame::Request(Request {
            stream: 9,
            end: true,
            deadline_ms: 0,
            mode: Mode::FilterResponse,
            peer: String::new(),
            tls: false,
            head: head.finish(),
        }));
        round_trip(Frame::Reject {
            stream: 3,
            retryable: true,
            reason: "busy".into(),
        });
        round_trip(Frame::Close {
            code: CloseCode::AuthFailed,
            reason: "wrong token".into(),
        });
    }

    #[test]
    fn bad_verdicts_are_malformed() {
        let verdict = |edit: &[u8]| {
            let mut buf = BytesMut::new();
            buf.put_u32(0);
            buf.put_u8(FrameType::Verdict as u8);
            buf.put_u8(0);
            buf.put_u64(1);
            buf.put_u16(1);
            buf.extend_from_slice(edit);
            buf.put_u16(0);
            let len = (buf.len() - FRAME_HEADER_LEN) as u32;
            buf[..4].copy_from_slice(&len.to_be_bytes());
            decode(&mut buf, 1024)
        };
        // remove with a value
        assert!(matches!(
            verdict(&[2, 0, 1, b'a', 0, 0, 0, 1, b'v']),
            Err(DecodeError::Malformed { .. })
        ));
        // unknown operation
        assert!(matches!(
            verdict(&[9, 0, 1, b'a', 0, 0, 0, 0]),
            Err(DecodeError::Malformed { .. })
        ));
        // a well-formed remove decodes
        assert!(matches!(
            verdict(&[2, 0, 1, b'a', 0, 0, 0, 0]),
            Ok(Some(Frame::Verdict(_)))
        ));
        // more edits announced than the payload holds
        let mut buf = BytesMut::new();
        buf.put_u32(4);
        buf.put_u8(FrameType::Verdict as u8);
        buf.put_u8(0);
        buf.put_u64(1);
        buf.put_u16(u16::MAX);
        buf.put_u16(0);
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut buf = BytesMut::new();
        buf.put_u32(2_000_000);
        buf.put_u8(FrameType::Body as u8);
        buf.put_u8(0);
        buf.put_u64(1);
        assert_eq!(
            decode(&mut buf, 1 << 20),
            Err(DecodeError::TooLarge {
                len: 2_000_000,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn control_frames_must_use_stream_zero() {
        let mut buf = BytesMut::new();
        encode(&Frame::Credit { n: 1 }, &mut buf, 1024).unwrap();
        buf[13] = 5;
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(DecodeError::BadStream { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut buf = BytesMut::new();
        encode(&Frame::Credit { n: 1 }, &mut buf, 1024).unwrap();
        buf.put_u8(0);
        buf[3] += 1;
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(DecodeError::Malformed { .. })
        ));
    }

    /// Every length-prefixed field past its prefix, and a payload past the limit: each is
    /// refused, naming the field, and the buffer keeps exactly what it held.
    #[test]
    fn oversized_fields_are_refused_and_leave_the_buffer_alone() {
        let long = "x".repeat(u16::MAX as usize + 1);
        let long_bytes = Bytes::from(long.clone());
        let hello = Hello {
            min_version: 1,
            max_version: 1,
            max_frame: 1 << 20,
            initial_window: 1 << 16,
            features: 0,
            modes: crate::Modes::RESPOND,
            pool: "p".into(),
            token: "t".into(),
            name: "n".into(),
        };
        let request = |peer: String| {
            Frame::Request(Request {
                stream: 1,
                end: true,
                deadline_ms: 0,
                mode: Mode::Respond,
                peer,
                tls: false,
                head: HeadBuilder::new(Version::Http11, b"GET", b"/", 0).finish(),
            })
        };
        let response = |headers: Vec<(Bytes, Bytes)>| {
            Frame::Response(Response {
                stream: 1,
                end: true,
                status: 200,
                headers,
            })
        };
        let edit = |name: Bytes| HeaderEdit {
            op: EditOp::Set,
            name,
            value: Bytes::from_static(b"v"),
        };
        let verdict = |edits: Vec<HeaderEdit>, target: Option<Bytes>| {
            Frame::Verdict(Verdict {
                stream: 1,
                end: true,
                edits,
                target,
            })
        };
        let short = Bytes::from_static(b"a");
        let cases = [
            (
                Frame::Hello(Hello {
                    pool: long.clone(),
                    ..hello.clone()
                }),
                Field::Pool,
            ),
            (
                Frame::Hello(Hello {
                    token: long.clone(),
                    ..hello.clone()
                }),
                Field::Token,
            ),
            (
                Frame::Hello(Hello {
                    name: long.clone(),
                    ..hello.clone()
                }),
                Field::Name,
            ),
            (request(long.clone()), Field::Peer),
            (
                response(vec![(short.clone(), short.clone()); u16::MAX as usize + 1]),
                Field::HeaderCount,
            ),
            (
                response(vec![
                    (short.clone(), short.clone()),
                    (long_bytes.clone(), short.clone()),
                ]),
                Field::HeaderName,
            ),
            (
                verdict(vec![edit(short.clone()); u16::MAX as usize + 1], None),
                Field::EditCount,
            ),
            (
                verdict(vec![edit(long_bytes.clone())], None),
                Field::EditName,
            ),
            (verdict(Vec::new(), Some(long_bytes.clone())), Field::Target),
            (
                Frame::Reject {
                    stream: 1,
                    retryable: false,
                    reason: long.clone(),
                },
                Field::Reason,
            ),
            (
                Frame::Close {
                    code: CloseCode::Internal,
                    reason: long.clone(),
                },
                Field::Reason,
            ),
        ];
        for (frame, field) in cases {
            let mut buf = BytesMut::from(&b"earlier frames"[..]);
            let err = encode(&frame, &mut buf, MAX_FRAME_LIMIT).unwrap_err();
            assert!(
                matches!(err, EncodeError::FieldTooLong { field: f, max: 65_535, .. } if f == field),
                "{field}: {err}"
            );
            assert!(err.to_string().contains(&field.to_string()), "{err}");
            assert_eq!(&buf[..], b"earlier frames", "{field}: buffer changed");
        }

        // A header value may be long (its length is a u32), but not longer than the peer takes.
        let big_value = response(vec![(short.clone(), Bytes::from(vec![b'v'; 2 << 20]))]);
        let mut buf = BytesMut::from(&b"earlier"[..]);
        assert_eq!(
            encode(&big_value, &mut buf, 1 << 20),
            Err(EncodeError::TooLarge {
                kind: FrameType::Response,
                len: 2 + 2 + 2 + 1 + 4 + (2 << 20),
                max: 1 << 20
            })
        );
        assert_eq!(&buf[..], b"earlier");
        buf.clear();
        encode(&big_value, &mut buf, MAX_FRAME_LIMIT).unwrap();
        assert_eq!(decode(&mut buf, MAX_FRAME_LIMIT), Ok(Some(big_value)));
    }

    #[test]
    fn the_limit_counts_the_payload_only() {
        let body = Frame::Body {
            stream: 1,
            data: Bytes::from_static(b"0123456789"),
            end: true,
        };
        let mut buf = BytesMut::new();
        assert_eq!(
            encode(&body, &mut buf, 9),
            Err(EncodeError::TooLarge {
                kind: FrameType::Body,
                len: 10,
                max: 9
            })
        );
        assert!(buf.is_empty());
        encode(&body, &mut buf, 10).unwrap();
        assert_eq!(buf.len(), FRAME_HEADER_LEN + 10);
    }
}
