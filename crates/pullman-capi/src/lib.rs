//! pullman's C API: worker programs in C, C++ or any language with a C FFI.
//!
//! A thin layer over the Rust worker SDK's pulling worker ([`pullman_worker::pull`]), with
//! no logic of its own: the SDK dials the hub, grants credits, drains, hands each request to
//! whichever thread asks and carries its answer back; this crate gives C handles to those
//! requests and turns every argument and result into C's terms. `include/pullman.h` is
//! generated from it (see `cbindgen.toml`), and `docs/c-api.md` is its guide.
//!
//! Every entry point returns a [`PmCode`], runs behind a panic barrier
//! ([`error::guard`]), checks each pointer for null and each handle against the live ones
//! (`handle.rs`) before using it.
//!
//! # Layout
//! - [`error`]: [`PmCode`], the panic barrier, `pm_last_error_message`.
//! - `handle`: the registries of live handles.
//! - [`worker`]: `pm_worker_*`: settings, connect, the pull loop (`pm_worker_next`), the
//!   callback loop (`pm_worker_run`), drain.
//! - [`request`]: `pm_request_*`: the head read in place, the body in chunks, the answer.
#![deny(missing_debug_implementations)]
#![allow(clippy::missing_safety_doc)]

pub mod error;
mod handle;
pub mod request;
#[cfg(test)]
mod tests;
pub mod worker;

/// The library's allocations (not the C program's) go to mimalloc: see Cargo.toml.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use error::PmCode;
pub use request::{PmBytes, PmEdit, PmRequest};
pub use worker::{PmMode, PmWorker};
