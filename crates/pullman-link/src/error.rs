//! Why a link ended, why a stream did, and why a transport refused a frame.

use std::sync::Arc;

use pullman_proto::{CloseCode, EncodeError};

/// The reason a link stopped. Cloned into every stream that was open on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("link i/o error: {0}")]
    Io(Arc<std::io::Error>),
    /// The peer closed the connection without a CLOSE frame.
    #[error("peer closed the connection")]
    Eof,
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer sent CLOSE.
    #[error("peer closed the link ({code:?}): {reason}")]
    PeerClosed {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The peer stopped answering PINGs.
    #[error("peer missed {0} pings")]
    Timeout(u32),
    /// This side queued a control frame the wire cannot carry (a CLOSE reason longer than
    /// a string field, say): a bug of the caller's, which ends the link rather than leave
    /// the peer without a frame it was owed.
    #[error("cannot encode a frame for the peer: {0}")]
    Unencodable(EncodeError),
    /// This side closed the link.
    #[error("link closed here ({code:?}): {reason}")]
    Closed {
        /// The code sent.
        code: CloseCode,
        /// The reason sent.
        reason: String,
    },
}

impl From<std::io::Error> for LinkError {
    fn from(e: std::io::Error) -> Self {
        LinkError::Io(Arc::new(e))
    }
}

/// Why a stream can send no more body bytes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// The stream ended: its response is complete, it was rejected, or it was cancelled.
    #[error("the stream has ended")]
    Ended,
    /// The peer abandoned the stream midway (a REJECT after the response had begun).
    #[error("the peer aborted the stream")]
    Aborted,
    /// A frame of this stream could not be encoded for the peer (a field too long for the
    /// wire, or a frame over the peer's `max_frame`): the link ended the stream, and carries
    /// on with the others.
    #[error("the stream ended: {0}")]
    Unsendable(EncodeError),
    /// The link under the stream ended.
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// Why [`send_body`](crate::send_body) stopped before the body's end. In every case the
/// stream was not ended by it: the caller says what the peer hears.
#[derive(Debug, thiserror::Error)]
pub enum SendBodyError<E> {
    /// The body is longer than the limit; nothing past it was sent.
    #[error("body longer than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body failed (its client went away, its producer broke).
    #[error("the body failed: {0}")]
    Body(#[source] E),
    /// The stream can take no more: it ended under the body (the peer answered, refused or
    /// was cancelled), or its link did.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Why a [`Transport`](crate::Transport) did not queue a frame.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The frame cannot be encoded for the peer; it was dropped and nothing else changed.
    #[error(transparent)]
    Unencodable(EncodeError),
    /// The transport failed: the link is over.
    #[error(transparent)]
    Link(#[from] LinkError),
}

impl From<PushError> for LinkError {
    /// Where no stream can take the blame (a control frame), a frame that cannot be encoded
    /// ends the link.
    fn from(e: PushError) -> LinkError {
        match e {
            PushError::Unencodable(e) => LinkError::Unencodable(e),
            PushError::Link(e) => e,
        }
    }
}

/// Why a role's [`Control`](crate::Control) refused a frame of its peer. The link then
/// closes as broken ([`LinkError::Protocol`]).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A frame this end never takes from its peer (a REQUEST sent to the hub, say).
    #[error("{0:?} frame is not expected from the peer")]
    Unexpected(pullman_proto::FrameType),
    /// A frame this end takes, with content it refuses (more credits than the hub holds
    /// for one worker, say).
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}
