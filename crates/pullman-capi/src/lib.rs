//! pullman's C API: worker programs in C, C++ or any language with a C FFI.
//!
//! A thin layer over the Rust worker SDK ([`pullman_worker`]), with no logic of its own:
//! the SDK dials the hub, grants credits, drains; this crate hands each request it receives
//! to a C thread and carries the answer back. `include/pullman.h` is generated from it
//! (see `cbindgen.toml`), and `docs/c-api.md` is its guide.
//!
//! Every entry point returns a [`PmCode`], runs behind a panic barrier
//! ([`error::guard`]), checks each pointer for null and each handle against the live ones
//! (`handle.rs`) before using it.
//!
//! # Layout
//! - [`error`]: [`PmCode`], the panic barrier, `pm_last_error_message`.
//! - `driven`: the worker's runtime, driven by the C threads that wait on it.
//! - `handle`: the registries of live handles.
//! - [`worker`]: `pm_worker_*`: settings, connect, the pull loop (`pm_worker_next`), the
//!   callback loop (`pm_worker_run`), drain.
//! - [`request`]: `pm_request_*`: the head read in place, the body in chunks, the answer.
#![deny(missing_debug_implementations)]
#![allow(clippy::missing_safety_doc)]

mod driven;
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
