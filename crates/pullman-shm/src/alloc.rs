//! The producer's allocator for its data area: blocks filled in order, regions freed in any
//! order, a block reused once every region in it is free, free blocks reused in the order
//! they became free.
//!
//! Regions are bump-allocated inside the current block (a frame never straddles two
//! blocks). A region the consumer holds for long (a handler keeping its request head) pins
//! only its own block, not the whole arena, so one slow request cannot stop the others.

use std::collections::VecDeque;

/// Region offsets are rounded up to this, so payloads start on a word boundary.
const ALIGN: usize = 8;

/// A piece of the data area handed out for one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Offset from the start of the data area.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Region {
    fn block(&self, block_len: usize) -> usize {
        self.offset / block_len
    }
}

/// Allocator state; lives in the producer's private memory, never in the arena.
#[derive(Debug)]
pub struct Allocator {
    block_len: usize,
    /// Live regions per block.
    live: Vec<u32>,
    /// The block being filled and the bytes used in it.
    current: Option<(usize, usize)>,
    /// Blocks with no live region, oldest first.
    free: VecDeque<usize>,
}

impl Allocator {
    /// An allocator over `blocks` blocks of `block_len` bytes, all free.
    pub fn new(blocks: usize, block_len: usize) -> Allocator {
        Allocator {
            block_len,
            live: vec![0; blocks],
            current: None,
            free: (0..blocks).collect(),
        }
    }

    /// Largest region [`alloc`](Allocator::alloc) can ever return.
    pub fn max_len(&self) -> usize {
        self.block_len
    }

    /// A region of `len` bytes (`0 < len <= max_len`), or `None` while every block is in use.
    pub fn alloc(&mut self, len: usize) -> Option<Region> {
        assert!(len > 0 && len <= self.block_len, "region of {len} bytes");
        if let Some((block, used)) = self.current {
            let start = used.next_multiple_of(ALIGN);
            if start + len <= self.block_len {
                return Some(self.take(block, start, len));
            }
            // Full: retire it. Its last region's release will free it.
            self.current = None;
            if self.live[block] == 0 {
                self.free.push_back(block);
            }
        }
        let block = self.free.pop_front()?;
        Some(self.take(block, 0, len))
    }

    fn take(&mut self, block: usize, start: usize, len: usize) -> Region {
        self.live[block] += 1;
        self.current = Some((block, start + len));
        Region {
            offset: block * self.block_len + start,
            len,
        }
    }

    /// Frees a region `alloc` returned (each exactly once).
    pub fn free(&mut self, region: Region) {
        let block = region.block(self.block_len);
        self.live[block] -= 1;
        if self.live[block] > 0 {
            return;
        }
        match self.current {
            // The block being filled is empty again: start it over instead of moving on.
            Some((current, _)) if current == block => self.current = Some((block, 0)),
            _ => self.free.push_back(block),
        }
    }

    /// Blocks with no live region.
    pub fn free_blocks(&self) -> usize {
        self.live.iter().filter(|&&n| n == 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_pack_a_block_then_move_on() {
        let mut a = Allocator::new(2, 100);
        let r1 = a.alloc(30).unwrap();
        let r2 = a.alloc(30).unwrap();
        assert_eq!((r1.offset, r2.offset), (0, 32));
        let r3 = a.alloc(50).unwrap();
        assert_eq!(r3.offset, 100, "does not fit after 62 bytes: next block");
        assert!(a.alloc(60).is_none(), "both blocks in use");
        a.free(r2);
        assert!(a.alloc(60).is_none(), "block 0 still holds r1");
        a.free(r1);
        assert_eq!(a.alloc(60).unwrap().offset, 0);
    }

    #[test]
    fn freeing_out_of_order_reuses_blocks_in_the_order_they_emptied() {
        let mut a = Allocator::new(4, 10);
        let r: Vec<Region> = (0..4).map(|_| a.alloc(10).unwrap()).collect();
        assert!(a.alloc(1).is_none());
        a.free(r[2]);
        a.free(r[0]);
        a.free(r[1]);
        assert_eq!(a.alloc(10).unwrap().offset, 20);
        assert_eq!(a.alloc(10).unwrap().offset, 0);
        assert_eq!(a.alloc(10).unwrap().offset, 10);
        assert!(a.alloc(1).is_none());
    }

    #[test]
    fn a_pinned_block_does_not_stop_the_others() {
        let mut a = Allocator::new(3, 10);
        let pinned = a.alloc(4).unwrap();
        for _ in 0..100 {
            let r = a.alloc(8).unwrap();
            assert_ne!(r.offset / 10, pinned.offset / 10);
            a.free(r);
        }
        assert_eq!(a.free_blocks(), 2);
        a.free(pinned);
        assert_eq!(a.free_blocks(), 3);
    }
}
