//! One end of a shared-memory link: its own arena (written here), the peer's (read here),
//! the frame and release rings between them, and the doorbells.
//!
//! The hub [`create`]s both arenas and both eventfds, keeps its end, and hands the worker
//! four descriptors: its own arena **read-only** (reopened `O_RDONLY` and sealed against any
//! future writable mapping), the worker's arena read-write, and the two eventfds. The worker
//! [`open`]s its end from them. Both arenas are sealed against shrinking and growing, so
//! neither side can make the other's reads fault.
//!
//! Sending copies a payload into a region of this side's data area and puts a descriptor on
//! this side's frame ring. Receiving reads the peer's ring and either borrows the region
//! (a `Bytes` whose owner releases it on drop: zero copy) or copies it out and releases it
//! once the frames at hand are read (a burst in one publication). Releasing puts the
//! region's ring index on this side's release ring; the peer reads those and frees the
//! regions in its allocator.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::alloc::{Allocator, Region};
use crate::bell::{self, Bell};
use crate::desc::{Descriptor, Place};
use crate::error::ShmError;
use crate::in_flight::InFlight;
use crate::layout::*;
use crate::memfd::{self, Mapping, SIZE_SEALS};
use crate::ring::RingView;
use crate::sync::Ordering;

/// Size of the chunks copied payloads share.
const COPY_CHUNK: usize = 16 * 1024;

/// The descriptors a worker receives, in the order they travel.
pub const WORKER_FDS: usize = 4;

/// A frame read from the peer's ring.
#[derive(Debug)]
pub struct Received {
    /// Frame type byte.
    pub kind: u8,
    /// Frame flags byte.
    pub flags: u8,
    /// Stream id.
    pub stream: u64,
    /// The payload: borrowed from the peer's arena, or a private copy.
    pub payload: Bytes,
}

/// Releases regions of the peer's arena; shared with every borrowed `Bytes`, which may drop
/// on any thread.
#[derive(Debug)]
struct Releaser {
    own: Arc<Mapping>,
    peer: Arc<Mapping>,
    peer_bell: Arc<Bell>,
    /// The next release index; the lock makes this side a single producer.
    next: Mutex<u64>,
    /// Which of the peer's blocks borrowed regions pin.
    pins: Mutex<Pins>,
}

/// Borrowed regions per block of the peer's data area, and how many blocks they pin.
#[derive(Debug)]
struct Pins {
    per_block: Vec<u32>,
    pinned: usize,
}

impl Pins {
    /// Blocks a region at `offset` (in the data area) of `len` bytes lies in.
    fn blocks(offset: usize, len: usize) -> std::ops::RangeInclusive<usize> {
        offset / BLOCK_LEN..=(offset + len.max(1) - 1) / BLOCK_LEN
    }

    /// Pins the region's blocks if that keeps the pinned blocks within
    /// `MAX_BORROWED_BLOCKS`; `false` (nothing pinned) otherwise.
    fn try_pin(&mut self, offset: usize, len: usize) -> bool {
        let blocks = Self::blocks(offset, len);
        let new = blocks.clone().filter(|&b| self.per_block[b] == 0).count();
        if self.pinned + new > MAX_BORROWED_BLOCKS {
            return false;
        }
        for b in blocks {
            self.per_block[b] += 1;
        }
        self.pinned += new;
        true
    }

    fn unpin(&mut self, offset: usize, len: usize) {
        for b in Self::blocks(offset, len) {
            self.per_block[b] -= 1;
            if self.per_block[b] == 0 {
                self.pinned -= 1;
            }
        }
    }
}

impl Releaser {
    fn ring(&self) -> RingView<'_> {
        RingView::new(
            self.own.u64_at(OFF_RELEASE_PROD),
            self.peer.u64_at(OFF_PEER_RELEASE_CONS),
            self.own.words(OFF_RELEASE_RING, RELEASE_SLOTS),
            1,
        )
    }

    /// Puts the regions of frames `indices` on the release ring, and wakes the peer if it
    /// sleeps short of memory.
    fn release(&self, indices: &[u64]) {
        {
            let mut next = self.next.lock();
            let ring = self.ring();
            // The peer keeps at most RELEASE_SLOTS regions in flight, so the ring has room
            // unless the peer stopped reading it or lies: then it loses its own memory.
            let room = ring.free(*next, *next).unwrap_or(0);
            let n = indices.len().min(room as usize);
            for &index in &indices[..n] {
                ring.write(*next, &[index]);
                *next += 1;
            }
            ring.publish(*next);
        }
        if bell::peer_needs_wake(self.peer.u32_at(OFF_SLEEPING), bell::WAKE_RELEASES) {
            let _ = self.peer_bell.ring();
        }
    }
}

/// A region of the peer's arena lent to a `Bytes`; released when the last clone drops.
struct Borrowed {
    releaser: Arc<Releaser>,
    /// Offset in the peer's mapping, validated.
    offset: usize,
    len: usize,
    index: u64,
}

impl AsRef<[u8]> for Borrowed {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `offset + len` was checked against the data area, the mapping lives as
        // long as `releaser`, and the peer does not write a region until we release it
        // (that is the protocol; the hub, which writes the request arena, keeps it).
        unsafe {
            std::slice::from_raw_parts(self.releaser.peer.as_ptr().add(self.offset), self.len)
        }
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        self.releaser
            .pins
            .lock()
            .unpin(self.offset - OFF_DATA, self.len);
        self.releaser.release(&[self.index]);
    }
}

/// One end of a shared-memory link. Owned by one task; only borrowed payloads leave it.
#[derive(Debug)]
pub struct Channel {
    own: Arc<Mapping>,
    peer: Arc<Mapping>,
    peer_bell: Arc<Bell>,
    releaser: Arc<Releaser>,
    /// Next frame index to write, and the last one published.
    frame_next: u64,
    frame_published: u64,
    alloc: Allocator,
    /// Our regions the peer has not released yet, by frame index.
    in_flight: InFlight,
    frame_consumed: u64,
    release_consumed: u64,
    /// Frames consumed since the peer was last checked for a wake-up.
    consumed_unsignalled: bool,
    /// Whether received payloads may be borrowed (zero copy) rather than copied.
    borrow: bool,
    /// Where copied payloads go: small ones share a chunk, so a copy costs no allocation of
    /// its own.
    copies: BytesMut,
    /// Frames whose payloads were copied out, to release together at the next publish or
    /// when the peer's ring runs dry: one release-ring publication for a burst.
    copied: Vec<u64>,
    sleeping: bool,
    /// Why the last `try_send` found no room, if it did not.
    blocked: Option<Blocked>,
}

/// What a producer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// A free ring slot: the peer consuming.
    Ring,
    /// Arena space: the peer releasing regions.
    Arena,
}

/// The hub's end of a new link: its channel, its own doorbell, and the descriptors to send
/// the worker (hub arena read-only, worker arena, hub bell, worker bell).
pub fn create() -> Result<(Channel, Bell, [OwnedFd; WORKER_FDS]), ShmError> {
    let hub_fd = memfd::create("pullman-hub-arena", ARENA_LEN)?;
    let hub_map = Mapping::map(&hub_fd, ARENA_LEN, true)?;
    write_header(&hub_map);
    // Sealed after our writable mapping exists: it stays writable, and no other mapping
    // (through any descriptor, even one reopened read-write) ever can be.
    memfd::seal(
        hub_fd.as_fd(),
        SIZE_SEALS | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL,
    )?;
    let hub_ro = memfd::reopen_read_only(hub_fd.as_fd())?;
    drop(hub_fd);

    let worker_fd = memfd::create("pullman-worker-arena", ARENA_LEN)?;
    memfd::seal(worker_fd.as_fd(), SIZE_SEALS | libc::F_SEAL_SEAL)?;
    let worker_map = Mapping::map(&worker_fd, ARENA_LEN, false)?;

    let hub_bell = Bell::new()?;
    let worker_bell = Bell::new()?;
    let hub_bell_copy = hub_bell.as_fd().try_clone_to_owned()?;
    let channel = Channel::new(
        hub_map,
        worker_map,
        worker_bell_for_hub(&worker_bell)?,
        false,
    );
    let fds = [hub_ro, worker_fd, hub_bell_copy, worker_bell.into_fd()];
    Ok((channel, hub_bell, fds))
}

fn worker_bell_for_hub(worker_bell: &Bell) -> Result<Bell, ShmError> {
    Ok(Bell::from_fd(worker_bell.as_fd().try_clone_to_owned()?))
}

/// The worker's end, from the descriptors the hub sent (in [`create`]'s order). Checks that
/// both arenas have the expected size and cannot change it.
pub fn open(fds: Vec<OwnedFd>) -> Result<(Channel, Bell), ShmError> {
    let [hub_fd, worker_fd, hub_bell, worker_bell]: [OwnedFd; WORKER_FDS] =
        fds.try_into().map_err(|v: Vec<OwnedFd>| {
            ShmError::Setup(format!("{} descriptors, expected {WORKER_FDS}", v.len()))
        })?;
    for (what, fd) in [("hub arena", &hub_fd), ("worker arena", &worker_fd)] {
        let size = memfd::size(fd.as_fd())?;
        if size != ARENA_LEN as u64 {
            return Err(ShmError::Setup(format!(
                "{what} is {size} bytes, expected {ARENA_LEN}"
            )));
        }
        let seals = memfd::seals(fd.as_fd())?;
        if seals & SIZE_SEALS != SIZE_SEALS {
            return Err(ShmError::Setup(format!("{what} can change size")));
        }
    }
    let hub_map = Mapping::map(&hub_fd, ARENA_LEN, false)?;
    let worker_map = Mapping::map(&worker_fd, ARENA_LEN, true)?;
    write_header(&worker_map);
    let channel = Channel::new(worker_map, hub_map, Bell::from_fd(hub_bell), true);
    Ok((channel, Bell::from_fd(worker_bell)))
}

fn write_header(map: &Mapping) {
    map.u64_at(OFF_MAGIC).store(MAGIC, Ordering::Relaxed);
    map.u32_at(OFF_VERSION)
        .store(LAYOUT_VERSION, Ordering::Relaxed);
}

impl Channel {
    fn new(own: Mapping, peer: Mapping, peer_bell: Bell, borrow: bool) -> Channel {
        let own = Arc::new(own);
        let peer = Arc::new(peer);
        let peer_bell = Arc::new(peer_bell);
        let releaser = Arc::new(Releaser {
            own: own.clone(),
            peer: peer.clone(),
            peer_bell: peer_bell.clone(),
            next: Mutex::new(0),
            pins: Mutex::new(Pins {
                per_block: vec![0; BLOCKS],
                pinned: 0,
            }),
        });
        Channel {
            own,
            peer,
            peer_bell,
            releaser,
            frame_next: 0,
            frame_published: 0,
            alloc: Allocator::new(BLOCKS, BLOCK_LEN),
            in_flight: InFlight::new(FRAME_SLOTS),
            frame_consumed: 0,
            release_consumed: 0,
            consumed_unsignalled: false,
            borrow,
            copies: BytesMut::new(),
            copied: Vec::new(),
            sleeping: false,
            blocked: None,
        }
    }

    fn out_frames(&self) -> RingView<'_> {
        RingView::new(
            self.own.u64_at(OFF_FRAME_PROD),
            self.peer.u64_at(OFF_PEER_FRAME_CONS),
            self.own.words(OFF_FRAME_RING, FRAME_SLOTS * DESC_WORDS),
            DESC_WORDS,
        )
    }

    fn in_frames(&self) -> RingView<'_> {
        RingView::new(
            self.peer.u64_at(OFF_FRAME_PROD),
            self.own.u64_at(OFF_PEER_FRAME_CONS),
            self.peer.words(OFF_FRAME_RING, FRAME_SLOTS * DESC_WORDS),
            DESC_WORDS,
        )
    }

    fn in_releases(&self) -> RingView<'_> {
        RingView::new(
            self.peer.u64_at(OFF_RELEASE_PROD),
            self.own.u64_at(OFF_PEER_RELEASE_CONS),
            self.peer.words(OFF_RELEASE_RING, RELEASE_SLOTS),
            1,
        )
    }

    /// Queues one frame (not yet visible to the peer: see [`publish`]). `Ok(false)` when the
    /// ring or the arena is full: try again after [`reclaim`] frees room.
    ///
    /// [`publish`]: Channel::publish
    /// [`reclaim`]: Channel::reclaim
    pub fn try_send(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u64,
        payload: &[u8],
    ) -> Result<bool, ShmError> {
        let len = payload.len();
        if len > BLOCK_LEN {
            return Err(ShmError::TooLarge {
                len,
                max: BLOCK_LEN,
            });
        }
        if self
            .out_frames()
            .free(self.frame_published, self.frame_next)?
            == 0
        {
            self.blocked = Some(Blocked::Ring);
            return Ok(false);
        }
        let place = if len <= INLINE_MAX {
            let mut inline = [0u8; INLINE_MAX];
            inline[..len].copy_from_slice(payload);
            Place::Inline(inline)
        } else {
            let Some(region) = self.alloc_region(len)? else {
                self.blocked = Some(Blocked::Arena);
                return Ok(false);
            };
            self.own.write(OFF_DATA + region.offset, payload);
            self.in_flight.insert(self.frame_next, region);
            Place::Data(region.offset as u64)
        };
        let desc = Descriptor {
            kind,
            flags,
            len: len as u32,
            stream,
            place,
        };
        self.out_frames().write(self.frame_next, &desc.to_words());
        self.frame_next += 1;
        self.blocked = None;
        Ok(true)
    }

    fn alloc_region(&mut self, len: usize) -> Result<Option<Region>, ShmError> {
        if self.in_flight.len() >= RELEASE_SLOTS {
            self.reclaim()?;
            if self.in_flight.len() >= RELEASE_SLOTS {
                return Ok(None);
            }
        }
        if let Some(r) = self.alloc.alloc(len) {
            return Ok(Some(r));
        }
        self.reclaim()?;
        Ok(self.alloc.alloc(len))
    }

    /// Makes queued frames visible and rings the peer if it may be asleep. Returns whether
    /// anything was published.
    pub fn publish(&mut self) -> bool {
        self.release_copied();
        if self.frame_next == self.frame_published {
            return false;
        }
        self.out_frames().publish(self.frame_next);
        self.frame_published = self.frame_next;
        self.wake_peer(bell::WAKE_FRAMES);
        true
    }

    fn wake_peer(&self, bit: u32) {
        if bell::peer_needs_wake(self.peer.u32_at(OFF_SLEEPING), bit) {
            let _ = self.peer_bell.ring();
        }
    }

    fn release_copied(&mut self) {
        if !self.copied.is_empty() {
            self.releaser.release(&self.copied);
            self.copied.clear();
        }
    }

    /// Frees the regions the peer has released. Returns how many.
    pub fn reclaim(&mut self) -> Result<usize, ShmError> {
        let n = self.in_releases().available(self.release_consumed)?;
        let mut entry = [0u64; 1];
        for _ in 0..n {
            self.in_releases().read(self.release_consumed, &mut entry);
            let region = self.in_flight.remove(entry[0]).ok_or_else(|| {
                ShmError::Peer(format!(
                    "released region {}, which is not in flight",
                    entry[0]
                ))
            })?;
            self.alloc.free(region);
            self.release_consumed += 1;
        }
        if n > 0 {
            self.in_releases().commit(self.release_consumed);
        }
        Ok(n as usize)
    }

    /// The next frame from the peer, if one is there.
    pub fn try_recv(&mut self) -> Result<Option<Received>, ShmError> {
        if self.in_frames().available(self.frame_consumed)? == 0 {
            self.release_copied();
            if std::mem::take(&mut self.consumed_unsignalled) {
                // The peer may be waiting for ring space.
                self.wake_peer(bell::WAKE_SLOTS);
            }
            return Ok(None);
        }
        let index = self.frame_consumed;
        let mut words = [0u64; DESC_WORDS];
        self.in_frames().read(index, &mut words);
        self.frame_consumed += 1;
        self.in_frames().commit(self.frame_consumed);
        self.consumed_unsignalled = true;
        let d = Descriptor::from_words(words);
        let len = d.len as usize;
        let payload = match d.place {
            Place::Inline(bytes) => Bytes::copy_from_slice(&bytes[..len]),
            Place::Data(offset) => {
                let valid = len <= BLOCK_LEN
                    && offset
                        .checked_add(len as u64)
                        .is_some_and(|end| end <= DATA_LEN as u64);
                if !valid {
                    return Err(ShmError::Peer(format!(
                        "frame {index}: region {offset}+{len} outside the data area"
                    )));
                }
                self.payload(index, OFF_DATA + offset as usize, len)
            }
        };
        Ok(Some(Received {
            kind: d.kind,
            flags: d.flags,
            stream: d.stream,
            payload,
        }))
    }

    fn payload(&mut self, index: u64, offset: usize, len: usize) -> Bytes {
        let r = &self.releaser;
        if self.borrow && r.pins.lock().try_pin(offset - OFF_DATA, len) {
            return Bytes::from_owner(Borrowed {
                releaser: r.clone(),
                offset,
                len,
                index,
            });
        }
        if self.copies.capacity() - self.copies.len() < len {
            self.copies.reserve(len.max(COPY_CHUNK));
        }
        self.peer.copy_out(offset, len, &mut self.copies);
        self.copied.push(index);
        self.copies.split().freeze()
    }

    /// About to block on this side's eventfd: sets the sleeping flag, then re-checks what
    /// would wake it: a frame from the peer and, if the last send found no room, the room it
    /// waits for. `true` if nothing changed and blocking is safe; `false` means poll again.
    pub fn announce_sleep(&mut self) -> Result<bool, ShmError> {
        let bits = bell::WAKE_FRAMES
            | match self.blocked {
                None => 0,
                Some(Blocked::Ring) => bell::WAKE_SLOTS,
                Some(Blocked::Arena) => bell::WAKE_RELEASES,
            };
        bell::announce_sleep(self.own.u32_at(OFF_SLEEPING), bits);
        self.sleeping = true;
        if self.in_frames().available(self.frame_consumed)? > 0 {
            return Ok(false);
        }
        let room = match self.blocked {
            None => false,
            Some(Blocked::Ring) => {
                self.out_frames()
                    .free(self.frame_published, self.frame_next)?
                    > 0
            }
            Some(Blocked::Arena) => self.in_releases().available(self.release_consumed)? > 0,
        };
        Ok(!room)
    }

    /// Awake: clears the sleeping flag, so the peer stops ringing.
    pub fn wake_up(&mut self) {
        if self.sleeping {
            bell::cancel_sleep(self.own.u32_at(OFF_SLEEPING));
            self.sleeping = false;
        }
    }

    /// Our regions the peer still holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Start and length of the peer's arena as mapped here (for tests and diagnostics).
    pub fn peer_mapping(&self) -> (*const u8, usize) {
        (self.peer.as_ptr(), self.peer.len())
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::memfd::is_shared_memory;

    fn pair() -> (Channel, Bell, Channel, Bell) {
        let (hub, hub_bell, fds) = create().unwrap();
        let (worker, worker_bell) = open(fds.into()).unwrap();
        (hub, hub_bell, worker, worker_bell)
    }

    #[test]
    fn frames_cross_both_ways_inline_and_in_regions() {
        let (mut hub, _hb, mut worker, _wb) = pair();
        let big = vec![7u8; 70_000];
        assert!(hub.try_send(3, 0, 0, &5u32.to_be_bytes()).unwrap());
        assert!(hub.try_send(5, 1, 9, &big).unwrap());
        assert!(
            worker.try_recv().unwrap().is_none(),
            "nothing before publish"
        );
        hub.publish();
        let credit = worker.try_recv().unwrap().unwrap();
        assert_eq!(
            (credit.kind, credit.stream, &credit.payload[..]),
            (3, 0, &5u32.to_be_bytes()[..])
        );
        let body = worker.try_recv().unwrap().unwrap();
        assert_eq!((body.kind, body.flags, body.stream), (5, 1, 9));
        assert_eq!(body.payload, big);
        // The worker borrows: the bytes lie in the hub's arena, mapped here.
        assert!(is_shared_memory(body.payload.as_ptr()));
        let (start, len) = worker.peer_mapping();
        let p = body.payload.as_ptr() as usize;
        assert!(p >= start as usize && p + body.payload.len() <= start as usize + len);
        assert_eq!(hub.in_flight(), 1);
        drop(body);
        assert_eq!(hub.reclaim().unwrap(), 1);
        assert_eq!(hub.in_flight(), 0);

        // The hub copies what it receives, releasing once the ring runs dry.
        assert!(worker.try_send(7, 0, 9, &[1u8; 100]).unwrap());
        assert!(worker.try_send(7, 0, 9, &[2u8; 100]).unwrap());
        worker.publish();
        for _ in 0..2 {
            let resp = hub.try_recv().unwrap().unwrap();
            assert!(!is_shared_memory(resp.payload.as_ptr()));
        }
        assert_eq!(worker.reclaim().unwrap(), 0, "not before the ring runs dry");
        assert!(hub.try_recv().unwrap().is_none());
        assert_eq!(worker.reclaim().unwrap(), 2);
    }

    #[test]
    fn a_full_arena_makes_the_sender_wait_until_the_reader_releases() {
        let (mut hub, _hb, mut worker, _wb) = pair();
        let chunk = vec![1u8; BLOCK_LEN];
        let mut sent = 0;
        while hub.try_send(5, 0, 1, &chunk).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, BLOCKS, "one block-sized region per block");
        hub.publish();
        let mut held = Vec::new();
        while let Some(r) = worker.try_recv().unwrap() {
            held.push(r);
        }
        assert_eq!(held.len(), BLOCKS);
        // The worker borrowed half the blocks and copied (and so released) the rest: the
        // hub has exactly those back, and never more while the worker holds its half.
        let mut more = 0;
        while hub.try_send(5, 0, 1, &chunk).unwrap() {
            more += 1;
        }
        assert_eq!(more, BLOCKS - MAX_BORROWED_BLOCKS);
        held.remove(0); // a borrowed one
        assert!(hub.try_send(5, 0, 1, &chunk).unwrap(), "one block back");
        assert!(!hub.try_send(5, 0, 1, &chunk).unwrap());
    }

    #[test]
    fn a_receiver_past_its_borrow_budget_copies() {
        let (mut hub, _hb, mut worker, _wb) = pair();
        // Small regions share a block: hundreds stay borrowed while they pin one.
        let mut small = Vec::new();
        for _ in 0..500 {
            assert!(hub.try_send(5, 0, 1, &[2u8; 100]).unwrap());
            hub.publish();
            small.push(worker.try_recv().unwrap().unwrap());
        }
        assert!(small.iter().all(|r| is_shared_memory(r.payload.as_ptr())));
        drop(small);
        assert_eq!(hub.reclaim().unwrap(), 500);

        // Block-sized ones pin a block each: past half the blocks they are copied.
        let chunk = vec![3u8; BLOCK_LEN];
        let mut held = Vec::new();
        for _ in 0..MAX_BORROWED_BLOCKS + 2 {
            assert!(hub.try_send(5, 0, 1, &chunk).unwrap());
            hub.publish();
            held.push(worker.try_recv().unwrap().unwrap());
        }
        let borrowed = held
            .iter()
            .filter(|r| is_shared_memory(r.payload.as_ptr()))
            .count();
        assert_eq!(borrowed, MAX_BORROWED_BLOCKS);
        assert!(worker.try_recv().unwrap().is_none());
        assert_eq!(
            hub.reclaim().unwrap(),
            2,
            "copies are released once the ring runs dry"
        );
        assert!(held.iter().all(|r| r.payload == chunk));
    }

    #[test]
    fn lies_in_the_peers_memory_are_errors() {
        let (mut hub, _hb, worker, _wb) = pair();
        // The worker (hostile) writes a descriptor pointing outside the data area and
        // publishes it; the hub refuses it instead of reading there.
        let d = Descriptor {
            kind: 7,
            flags: 0,
            len: 64,
            stream: 1,
            place: Place::Data(DATA_LEN as u64 - 8),
        };
        worker.out_frames().write(0, &d.to_words());
        worker.out_frames().publish(1);
        assert!(matches!(hub.try_recv(), Err(ShmError::Peer(_))));

        // A producer index far ahead of the ring.
        let (mut hub, _hb, worker, _wb) = pair();
        worker.out_frames().publish(FRAME_SLOTS as u64 + 1);
        assert!(matches!(hub.try_recv(), Err(ShmError::Peer(_))));

        // A release of a region never sent.
        let (mut hub, _hb, worker, _wb) = pair();
        worker.releaser.release(&[42]);
        assert!(matches!(hub.reclaim(), Err(ShmError::Peer(_))));
    }

    #[test]
    fn a_sleeping_side_is_rung_and_a_busy_one_is_not() {
        let (mut hub, _hb, mut worker, worker_bell) = pair();
        assert!(hub.try_send(3, 0, 0, &1u32.to_be_bytes()).unwrap());
        hub.publish();
        assert!(!worker_bell.drain().unwrap(), "awake: no system call");
        assert!(worker.try_recv().unwrap().is_some());
        assert!(worker.announce_sleep().unwrap());
        assert!(hub.try_send(3, 0, 0, &1u32.to_be_bytes()).unwrap());
        hub.publish();
        assert!(worker_bell.drain().unwrap(), "asleep: rung");
        worker.wake_up();
        assert!(!worker.announce_sleep().unwrap(), "a frame is waiting");
    }

    #[test]
    fn releases_wake_only_a_side_waiting_for_memory() {
        let (mut hub, hub_bell, mut worker, _wb) = pair();
        let chunk = vec![1u8; BLOCK_LEN];
        assert!(hub.try_send(5, 0, 1, &chunk).unwrap());
        hub.publish();
        let held = worker.try_recv().unwrap().unwrap();
        assert!(hub.announce_sleep().unwrap());
        drop(held);
        assert!(
            !hub_bell.drain().unwrap(),
            "asleep for frames only: no bell"
        );
        hub.wake_up();

        // Fill the arena; the hub then sleeps waiting for memory, and a release rings it.
        while hub.try_send(5, 0, 1, &chunk).unwrap() {}
        hub.publish();
        let mut held = Vec::new();
        while let Some(r) = worker.try_recv().unwrap() {
            held.push(r);
        }
        hub.reclaim().unwrap();
        while hub.try_send(5, 0, 1, &chunk).unwrap() {}
        assert!(hub.announce_sleep().unwrap());
        held.clear();
        assert!(hub_bell.drain().unwrap(), "asleep waiting for memory: rung");
    }
}

/// Pure bookkeeping, so Miri runs it too.
#[cfg(test)]
mod pin_tests {
    use super::*;

    #[test]
    fn pins_count_blocks_not_regions_and_stop_at_half() {
        let mut pins = Pins {
            per_block: vec![0; BLOCKS],
            pinned: 0,
        };
        assert!(pins.try_pin(0, 100));
        assert!(pins.try_pin(200, 100), "same block: no new pin");
        assert_eq!(pins.pinned, 1);
        // A region across a block boundary pins both blocks.
        assert!(pins.try_pin(BLOCK_LEN - 8, 16));
        assert_eq!(pins.pinned, 2);
        for b in 2..MAX_BORROWED_BLOCKS {
            assert!(pins.try_pin(b * BLOCK_LEN, 1));
        }
        assert!(
            !pins.try_pin(MAX_BORROWED_BLOCKS * BLOCK_LEN, 1),
            "past half"
        );
        assert!(
            pins.try_pin(BLOCK_LEN + 64, 8),
            "a pinned block still lends"
        );
        pins.unpin(BLOCK_LEN - 8, 16);
        pins.unpin(BLOCK_LEN + 64, 8);
        assert_eq!(
            pins.pinned,
            MAX_BORROWED_BLOCKS - 1,
            "block 1 is free again"
        );
        assert!(pins.try_pin(MAX_BORROWED_BLOCKS * BLOCK_LEN, 1));
    }
}
