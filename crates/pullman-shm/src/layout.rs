//! Where everything sits in an arena. Version 1 fixes every size, so neither side reads a
//! geometry from memory the peer controls.
//!
//! An arena is written by one side only (its *owner*) and read by the other. It holds the
//! owner's outgoing frame ring, the owner's release ring (regions of the *peer's* arena the
//! owner is done with), the owner's consumer indices for the peer's two rings, the owner's
//! "may be asleep" flag, and the data blocks the owner's frame payloads live in.
//!
//! ```text
//! offset   size                 field (all integers native-endian)
//! 0        8                    magic "PULLSHM1"
//! 8        4                    layout version (1)
//! 64       8                    frame_prod: frames the owner has published
//! 128      8                    release_prod: release entries the owner has published
//! 192      8                    peer_frame_cons: frames of the peer's ring the owner consumed
//! 256      8                    peer_release_cons: release entries of the peer the owner consumed
//! 320      4                    sleeping: what the owner, maybe blocked on its eventfd, waits
//!                               for (bell::WAKE_FRAMES | WAKE_RELEASES | WAKE_SLOTS), or 0
//! 4096     FRAME_SLOTS x 32     frame ring (descriptors)
//! 36864    RELEASE_SLOTS x 8    release ring (u64 frame-ring indices of peer regions)
//! 45056    DATA_LEN             data: BLOCKS blocks of BLOCK_LEN bytes
//! ```

/// First word of an arena, for people looking at a memory dump.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PULLSHM1");
/// The layout described here.
pub const LAYOUT_VERSION: u32 = 1;

/// Offset of the magic word.
pub const OFF_MAGIC: usize = 0;
/// Offset of the layout version (u32).
pub const OFF_VERSION: usize = 8;
/// Offset of the owner's frame producer index. Each index has a cache line of its own so the
/// two processes never write the same line.
pub const OFF_FRAME_PROD: usize = 64;
/// Offset of the owner's release producer index.
pub const OFF_RELEASE_PROD: usize = 128;
/// Offset of the owner's consumer index into the peer's frame ring.
pub const OFF_PEER_FRAME_CONS: usize = 192;
/// Offset of the owner's consumer index into the peer's release ring.
pub const OFF_PEER_RELEASE_CONS: usize = 256;
/// Offset of the owner's sleeping word (u32): the `bell::WAKE_*` bits it waits for.
pub const OFF_SLEEPING: usize = 320;
/// Bytes before the frame ring: one page.
pub const HEADER_LEN: usize = 4096;

/// Frame descriptors per ring: enough for a burst of small frames (credits, windows, heads)
/// between two wake-ups, small enough (32 KiB) to stay cache-friendly.
pub const FRAME_SLOTS: usize = 1024;
/// Size of one descriptor.
pub const DESC_LEN: usize = 32;
/// Descriptor size in u64 words.
pub const DESC_WORDS: usize = DESC_LEN / 8;
/// Offset of the frame ring.
pub const OFF_FRAME_RING: usize = HEADER_LEN;

/// Release entries per ring, and so the most regions a producer keeps in flight: each
/// region is released exactly once, so a release ring this long never overflows.
pub const RELEASE_SLOTS: usize = 1024;
/// Offset of the release ring.
pub const OFF_RELEASE_RING: usize = OFF_FRAME_RING + FRAME_SLOTS * DESC_LEN;

/// Offset of the data area (page aligned).
pub const OFF_DATA: usize = (OFF_RELEASE_RING + RELEASE_SLOTS * 8).div_ceil(4096) * 4096;
/// Bytes per data block, and so the largest payload in one region: a REQUEST carries a head
/// of up to 96 KiB (the hub's `max_header_bytes` bound) plus its fields; a BODY carries at
/// most 64 KiB.
pub const BLOCK_LEN: usize = 128 * 1024;
/// Data blocks per arena: 4 MiB, a few full stream windows.
pub const BLOCKS: usize = 32;
/// Size of the data area.
pub const DATA_LEN: usize = BLOCK_LEN * BLOCKS;
/// Size of an arena.
pub const ARENA_LEN: usize = OFF_DATA + DATA_LEN;

/// Payloads up to this long travel inside the descriptor, not in the data area: CREDIT,
/// WINDOW, PING, PONG, DRAIN and CANCEL never touch the allocator.
pub const INLINE_MAX: usize = 16;

/// Blocks of the peer's data area a receiver may pin with borrowed (zero-copy) regions at
/// once; past this it copies payloads out and releases them at once. Half: the other half
/// always comes back to the peer, which so can never be stuck waiting on memory a slow
/// handler holds. Many small regions (request heads) share a block.
pub const MAX_BORROWED_BLOCKS: usize = BLOCKS / 2;

// The header fields fit the header page, and the release ring ends before the data area.
const _: () = assert!(OFF_SLEEPING + 4 <= HEADER_LEN);
const _: () = assert!(OFF_RELEASE_RING + RELEASE_SLOTS * 8 <= OFF_DATA);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_do_not_overlap_and_are_aligned() {
        assert_eq!(OFF_RELEASE_RING, 36864);
        assert_eq!(OFF_DATA, 45056);
        assert_eq!(OFF_DATA % 4096, 0);
        assert_eq!(ARENA_LEN % 4096, 0);
        for off in [
            OFF_FRAME_PROD,
            OFF_RELEASE_PROD,
            OFF_PEER_FRAME_CONS,
            OFF_PEER_RELEASE_CONS,
            OFF_SLEEPING,
        ] {
            assert_eq!(off % 64, 0);
        }
    }
}
