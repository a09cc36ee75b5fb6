//! What can go wrong with a shared-memory link.

use crate::ring::RingError;

/// The error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed (creating, sealing, mapping, passing descriptors, doorbells).
    #[error("shared memory: {0}")]
    Io(#[from] std::io::Error),
    /// The peer's memory holds something impossible: it broke the protocol.
    #[error("peer broke the shared-memory protocol: {0}")]
    Peer(String),
    /// The descriptors handed over are not a valid set of arenas and doorbells.
    #[error("bad shared-memory setup: {0}")]
    Setup(String),
    /// A payload larger than one region.
    #[error("payload of {len} bytes exceeds the {max}-byte region limit")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl From<RingError> for ShmError {
    fn from(e: RingError) -> Self {
        ShmError::Peer(e.to_string())
    }
}
