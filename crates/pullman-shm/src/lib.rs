//! Shared memory between a hub and a local worker: arenas, rings and doorbells.
//!
//! This is the `unsafe` core of pullman's shared-memory transport; the async transport that
//! drives it lives in `pullman-link`. Each side of a link writes only its own memory: its
//! arena holds its outgoing frame ring, its release ring, its consumer indices and its
//! payloads. Nothing read from the peer's memory is trusted: every index, offset and length
//! is checked before use, so a hostile worker can break its own link but never make the hub
//! read or write outside its mappings. `docs/protocol.md` (section "Shared memory")
//! specifies the layout for implementers in other languages.
//!
//! # Layout
//! - [`layout`]: offsets and sizes of an arena (fixed in version 1).
//! - [`desc`]: the 32-byte frame descriptor.
//! - [`ring`]: single-producer single-consumer rings split across two memories.
//! - [`alloc`]: the producer's block allocator (frees out of order, reuses in order).
//! - `in_flight`: the producer's regions the peer holds, by frame index.
//! - [`bell`]: the wake-up protocol, eventfd doorbells, and [`AsyncBell`], a doorbell a
//!   tokio task can wait on.
//! - `memfd`: memfds, seals, read-only reopening, mappings, [`is_shared_memory`].
//! - [`handoff`]: passing descriptors over a Unix socket.
//! - [`channel`]: one end of a link, tying the above together.
//! - [`error`]: the [`ShmError`] type.
//!
//! Under `cfg(loom)` only the pure protocol parts ([`ring`], [`bell`]'s flag protocol)
//! build, over loom's atomics.
#![deny(missing_docs, missing_debug_implementations)]

pub mod alloc;
pub mod bell;
pub mod desc;
pub mod error;
pub mod layout;
pub mod ring;
mod sync;

#[cfg(not(loom))]
pub mod channel;
#[cfg(not(loom))]
pub mod handoff;
#[cfg(not(loom))]
mod in_flight;
#[cfg(not(loom))]
mod memfd;

pub use error::ShmError;

#[cfg(not(loom))]
pub use bell::{AsyncBell, Bell};
#[cfg(not(loom))]
pub use channel::{create, open, Channel, Received};
#[cfg(not(loom))]
pub use memfd::is_shared_memory;
