//! The hub's end of a shared-memory link against a hostile worker that writes anything
//! into its own arena: descriptors, ring indices, release entries, its sleeping word and
//! payload bytes.
//!
//! Each input is a script. The target creates a real link (`pullman_shm::create`: memfds,
//! mappings, eventfds), keeps the hub's `Channel`, and plays the worker by writing its arena
//! through the worker's descriptor (no mapping of its own, no `unsafe`). Each step is one
//! opcode byte and its operands; see [`Step`]. Between the worker's writes the hub receives,
//! sends, reclaims and prepares to sleep, as its transport does.
//!
//! Checked: nothing the worker writes panics the hub; a frame the hub receives is exactly the
//! descriptor in the slot it consumed (its type, flags and stream) and its payload is the
//! bytes the descriptor points at, never longer than a block; the hub consumes one index per
//! frame and publishes its consumer index; its regions in flight stay within the release
//! ring and `reclaim` frees what it says; every descriptor survives a words round trip.
//! An error ends the script, as it ends the link.
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;

use libfuzzer_sys::fuzz_target;
use pullman_shm::desc::{Descriptor, Place};
use pullman_shm::layout::{
    BLOCK_LEN, DATA_LEN, DESC_LEN, DESC_WORDS, FRAME_SLOTS, OFF_DATA, OFF_FRAME_PROD,
    OFF_FRAME_RING, OFF_PEER_FRAME_CONS, OFF_PEER_RELEASE_CONS, OFF_RELEASE_PROD, OFF_RELEASE_RING,
    OFF_SLEEPING, RELEASE_SLOTS,
};
use pullman_shm::Channel;

/// Most frames one receive step takes, as a transport reads a burst.
const BURST: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok((mut hub, _hub_bell, fds)) = pullman_shm::create() else {
        return;
    };
    let [hub_arena, worker_arena, _, _] = fds;
    let mut link = Link {
        hub_arena: File::from(hub_arena),
        worker_arena: File::from(worker_arena),
        consumed: 0,
        sent: 0,
    };
    let mut script = Script(data);
    while let Some(op) = script.u8() {
        if link.step(&mut hub, op, &mut script).is_err() {
            break;
        }
    }
});

/// The input, read from the front.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// The worker's side, as the fuzzer plays it, and what the hub has done so far.
struct Link {
    hub_arena: File,
    worker_arena: File,
    /// Frames the hub received.
    consumed: u64,
    /// Frames the hub published.
    sent: u64,
}

/// One step of a script: the opcode byte, modulo the number of steps.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// slot u16, 32 bytes: a descriptor in the worker's frame ring.
    Descriptor,
    /// A descriptor in the slot of the hub's next frame: kind u8, flags u8, stream u8, len
    /// u16 (folded below 2 * BLOCK_LEN), offset u16 (in 64-byte units); payload bytes are the
    /// data area's.
    NextDescriptor,
    /// n u8: the worker publishes frames up to `consumed + n`.
    PublishNear,
    /// u64: the worker publishes any frame producer index.
    PublishAny,
    /// slot u16, u64: a release entry in the worker's release ring.
    Release,
    /// n u8: release entries up to `n` past what the hub reclaimed.
    PublishReleasesNear,
    /// u64: any release producer index.
    PublishReleasesAny,
    /// u64: the worker's consumer index into the hub's frame ring (any value).
    ConsumeAny,
    /// The worker consumes every frame the hub published, and releases nothing.
    ConsumeAll,
    /// u64: the worker's consumer index into the hub's release ring.
    ConsumeReleasesAny,
    /// u8: the worker's sleeping word.
    Sleeping,
    /// offset u16 (in 64-byte units), len u8, bytes: into the worker's data area.
    Data,
    /// The hub receives a burst.
    Receive,
    /// kind u8, len u16 (folded below BLOCK_LEN + 1): the hub sends and publishes a frame.
    Send,
    /// The hub frees what the worker released.
    Reclaim,
    /// The hub gets ready to sleep, then wakes.
    Sleep,
}

const STEPS: [Step; 16] = [
    Step::Descriptor,
    Step::NextDescriptor,
    Step::PublishNear,
    Step::PublishAny,
    Step::Release,
    Step::PublishReleasesNear,
    Step::PublishReleasesAny,
    Step::ConsumeAny,
    Step::ConsumeAll,
    Step::ConsumeReleasesAny,
    Step::Sleeping,
    Step::Data,
    Step::Receive,
    Step::Send,
    Step::Reclaim,
    Step::Sleep,
];

/// Why a script stops: it ran out, or the hub refused the worker (the link would close).
struct End;

/// An operand, or the end of the script.
fn need<T>(operand: Option<T>) -> Result<T, End> {
    operand.ok_or(End)
}

impl Link {
    fn step(&mut self, hub: &mut Channel, op: u8, s: &mut Script<'_>) -> Result<(), End> {
        match STEPS[usize::from(op) % STEPS.len()] {
            Step::Descriptor => {
                let slot = usize::from(need(s.u16())?) % FRAME_SLOTS;
                let bytes = need(s.take(DESC_LEN))?.to_vec();
                self.write(OFF_FRAME_RING + slot * DESC_LEN, &bytes);
            }
            Step::NextDescriptor => {
                let kind = need(s.u8())?;
                let flags = need(s.u8())?;
                let stream = u64::from(need(s.u8())?);
                let len = u32::from(need(s.u16())?) % (2 * BLOCK_LEN as u32);
                let offset = u64::from(need(s.u16())?) * 64;
                let d = Descriptor {
                    kind,
                    flags,
                    len,
                    stream,
                    place: if len as usize <= pullman_shm::layout::INLINE_MAX {
                        Place::Inline([kind; pullman_shm::layout::INLINE_MAX])
                    } else {
                        Place::Data(offset)
                    },
                };
                let slot = (self.consumed % FRAME_SLOTS as u64) as usize;
                self.write(OFF_FRAME_RING + slot * DESC_LEN, &words_bytes(d.to_words()));
            }
            Step::PublishNear => {
                let n = u64::from(need(s.u8())?);
                self.write_u64(OFF_FRAME_PROD, self.consumed + n);
            }
            Step::PublishAny => self.write_u64(OFF_FRAME_PROD, need(s.u64())?),
            Step::Release => {
                let slot = usize::from(need(s.u16())?) % RELEASE_SLOTS;
                let index = need(s.u64())?;
                self.write_u64(OFF_RELEASE_RING + slot * 8, index);
            }
            Step::PublishReleasesNear => {
                let reclaimed = self.read_u64(&self.hub_arena, OFF_PEER_RELEASE_CONS);
                let n = u64::from(need(s.u8())?);
                self.write_u64(OFF_RELEASE_PROD, reclaimed + n);
            }
            Step::PublishReleasesAny => self.write_u64(OFF_RELEASE_PROD, need(s.u64())?),
            Step::ConsumeAny => self.write_u64(OFF_PEER_FRAME_CONS, need(s.u64())?),
            Step::ConsumeAll => self.write_u64(OFF_PEER_FRAME_CONS, self.sent),
            Step::ConsumeReleasesAny => self.write_u64(OFF_PEER_RELEASE_CONS, need(s.u64())?),
            Step::Sleeping => {
                let word = u32::from(need(s.u8())?);
                self.write(OFF_SLEEPING, &word.to_ne_bytes());
            }
            Step::Data => {
                let offset = usize::from(need(s.u16())?) * 64 % DATA_LEN;
                let len = usize::from(need(s.u8())?);
                let bytes = need(s.take(len))?.to_vec();
                let len = bytes.len().min(DATA_LEN - offset);
                self.write(OFF_DATA + offset, &bytes[..len]);
            }
            Step::Receive => self.receive(hub)?,
            Step::Send => {
                let kind = need(s.u8())?;
                let len = usize::from(need(s.u16())?) % (BLOCK_LEN + 1);
                let payload = vec![kind; len];
                if hub.try_send(kind, 0, 1, &payload).map_err(|_| End)? {
                    assert!(hub.in_flight() <= RELEASE_SLOTS);
                }
                if hub.publish() {
                    self.sent = self.read_u64(&self.hub_arena, OFF_FRAME_PROD);
                }
            }
            Step::Reclaim => {
                let before = hub.in_flight();
                let freed = hub.reclaim().map_err(|_| End)?;
                assert_eq!(
                    hub.in_flight(),
                    before - freed,
                    "reclaim freed other than it says"
                );
            }
            Step::Sleep => {
                hub.announce_sleep().map_err(|_| End)?;
                hub.wake_up();
            }
        }
        Ok(())
    }

    /// Receives up to a burst, checking each frame against the descriptor in its slot.
    fn receive(&mut self, hub: &mut Channel) -> Result<(), End> {
        for _ in 0..BURST {
            let slot = (self.consumed % FRAME_SLOTS as u64) as usize;
            let mut bytes = [0u8; DESC_LEN];
            self.read(
                &self.worker_arena,
                OFF_FRAME_RING + slot * DESC_LEN,
                &mut bytes,
            );
            let words: [u64; DESC_WORDS] = std::array::from_fn(|i| {
                u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
            });
            let d = Descriptor::from_words(words);
            assert_eq!(Descriptor::from_words(d.to_words()), d);

            let Some(frame) = hub.try_recv().map_err(|_| End)? else {
                return Ok(());
            };
            self.consumed += 1;
            assert_eq!(
                self.read_u64(&self.hub_arena, OFF_PEER_FRAME_CONS),
                self.consumed,
                "the hub's consumer index"
            );
            assert_eq!(
                (frame.kind, frame.flags, frame.stream),
                (d.kind, d.flags, d.stream)
            );
            assert_eq!(frame.payload.len(), d.len as usize);
            assert!(frame.payload.len() <= BLOCK_LEN);
            let expected = match d.place {
                Place::Inline(inline) => inline[..d.len as usize].to_vec(),
                Place::Data(offset) => {
                    let mut payload = vec![0; d.len as usize];
                    self.read(&self.worker_arena, OFF_DATA + offset as usize, &mut payload);
                    payload
                }
            };
            assert_eq!(&frame.payload[..], &expected[..], "payload of {d:?}");
            // What the link does next with it.
            let _ =
                pullman_proto::decode_payload(frame.kind, frame.flags, frame.stream, frame.payload);
        }
        Ok(())
    }

    fn write(&self, offset: usize, bytes: &[u8]) {
        self.worker_arena
            .write_all_at(bytes, offset as u64)
            .expect("writing the worker's arena");
    }

    fn write_u64(&self, offset: usize, value: u64) {
        self.write(offset, &value.to_ne_bytes());
    }

    fn read(&self, arena: &File, offset: usize, out: &mut [u8]) {
        arena
            .read_exact_at(out, offset as u64)
            .expect("reading an arena");
    }

    fn read_u64(&self, arena: &File, offset: usize) -> u64 {
        let mut bytes = [0u8; 8];
        self.read(arena, offset, &mut bytes);
        u64::from_ne_bytes(bytes)
    }
}

fn words_bytes(words: [u64; DESC_WORDS]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}
