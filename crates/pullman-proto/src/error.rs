//! What can go wrong when reading frames from a peer.

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
