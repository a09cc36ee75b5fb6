//! The pullman wire protocol between a hub and its workers, without I/O.
//!
//! A link is a byte stream (TCP, a Unix socket) carrying frames. This crate turns frames
//! into bytes and bytes into frames, and keeps the small pieces of arithmetic both ends share
//! (version negotiation, token comparison, flow-control windows). It knows nothing of tokio:
//! the async loops that drive it live in `pullman-link`.
//!
//! `docs/protocol.md` in the repository specifies every byte; this crate is its reference.
//!
//! # Layout
//! - [`frame`]: the [`Frame`] enum and the payload types of each frame family.
//! - [`codec`]: [`decode`] and [`encode`], `BytesMut` in, `BytesMut` out.
//! - [`head`]: the request [`HeadView`]: raw head bytes plus a span table, the one
//!   representation every transport carries.
//! - [`preface`]: the connection preface a worker sends before HELLO, and telling it from
//!   HTTP and from a worker of version 1.
//! - [`handshake`]: version ranges and constant-time token comparison.
//! - [`window`]: per-stream flow-control accounting.
//! - [`error`]: the [`DecodeError`] and [`EncodeError`] types.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod codec;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod head;
pub mod preface;
pub mod window;

pub use codec::{decode, decode_payload, encode, FRAME_HEADER_LEN};
pub use error::{DecodeError, EncodeError};
pub use frame::{
    CancelReason, CloseCode, EditOp, Frame, FrameType, HeaderEdit, Hello, Mode, Modes, Request,
    Response, Verdict, Welcome,
};
pub use head::{HeadBuilder, HeadView, Version};
pub use preface::{Opening, PREFACE};
pub use window::{Window, WindowError};

/// The protocol versions this build speaks. A peer offers a range; the highest common one wins.
/// Version 2 added the connection preface ([`PREFACE`]; a version 1 worker sends none, which
/// the hub sees before it could read that worker's HELLO), HELLO's `modes` and the close
/// code `unsupported_mode`.
pub const PROTOCOL_VERSION: u16 = 2;

/// Largest frame payload any peer may announce. A bound so that a hostile length prefix
/// can never make a reader reserve more than this; 16 MiB holds any sane request head.
pub const MAX_FRAME_LIMIT: u32 = 16 * 1024 * 1024;

/// Longest string field (pool, token, name, peer, reasons): its length travels as a u16.
pub const MAX_STRING_LEN: usize = u16::MAX as usize;

/// Payload size a peer may send before the handshake has negotiated one. HELLO and WELCOME
/// are small; 64 KiB leaves room for long tokens and names without letting a stranger make
/// the hub buffer much.
pub const HANDSHAKE_MAX_FRAME: u32 = 64 * 1024;

/// Default largest payload per frame after the handshake: a request head up to the hub's
/// header limit fits, and body chunks stay small enough to interleave streams finely.
pub const DEFAULT_MAX_FRAME: u32 = 1024 * 1024;

/// HELLO/WELCOME feature bit: the worker asks for (and the hub grants) the shared-memory
/// transport. Only on a Unix-socket link; the descriptors follow WELCOME (docs/protocol.md).
pub const FEATURE_SHM: u32 = 0x1;

/// Default per-stream receive window: enough to keep a loopback link busy (several body
/// frames in flight) while bounding what one stream may make the receiver hold.
pub const DEFAULT_INITIAL_WINDOW: u32 = 256 * 1024;
