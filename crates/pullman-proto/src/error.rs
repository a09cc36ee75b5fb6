//! What can go wrong when reading frames from a peer, or writing them for one.

use crate::frame::FrameType;

/// A frame that cannot be decoded. Any of these is a protocol violation by the peer: the link
/// that produced it is closed, and nothing else is affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix exceeds the negotiated maximum frame size.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced payload length.
        len: u32,
        /// The limit in force.
        max: u32,
    },
    /// The type byte names no frame this version knows.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A control frame carried a stream id, or a stream frame carried stream 0.
    #[error(
        "{kind:?} frame on stream {stream} (control frames use stream 0, stream frames any other)"
    )]
    BadStream {
        /// The frame's type.
        kind: FrameType,
        /// The stream id it carried.
        stream: u64,
    },
    /// The payload does not have the shape its type requires.
    #[error("malformed {kind:?} frame: {what}")]
    Malformed {
        /// The frame's type.
        kind: FrameType,
        /// What was wrong, for logs.
        what: &'static str,
    },
}

/// A frame that cannot be encoded: a field longer than its length prefix can say, or a
/// payload larger than the receiver accepts. [`encode`](crate::encode) leaves its buffer as
/// it found it, so the caller can drop the frame (and fail whatever it belonged to) and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field, or a count of fields, does not fit the integer that prefixes it on the wire.
    #[error("{kind:?} {field} of {len} does not fit the wire (at most {max})")]
    FieldTooLong {
        /// The frame's type.
        kind: FrameType,
        /// Which field.
        field: Field,
        /// Its length in bytes (or its count of items).
        len: usize,
        /// The most its prefix can say.
        max: usize,
    },
    /// The payload exceeds the receiver's `max_frame`.
    #[error("{kind:?} frame of {len} bytes exceeds the receiver's limit of {max}")]
    TooLarge {
        /// The frame's type.
        kind: FrameType,
        /// The payload's length.
        len: usize,
        /// The limit in force.
        max: u32,
    },
}

/// A length-prefixed field of a frame, as named by an [`EncodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// HELLO: the pool's name.
    Pool,
    /// HELLO: the token.
    Token,
    /// HELLO: the worker's name.
    Name,
    /// REQUEST: the client's address.
    Peer,
    /// RESPONSE: how many header fields.
    HeaderCount,
    /// RESPONSE: a header name.
    HeaderName,
    /// RESPONSE: a header value.
    HeaderValue,
    /// VERDICT: how many edits.
    EditCount,
    /// VERDICT: an edit's header name.
    EditName,
    /// VERDICT: an edit's value.
    EditValue,
    /// VERDICT: the new target.
    Target,
    /// REJECT or CLOSE: the reason.
    Reason,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Pool => "pool name",
            Field::Token => "token",
            Field::Name => "worker name",
            Field::Peer => "peer address",
            Field::HeaderCount => "header count",
            Field::HeaderName => "header name",
            Field::HeaderValue => "header value",
            Field::EditCount => "edit count",
            Field::EditName => "edit name",
            Field::EditValue => "edit value",
            Field::Target => "target",
            Field::Reason => "reason",
        })
    }
}
