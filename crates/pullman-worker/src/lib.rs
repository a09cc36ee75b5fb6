//! The pullman worker SDK.
//!
//! A worker dials a hub, names the pool it serves, and grants credits: one credit is room
//! for one request. The hub sends requests only against credits, so the worker decides its
//! own concurrency. Requests arrive as `http::Request`s whose bodies stream in; the handler's
//! `http::Response` streams back. Many requests share one connection and finish in any order.
//!
//! ```no_run
//! use pullman_worker::{ResponseBody, RequestBody, Worker};
//!
//! # async fn run() -> Result<(), pullman_worker::WorkerError> {
//! let worker = Worker::builder()
//!     .hub("tcp://127.0.0.1:7070".parse()?)
//!     .pool("demo")
//!     .token("change-me")
//!     .concurrency(4)
//!     .build();
//! worker
//!     .run(
//!         |req: http::Request<RequestBody>| async move {
//!             let body = format!("hello from {}\n", req.uri().path());
//!             http::Response::new(ResponseBody::from(body))
//!         },
//!         async { let _ = tokio::signal::ctrl_c().await; },
//!     )
//!     .await
//! # }
//! ```
//!
//! # Layout
//! - [`worker`]: [`Worker`], its builder and the connect / serve / drain loop.
//! - `backoff`: the pauses between dials to a hub that is away: doubling, jittered, at most
//!   a second.
//! - [`handler`]: the [`Handler`] trait and how a request becomes a response on the wire.
//! - [`filter`]: the [`Filter`] trait for filter pools, and its [`Verdict`]s.
//! - [`gate`]: [`Gate`]s, which hold credits back while the host is busy: [`CpuGate`],
//!   [`MemoryGate`], or a function of your own.
//! - [`pull`]: [`PullWorker`](pull::PullWorker), whose requests threads the SDK does not
//!   own take one by one (the C API and the Python package stand on it).
//! - [`redirect`]: redirect mode, [`Redirect`]: large responses parked on the worker's own
//!   HTTP server and answered with `303 See Other` to them.
//! - [`body`]: [`ResponseBody`]; request bodies are [`RequestBody`].
//! - [`addr`]: [`HubAddr`], `tcp://` or `unix://`.
//! - [`time`]: [`sleep_precisely`](time::sleep_precisely), a sleep to the tenth of a
//!   millisecond, for workers that stand in for work.
//! - [`error`]: the [`WorkerError`] type.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod addr;
mod backoff;
pub mod body;
pub mod error;
pub mod filter;
pub mod gate;
pub mod handler;
pub mod pull;
pub mod redirect;
pub mod time;
pub mod tls;
pub mod worker;

pub use addr::HubAddr;
pub use body::ResponseBody;
pub use error::WorkerError;
pub use filter::{Filter, Pass, Verdict};
pub use gate::{CpuGate, Gate, MemoryGate};
pub use handler::{Handler, RawResponse, RequestInfo, ViewHandler};
pub use redirect::Redirect;
pub use tls::TlsSettings;
pub use worker::{Worker, WorkerBuilder, ENV_HUB, ENV_POOL, ENV_TOKEN};

/// Whether `bytes` lie in memory shared with the hub: on a shared-memory link, the request
/// head (`RequestInfo::head`) and body chunks do, as they are read where the hub wrote them.
/// For tests and diagnostics.
pub fn is_shared_memory(bytes: &[u8]) -> bool {
    !bytes.is_empty() && pullman_shm::is_shared_memory(bytes.as_ptr())
}

/// A request body as the handler reads it: chunks stream in as the client sends them, and
/// reading them is what lets the hub send more.
pub type RequestBody = pullman_link::RecvBody;
