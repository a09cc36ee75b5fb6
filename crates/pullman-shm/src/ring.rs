//! Single-producer single-consumer rings of fixed-size entries, split across two memories.
//!
//! The entries and the producer index live in the producer's memory, the consumer index in
//! the consumer's: each side writes only its own. Indices are free-running `u64` counters
//! (entry `i` sits in slot `i % capacity`); they never wrap in practice. Every index read
//! from the peer is checked against what this side knows before it is used, so a hostile
//! peer can make the ring look empty or full, or fail with [`RingError`], but never make
//! this side read or write outside the ring.
//!
//! Ordering: the producer writes an entry's words (relaxed), then stores the producer index
//! with `Release`; the consumer loads it with `Acquire` before reading the words. The
//! consumer stores its index with `Release` after reading; the producer loads it with
//! `Acquire` before overwriting a slot. Entry words are atomics so that a peer writing
//! while we read is a wrong value, never undefined behaviour.

use crate::sync::{AtomicU64, Ordering};

/// The peer's index is impossible: it broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring index out of range: peer says {peer}, we know {ours} (capacity {capacity})")]
pub struct RingError {
    /// The index read from the peer's memory.
    pub peer: u64,
    /// The index this side holds.
    pub ours: u64,
    /// The ring's capacity.
    pub capacity: u64,
}

/// One ring as seen from one side: references into both memories.
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    prod: &'a AtomicU64,
    cons: &'a AtomicU64,
    slots: &'a [AtomicU64],
    words: usize,
}

impl<'a> RingView<'a> {
    /// A ring of `slots.len() / words` entries of `words` u64 each.
    pub fn new(
        prod: &'a AtomicU64,
        cons: &'a AtomicU64,
        slots: &'a [AtomicU64],
        words: usize,
    ) -> RingView<'a> {
        assert!(words > 0 && slots.len() % words == 0 && !slots.is_empty());
        RingView {
            prod,
            cons,
            slots,
            words,
        }
    }

    /// Number of entries.
    pub fn capacity(&self) -> u64 {
        (self.slots.len() / self.words) as u64
    }

    /// Producer: free slots, given `published` (the last index it stored) and `next` (the
    /// next index it will write; `next >= published`).
    pub fn free(&self, published: u64, next: u64) -> Result<u64, RingError> {
        let cons = self.cons.load(Ordering::Acquire);
        let cap = self.capacity();
        if cons > published {
            return Err(RingError {
                peer: cons,
                ours: published,
                capacity: cap,
            });
        }
        Ok(cap.saturating_sub(next - cons))
    }

    /// Producer: writes entry `index` (not yet visible). The caller checked [`free`].
    ///
    /// [`free`]: RingView::free
    pub fn write(&self, index: u64, entry: &[u64]) {
        debug_assert_eq!(entry.len(), self.words);
        let at = (index % self.capacity()) as usize * self.words;
        for (slot, word) in self.slots[at..at + self.words].iter().zip(entry) {
            slot.store(*word, Ordering::Relaxed);
        }
    }

    /// Producer: makes every entry before `upto` visible.
    pub fn publish(&self, upto: u64) {
        self.prod.store(upto, Ordering::Release);
    }

    /// Consumer: entries ready to read, given `consumed` (the next index to read).
    pub fn available(&self, consumed: u64) -> Result<u64, RingError> {
        let prod = self.prod.load(Ordering::Acquire);
        let cap = self.capacity();
        if prod < consumed || prod - consumed > cap {
            return Err(RingError {
                peer: prod,
                ours: consumed,
                capacity: cap,
            });
        }
        Ok(prod - consumed)
    }

    /// Consumer: reads entry `index`. The caller checked [`available`].
    ///
    /// [`available`]: RingView::available
    pub fn read(&self, index: u64, out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.words);
        let at = (index % self.capacity()) as usize * self.words;
        for (word, slot) in out.iter_mut().zip(&self.slots[at..at + self.words]) {
            *word = slot.load(Ordering::Relaxed);
        }
    }

    /// Consumer: hands every slot before `consumed` back to the producer.
    pub fn commit(&self, consumed: u64) {
        self.cons.store(consumed, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Mem {
        prod: AtomicU64,
        cons: AtomicU64,
        slots: Vec<AtomicU64>,
    }

    fn mem(entries: usize, words: usize) -> Mem {
        Mem {
            prod: AtomicU64::new(0),
            cons: AtomicU64::new(0),
            slots: (0..entries * words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[test]
    fn entries_come_out_in_order_across_wraps() {
        let m = mem(4, 2);
        let ring = RingView::new(&m.prod, &m.cons, &m.slots, 2);
        let (mut next, mut published, mut consumed) = (0u64, 0u64, 0u64);
        let mut out = [0u64; 2];
        for round in 0..10u64 {
            while ring.free(published, next).unwrap() > 0 {
                ring.write(next, &[next, round]);
                next += 1;
            }
            assert_eq!(next - consumed, 4, "a full ring holds capacity entries");
            ring.publish(next);
            published = next;
            let n = ring.available(consumed).unwrap();
            for _ in 0..n {
                ring.read(consumed, &mut out);
                assert_eq!(out, [consumed, round]);
                consumed += 1;
            }
            ring.commit(consumed);
        }
        assert_eq!(consumed, 40);
    }

    #[test]
    fn impossible_peer_indices_are_errors_not_reads() {
        let m = mem(4, 1);
        let ring = RingView::new(&m.prod, &m.cons, &m.slots, 1);
        // Producer index behind what we consumed, or more than a ring ahead.
        m.prod.store(3, Ordering::Relaxed);
        assert!(ring.available(5).is_err());
        m.prod.store(100, Ordering::Relaxed);
        assert!(ring.available(5).is_err());
        m.prod.store(u64::MAX, Ordering::Relaxed);
        assert!(ring.available(0).is_err());
        // Consumer index past what we published.
        m.cons.store(9, Ordering::Relaxed);
        assert!(ring.free(8, 8).is_err());
        m.cons.store(u64::MAX, Ordering::Relaxed);
        assert!(ring.free(8, 8).is_err());
        m.cons.store(8, Ordering::Relaxed);
        assert_eq!(ring.free(8, 8), Ok(4));
    }
}
