//! The async side of a pullman link, written once for the hub and the worker SDK.
//!
//! A [`Link`] runs one task per connection that reads frames, routes stream frames to their
//! stream, and writes whatever the rest of the program queued, many frames per system call.
//! Control frames (CREDIT, DRAIN, ...) and new streams go to the role's [`Control`] handler,
//! called inline from the link task so that no extra task hop sits on the request path.
//!
//! # Layout
//! - [`link`]: the connection task, [`Link`] (the handle to it), [`Settings`], [`Control`].
//! - [`stream`]: one multiplexed stream as its users hold it: [`Stream`], [`StreamSender`].
//! - `outbox`: the link task's command queue, which link handles and streams send through.
//! - `shared`: one stream's cell shared by the link task and its users: the inbox of
//!   [`Inbound`] items, the send window, the hub's cancel.
//! - [`body`]: [`RecvBody`], an `http_body::Body` over a stream's inbound data that returns
//!   window to the peer as it is consumed, and [`send_body`], which sends a body on a
//!   stream (request bodies on the hub, response bodies on the worker).
//! - [`transport`]: the [`Transport`] seam under the link task, and [`StreamTransport`]
//!   (frames over a byte stream with the codec).
//! - [`shm`]: [`ShmTransport`], frames over shared-memory rings (`pullman-shm`).
//! - [`handshake`]: reading and writing single frames before the link task starts, and
//!   [`ShmOffer`], the hub's hand-off of shared memory to a worker.
//! - [`error`]: the [`LinkError`], [`StreamError`], [`SendBodyError`] and [`PushError`]
//!   types.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod body;
pub mod error;
pub mod handshake;
pub mod link;
mod outbox;
mod shared;
pub mod shm;
pub mod stream;
pub mod transport;

pub use body::{send_body, RecvBody};
pub use error::{ControlError, LinkError, PushError, SendBodyError, StreamError};
pub use handshake::ShmOffer;
pub use link::{Control, Link, Role, Settings};
pub use outbox::BODY_CHUNK;
pub use shm::{ShmTransport, SHM_MAX_FRAME};
pub use stream::{Inbound, Stream, StreamSender};
pub use transport::{StreamTransport, Transport};
