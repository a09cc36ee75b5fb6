//! Model checks of the ring's publish/consume and of the wake-up protocol, over every
//! interleaving loom finds. Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p pullman-shm --release --test loom
//! ```
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use pullman_shm::bell::{announce_sleep, peer_needs_wake, WAKE_FRAMES};
use pullman_shm::ring::RingView;

/// Both memories of one ring (producer index + slots, consumer index), in one place.
struct Mem {
    prod: AtomicU64,
    cons: AtomicU64,
    slots: Vec<AtomicU64>,
}

impl Mem {
    fn new(entries: usize, words: usize) -> Arc<Mem> {
        Arc::new(Mem {
            prod: AtomicU64::new(0),
            cons: AtomicU64::new(0),
            slots: (0..entries * words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn view(&self, words: usize) -> RingView<'_> {
        RingView::new(&self.prod, &self.cons, &self.slots, words)
    }
}

#[test]
fn every_entry_arrives_whole_and_in_order_across_a_wrap() {
    loom::model(|| {
        // Two slots, three entries of two words: the third reuses slot 0.
        let mem = Mem::new(2, 2);
        let producer = {
            let mem = mem.clone();
            thread::spawn(move || {
                let ring = mem.view(2);
                let (mut next, mut published) = (0u64, 0u64);
                while next < 3 {
                    if ring.free(published, next).unwrap() == 0 {
                        thread::yield_now();
                        continue;
                    }
                    ring.write(next, &[next + 10, next + 20]);
                    next += 1;
                    ring.publish(next);
                    published = next;
                }
            })
        };
        let ring = mem.view(2);
        let mut consumed = 0u64;
        let mut out = [0u64; 2];
        while consumed < 3 {
            if ring.available(consumed).unwrap() == 0 {
                thread::yield_now();
                continue;
            }
            ring.read(consumed, &mut out);
            assert_eq!(out, [consumed + 10, consumed + 20], "torn or stale entry");
            consumed += 1;
            ring.commit(consumed);
        }
        producer.join().unwrap();
    });
}

#[test]
fn a_sleeper_never_misses_a_publication() {
    loom::model(|| {
        let mem = Mem::new(2, 1);
        let flag = Arc::new(AtomicU32::new(0));
        let rang = Arc::new(AtomicU32::new(0));
        let publisher = {
            let (mem, flag, rang) = (mem.clone(), flag.clone(), rang.clone());
            thread::spawn(move || {
                let ring = mem.view(1);
                ring.write(0, &[1]);
                ring.publish(1);
                if peer_needs_wake(&flag, WAKE_FRAMES) {
                    rang.store(1, Ordering::SeqCst);
                }
            })
        };
        // The consumer found nothing, announces sleep, re-checks.
        let ring = mem.view(1);
        announce_sleep(&flag, WAKE_FRAMES);
        let saw_entry = ring.available(0).unwrap() > 0;
        publisher.join().unwrap();
        // Either the re-check saw the entry, or the publisher rang the bell.
        assert!(
            saw_entry || rang.load(Ordering::SeqCst) == 1,
            "the sleeper would block with an entry waiting and no bell"
        );
    });
}
