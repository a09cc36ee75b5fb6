//! The connection task: one per link, reading, routing and writing frames.
//!
//! The task is a single `poll` loop over a [`Transport`] and a command queue. It takes
//! whatever frames have arrived and routes each, takes every queued command and queues its
//! frame on the transport, then lets the transport send them together: under load one
//! system call (or one ring publication) carries many frames, and nothing else holds the
//! transport. Nothing in it waits on anything but the transport.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use pullman_proto::{CancelReason, CloseCode, EncodeError, Frame, Request, Window, MAX_STRING_LEN};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::{ControlError, LinkError, PushError, StreamError};
use crate::outbox::{Command, Outbox};
use crate::shared::{Inbound, Shared};
use crate::stream::Stream;
use crate::transport::{StreamTransport, Transport};

/// Queued outbound bytes past which the task stops reading and taking commands until the
/// peer has taken them: a slow peer holds at most this much of our memory (plus stream
/// windows).
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Frames taken from the transport in one round, so a peer that never stops sending cannot
/// keep the task from its commands and its writes.
const RECV_BUDGET: u32 = 256;
/// Buffered bytes past which the task writes without first yielding to gather more.
const BATCH_FLUSH: usize = 64 * 1024;
/// Most yields in a row before a write, so a steady trickle of frames cannot hold the
/// buffer back for long.
const MAX_BATCH_YIELDS: u32 = 16;
/// Rounds of read/commands/write the task runs before yielding to other tasks.
const POLL_BUDGET: u32 = 32;
/// PINGs that may go unanswered before the link is declared dead.
const MAX_MISSED_PONGS: u32 = 3;
/// How long a closing link keeps trying to deliver its last frames.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Which end of the link this is. The hub opens streams; the worker answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The hub.
    Hub,
    /// A worker.
    Worker,
}

/// What both sides agreed in the handshake.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This end.
    pub role: Role,
    /// Largest payload this end accepts.
    pub recv_max_frame: u32,
    /// Largest payload the peer accepts, as its handshake said: frames to it are held to
    /// this (over a byte stream; a shared-memory transport has its own bound).
    pub send_max_frame: u32,
    /// Per-stream window this end grants the peer.
    pub recv_initial_window: u32,
    /// Per-stream window the peer grants this end.
    pub send_initial_window: u32,
    /// How often to PING the peer; `None` never.
    pub ping_interval: Option<Duration>,
}

/// What the role (hub or worker) does with frames that are not about stream bodies. Called
/// inline from the link task: implementations must not block.
pub trait Control: Send + 'static {
    /// A control frame arrived: CREDIT or DRAIN.
    fn on_frame(&mut self, link: &Link, frame: Frame) -> Result<(), ControlError>;
    /// The hub opened a stream (worker side only).
    fn on_request(
        &mut self,
        link: &Link,
        stream: Stream,
        request: Request,
    ) -> Result<(), ControlError> {
        let _ = (link, stream, request);
        Err(ControlError::Unexpected(pullman_proto::FrameType::Request))
    }
    /// The link ended; every open stream has been reset with the same reason.
    fn on_closed(&mut self, err: &LinkError);
    /// Worker side: this end's answer on `stream` (a RESPONSE or VERDICT) could not be
    /// encoded for the peer (a field too long for the wire, or a frame over its `max_frame`)
    /// and was dropped. Returns the frame that answers instead: a RESPONSE or VERDICT with
    /// END, or a REJECT, on `stream` (anything else is replaced by the default, since the
    /// stream must end). The default refuses the request: a REJECT, not retryable, that
    /// names the error.
    fn unsendable_answer(&mut self, stream: u64, err: &EncodeError) -> Frame {
        Frame::Reject {
            stream,
            retryable: false,
            reason: err.to_string(),
        }
    }
}

/// A handle to a running link. Cheap to clone; the link lives until its socket closes.
#[derive(Debug, Clone)]
pub struct Link {
    outbox: Outbox,
}

impl Link {
    /// Starts the link task over a byte stream `io`. `leftover` holds bytes read past the
    /// handshake. Frames to the peer are held to `settings.send_max_frame`.
    pub fn spawn<S, C>(
        io: S,
        leftover: BytesMut,
        settings: Settings,
        control: C,
    ) -> (Link, JoinHandle<LinkError>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        C: Control,
    {
        let transport = StreamTransport::new(io, leftover, settings.recv_max_frame)
            .with_peer_max_frame(settings.send_max_frame);
        Link::spawn_on(transport, settings, control)
    }

    /// Starts the link task over any transport (a byte stream, shared-memory rings).
    pub fn spawn_on<T, C>(
        transport: T,
        settings: Settings,
        control: C,
    ) -> (Link, JoinHandle<LinkError>)
    where
        T: Transport,
        C: Control,
    {
        let (outbox, commands) =
            Outbox::new(settings.send_initial_window, transport.peer_max_frame());
        let link = Link { outbox };
        let ping = settings.ping_interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        let task = Task {
            transport,
            commands,
            streams: FxHashMap::default(),
            highest_stream: 0,
            settings,
            control,
            link: link.clone(),
            ping,
            missed_pongs: 0,
            pings_sent: 0,
            batch_yields: 0,
        };
        let handle = tokio::spawn(task.run());
        (link, handle)
    }

    /// Opens a stream with `request` (its `stream` field is assigned here). Hub side.
    pub fn open(&self, request: Request) -> Result<Stream, LinkError> {
        let (id, shared) = self.outbox.open(request)?;
        Ok(Stream::new(id, shared, self.outbox.clone()))
    }

    /// Queues a frame. If the link is gone the frame is dropped: whoever waits on the link
    /// hears of its end through its streams or its `Control`.
    pub fn send(&self, frame: Frame) {
        self.outbox.send(frame);
    }

    /// Sends CLOSE and ends the link. A reason longer than a string field is cut to fit.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        let _ = self.outbox.queue(Command::Close {
            code,
            reason: fit_reason(reason.into()),
        });
    }

    /// Whether the link task has ended.
    pub fn is_closed(&self) -> bool {
        self.outbox.is_closed()
    }
}

/// `reason` cut (at a character boundary) to what a string field carries: a CLOSE's reason
/// is for logs, and a long one must not stop the CLOSE itself.
fn fit_reason(mut reason: String) -> String {
    if reason.len() > MAX_STRING_LEN {
        let mut end = MAX_STRING_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// What one round of the link task came to.
enum Round {
    /// Nothing happened: wait for a wake-up.
    Idle,
    /// Something happened: run another round.
    Progress,
    /// Frames are ready to go out; yield once so that more can join them.
    YieldBeforeWrite,
}

struct Entry {
    shared: Arc<Shared>,
    /// What the peer may still send us on this stream.
    recv_window: Window,
    /// Whether the peer's body is under way: after a RESPONSE (hub) or REQUEST (worker)
    /// without END, until the BODY with END.
    body_open: bool,
    /// Hub: the transport's mark just past this stream's REQUEST. If the link dies before
    /// the transport has handed that far, the request never left and may go elsewhere.
    request_mark: u64,
}

struct Task<T, C> {
    transport: T,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Keyed by stream id with FxHash: ids are numbered by the hub, not picked to collide,
    /// and a request looks its stream up several times.
    streams: FxHashMap<u64, Entry>,
    /// Highest stream id seen (worker) or opened (hub): ids at or below it that are not in
    /// `streams` have ended, and late frames for them are dropped.
    highest_stream: u64,
    settings: Settings,
    control: C,
    link: Link,
    ping: Option<Interval>,
    missed_pongs: u32,
    pings_sent: u64,
    /// Yields taken since the transport's queue last emptied.
    batch_yields: u32,
}

impl<T, C> Task<T, C>
where
    T: Transport,
    C: Control,
{
    async fn run(mut self) -> LinkError {
        let err = loop {
            match poll_fn(|cx| self.poll_run(cx)).await {
                // Let the tasks that are about to queue frames run first, so one write
                // carries all of them.
                Ok(()) => tokio::task::yield_now().await,
                Err(e) => break e,
            }
        };
        // Refuse new streams first: one opened from now on fails at once instead of waiting
        // on a link that will never carry it.
        self.commands.close();
        let last_words = match &err {
            LinkError::Protocol(why) => {
                tracing::warn!(error = %why, "closing link: protocol error");
                Some((CloseCode::ProtocolError, why.clone()))
            }
            LinkError::Timeout(n) => Some((CloseCode::Timeout, format!("{n} pings unanswered"))),
            LinkError::Unencodable(e) => {
                tracing::error!(error = %e, "closing link: a control frame cannot be encoded");
                Some((CloseCode::Internal, e.to_string()))
            }
            _ => None,
        };
        if let Some((code, reason)) = last_words {
            let reason = fit_reason(reason);
            let _ = self.transport.push(Frame::Close { code, reason });
        }
        let transport = &mut self.transport;
        let _ =
            tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, poll_fn(|cx| transport.poll_close(cx))).await;
        // Streams opened while the link was ending never reached the wire.
        while let Ok(cmd) = self.commands.try_recv() {
            if let Command::Open { shared, .. } = cmd {
                shared.undelivered(&err);
            }
        }
        let handed_over = self.transport.handed_over();
        for (_, entry) in self.streams.drain() {
            if entry.request_mark > handed_over {
                entry.shared.undelivered(&err);
            } else {
                entry.shared.reset(&err);
            }
        }
        self.control.on_closed(&err);
        err
    }

    /// Runs rounds until there is nothing to do (`Pending`), the link ends (`Err`), or
    /// frames are waiting to be written and the task should yield once first (`Ok`).
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        for _ in 0..POLL_BUDGET {
            match self.poll_once(cx) {
                Ok(Round::Progress) => continue,
                Ok(Round::Idle) => return Poll::Pending,
                Ok(Round::YieldBeforeWrite) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round: read, take commands, write, tick.
    fn poll_once(&mut self, cx: &mut Context<'_>) -> Result<Round, LinkError> {
        let mut progressed = false;

        let mut received = 0;
        while self.transport.queued() < WRITE_HIGH_WATER {
            if received == RECV_BUDGET {
                // More may be waiting: come back for it after the commands and the writes.
                progressed = true;
                break;
            }
            match self.transport.poll_recv(cx) {
                Poll::Ready(Ok(frame)) => {
                    progressed = true;
                    received += 1;
                    self.on_frame(frame)?;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }

        while self.transport.queued() < WRITE_HIGH_WATER {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    progressed = true;
                    self.on_command(cmd)?;
                }
                // The task holds a sender through `self.link`, so this does not happen.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        // Yield while this round brought new work: the tasks it woke are about to queue more
        // frames, and every round that lets them costs less than a system call.
        let queued = self.transport.queued();
        if progressed && queued > 0 && queued < BATCH_FLUSH && self.batch_yields < MAX_BATCH_YIELDS
        {
            self.batch_yields += 1;
            return Ok(Round::YieldBeforeWrite);
        }
        if self.transport.poll_send(cx)? {
            progressed = true;
        }
        if self.transport.queued() == 0 {
            self.batch_yields = 0;
        }

        if let Some(ping) = &mut self.ping {
            if ping.poll_tick(cx).is_ready() {
                progressed = true;
                if self.missed_pongs >= MAX_MISSED_PONGS {
                    return Err(LinkError::Timeout(self.missed_pongs));
                }
                self.missed_pongs += 1;
                self.pings_sent += 1;
                self.transport.push(Frame::Ping {
                    opaque: self.pings_sent,
                })?;
            }
        }
        Ok(if progressed {
            Round::Progress
        } else {
            Round::Idle
        })
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), LinkError> {
        let role = self.settings.role;
        match frame {
            Frame::Body { stream, data, end } => {
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                if !entry.body_open {
                    return Err(LinkError::Protocol(format!(
                        "BODY on stream {stream} outside a body"
                    )));
                }
                entry
                    .recv_window
                    .consume(data.len())
                    .map_err(|e| LinkError::Protocol(format!("stream {stream}: {e}")))?;
                entry.body_open = !end;
                let shared = entry.shared.clone();
                if !data.is_empty() {
                    shared.push(Inbound::Data(data));
                }
                if end {
                    shared.push(Inbound::End);
                    if role == Role::Hub {
                        self.finish(stream);
                    }
                }
            }
            Frame::Window { stream, increment } => {
                if let Some(entry) = self.known_stream(stream)? {
                    entry
                        .shared
                        .grant_send(increment)
                        .map_err(|e| LinkError::Protocol(format!("stream {stream}: {e}")))?;
                }
            }
            Frame::Response(r) if role == Role::Hub => {
                let (stream, end) = (r.stream, r.end);
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                entry.body_open = !end;
                entry.shared.push(Inbound::Frame(Frame::Response(r)));
                if end {
                    self.finish(stream);
                }
            }
            Frame::Verdict(v) if role == Role::Hub => {
                let (stream, end) = (v.stream, v.end);
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                entry.body_open = !end;
                entry.shared.push(Inbound::Frame(Frame::Verdict(v)));
                if end {
                    self.finish(stream);
                }
            }
            // A filter's response phase: the upstream's head, then its body.
            Frame::Response(r) if role == Role::Worker => {
                let stream = r.stream;
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                if entry.body_open {
                    return Err(LinkError::Protocol(format!(
                        "RESPONSE on stream {stream} inside a body"
                    )));
                }
                entry.body_open = !r.end;
                entry.shared.push(Inbound::Frame(Frame::Response(r)));
            }
            Frame::Reject {
                stream,
                retryable,
                reason,
            } if role == Role::Hub => {
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                entry.shared.push(Inbound::Frame(Frame::Reject {
                    stream,
                    retryable,
                    reason,
                }));
                self.finish(stream);
            }
            Frame::Cancel { stream, reason } if role == Role::Worker => {
                if reason == CancelReason::Refused {
                    tracing::warn!(
                        stream,
                        "the hub could not use this worker's answer (its log says why)"
                    );
                }
                if let Some(entry) = self.known_stream(stream)? {
                    entry.shared.cancel(reason);
                }
            }
            Frame::Request(r) if role == Role::Worker => {
                if r.stream <= self.highest_stream {
                    return Err(LinkError::Protocol(format!(
                        "stream id {} reused",
                        r.stream
                    )));
                }
                self.highest_stream = r.stream;
                let shared = Shared::new(self.settings.send_initial_window);
                let window = Window::new(self.settings.recv_initial_window);
                self.streams.insert(
                    r.stream,
                    Entry {
                        shared: shared.clone(),
                        recv_window: window,
                        body_open: !r.end,
                        request_mark: 0,
                    },
                );
                let stream = Stream::new(r.stream, shared, self.link.outbox.clone());
                self.control
                    .on_request(&self.link, stream, r)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
            }
            Frame::Ping { opaque } => self.transport.push(Frame::Pong { opaque })?,
            Frame::Pong { .. } => self.missed_pongs = 0,
            Frame::Close { code, reason } => return Err(LinkError::PeerClosed { code, reason }),
            f @ (Frame::Credit { .. } | Frame::Drain { .. }) => {
                self.control
                    .on_frame(&self.link, f)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
            }
            other => {
                return Err(LinkError::Protocol(format!(
                    "{:?} frame is not expected by the {role:?}",
                    other.frame_type()
                )))
            }
        }
        Ok(())
    }

    /// The open stream `id`; `None` for one that has ended; an error for one never opened.
    fn known_stream(&mut self, id: u64) -> Result<Option<&mut Entry>, LinkError> {
        if id > self.highest_stream {
            return Err(LinkError::Protocol(format!(
                "frame for stream {id}, which was never opened"
            )));
        }
        Ok(self.streams.get_mut(&id))
    }

    /// The response on stream `id` is complete: forget the stream, and stop its request body.
    fn finish(&mut self, id: u64) {
        if let Some(entry) = self.streams.remove(&id) {
            entry.shared.close_send(StreamError::Ended);
        }
    }

    fn on_command(&mut self, cmd: Command) -> Result<(), LinkError> {
        match cmd {
            Command::Open { id, shared, frame } => {
                self.highest_stream = self.highest_stream.max(id);
                let window = Window::new(self.settings.recv_initial_window);
                self.streams.insert(
                    id,
                    Entry {
                        shared,
                        recv_window: window,
                        body_open: false,
                        // Not handed over until the push below says how far it reaches.
                        request_mark: u64::MAX,
                    },
                );
                match self.transport.push(frame) {
                    Ok(()) => {
                        if let Some(entry) = self.streams.get_mut(&id) {
                            entry.request_mark = self.transport.pushed_mark();
                        }
                    }
                    // The worker never sees this stream (ids may skip): only its opener
                    // hears why.
                    Err(PushError::Unencodable(e)) => {
                        tracing::warn!(stream = id, error = %e, "REQUEST cannot be encoded for the worker");
                        if let Some(entry) = self.streams.remove(&id) {
                            entry.shared.unsendable(e);
                        }
                    }
                    Err(PushError::Link(e)) => return Err(e),
                }
            }
            Command::Frame(frame) => {
                let id = frame.stream();
                if id == 0 {
                    return Ok(self.transport.push(frame)?);
                }
                // Frames for a stream that has ended are no longer wanted by the peer, but
                // for a CANCEL `refused`: it tells the peer the answer it finished was not
                // usable (a body shorter than its length, say).
                let Some(entry) = self.streams.get_mut(&id) else {
                    if let Frame::Cancel {
                        reason: CancelReason::Refused,
                        ..
                    } = frame
                    {
                        return Ok(self.transport.push(frame)?);
                    }
                    return Ok(());
                };
                if let Frame::Window { increment, .. } = frame {
                    entry
                        .recv_window
                        .grant(increment)
                        .map_err(|e| LinkError::Protocol(format!("local window grant: {e}")))?;
                }
                let worker = self.settings.role == Role::Worker;
                let is_answer = worker && matches!(frame, Frame::Response(_) | Frame::Verdict(_));
                let ends_response = worker
                    && matches!(
                        frame,
                        Frame::Response(pullman_proto::Response { end: true, .. })
                            | Frame::Verdict(pullman_proto::Verdict { end: true, .. })
                            | Frame::Body { end: true, .. }
                            | Frame::Reject { .. }
                    );
                match self.transport.push(frame) {
                    Ok(()) if ends_response => self.finish(id),
                    Ok(()) => {}
                    Err(PushError::Unencodable(e)) => self.end_unsendable(id, is_answer, e)?,
                    Err(PushError::Link(e)) => return Err(e),
                }
            }
            Command::Close { code, reason } => {
                let close = Frame::Close {
                    code,
                    reason: reason.clone(),
                };
                // A CLOSE too large for the peer is dropped: the link ends all the same.
                if let Err(PushError::Link(e)) = self.transport.push(close) {
                    return Err(e);
                }
                return Err(LinkError::Closed { code, reason });
            }
        }
        Ok(())
    }

    /// A frame for stream `id` could not be encoded for the peer, and was dropped. Only that
    /// stream fails: its users hear why, the peer is told the stream is over (a worker
    /// answers in the frame's place, or aborts with REJECT; a hub cancels), both sides
    /// forget it, and the link carries on.
    fn end_unsendable(
        &mut self,
        id: u64,
        is_answer: bool,
        err: EncodeError,
    ) -> Result<(), LinkError> {
        tracing::warn!(stream = id, error = %err, "a frame cannot be encoded for the peer; ending its stream");
        let Some(entry) = self.streams.remove(&id) else {
            return Ok(());
        };
        let reject = |err: &EncodeError| Frame::Reject {
            stream: id,
            retryable: false,
            reason: err.to_string(),
        };
        let last = match self.settings.role {
            Role::Worker if is_answer => {
                let answer = self.control.unsendable_answer(id, &err);
                let ends_stream = answer.stream() == id
                    && matches!(
                        answer,
                        Frame::Response(pullman_proto::Response { end: true, .. })
                            | Frame::Verdict(pullman_proto::Verdict { end: true, .. })
                            | Frame::Reject { .. }
                    );
                if ends_stream {
                    answer
                } else {
                    reject(&err)
                }
            }
            Role::Worker => reject(&err),
            Role::Hub => Frame::Cancel {
                stream: id,
                reason: CancelReason::Refused,
            },
        };
        entry.shared.unsendable(err);
        match self.transport.push(last) {
            // A worker must still end the stream; a REJECT without a reason is the smallest
            // frame that does.
            Err(PushError::Unencodable(_)) if self.settings.role == Role::Worker => {
                Ok(self.transport.push(Frame::Reject {
                    stream: id,
                    retryable: false,
                    reason: String::new(),
                })?)
            }
            done => Ok(done?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    use bytes::Bytes;
    use pullman_proto::{
        decode, encode, CancelReason, HeadBuilder, Mode, Response, Version, DEFAULT_INITIAL_WINDOW,
        DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};

    use super::*;

    /// Long enough for anything the link does without a timer; with the clock paused (every
    /// test here) waiting it out costs nothing, and a hang fails instead of blocking.
    const PATIENCE: Duration = Duration::from_secs(30);

    async fn within<F: Future>(what: &str, f: F) -> F::Output {
        tokio::time::timeout(PATIENCE, f)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Polls once: what `f` has ready now, without waiting.
    fn now<F: Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }

    /// What the link told its role.
    #[derive(Debug)]
    enum Event {
        Frame(Frame),
        Request(Stream, Request),
        Closed(LinkError),
    }

    struct Recorder(mpsc::UnboundedSender<Event>);

    impl Control for Recorder {
        fn on_frame(&mut self, _link: &Link, frame: Frame) -> Result<(), ControlError> {
            let _ = self.0.send(Event::Frame(frame));
            Ok(())
        }
        fn on_request(
            &mut self,
            _link: &Link,
            stream: Stream,
            request: Request,
        ) -> Result<(), ControlError> {
            let _ = self.0.send(Event::Request(stream, request));
            Ok(())
        }
        fn on_closed(&mut self, err: &LinkError) {
            let _ = self.0.send(Event::Closed(err.clone()));
        }
    }

    /// The far end of the link, driven by hand with the codec.
    struct Peer {
        io: DuplexStream,
        buf: BytesMut,
    }

    impl Peer {
        async fn send(&mut self, frame: &Frame) {
            let mut out = BytesMut::new();
            encode(frame, &mut out, MAX_FRAME_LIMIT).expect("test frames fit");
            self.io.write_all(&out).await.expect("peer write");
        }

        /// The next frame the link wrote; `None` once it closed the connection.
        async fn recv(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) =
                    decode(&mut self.buf, MAX_FRAME_LIMIT).expect("link wrote a bad frame")
                {
                    return Some(frame);
                }
                if self.io.read_buf(&mut self.buf).await.expect("peer read") == 0 {
                    assert!(self.buf.is_empty(), "link left half a frame");
                    return None;
                }
            }
        }

        async fn expect(&mut self) -> Frame {
            within("a frame from the link", self.recv())
                .await
                .expect("the link closed the connection")
        }
    }

    fn settings(role: Role) -> Settings {
        Settings {
            role,
            recv_max_frame: DEFAULT_MAX_FRAME,
            send_max_frame: pullman_proto::MAX_FRAME_LIMIT,
            recv_initial_window: DEFAULT_INITIAL_WINDOW,
            send_initial_window: DEFAULT_INITIAL_WINDOW,
            ping_interval: None,
        }
    }

    struct Started {
        link: Link,
        task: JoinHandle<LinkError>,
        peer: Peer,
        events: mpsc::UnboundedReceiver<Event>,
    }

    /// Starts a link over an in-memory pipe. The task has not run yet when this returns.
    fn start(settings: Settings) -> Started {
        start_to(settings, MAX_FRAME_LIMIT)
    }

    /// Same, to a peer that announced `peer_max_frame`.
    fn start_to(settings: Settings, peer_max_frame: u32) -> Started {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let (tx, events) = mpsc::unbounded_channel();
        let transport = StreamTransport::new(ours, BytesMut::new(), settings.recv_max_frame)
            .with_peer_max_frame(peer_max_frame);
        let (link, task) = Link::spawn_on(transport, settings, Recorder(tx));
        Started {
            link,
            task,
            peer: Peer {
                io: theirs,
                buf: BytesMut::new(),
            },
            events,
        }
    }

    fn request() -> Request {
        let mut head = HeadBuilder::new(Version::Http11, b"GET", b"/work", 1);
        head.header(b"host", b"example.com").unwrap();
        Request {
            stream: 0,
            end: true,
            deadline_ms: 0,
            mode: Mode::Respond,
            peer: "192.0.2.1:4000".into(),
            tls: false,
            head: head.finish(),
        }
    }

    fn response(stream: u64, end: bool) -> Frame {
        Frame::Response(Response {
            stream,
            end,
            status: 200,
            headers: vec![(Bytes::from_static(b"x-a"), Bytes::from_static(b"1"))],
        })
    }

    fn body(stream: u64, data: &'static [u8], end: bool) -> Frame {
        Frame::Body {
            stream,
            data: Bytes::from_static(data),
            end,
        }
    }

    async fn ended(task: &mut JoinHandle<LinkError>) -> LinkError {
        within("the link to end", task)
            .await
            .expect("link task panicked")
    }

    /// Asserts the link ended on a protocol error and told the peer so with CLOSE.
    async fn assert_protocol_close(s: &mut Started) -> String {
        let why = match ended(&mut s.task).await {
            LinkError::Protocol(why) => why,
            other => panic!("expected a protocol error, got {other:?}"),
        };
        loop {
            match s.peer.expect().await {
                Frame::Close { code, .. } => {
                    assert_eq!(code, CloseCode::ProtocolError);
                    break;
                }
                Frame::Request(_) => continue,
                other => panic!("expected CLOSE, got {other:?}"),
            }
        }
        assert!(within("EOF", s.peer.recv()).await.is_none());
        why
    }

    #[tokio::test(start_paused = true)]
    async fn hub_opens_streams_with_increasing_ids() {
        let mut s = start(settings(Role::Hub));
        let first = s.link.open(request()).unwrap();
        let second = s.link.open(request()).unwrap();
        assert_eq!((first.id(), second.id()), (1, 2));

        let Frame::Request(r) = s.peer.expect().await else {
            panic!("expected REQUEST")
        };
        assert_eq!(r.stream, 1);
        assert_eq!(r.head, request().head);
        assert_eq!(r.peer, "192.0.2.1:4000");
        let Frame::Request(r) = s.peer.expect().await else {
            panic!("expected REQUEST")
        };
        assert_eq!(r.stream, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_with_end_finishes_the_stream() {
        let mut s = start(settings(Role::Hub));
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));

        s.peer.send(&response(1, true)).await;
        match within("the response", stream.recv()).await {
            Inbound::Frame(Frame::Response(r)) => {
                assert_eq!((r.stream, r.status, r.end), (1, 200, true));
                assert_eq!(r.headers.len(), 1);
            }
            other => panic!("expected RESPONSE, got {other:?}"),
        }
        // No more request body goes to a stream whose response has ended.
        assert!(matches!(
            stream
                .sender()
                .send_data(Bytes::from_static(b"x"), true)
                .await,
            Err(StreamError::Ended)
        ));

        // A late BODY for it crossed on the wire: dropped, and the link carries on.
        s.peer.send(&body(1, b"late", true)).await;
        s.peer.send(&Frame::Ping { opaque: 7 }).await;
        assert_eq!(s.peer.expect().await, Frame::Pong { opaque: 7 });
        assert!(now(stream.recv()).is_none(), "late BODY reached the stream");
        assert!(!s.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_body_arrives_in_order_then_ends_the_stream() {
        let mut s = start(settings(Role::Hub));
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));

        s.peer.send(&response(1, false)).await;
        s.peer.send(&body(1, b"hello ", false)).await;
        s.peer.send(&body(1, b"world", true)).await;
        assert!(matches!(
            within("head", stream.recv()).await,
            Inbound::Frame(Frame::Response(_))
        ));
        let mut got = Vec::new();
        loop {
            match within("body", stream.recv()).await {
                Inbound::Data(d) => got.extend_from_slice(&d),
                Inbound::End => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"hello world");
        assert!(matches!(
            stream
                .sender()
                .send_data(Bytes::from_static(b"x"), false)
                .await,
            Err(StreamError::Ended)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_verdict_with_a_body_reaches_the_stream_then_ends_it() {
        let mut s = start(settings(Role::Hub));
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));
        let verdict = Frame::Verdict(pullman_proto::Verdict {
            stream: 1,
            end: false,
            edits: Vec::new(),
            target: None,
        });
        s.peer.send(&verdict).await;
        s.peer.send(&body(1, b"filtered", true)).await;
        match within("verdict", stream.recv()).await {
            Inbound::Frame(got) => assert_eq!(got, verdict),
            other => panic!("expected the VERDICT, got {other:?}"),
        }
        assert!(matches!(within("body", stream.recv()).await, Inbound::Data(d) if d == "filtered"));
        assert!(matches!(within("end", stream.recv()).await, Inbound::End));
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_takes_a_response_head_then_its_body() {
        let mut s = start(settings(Role::Worker));
        let mut sent = request();
        sent.stream = 1;
        sent.mode = Mode::FilterResponse;
        s.peer.send(&Frame::Request(sent)).await;
        let Some(Event::Request(mut stream, _)) = within("request", s.events.recv()).await else {
            panic!("expected a request");
        };
        s.peer.send(&response(1, false)).await;
        s.peer.send(&body(1, b"upstream", true)).await;
        assert!(matches!(
            within("head", stream.recv()).await,
            Inbound::Frame(Frame::Response(_))
        ));
        assert!(matches!(within("body", stream.recv()).await, Inbound::Data(d) if d == "upstream"));
        assert!(matches!(within("end", stream.recv()).await, Inbound::End));
        // A second head inside the body breaks the protocol.
        s.peer.send(&response(1, false)).await;
        s.peer.send(&response(1, false)).await;
        assert_protocol_close(&mut s).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_for_a_stream_never_opened_closes_the_link() {
        let mut s = start(settings(Role::Hub));
        s.peer.send(&body(5, b"who?", false)).await;
        let why = assert_protocol_close(&mut s).await;
        assert!(why.contains("never opened"), "{why}");
        assert!(matches!(
            within("on_closed", s.events.recv()).await,
            Some(Event::Closed(LinkError::Protocol(_)))
        ));
        assert!(s.link.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_closes_the_link() {
        let mut s = start(settings(Role::Worker));
        s.peer.io.write_all(&[0xff; 32]).await.unwrap();
        let why = assert_protocol_close(&mut s).await;
        assert!(why.contains("unknown frame type"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_larger_than_agreed_closes_the_link() {
        let mut s = start(Settings {
            recv_max_frame: 64,
            send_max_frame: pullman_proto::MAX_FRAME_LIMIT,
            ..settings(Role::Hub)
        });
        let _stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));
        s.peer.send(&body(1, &[b'x'; 65], false)).await;
        assert_protocol_close(&mut s).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_sending_past_its_window_is_cut_off() {
        let mut s = start(Settings {
            recv_initial_window: 16,
            ..settings(Role::Hub)
        });
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));

        s.peer.send(&response(1, false)).await;
        s.peer.send(&body(1, b"0123456789abcdef", false)).await;
        assert!(matches!(
            within("head", stream.recv()).await,
            Inbound::Frame(_)
        ));
        assert!(matches!(within("data", stream.recv()).await, Inbound::Data(d) if d.len() == 16));

        // Consuming the bytes returns the room to the peer.
        stream.release(10);
        assert_eq!(
            s.peer.expect().await,
            Frame::Window {
                stream: 1,
                increment: 10
            }
        );
        s.peer.send(&body(1, b"0123456789", false)).await;
        assert!(matches!(within("data", stream.recv()).await, Inbound::Data(d) if d.len() == 10));

        // One byte more than granted.
        s.peer.send(&body(1, b"!", false)).await;
        let why = assert_protocol_close(&mut s).await;
        assert!(why.contains("stream 1"), "{why}");
        assert!(matches!(
            within("reset", stream.recv()).await,
            Inbound::Reset(LinkError::Protocol(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn sending_waits_for_the_peers_window() {
        let mut s = start(Settings {
            send_initial_window: 10,
            ..settings(Role::Hub)
        });
        let stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));

        let sender = stream.sender();
        let sending = tokio::spawn(async move {
            sender
                .send_data(Bytes::from_static(b"0123456789abcdef"), true)
                .await
        });
        assert_eq!(s.peer.expect().await, body(1, b"0123456789", false));
        // The window is spent: nothing more comes, however long the peer waits.
        let more = tokio::time::timeout(Duration::from_secs(60), s.peer.recv()).await;
        assert!(more.is_err(), "sent past the window: {more:?}");
        assert!(!sending.is_finished());

        s.peer
            .send(&Frame::Window {
                stream: 1,
                increment: 4,
            })
            .await;
        assert_eq!(s.peer.expect().await, body(1, b"abcd", false));
        s.peer
            .send(&Frame::Window {
                stream: 1,
                increment: 100,
            })
            .await;
        assert_eq!(s.peer.expect().await, body(1, b"ef", true));
        within("send_data", sending).await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_hears_of_requests_and_cancels() {
        let mut s = start(settings(Role::Worker));
        let mut sent = request();
        sent.stream = 1;
        s.peer.send(&Frame::Request(sent.clone())).await;
        let (stream, got) = match within("on_request", s.events.recv()).await {
            Some(Event::Request(stream, got)) => (stream, got),
            other => panic!("expected a request, got {other:?}"),
        };
        assert_eq!(stream.id(), 1);
        assert_eq!(got, sent);
        assert!(now(stream.cancelled()).is_none());

        s.peer
            .send(&Frame::Cancel {
                stream: 1,
                reason: CancelReason::Deadline,
            })
            .await;
        assert_eq!(
            within("cancel", stream.cancelled()).await,
            CancelReason::Deadline
        );
        assert_eq!(
            within("cancel", stream.sender().cancelled()).await,
            CancelReason::Deadline
        );

        // Credits and drains go to the role.
        s.link.send(Frame::Credit { n: 3 });
        assert_eq!(s.peer.expect().await, Frame::Credit { n: 3 });
        s.peer.send(&Frame::Drain { last_stream: 1 }).await;
        assert!(matches!(
            within("on_frame", s.events.recv()).await,
            Some(Event::Frame(Frame::Drain { last_stream: 1 }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_refuses_a_reused_stream_id() {
        let mut s = start(settings(Role::Worker));
        let mut r = request();
        r.stream = 2;
        s.peer.send(&Frame::Request(r.clone())).await;
        r.stream = 1;
        s.peer.send(&Frame::Request(r)).await;
        let why = assert_protocol_close(&mut s).await;
        assert!(why.contains("reused"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_forgets_a_stream_once_its_response_ended() {
        let mut s = start(settings(Role::Worker));
        let mut r = request();
        r.stream = 1;
        s.peer.send(&Frame::Request(r)).await;
        let Some(Event::Request(stream, _)) = within("request", s.events.recv()).await else {
            panic!("expected a request")
        };
        let sender = stream.sender();
        sender.send_frame(response(1, false));
        sender
            .send_data(Bytes::from_static(b"ok"), true)
            .await
            .unwrap();
        assert_eq!(s.peer.expect().await, response(1, false));
        assert_eq!(s.peer.expect().await, body(1, b"ok", true));

        // A CANCEL that crossed the response is ignored; the link carries on.
        s.peer
            .send(&Frame::Cancel {
                stream: 1,
                reason: CancelReason::ClientGone,
            })
            .await;
        s.peer.send(&Frame::Ping { opaque: 1 }).await;
        assert_eq!(s.peer.expect().await, Frame::Pong { opaque: 1 });
        assert!(now(stream.cancelled()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_answering_pings_times_out() {
        let every = Duration::from_secs(1);
        let mut s = start(Settings {
            ping_interval: Some(every),
            ..settings(Role::Hub)
        });
        let began = tokio::time::Instant::now();
        // Three pings go unanswered (at 1, 2 and 3 s); the link gives up when the fourth is
        // due.
        assert!(
            tokio::time::timeout(every * 7 / 2, &mut s.task)
                .await
                .is_err(),
            "gave up before the third ping was missed"
        );
        let err = within("the timeout", &mut s.task).await.unwrap();
        assert!(matches!(err, LinkError::Timeout(3)), "{err:?}");
        assert_eq!(began.elapsed(), every * 4);

        for opaque in 1..=3 {
            assert_eq!(s.peer.expect().await, Frame::Ping { opaque });
        }
        assert!(matches!(
            within("on_closed", s.events.recv()).await,
            Some(Event::Closed(LinkError::Timeout(3)))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_timeout_tells_the_peer() {
        let mut s = start(Settings {
            ping_interval: Some(Duration::from_secs(1)),
            ..settings(Role::Hub)
        });
        assert!(matches!(ended(&mut s.task).await, LinkError::Timeout(_)));
        loop {
            match within("CLOSE", s.peer.recv()).await {
                Some(Frame::Ping { .. }) => continue,
                Some(Frame::Close { code, .. }) => {
                    assert_eq!(code, CloseCode::Timeout);
                    return;
                }
                other => panic!("expected CLOSE timeout, got {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_pings_stays_connected() {
        let every = Duration::from_secs(1);
        let Started {
            link,
            mut task,
            mut peer,
            ..
        } = start(Settings {
            ping_interval: Some(every),
            ..settings(Role::Hub)
        });
        let answering = tokio::spawn(async move {
            let mut pings = 0;
            while let Some(frame) = peer.recv().await {
                if let Frame::Ping { opaque } = frame {
                    pings += 1;
                    peer.send(&Frame::Pong { opaque }).await;
                }
            }
            pings
        });
        let alive = tokio::time::timeout(every * 60, &mut task).await;
        assert!(alive.is_err(), "link ended: {alive:?}");

        link.close(CloseCode::Normal, "done");
        assert!(matches!(
            within("close", task).await.unwrap(),
            LinkError::Closed {
                code: CloseCode::Normal,
                ..
            }
        ));
        let pings = within("the peer", answering).await.unwrap();
        assert!(pings >= 59, "only {pings} pings in a minute");
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_link_resets_open_streams() {
        let mut s = start(settings(Role::Hub));
        let mut stream = s.link.open(request()).unwrap();
        let sender = stream.sender();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));

        drop(s.peer);
        assert!(matches!(
            within("reset", stream.recv()).await,
            Inbound::Reset(LinkError::Eof)
        ));
        assert!(matches!(
            sender.send_data(Bytes::from_static(b"x"), false).await,
            Err(StreamError::Link(LinkError::Eof))
        ));
        assert!(matches!(
            within("on_closed", s.events.recv()).await,
            Some(Event::Closed(LinkError::Eof))
        ));
        assert!(matches!(ended(&mut s.task).await, LinkError::Eof));
        assert!(s.link.is_closed());
        assert!(s.link.open(request()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_as_the_link_dies_is_undelivered() {
        let s = start(settings(Role::Hub));
        // The peer is gone before the link task first runs; `open` still succeeds, but the
        // REQUEST never reaches the wire, and the stream says so.
        drop(s.peer);
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(
            within("reset", stream.recv()).await,
            Inbound::Undelivered(_)
        ));
    }

    /// A socket whose peer is gone but whose end has not been read yet: reads wait,
    /// writes fail (a Unix socket's EPIPE).
    struct DeadPeer;

    impl AsyncRead for DeadPeer {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for DeadPeer {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_whose_write_fails_is_undelivered() {
        let (tx, _events) = mpsc::unbounded_channel();
        let (link, task) =
            Link::spawn(DeadPeer, BytesMut::new(), settings(Role::Hub), Recorder(tx));
        let mut stream = link.open(request()).unwrap();
        // The REQUEST was taken into the link and pushed to the transport, but the write
        // failed: it never left, so the stream may be given to another worker.
        assert!(matches!(
            within("undelivered", stream.recv()).await,
            Inbound::Undelivered(_)
        ));
        assert!(
            matches!(task.await.unwrap(), LinkError::Io(_)),
            "the link died of the write"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_past_the_maximum_closes_the_link() {
        let mut s = start(settings(Role::Hub));
        let _stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));
        s.peer
            .send(&Frame::Window {
                stream: 1,
                increment: u32::MAX,
            })
            .await;
        assert_protocol_close(&mut s).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_before_the_response_closes_the_link() {
        let mut s = start(settings(Role::Hub));
        let _stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));
        s.peer.send(&body(1, b"headless", false)).await;
        assert_protocol_close(&mut s).await;
    }

    /// Counts the writes the link task makes: each is one system call on a real socket.
    struct CountingWrites {
        io: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for CountingWrites {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingWrites {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let out = Pin::new(&mut self.io).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = out {
                if n > 0 {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                }
            }
            out
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn queued_frames_go_out_in_one_write() {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let writes = Arc::new(AtomicUsize::new(0));
        let io = CountingWrites {
            io: ours,
            writes: writes.clone(),
        };
        let (tx, _events) = mpsc::unbounded_channel();
        let (link, _task) = Link::spawn(io, BytesMut::new(), settings(Role::Worker), Recorder(tx));
        // The task has not run yet: all of these wait in its queue.
        for n in 0..100 {
            link.send(Frame::Credit { n });
        }
        let mut peer = Peer {
            io: theirs,
            buf: BytesMut::new(),
        };
        for n in 0..100 {
            assert_eq!(peer.expect().await, Frame::Credit { n });
        }
        // One write, or two should the runtime's cooperative budget split the batch.
        let writes = writes.load(Ordering::Relaxed);
        assert!(writes <= 2, "100 queued frames took {writes} writes");
    }

    /// A worker that has opened streams 1 and 2.
    async fn worker_with_two_streams(peer_max_frame: u32) -> (Started, Stream, Stream) {
        let mut s = start_to(settings(Role::Worker), peer_max_frame);
        for id in [1, 2] {
            let mut r = request();
            r.stream = id;
            r.end = false;
            s.peer.send(&Frame::Request(r)).await;
        }
        let mut streams = Vec::new();
        for _ in 0..2 {
            match within("on_request", s.events.recv()).await {
                Some(Event::Request(stream, _)) => streams.push(stream),
                other => panic!("expected a request, got {other:?}"),
            }
        }
        let second = streams.pop().unwrap();
        let first = streams.pop().unwrap();
        (s, first, second)
    }

    /// Asserts everything a stream's users see once the link has failed it, for an error
    /// `what` accepts.
    async fn assert_failed_for(stream: &mut Stream, what: impl Fn(&EncodeError) -> bool) {
        match within("the failure", stream.recv()).await {
            Inbound::Unsendable(e) => assert!(what(&e), "{e}"),
            other => panic!("expected Unsendable, got {other:?}"),
        }
        assert!(matches!(
            stream.sender().send_data(Bytes::from_static(b"x"), true).await,
            Err(StreamError::Unsendable(e)) if what(&e)
        ));
        assert_eq!(
            within("cancel", stream.cancelled()).await,
            CancelReason::Refused
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_answer_that_cannot_be_encoded_fails_only_its_stream() {
        let (mut s, mut first, second) = worker_with_two_streams(MAX_FRAME_LIMIT).await;
        // A header name longer than its u16 prefix: the old encoder panicked in the link
        // task, and every stream of the link died with it.
        first.sender().send_frame(Frame::Response(Response {
            stream: 1,
            end: true,
            status: 200,
            headers: vec![(Bytes::from(vec![b'n'; 70_000]), Bytes::from_static(b"v"))],
        }));
        second.sender().send_frame(response(2, true));

        match s.peer.expect().await {
            Frame::Reject {
                stream: 1,
                retryable: false,
                reason,
            } => assert!(reason.contains("header name"), "{reason}"),
            other => panic!("expected REJECT for stream 1, got {other:?}"),
        }
        assert_eq!(s.peer.expect().await, response(2, true));
        assert_failed_for(&mut first, |e| {
            matches!(
                e,
                EncodeError::FieldTooLong {
                    field: pullman_proto::error::Field::HeaderName,
                    ..
                }
            )
        })
        .await;

        // The stream is forgotten: what the hub still sends for it is dropped.
        s.peer.send(&body(1, b"late", true)).await;
        s.peer.send(&Frame::Ping { opaque: 9 }).await;
        assert_eq!(s.peer.expect().await, Frame::Pong { opaque: 9 });
        assert!(!s.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_over_the_peers_max_frame_fails_only_its_stream() {
        const PEER_MAX: u32 = 1000;
        let (mut s, mut first, second) = worker_with_two_streams(PEER_MAX).await;
        // A VERDICT within every field's prefix, but larger than the hub takes.
        first
            .sender()
            .send_frame(Frame::Verdict(pullman_proto::Verdict {
                stream: 1,
                end: true,
                edits: Vec::new(),
                target: Some(Bytes::from(vec![b'/'; 2000])),
            }));
        // Body bytes go out in chunks the peer takes.
        let sender = second.sender();
        sender.send_frame(response(2, false));
        let sending =
            tokio::spawn(
                async move { sender.send_data(Bytes::from(vec![b'b'; 2500]), true).await },
            );

        assert!(matches!(
            s.peer.expect().await,
            Frame::Reject {
                stream: 1,
                retryable: false,
                ..
            }
        ));
        assert_eq!(s.peer.expect().await, response(2, false));
        let mut chunks = Vec::new();
        loop {
            match s.peer.expect().await {
                Frame::Body {
                    stream: 2,
                    data,
                    end,
                } => {
                    chunks.push(data.len());
                    if end {
                        break;
                    }
                }
                other => panic!("expected BODY on stream 2, got {other:?}"),
            }
        }
        assert_eq!(chunks, [1000, 1000, 500]);
        within("send_data", sending).await.unwrap().unwrap();
        assert_failed_for(&mut first, |e| {
            matches!(
                e,
                EncodeError::TooLarge {
                    kind: pullman_proto::FrameType::Verdict,
                    max: PEER_MAX,
                    ..
                }
            )
        })
        .await;
        assert!(!s.task.is_finished());
    }

    /// A worker's own answer in place of the one it could not send: a 502, ending the
    /// stream or (wrongly) not.
    struct Answering(mpsc::UnboundedSender<Event>, bool);

    impl Control for Answering {
        fn on_frame(&mut self, _link: &Link, _frame: Frame) -> Result<(), ControlError> {
            Ok(())
        }
        fn on_request(
            &mut self,
            _: &Link,
            stream: Stream,
            request: Request,
        ) -> Result<(), ControlError> {
            let _ = self.0.send(Event::Request(stream, request));
            Ok(())
        }
        fn on_closed(&mut self, _err: &LinkError) {}
        fn unsendable_answer(&mut self, stream: u64, _err: &EncodeError) -> Frame {
            Frame::Response(Response {
                stream,
                end: self.1,
                status: 502,
                headers: Vec::new(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_role_chooses_what_answers_in_place_of_an_unsendable_answer() {
        for ends_stream in [true, false] {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let (tx, mut events) = mpsc::unbounded_channel();
            let role = Answering(tx, ends_stream);
            let (_link, _task) = Link::spawn(ours, BytesMut::new(), settings(Role::Worker), role);
            let mut peer = Peer {
                io: theirs,
                buf: BytesMut::new(),
            };
            let mut r = request();
            r.stream = 1;
            peer.send(&Frame::Request(r)).await;
            let Some(Event::Request(stream, _)) = within("request", events.recv()).await else {
                panic!("expected a request");
            };
            stream
                .sender()
                .send_frame(Frame::Verdict(pullman_proto::Verdict {
                    stream: 1,
                    end: true,
                    edits: Vec::new(),
                    target: Some(Bytes::from(vec![b'/'; 70_000])),
                }));
            match peer.expect().await {
                Frame::Response(r) if ends_stream => {
                    assert_eq!((r.stream, r.status, r.end), (1, 502, true))
                }
                // An answer that would leave the stream open is not the role's to give.
                Frame::Reject { stream: 1, .. } if !ends_stream => {}
                other => panic!("unexpected {other:?} (role's answer ends: {ends_stream})"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_too_large_for_the_worker_is_never_sent() {
        let mut s = start_to(settings(Role::Hub), 200);
        let mut head = HeadBuilder::new(Version::Http11, b"GET", b"/big", 1);
        head.header(b"x-big", &[b'v'; 300]).unwrap();
        let mut big = request();
        big.head = head.finish();
        let mut stream = s.link.open(big).unwrap();
        assert!(matches!(
            within("the failure", stream.recv()).await,
            Inbound::Unsendable(EncodeError::TooLarge {
                kind: pullman_proto::FrameType::Request,
                max: 200,
                ..
            })
        ));
        // The worker saw nothing of it; the next stream goes out, its id past the first.
        let next = s.link.open(request()).unwrap();
        match s.peer.expect().await {
            Frame::Request(r) => assert_eq!((r.stream, next.id()), (2, 2)),
            other => panic!("expected REQUEST 2, got {other:?}"),
        }
        assert!(!s.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_frame_too_large_for_the_worker_cancels_its_stream() {
        let mut s = start_to(settings(Role::Hub), 1000);
        let mut stream = s.link.open(request()).unwrap();
        assert!(matches!(s.peer.expect().await, Frame::Request(_)));
        // A filter's response phase: the upstream's head, larger than the worker takes.
        stream.sender().send_frame(Frame::Response(Response {
            stream: 1,
            end: true,
            status: 200,
            headers: vec![(Bytes::from_static(b"x-big"), Bytes::from(vec![b'v'; 2000]))],
        }));
        assert_eq!(
            s.peer.expect().await,
            Frame::Cancel {
                stream: 1,
                reason: CancelReason::Refused
            }
        );
        assert!(matches!(
            within("the failure", stream.recv()).await,
            Inbound::Unsendable(EncodeError::TooLarge { .. })
        ));
        // The worker's answer to the CANCEL is dropped; the link goes on.
        s.peer
            .send(&Frame::Reject {
                stream: 1,
                retryable: false,
                reason: "cancelled".into(),
            })
            .await;
        s.peer.send(&Frame::Ping { opaque: 3 }).await;
        assert_eq!(s.peer.expect().await, Frame::Pong { opaque: 3 });
        assert!(now(stream.recv()).is_none());
        assert!(!s.task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_control_frame_that_cannot_be_encoded_ends_the_link_clearly() {
        let mut s = start(settings(Role::Worker));
        s.link.send(Frame::Drain { last_stream: 0 });
        // A control frame: no stream can take the blame for it.
        s.link.send(Frame::Hello(pullman_proto::Hello {
            min_version: 1,
            max_version: 1,
            max_frame: 0,
            initial_window: 0,
            features: 0,
            modes: pullman_proto::Modes::RESPOND,
            pool: "p".repeat(70_000),
            token: String::new(),
            name: String::new(),
        }));
        let err = ended(&mut s.task).await;
        assert!(
            matches!(
                &err,
                LinkError::Unencodable(EncodeError::FieldTooLong {
                    field: pullman_proto::error::Field::Pool,
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(s.peer.expect().await, Frame::Drain { last_stream: 0 });
        match s.peer.expect().await {
            Frame::Close { code, reason } => {
                assert_eq!(code, CloseCode::Internal);
                assert!(reason.contains("pool name"), "{reason}");
            }
            other => panic!("expected CLOSE, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_reason_too_long_for_the_wire_is_cut() {
        let mut s = start(settings(Role::Worker));
        // Two bytes a character: the cut falls inside one unless made at a boundary.
        s.link.close(CloseCode::Normal, "é".repeat(40_000));
        match s.peer.expect().await {
            Frame::Close { code, reason } => {
                assert_eq!(code, CloseCode::Normal);
                assert_eq!(reason.len(), MAX_STRING_LEN - 1);
            }
            other => panic!("expected CLOSE, got {other:?}"),
        }
        assert!(matches!(
            ended(&mut s.task).await,
            LinkError::Closed {
                code: CloseCode::Normal,
                ..
            }
        ));
    }
}
