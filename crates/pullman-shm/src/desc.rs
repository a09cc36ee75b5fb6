//! Frame descriptors: the fixed-size ring entries that replace the stream protocol's frame
//! header. A descriptor names a frame's type, flags, stream and payload length, and holds the
//! payload itself when it is short, or its offset in the producer's data area.
//!
//! ```text
//! offset  size  field (native-endian)
//! 0       1     type      frame type, as on the stream protocol
//! 1       1     flags     frame flags, as on the stream protocol
//! 2       2     reserved  0
//! 4       4     len       payload length
//! 8       8     stream    stream id (0 for control frames)
//! 16      16    len <= 16: the payload itself, then zeros
//!               len >  16: offset u64 of the payload in the producer's data area, then 0 u64
//! ```

use crate::layout::{DESC_LEN, DESC_WORDS, INLINE_MAX};

/// Where a frame's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the descriptor (`len <= INLINE_MAX`).
    Inline([u8; INLINE_MAX]),
    /// In the producer's data area, at this offset (`len > INLINE_MAX`). Unchecked: the
    /// reader validates it before use.
    Data(u64),
}

/// One ring entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Frame type byte.
    pub kind: u8,
    /// Frame flags byte.
    pub flags: u8,
    /// Payload length.
    pub len: u32,
    /// Stream id.
    pub stream: u64,
    /// Where the payload is.
    pub place: Place,
}

impl Descriptor {
    /// The entry as the ring's words (whose bytes in memory are the layout above).
    pub fn to_words(&self) -> [u64; DESC_WORDS] {
        let mut b = [0u8; DESC_LEN];
        b[0] = self.kind;
        b[1] = self.flags;
        b[4..8].copy_from_slice(&self.len.to_ne_bytes());
        b[8..16].copy_from_slice(&self.stream.to_ne_bytes());
        match self.place {
            Place::Inline(bytes) => b[16..32].copy_from_slice(&bytes),
            Place::Data(offset) => b[16..24].copy_from_slice(&offset.to_ne_bytes()),
        }
        let mut w = [0u64; DESC_WORDS];
        for (i, word) in w.iter_mut().enumerate() {
            *word = u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        }
        w
    }

    /// Reads an entry. Never fails: any words are a descriptor; what they point at is
    /// checked by whoever follows the offset.
    pub fn from_words(w: [u64; DESC_WORDS]) -> Descriptor {
        let mut b = [0u8; DESC_LEN];
        for (i, word) in w.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&word.to_ne_bytes());
        }
        let len = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let place = if len as usize <= INLINE_MAX {
            let mut inline = [0u8; INLINE_MAX];
            inline.copy_from_slice(&b[16..32]);
            Place::Inline(inline)
        } else {
            Place::Data(u64::from_ne_bytes([
                b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23],
            ]))
        };
        Descriptor {
            kind: b[0],
            flags: b[1],
            len,
            stream: u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            place,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_through_words() {
        let mut inline = [0u8; INLINE_MAX];
        inline[..4].copy_from_slice(&7u32.to_be_bytes());
        for d in [
            Descriptor {
                kind: 3,
                flags: 0,
                len: 4,
                stream: 0,
                place: Place::Inline(inline),
            },
            Descriptor {
                kind: 5,
                flags: 1,
                len: 65536,
                stream: u64::MAX - 1,
                place: Place::Data(131072),
            },
        ] {
            assert_eq!(Descriptor::from_words(d.to_words()), d);
        }
    }

    #[test]
    fn the_bytes_in_memory_follow_the_documented_layout() {
        let d = Descriptor {
            kind: 0x05,
            flags: 0x01,
            len: 100,
            stream: 9,
            place: Place::Data(4096),
        };
        let w = d.to_words();
        let mut bytes = Vec::new();
        for word in w {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        assert_eq!(bytes[0], 0x05);
        assert_eq!(bytes[1], 0x01);
        assert_eq!(&bytes[2..4], &[0, 0]);
        assert_eq!(&bytes[4..8], &100u32.to_ne_bytes());
        assert_eq!(&bytes[8..16], &9u64.to_ne_bytes());
        assert_eq!(&bytes[16..24], &4096u64.to_ne_bytes());
        assert_eq!(&bytes[24..32], &[0; 8]);
    }
}
