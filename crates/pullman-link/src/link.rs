//! The connection task: one per link, reading, routing and writing frames.
//!
//! The task is a single `poll` loop over the socket and a command queue. It reads whatever
//! is there and routes each frame, takes every queued command and encodes it into one write
//! buffer, then writes that buffer: under load one system call carries many frames, and
//! nothing else holds the socket. Nothing in it waits on anything but the socket.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pullman_proto::{decode, encode, CloseCode, Frame, Request, Window};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::{LinkError, StreamError};
use crate::stream::{Inbound, Shared, Stream};

/// Write-buffer size past which the task stops reading and taking commands until the peer
/// has drained it: a slow peer holds at most this much of our memory (plus stream windows).
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Read buffer growth step; also the most one read system call takes.
const READ_CHUNK: usize = 64 * 1024;
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
    fn on_frame(&mut self, link: &Link, frame: Frame) -> Result<(), String>;
    /// The hub opened a stream (worker side only).
    fn on_request(&mut self, link: &Link, stream: Stream, request: Request) -> Result<(), String> {
        let _ = (link, stream, request);
        Err("REQUEST sent to the hub".into())
    }
    /// The link ended; every open stream has been reset with the same reason.
    fn on_closed(&mut self, err: &LinkError);
}

#[derive(Debug)]
pub(crate) enum Command {
    Open {
        id: u64,
        shared: Arc<Shared>,
        frame: Frame,
    },
    Frame(Frame),
    Close {
        code: CloseCode,
        reason: String,
    },
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    next_stream: AtomicU64,
    send_initial_window: u32,
}

/// A handle to a running link. Cheap to clone; the link lives until its socket closes.
#[derive(Debug, Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

impl Link {
    /// Starts the link task over `io`. `leftover` holds bytes read past the handshake.
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
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link {
            inner: Arc::new(Inner {
                commands: tx,
                next_stream: AtomicU64::new(1),
                send_initial_window: settings.send_initial_window,
            }),
        };
        let ping = settings.ping_interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        let task = Task {
            io,
            rbuf: leftover,
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            commands: rx,
            streams: HashMap::new(),
            highest_stream: 0,
            settings,
            control,
            link: link.clone(),
            ping,
            missed_pongs: 0,
            pings_sent: 0,
        };
        let handle = tokio::spawn(task.run());
        (link, handle)
    }

    /// Opens a stream with `request` (its `stream` field is assigned here). Hub side.
    pub fn open(&self, mut request: Request) -> Result<Stream, LinkError> {
        let id = self.inner.next_stream.fetch_add(1, Ordering::Relaxed);
        request.stream = id;
        let shared = Shared::new(self.inner.send_initial_window);
        self.queue(Command::Open {
            id,
            shared: shared.clone(),
            frame: Frame::Request(request),
        })?;
        Ok(Stream {
            id,
            shared,
            link: self.clone(),
        })
    }

    /// Queues a frame. If the link is gone the frame is dropped: whoever waits on the link
    /// hears of its end through its streams or its `Control`.
    pub fn send(&self, frame: Frame) {
        let _ = self.inner.commands.send(Command::Frame(frame));
    }

    /// Sends CLOSE and ends the link.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        let _ = self.inner.commands.send(Command::Close {
            code,
            reason: reason.into(),
        });
    }

    /// Whether the link task has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }

    pub(crate) fn queue(&self, cmd: Command) -> Result<(), LinkError> {
        self.inner
            .commands
            .send(cmd)
            .map_err(|_| LinkError::Closed {
                code: CloseCode::Normal,
                reason: "link ended".into(),
            })
    }
}

struct Entry {
    shared: Arc<Shared>,
    /// What the peer may still send us on this stream.
    recv_window: Window,
}

struct Task<S, C> {
    io: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    commands: mpsc::UnboundedReceiver<Command>,
    streams: HashMap<u64, Entry>,
    /// Highest stream id seen (worker) or opened (hub): ids at or below it that are not in
    /// `streams` have ended, and late frames for them are dropped.
    highest_stream: u64,
    settings: Settings,
    control: C,
    link: Link,
    ping: Option<Interval>,
    missed_pongs: u32,
    pings_sent: u64,
}

impl<S, C> Task<S, C>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    C: Control,
{
    async fn run(mut self) -> LinkError {
        // Bytes that arrived with the handshake may already hold whole frames.
        let err = match self.decode_all() {
            Ok(()) => poll_fn(|cx| self.poll_run(cx)).await,
            Err(e) => e,
        };
        if let LinkError::Protocol(why) = &err {
            tracing::warn!(error = %why, "closing link: protocol error");
            encode(
                &Frame::Close {
                    code: CloseCode::ProtocolError,
                    reason: why.clone(),
                },
                &mut self.wbuf,
            );
        }
        if !self.wbuf.is_empty() {
            let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, self.io.write_all(&self.wbuf)).await;
        }
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, self.io.shutdown()).await;
        self.commands.close();
        for (_, entry) in self.streams.drain() {
            entry.shared.reset(&err);
        }
        self.control.on_closed(&err);
        err
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<LinkError> {
        for _ in 0..POLL_BUDGET {
            match self.poll_once(cx) {
                Ok(true) => continue,
                Ok(false) => return Poll::Pending,
                Err(e) => return Poll::Ready(e),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round: read, take commands, write, tick. Returns whether anything happened.
    fn poll_once(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError> {
        let mut progressed = false;

        if self.wbuf.len() < WRITE_HIGH_WATER {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => return Err(LinkError::Eof),
                Poll::Ready(Ok(_)) => {
                    progressed = true;
                    self.decode_all()?;
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => {}
            }
        }

        while self.wbuf.len() < WRITE_HIGH_WATER {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    progressed = true;
                    self.on_command(cmd)?;
                }
                // The task holds a sender through `self.link`, so this does not happen.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into())
                }
                Poll::Ready(Ok(n)) => {
                    progressed = true;
                    self.wbuf.advance(n);
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => break,
            }
        }
        if self.wbuf.is_empty() {
            // Keep the write buffer's allocation but let a burst's growth go.
            if self.wbuf.capacity() > 4 * WRITE_HIGH_WATER {
                self.wbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            // Stream sockets need no flush; TLS and buffered transports do.
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                return Err(e.into());
            }
        }

        if let Some(ping) = &mut self.ping {
            if ping.poll_tick(cx).is_ready() {
                progressed = true;
                if self.missed_pongs >= MAX_MISSED_PONGS {
                    return Err(LinkError::Timeout(self.missed_pongs));
                }
                self.missed_pongs += 1;
                self.pings_sent += 1;
                encode(
                    &Frame::Ping {
                        opaque: self.pings_sent,
                    },
                    &mut self.wbuf,
                );
            }
        }
        Ok(progressed)
    }

    fn decode_all(&mut self) -> Result<(), LinkError> {
        while let Some(frame) = decode(&mut self.rbuf, self.settings.recv_max_frame)
            .map_err(|e| LinkError::Protocol(e.to_string()))?
        {
            self.on_frame(frame)?;
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), LinkError> {
        let role = self.settings.role;
        match frame {
            Frame::Body { stream, data, end } => {
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                entry
                    .recv_window
                    .consume(data.len())
                    .map_err(|e| LinkError::Protocol(format!("stream {stream}: {e}")))?;
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
                    entry.shared.grant_send(increment);
                }
            }
            Frame::Response(r) if role == Role::Hub => {
                let (stream, end) = (r.stream, r.end);
                let Some(entry) = self.known_stream(stream)? else {
                    return Ok(());
                };
                entry.shared.push(Inbound::Frame(Frame::Response(r)));
                if end {
                    self.finish(stream);
                }
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
                    },
                );
                let stream = Stream {
                    id: r.stream,
                    shared,
                    link: self.link.clone(),
                };
                self.control
                    .on_request(&self.link, stream, r)
                    .map_err(LinkError::Protocol)?;
            }
            Frame::Ping { opaque } => encode(&Frame::Pong { opaque }, &mut self.wbuf),
            Frame::Pong { .. } => self.missed_pongs = 0,
            Frame::Close { code, reason } => return Err(LinkError::PeerClosed { code, reason }),
            f @ (Frame::Credit { .. } | Frame::Drain { .. }) => {
                self.control
                    .on_frame(&self.link, f)
                    .map_err(LinkError::Protocol)?;
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
                    },
                );
                encode(&frame, &mut self.wbuf);
            }
            Command::Frame(frame) => {
                let id = frame.stream();
                if id == 0 {
                    encode(&frame, &mut self.wbuf);
                    return Ok(());
                }
                // Frames for a stream that has ended are no longer wanted by the peer.
                let Some(entry) = self.streams.get_mut(&id) else {
                    return Ok(());
                };
                if let Frame::Window { increment, .. } = frame {
                    entry
                        .recv_window
                        .grant(increment)
                        .map_err(|e| LinkError::Protocol(format!("local window grant: {e}")))?;
                }
                let ends_response = self.settings.role == Role::Worker
                    && matches!(
                        frame,
                        Frame::Response(pullman_proto::Response { end: true, .. })
                            | Frame::Body { end: true, .. }
                            | Frame::Reject { .. }
                    );
                encode(&frame, &mut self.wbuf);
                if ends_response {
                    self.finish(id);
                }
            }
            Command::Close { code, reason } => {
                encode(
                    &Frame::Close {
                        code,
                        reason: reason.clone(),
                    },
                    &mut self.wbuf,
                );
                return Err(LinkError::Closed { code, reason });
            }
        }
        Ok(())
    }
}
