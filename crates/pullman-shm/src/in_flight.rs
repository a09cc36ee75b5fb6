//! The producer's record of its regions the peer still holds, by frame index.
//!
//! The peer releases a region by naming the frame index that carried it, mostly soon and in
//! order. So each region sits in the slot of its frame's ring slot (`index % slots`), found
//! with one array access; the rare region still held when its ring slot comes round again
//! (a handler keeping a request head for long) is moved aside to a map. Lives in the
//! producer's private memory, never in the arena.

use rustc_hash::FxHashMap;

use crate::alloc::Region;

/// Regions in flight, by frame index.
#[derive(Debug)]
pub(crate) struct InFlight {
    slots: Vec<Option<(u64, Region)>>,
    /// Regions whose slot was taken by a later frame. FxHash: the keys are our own frame
    /// indices; the peer only names keys to remove.
    aside: FxHashMap<u64, Region>,
    len: usize,
}

impl InFlight {
    /// A table for a ring of `slots` frames.
    pub(crate) fn new(slots: usize) -> InFlight {
        InFlight {
            slots: vec![None; slots],
            aside: FxHashMap::default(),
            len: 0,
        }
    }

    fn slot(&mut self, index: u64) -> &mut Option<(u64, Region)> {
        let n = self.slots.len() as u64;
        &mut self.slots[(index % n) as usize]
    }

    /// Records the region that frame `index` carries (each index at most once).
    pub(crate) fn insert(&mut self, index: u64, region: Region) {
        if let Some((older, r)) = self.slot(index).replace((index, region)) {
            self.aside.insert(older, r);
        }
        self.len += 1;
    }

    /// The region frame `index` carried, if it is still in flight.
    pub(crate) fn remove(&mut self, index: u64) -> Option<Region> {
        let slot = self.slot(index);
        let region = match *slot {
            Some((i, r)) if i == index => {
                *slot = None;
                Some(r)
            }
            _ => self.aside.remove(&index),
        };
        self.len -= region.is_some() as usize;
        region
    }

    /// Regions in flight.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(offset: usize) -> Region {
        Region { offset, len: 8 }
    }

    #[test]
    fn regions_come_back_by_index_in_any_order() {
        let mut t = InFlight::new(4);
        for i in 0..3 {
            t.insert(i, region(i as usize * 8));
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove(1), Some(region(8)));
        assert_eq!(t.remove(1), None, "released twice");
        assert_eq!(t.remove(7), None, "never sent");
        assert_eq!(t.remove(2), Some(region(16)));
        assert_eq!(t.remove(0), Some(region(0)));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_region_held_past_its_ring_slot_coming_round_is_kept_aside() {
        let mut t = InFlight::new(4);
        t.insert(0, region(0)); // held for long
        for i in 1..=9 {
            t.insert(i, region(i as usize * 8));
            assert_eq!(t.remove(i), Some(region(i as usize * 8)));
        }
        // Frames 4 and 8 took slot 0; the region of frame 0 is still there to release.
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(4), None);
        assert_eq!(t.remove(0), Some(region(0)));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_slot_freed_by_a_release_holds_no_stale_region() {
        let mut t = InFlight::new(2);
        t.insert(0, region(0));
        t.insert(2, region(16)); // frame 0's region moves aside
        assert_eq!(t.remove(2), Some(region(16)));
        assert_eq!(t.remove(2), None);
        assert_eq!(t.remove(0), Some(region(0)));
        assert_eq!(t.remove(0), None);
    }
}
