//! The frames of the pullman protocol and their payloads.
//!
//! Every frame is `length u32 | type u8 | flags u8 | stream u64 | payload` (big-endian).
//! Control frames travel on stream 0; stream frames on a hub-assigned id that is never 0 and
//! never reused on a connection.

use std::fmt;

use bytes::Bytes;

use crate::head::HeadView;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Worker to hub: first frame of a link.
    Hello = 0x01,
    /// Hub to worker: the handshake's answer.
    Welcome = 0x02,
    /// Worker to hub: room for more requests.
    Credit = 0x03,
    /// Hub to worker: a new request on a new stream.
    Request = 0x04,
    /// Both: a chunk of a body.
    Body = 0x05,
    /// Both: more room for body bytes on a stream.
    Window = 0x06,
    /// Worker to hub: the response head.
    Response = 0x07,
    /// Worker to hub: a filter verdict (filter mode): pass, with optional edits.
    Verdict = 0x08,
    /// Hub to worker: stop working on a stream.
    Cancel = 0x09,
    /// Worker to hub: the worker will not run this request.
    Reject = 0x0a,
    /// Both: liveness probe.
    Ping = 0x0b,
    /// Both: answer to a ping.
    Pong = 0x0c,
    /// Both: no new work; in-flight work finishes.
    Drain = 0x0d,
    /// Both: the sender closes the link, with a reason.
    Close = 0x0e,
}

impl FrameType {
    /// The type for a type byte, if this version knows it.
    pub fn from_u8(b: u8) -> Option<FrameType> {
        use FrameType::*;
        Some(match b {
            0x01 => Hello,
            0x02 => Welcome,
            0x03 => Credit,
            0x04 => Request,
            0x05 => Body,
            0x06 => Window,
            0x07 => Response,
            0x08 => Verdict,
            0x09 => Cancel,
            0x0a => Reject,
            0x0b => Ping,
            0x0c => Pong,
            0x0d => Drain,
            0x0e => Close,
            _ => return None,
        })
    }

    /// Whether frames of this type travel on stream 0.
    pub fn is_control(self) -> bool {
        use FrameType::*;
        matches!(self, Hello | Welcome | Credit | Ping | Pong | Drain | Close)
    }
}

/// Flag bit: this frame ends its side of the stream (REQUEST, RESPONSE, BODY).
pub const FLAG_END: u8 = 0x01;
/// Flag bit on REQUEST: the client reached the hub over TLS (its request URL is `https`).
pub const FLAG_TLS: u8 = 0x02;
/// Flag bit on REJECT: the hub may give the request to another worker.
pub const FLAG_RETRYABLE: u8 = 0x01;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Worker to hub: first frame of a link.
    Hello(Hello),
    /// Hub to worker: the handshake's answer.
    Welcome(Welcome),
    /// Worker to hub: the worker can take `n` more requests. Grants add up.
    Credit {
        /// How many more requests.
        n: u32,
    },
    /// Hub to worker: a new request.
    Request(Request),
    /// A chunk of a request body (hub to worker) or response body (worker to hub).
    Body {
        /// The stream.
        stream: u64,
        /// The bytes; may be empty when `end` is set.
        data: Bytes,
        /// Last chunk of this body.
        end: bool,
    },
    /// The sender can take `increment` more body bytes on `stream`.
    Window {
        /// The stream.
        stream: u64,
        /// Additional bytes.
        increment: u32,
    },
    /// The response head: worker to hub, or, in a filter's response phase, hub to worker
    /// (the upstream's status and headers).
    Response(Response),
    /// Worker to hub: a filter's decision to pass the request (or response) on.
    Verdict(Verdict),
    /// Hub to worker: the client left or the deadline passed. The worker still ends the
    /// stream (with a response or a REJECT) so that both sides can forget it.
    Cancel {
        /// The stream.
        stream: u64,
        /// Why.
        reason: CancelReason,
    },
    /// Worker to hub: the worker will not run this request.
    Reject {
        /// The stream.
        stream: u64,
        /// Whether another worker may run it instead.
        retryable: bool,
        /// A reason for logs.
        reason: String,
    },
    /// Liveness probe; the peer answers with a PONG carrying the same value.
    Ping {
        /// Opaque value echoed back.
        opaque: u64,
    },
    /// Answer to a PING.
    Pong {
        /// The PING's value.
        opaque: u64,
    },
    /// No new work after `last_stream`; work in flight finishes.
    Drain {
        /// The highest stream id the sender accepts (hub) or has accepted (worker).
        last_stream: u64,
    },
    /// The sender closes the link after this frame.
    Close {
        /// Why, as a code.
        code: CloseCode,
        /// Why, for people.
        reason: String,
    },
}

impl Frame {
    /// This frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Credit { .. } => FrameType::Credit,
            Frame::Request(_) => FrameType::Request,
            Frame::Body { .. } => FrameType::Body,
            Frame::Window { .. } => FrameType::Window,
            Frame::Response(_) => FrameType::Response,
            Frame::Verdict(_) => FrameType::Verdict,
            Frame::Cancel { .. } => FrameType::Cancel,
            Frame::Reject { .. } => FrameType::Reject,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::Drain { .. } => FrameType::Drain,
            Frame::Close { .. } => FrameType::Close,
        }
    }

    /// The stream this frame belongs to (0 for control frames).
    pub fn stream(&self) -> u64 {
        match self {
            Frame::Request(r) => r.stream,
            Frame::Response(r) => r.stream,
            Frame::Verdict(v) => v.stream,
            Frame::Body { stream, .. }
            | Frame::Window { stream, .. }
            | Frame::Cancel { stream, .. }
            | Frame::Reject { stream, .. } => *stream,
            _ => 0,
        }
    }
}

/// HELLO: a worker introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the worker speaks.
    pub min_version: u16,
    /// Highest protocol version the worker speaks.
    pub max_version: u16,
    /// Largest frame payload the worker accepts.
    pub max_frame: u32,
    /// Per-stream window the worker grants for request bodies.
    pub initial_window: u32,
    /// Feature bits the worker would like ([`FEATURE_SHM`](crate::FEATURE_SHM)).
    pub features: u32,
    /// The REQUEST modes the worker serves; the hub refuses a worker that lacks a mode its
    /// pool uses.
    pub modes: Modes,
    /// The pool the worker serves.
    pub pool: String,
    /// The pool's token.
    pub token: String,
    /// A label for logs and the admin API (host name, pid...).
    pub name: String,
}

/// WELCOME: the hub accepts a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both will speak.
    pub version: u16,
    /// Largest frame payload the hub accepts.
    pub max_frame: u32,
    /// Per-stream window the hub grants for response bodies.
    pub initial_window: u32,
    /// Feature bits granted.
    pub features: u32,
    /// The id the hub gave this worker (logs, admin API).
    pub worker_id: u64,
    /// How often the hub pings; a worker may treat three silent intervals as a dead hub.
    pub ping_interval_ms: u32,
}

/// How the hub uses the worker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// The worker produces the response.
    Respond = 0,
    /// Filter mode, request phase, the hub keeping the body: the worker sees the head (and
    /// the body, when buffered) and returns a VERDICT or a RESPONSE of its own. A VERDICT
    /// with END forwards the hub's body; one without END replaces it with the worker's.
    Filter = 1,
    /// Filter mode, response phase: a RESPONSE frame from the hub (the upstream's head)
    /// follows on the stream, then the upstream's body; the worker returns a VERDICT or a
    /// replacement RESPONSE, and in both cases the body to send on.
    FilterResponse = 2,
    /// Filter mode, request phase, the body streaming through the worker: after its
    /// VERDICT, what the worker streams back is the body that goes upstream (a VERDICT with
    /// END forwards an empty body).
    FilterStreamed = 3,
}

impl Mode {
    /// Every mode, in the order of their numbers.
    pub const ALL: [Mode; 4] = [
        Mode::Respond,
        Mode::Filter,
        Mode::FilterResponse,
        Mode::FilterStreamed,
    ];

    /// The mode for a byte, if known.
    pub fn from_u8(b: u8) -> Option<Mode> {
        Some(match b {
            0 => Mode::Respond,
            1 => Mode::Filter,
            2 => Mode::FilterResponse,
            3 => Mode::FilterStreamed,
            _ => return None,
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Mode::Respond => "respond",
            Mode::Filter => "filter request",
            Mode::FilterResponse => "filter response",
            Mode::FilterStreamed => "streamed filter request",
        };
        write!(f, "{name} (mode {})", *self as u8)
    }
}

/// A set of [`Mode`]s, as HELLO's `modes` byte carries it: bit `1 << mode` for each REQUEST
/// mode the worker serves. Bits of modes this version does not know are kept, not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modes(pub u8);

impl Modes {
    /// What a handler serves: it answers requests.
    pub const RESPOND: Modes = Modes(1 << Mode::Respond as u8);
    /// What a filter serves: every phase of a filter pool.
    pub const FILTER: Modes = Modes(
        1 << Mode::Filter as u8 | 1 << Mode::FilterResponse as u8 | 1 << Mode::FilterStreamed as u8,
    );

    /// The set of one mode.
    pub fn of(mode: Mode) -> Modes {
        Modes(1 << mode as u8)
    }

    /// This set and `mode`.
    pub fn with(self, mode: Mode) -> Modes {
        Modes(self.0 | Modes::of(mode).0)
    }

    /// Whether `mode` is in the set.
    pub fn contains(self, mode: Mode) -> bool {
        self.0 & Modes::of(mode).0 != 0
    }

    /// The modes of `needed` that this set lacks.
    pub fn lacking(self, needed: Modes) -> Modes {
        Modes(needed.0 & !self.0)
    }

    /// Whether the set holds no mode.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Modes {
    /// The known modes by name (`respond (mode 0), filter request (mode 1)`), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut known = Mode::ALL.into_iter().filter(|m| self.contains(*m));
        match known.next() {
            None => f.write_str("none"),
            Some(first) => {
                write!(f, "{first}")?;
                known.try_for_each(|m| write!(f, ", {m}"))
            }
        }
    }
}

/// REQUEST: the hub hands a request to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The new stream's id.
    pub stream: u64,
    /// No body follows (the END flag).
    pub end: bool,
    /// How long the worker has, in milliseconds, from when it reads this frame; 0 for none.
    pub deadline_ms: u32,
    /// What the hub expects back.
    pub mode: Mode,
    /// The client's address as text (`ip:port`), or empty.
    pub peer: String,
    /// The client reached the hub over TLS (the TLS flag).
    pub tls: bool,
    /// Method, target, version and headers.
    pub head: HeadView,
}

/// RESPONSE: a worker's response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The stream.
    pub stream: u64,
    /// No body follows (the END flag).
    pub end: bool,
    /// HTTP status code.
    pub status: u16,
    /// Header names and values, in order. Names are lower case by convention.
    pub headers: Vec<(Bytes, Bytes)>,
}

/// VERDICT: a filter passes the request (or the upstream's response) on, with edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The stream.
    pub stream: u64,
    /// No body follows from the worker (the END flag). Where the worker carries the body
    /// (a streamed request body, the response phase), END means the body is empty.
    pub end: bool,
    /// Header edits, applied in order.
    pub edits: Vec<HeaderEdit>,
    /// A new request target (path and query) for the upstream; `None` keeps the client's.
    /// Never `Some` of an empty target: on the wire, an empty target means `None`.
    pub target: Option<Bytes>,
}

/// One header edit of a VERDICT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEdit {
    /// What to do.
    pub op: EditOp,
    /// The header name (lower case by convention).
    pub name: Bytes,
    /// The value; empty for [`EditOp::Remove`].
    pub value: Bytes,
}

/// The kind of a [`HeaderEdit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EditOp {
    /// Replace every field of this name with one field of this value.
    Set = 0,
    /// Add a field, keeping those already there.
    Append = 1,
    /// Remove every field of this name.
    Remove = 2,
}

impl EditOp {
    /// The operation for a byte, if known.
    pub fn from_u8(b: u8) -> Option<EditOp> {
        Some(match b {
            0 => EditOp::Set,
            1 => EditOp::Append,
            2 => EditOp::Remove,
            _ => return None,
        })
    }
}

/// Why the hub cancelled a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CancelReason {
    /// The client went away.
    ClientGone = 0,
    /// The request's deadline passed.
    Deadline = 1,
    /// The hub is shutting down and its grace period ended.
    Shutdown = 2,
    /// The hub could not use the response (too large, malformed).
    Refused = 3,
}

impl CancelReason {
    /// The reason for a byte, if known.
    pub fn from_u8(b: u8) -> Option<CancelReason> {
        Some(match b {
            0 => CancelReason::ClientGone,
            1 => CancelReason::Deadline,
            2 => CancelReason::Shutdown,
            3 => CancelReason::Refused,
            _ => return None,
        })
    }
}

/// Why a link is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal close after a drain.
    Normal = 0,
    /// The peer broke the protocol.
    ProtocolError = 1,
    /// Wrong token.
    AuthFailed = 2,
    /// No common protocol version.
    UnsupportedVersion = 3,
    /// The named pool does not exist.
    UnknownPool = 4,
    /// The peer missed too many PONGs.
    Timeout = 5,
    /// The sender is shutting down.
    GoingAway = 6,
    /// Something failed inside the sender.
    Internal = 7,
    /// Handshake: the worker does not serve a mode its pool uses (a handler in a filter pool,
    /// a filter in a respond pool).
    UnsupportedMode = 8,
}

impl CloseCode {
    /// The code for a number, if known.
    pub fn from_u16(v: u16) -> Option<CloseCode> {
        use CloseCode::*;
        Some(match v {
            0 => Normal,
            1 => ProtocolError,
            2 => AuthFailed,
            3 => UnsupportedVersion,
            4 => UnknownPool,
            5 => Timeout,
            6 => GoingAway,
            7 => Internal,
            8 => UnsupportedMode,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_sets_name_what_they_lack() {
        let filter_pool = Modes::of(Mode::Filter).with(Mode::FilterResponse);
        assert_eq!(
            Modes::RESPOND.lacking(filter_pool).to_string(),
            "filter request (mode 1), filter response (mode 2)"
        );
        assert!(Modes::FILTER.lacking(filter_pool).is_empty());
        assert_eq!(Modes(0).to_string(), "none");
        assert!(Modes(0xff).contains(Mode::FilterStreamed));
    }
}
