//! Frames over shared-memory rings: the [`Transport`] for a worker on the same host.
//!
//! Each frame's header travels in a ring descriptor and its payload (the same bytes as on
//! the stream protocol) inline or in the sender's arena. Received payloads borrow the
//! peer's arena where the channel allows it (the worker side), so a request's head and body
//! reach the handler without a copy. The Unix socket the link was negotiated on stays open
//! and silent: its end is how each side learns that the other died.
//!
//! Waiting: with nothing to read the task first spins for a short, adaptive while (yielding
//! to the runtime, no system call), then announces that it sleeps and waits on its eventfd.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pullman_proto::frame::FLAG_END;
use pullman_proto::{decode_payload, encode, EncodeError, Frame, FrameType, FRAME_HEADER_LEN};
use pullman_shm::{AsyncBell, Bell, Channel, ShmError};
use tokio::io::AsyncWrite;
use tokio::net::UnixStream;

use crate::error::{LinkError, PushError};
use crate::transport::Transport;

/// Largest frame payload on a shared-memory link, both ways: one arena region. A REQUEST
/// (head at most 96 KiB) and a BODY chunk (64 KiB) fit.
pub const SHM_MAX_FRAME: u32 = pullman_shm::layout::BLOCK_LEN as u32;

/// Default longest spin before sleeping: about one wake-up's cost. A peer that answers within
/// it is served without any system call on either side.
const DEFAULT_MAX_SPIN: Duration = Duration::from_micros(50);
/// Largest spin `PULLMAN_SHM_SPIN_US` may ask for: past a millisecond, spinning is burning a
/// core, not saving a wake-up.
const SPIN_LIMIT: Duration = Duration::from_millis(1);
/// Shortest spin once adapted down: a link whose peer never answers that fast stops spinning
/// almost at once.
const MIN_SPIN: Duration = Duration::from_micros(2);

/// The longest spin: `PULLMAN_SHM_SPIN_US` (0 = never spin: on a machine with fewer cores
/// than busy threads, spinning takes CPU from the peer it waits for), else the default.
fn max_spin() -> Duration {
    std::env::var("PULLMAN_SHM_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_MAX_SPIN, |us| {
            Duration::from_micros(us).min(SPIN_LIMIT)
        })
}

/// How long to spin, learnt from how soon frames come after the spin gives up. The clock is
/// read once per dry spell, not per frame: a busy link receives many frames between reads.
#[derive(Debug)]
struct Spin {
    max: Duration,
    window: Duration,
    /// When the ring last ran dry with the task awake, if it has since the last frame.
    dry_since: Option<Instant>,
    slept_at: Option<Instant>,
}

impl Spin {
    fn frame(&mut self) {
        self.dry_since = None;
        if let Some(slept) = self.slept_at.take() {
            // A frame soon after giving up: spinning longer would have caught it.
            self.window = if slept.elapsed() < self.max {
                (self.window * 2).max(MIN_SPIN).min(self.max)
            } else {
                (self.window / 2).max(MIN_SPIN).min(self.max)
            };
        }
    }

    /// The ring is empty: whether to poll it again rather than sleep.
    fn keep_spinning(&mut self) -> bool {
        if self.slept_at.is_some() {
            return false;
        }
        let now = Instant::now();
        now - *self.dry_since.get_or_insert(now) < self.window
    }

    fn sleep(&mut self) {
        self.slept_at.get_or_insert_with(Instant::now);
    }
}

/// A link's frames over a [`Channel`], with its doorbell and its liveness socket.
#[derive(Debug)]
pub struct ShmTransport {
    channel: Channel,
    bell: AsyncBell,
    socket: UnixStream,
    /// Frames that found no room yet, in order; bounded by the link's high-water mark.
    pending: VecDeque<Outgoing>,
    pending_bytes: usize,
    /// Bytes written to the ring but not yet published.
    unpublished: usize,
    /// Frames ever pushed, frames ever written to the ring, and how many of those were
    /// published: the marks (frames go to the ring in the order they are pushed).
    pushed: u64,
    put: u64,
    published: u64,
    scratch: BytesMut,
    max_frame: u32,
    spin: Spin,
    shut_down: bool,
}

fn shm_error(e: ShmError) -> LinkError {
    match e {
        ShmError::Peer(why) => LinkError::Protocol(why),
        ShmError::Io(e) => e.into(),
        other => io::Error::other(other).into(),
    }
}

/// A frame on its way to the ring: a body's data as it came, any other frame encoded
/// (header and payload) when it was pushed, so that it is checked once, then.
#[derive(Debug)]
enum Outgoing {
    Body { stream: u64, data: Bytes, end: bool },
    Encoded(Bytes),
}

/// What a frame other than BODY counts for against the link's high-water mark: heads and
/// control frames are small and few, so a nominal size does.
const HEAD_WEIGHT: usize = 64;

impl Outgoing {
    /// What the frame counts for against the link's high-water mark: a body's data bytes.
    fn weight(&self) -> usize {
        match self {
            Outgoing::Body { data, .. } => data.len(),
            Outgoing::Encoded(_) => HEAD_WEIGHT,
        }
    }
}

/// Writes an encoded frame to the ring: its header fields into the descriptor, its payload
/// after them. `false` if there is no room yet.
fn put_encoded(channel: &mut Channel, frame: &[u8]) -> Result<bool, ShmError> {
    let h = &frame[..FRAME_HEADER_LEN];
    let stream = u64::from_be_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
    channel.try_send(h[4], h[5], stream, &frame[FRAME_HEADER_LEN..])
}

impl ShmTransport {
    /// A transport over `channel`, woken by `bell`, watching `socket` for the peer's end.
    /// `max_frame` bounds payloads both ways (both ends of a shared-memory link use
    /// [`SHM_MAX_FRAME`], one arena block). Must be called inside a tokio runtime.
    pub fn new(
        channel: Channel,
        bell: Bell,
        socket: UnixStream,
        max_frame: u32,
    ) -> io::Result<ShmTransport> {
        let bell = AsyncBell::new(bell)?;
        Ok(ShmTransport {
            channel,
            bell,
            socket,
            pending: VecDeque::new(),
            pending_bytes: 0,
            unpublished: 0,
            pushed: 0,
            put: 0,
            published: 0,
            scratch: BytesMut::with_capacity(1024),
            max_frame,
            spin: Spin {
                max: max_spin(),
                window: max_spin(),
                dry_since: None,
                slept_at: None,
            },
            shut_down: false,
        })
    }

    /// Puts one frame on the ring; `false` if there is no room yet.
    fn try_put(&mut self, frame: &Outgoing) -> Result<bool, LinkError> {
        let put = match frame {
            Outgoing::Body { stream, data, end } => {
                let flags = if *end { FLAG_END } else { 0 };
                self.channel
                    .try_send(FrameType::Body as u8, flags, *stream, data)
            }
            Outgoing::Encoded(bytes) => put_encoded(&mut self.channel, bytes),
        }
        .map_err(shm_error)?;
        if put {
            self.went(frame.weight());
        }
        Ok(put)
    }

    /// A frame of `weight` went to the ring.
    fn went(&mut self, weight: usize) {
        self.unpublished += weight;
        self.put += 1;
    }

    /// Announces sleep and registers for the doorbell. `Ok(true)`: parked, the task will be
    /// woken. `Ok(false)`: something changed, poll again.
    fn park(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError> {
        if !self.channel.announce_sleep().map_err(shm_error)? {
            return Ok(false);
        }
        match self.bell.poll_rung(cx) {
            Poll::Ready(Ok(())) => Ok(false),
            Poll::Ready(Err(e)) => Err(e.into()),
            Poll::Pending => Ok(true),
        }
    }

    /// Checks the socket: the peer closing it is the peer's end; bytes on it break the
    /// protocol (everything travels through the rings now).
    fn poll_socket(&mut self, cx: &mut Context<'_>) -> Result<(), LinkError> {
        while self.socket.poll_read_ready(cx).is_ready() {
            let mut byte = [0u8; 1];
            match self.socket.try_read(&mut byte) {
                Ok(0) => return Err(LinkError::Eof),
                Ok(_) => {
                    return Err(LinkError::Protocol(
                        "bytes on the socket of a shared-memory link".into(),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Transport for ShmTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, LinkError>> {
        self.channel.wake_up();
        match self.channel.try_recv() {
            Ok(Some(r)) => {
                self.spin.frame();
                if r.payload.len() > self.max_frame as usize {
                    return Poll::Ready(Err(LinkError::Protocol(format!(
                        "frame of {} bytes, more than the agreed {}",
                        r.payload.len(),
                        self.max_frame
                    ))));
                }
                return Poll::Ready(
                    decode_payload(r.kind, r.flags, r.stream, r.payload)
                        .map_err(|e| LinkError::Protocol(e.to_string())),
                );
            }
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(shm_error(e))),
        }
        if let Err(e) = self.poll_socket(cx) {
            return Poll::Ready(Err(e));
        }
        if self.spin.keep_spinning() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.spin.sleep();
        match self.park(cx) {
            Ok(true) => {}
            Ok(false) => cx.waker().wake_by_ref(),
            Err(e) => return Poll::Ready(Err(e)),
        }
        Poll::Pending
    }

    fn push(&mut self, frame: Frame) -> Result<(), PushError> {
        let out = match frame {
            Frame::Body { stream, data, end } => {
                if data.len() > self.max_frame as usize {
                    return Err(PushError::Unencodable(EncodeError::TooLarge {
                        kind: FrameType::Body,
                        len: data.len(),
                        max: self.max_frame,
                    }));
                }
                self.pushed += 1;
                let out = Outgoing::Body { stream, data, end };
                if self.pending.is_empty() && self.try_put(&out)? {
                    return Ok(());
                }
                out
            }
            other => {
                self.scratch.clear();
                encode(&other, &mut self.scratch, self.max_frame)
                    .map_err(PushError::Unencodable)?;
                self.pushed += 1;
                // Straight from the scratch buffer when the ring has room, as it nearly
                // always has; only a frame that must wait is copied out of it.
                if self.pending.is_empty()
                    && put_encoded(&mut self.channel, &self.scratch).map_err(shm_error)?
                {
                    self.went(HEAD_WEIGHT);
                    return Ok(());
                }
                Outgoing::Encoded(Bytes::copy_from_slice(&self.scratch))
            }
        };
        self.pending_bytes += out.weight();
        self.pending.push_back(out);
        Ok(())
    }

    fn peer_max_frame(&self) -> u32 {
        self.max_frame
    }

    fn queued(&self) -> usize {
        self.pending_bytes + self.unpublished
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError> {
        self.channel.reclaim().map_err(shm_error)?;
        while let Some(frame) = self.pending.pop_front() {
            if !self.try_put(&frame)? {
                self.pending.push_front(frame);
                break;
            }
            self.pending_bytes -= frame.weight();
        }
        let published = self.channel.publish();
        self.unpublished = 0;
        self.published = self.put;
        if !self.pending.is_empty() && !self.park(cx)? {
            cx.waker().wake_by_ref();
        }
        Ok(published)
    }

    fn pushed_mark(&self) -> u64 {
        self.pushed
    }

    fn handed_over(&self) -> u64 {
        self.published
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shut_down {
            match self.poll_send(cx) {
                Ok(_) if !self.pending.is_empty() => return Poll::Pending,
                _ => self.shut_down = true,
            }
        }
        Pin::new(&mut self.socket).poll_shutdown(cx).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body::Body;
    use pullman_proto::{HeadBuilder, Mode, Request, Version, DEFAULT_INITIAL_WINDOW};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::{Control, ControlError, Inbound, Link, RecvBody, Role, Settings, Stream};

    /// Hang guard only: nothing here depends on timing.
    const PATIENCE: Duration = Duration::from_secs(30);

    struct Record(mpsc::UnboundedSender<Result<(Stream, Request), LinkError>>);

    impl Control for Record {
        fn on_frame(&mut self, _link: &Link, _frame: Frame) -> Result<(), ControlError> {
            Ok(())
        }
        fn on_request(
            &mut self,
            _link: &Link,
            stream: Stream,
            r: Request,
        ) -> Result<(), ControlError> {
            let _ = self.0.send(Ok((stream, r)));
            Ok(())
        }
        fn on_closed(&mut self, err: &LinkError) {
            let _ = self.0.send(Err(err.clone()));
        }
    }

    type Events = mpsc::UnboundedReceiver<Result<(Stream, Request), LinkError>>;

    fn settings(role: Role) -> Settings {
        Settings {
            role,
            recv_max_frame: SHM_MAX_FRAME,
            send_max_frame: pullman_proto::MAX_FRAME_LIMIT,
            recv_initial_window: DEFAULT_INITIAL_WINDOW,
            send_initial_window: DEFAULT_INITIAL_WINDOW,
            ping_interval: None,
        }
    }

    struct End {
        link: Link,
        task: JoinHandle<LinkError>,
        events: Events,
    }

    fn start(transport: ShmTransport, role: Role) -> End {
        let (tx, events) = mpsc::unbounded_channel();
        let (link, task) = Link::spawn_on(transport, settings(role), Record(tx));
        End { link, task, events }
    }

    fn transports() -> (ShmTransport, ShmTransport) {
        let (hub, hub_bell, fds) = pullman_shm::create().unwrap();
        let (worker, worker_bell) = pullman_shm::open(fds.into()).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let max = SHM_MAX_FRAME;
        (
            ShmTransport::new(hub, hub_bell, a, max).unwrap(),
            ShmTransport::new(worker, worker_bell, b, max).unwrap(),
        )
    }

    fn request() -> Request {
        let mut head = HeadBuilder::new(Version::Http11, b"POST", b"/upload", 1);
        head.header(b"host", b"example.com").unwrap();
        Request {
            stream: 0,
            end: false,
            deadline_ms: 0,
            mode: Mode::Respond,
            peer: "127.0.0.1:1".into(),
            tls: false,
            head: head.finish(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_body_larger_than_the_arena_crosses_borrowed_and_flow_controlled() {
        let (hub_t, worker_t) = transports();
        let hub = start(hub_t, Role::Hub);
        let mut worker = start(worker_t, Role::Worker);
        const LEN: usize = 9 * 1024 * 1024 + 7; // more than two arenas' worth
        let mut stream = hub.link.open(request()).unwrap();
        let sender = stream.sender();
        let upload = tokio::spawn(async move {
            let body: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            sender.send_data(Bytes::from(body), true).await
        });

        let (wstream, req) = tokio::time::timeout(PATIENCE, worker.events.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // The head the worker reads lies in the hub's arena, mapped here: no copy.
        assert!(pullman_shm::is_shared_memory(req.head.as_block().as_ptr()));
        assert_eq!(req.head.target(), b"/upload");
        let sender = wstream.sender();
        let mut body = RecvBody::new(wstream, None);
        let (mut got, mut borrowed, mut chunks) = (0usize, 0usize, 0usize);
        while let Some(frame) = tokio::time::timeout(
            PATIENCE,
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .unwrap()
        {
            let data = frame.unwrap().into_data().unwrap();
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, ((got + i) % 251) as u8, "byte {}", got + i);
            }
            got += data.len();
            // Payloads of up to 16 bytes travel inside the descriptor (the last 7 here).
            if data.len() > pullman_shm::layout::INLINE_MAX {
                chunks += 1;
                borrowed += pullman_shm::is_shared_memory(data.as_ptr()) as usize;
            }
        }
        assert_eq!(got, LEN);
        assert_eq!(borrowed, chunks, "every chunk read in place");
        tokio::time::timeout(PATIENCE, upload)
            .await
            .unwrap()
            .unwrap()
            .unwrap();

        sender.send_frame(Frame::Response(pullman_proto::Response {
            stream: sender.id(),
            end: false,
            status: 200,
            headers: vec![(Bytes::from_static(b"x-a"), Bytes::from_static(b"b"))],
        }));
        sender
            .send_data(Bytes::from_static(b"done, thank you"), true)
            .await
            .unwrap();
        match tokio::time::timeout(PATIENCE, stream.recv()).await.unwrap() {
            Inbound::Frame(Frame::Response(r)) => assert_eq!(r.status, 200),
            other => panic!("expected RESPONSE, got {other:?}"),
        }
        match tokio::time::timeout(PATIENCE, stream.recv()).await.unwrap() {
            Inbound::Data(d) => assert_eq!(&d[..], b"done, thank you"),
            other => panic!("expected data, got {other:?}"),
        }
        drop(hub);
    }

    /// Many streams echoing large bodies both ways at once: both arenas and both rings fill
    /// and drain over and over, so a lost wake-up would hang here (the guard turns a hang
    /// into a failure).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_echoes_fill_and_drain_both_arenas_without_losing_a_byte() {
        const STREAMS: usize = 40;
        const LEN: usize = 700 * 1024 + 3;
        let (hub_t, worker_t) = transports();
        let hub = start(hub_t, Role::Hub);
        let mut worker = start(worker_t, Role::Worker);
        let echo = tokio::spawn(async move {
            let mut served = Vec::new();
            for _ in 0..STREAMS {
                let (stream, _req) = worker.events.recv().await.unwrap().unwrap();
                served.push(tokio::spawn(async move {
                    let sender = stream.sender();
                    sender.send_frame(Frame::Response(pullman_proto::Response {
                        stream: sender.id(),
                        end: false,
                        status: 200,
                        headers: Vec::new(),
                    }));
                    let mut body = RecvBody::new(stream, None);
                    while let Some(frame) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                        let data = frame.unwrap().into_data().unwrap();
                        // Echoed as it came: a borrowed chunk of the hub's arena is copied
                        // into ours, then released.
                        sender.send_data(data, false).await.unwrap();
                    }
                    sender.send_data(Bytes::new(), true).await.unwrap();
                }));
            }
            for s in served {
                s.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for n in 0..STREAMS {
            let mut stream = hub.link.open(request()).unwrap();
            clients.push(tokio::spawn(async move {
                let body: Vec<u8> = (0..LEN).map(|i| (i * 7 + n) as u8).collect();
                let sender = stream.sender();
                let upload = {
                    let body = Bytes::from(body.clone());
                    tokio::spawn(async move { sender.send_data(body, true).await })
                };
                let mut back = Vec::with_capacity(LEN);
                loop {
                    match stream.recv().await {
                        Inbound::Frame(Frame::Response(_)) => {}
                        Inbound::Data(d) => {
                            back.extend_from_slice(&d);
                            stream.release(d.len());
                        }
                        Inbound::End => break,
                        other => panic!("stream {n}: {other:?}"),
                    }
                }
                upload.await.unwrap().unwrap();
                assert!(back == body, "stream {n}: echo differs");
            }));
        }
        tokio::time::timeout(PATIENCE, async {
            for c in clients {
                c.await.unwrap();
            }
            echo.await.unwrap();
        })
        .await
        .expect("echoes hung: a wake-up was lost");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_peer_is_noticed_through_its_socket() {
        let (hub_t, worker_t) = transports();
        let hub = start(hub_t, Role::Hub);
        let mut stream = hub.link.open(request()).unwrap();
        // The worker process dies: its socket closes, its mappings go.
        drop(worker_t);
        let err = tokio::time::timeout(PATIENCE, hub.task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(err, LinkError::Eof), "{err:?}");
        assert!(matches!(
            tokio::time::timeout(PATIENCE, stream.recv()).await.unwrap(),
            Inbound::Reset(LinkError::Eof) | Inbound::Undelivered(LinkError::Eof)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_that_does_not_decode_closes_the_link() {
        let (hub, hub_bell, fds) = pullman_shm::create().unwrap();
        let (mut worker, _worker_bell) = pullman_shm::open(fds.into()).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let end = start(
            ShmTransport::new(hub, hub_bell, a, 1 << 17).unwrap(),
            Role::Hub,
        );
        // A hostile worker: a frame of an unknown type.
        assert!(worker.try_send(0xff, 0, 0, &[0; 40]).unwrap());
        worker.publish();
        let err = tokio::time::timeout(PATIENCE, end.task)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&err, LinkError::Protocol(why) if why.contains("unknown")),
            "{err:?}"
        );
        // Its last words went through the ring.
        let close = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(r) = worker.try_recv().unwrap() {
                    return r;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(close.kind, FrameType::Close as u8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_on_the_socket_of_a_shm_link_close_it() {
        use tokio::io::AsyncWriteExt;
        let (hub, hub_bell, _fds) = pullman_shm::create().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let t = ShmTransport::new(hub, hub_bell, a, 1024).unwrap();
        let end = start(t, Role::Hub);
        b.write_all(b"x").await.unwrap();
        let err = tokio::time::timeout(PATIENCE, end.task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(err, LinkError::Protocol(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_larger_than_an_arena_block_fails_only_its_stream() {
        let (hub_t, worker_t) = transports();
        let hub = start(hub_t, Role::Hub);
        let mut worker = start(worker_t, Role::Worker);
        let mut bodiless = request();
        bodiless.end = true;
        let mut doomed = hub.link.open(bodiless.clone()).unwrap();
        let (wstream, _) = tokio::time::timeout(PATIENCE, worker.events.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // A header value the wire can say (a u32 length) but no arena block can hold: the
        // channel used to refuse it as an error of the whole link.
        wstream
            .sender()
            .send_frame(Frame::Response(pullman_proto::Response {
                stream: wstream.id(),
                end: true,
                status: 200,
                headers: vec![(
                    Bytes::from_static(b"x-big"),
                    Bytes::from(vec![b'v'; SHM_MAX_FRAME as usize]),
                )],
            }));
        match tokio::time::timeout(PATIENCE, doomed.recv()).await.unwrap() {
            Inbound::Frame(Frame::Reject { retryable, .. }) => assert!(!retryable),
            other => panic!("expected REJECT, got {other:?}"),
        }

        let mut next = hub.link.open(bodiless).unwrap();
        let (wstream, _) = tokio::time::timeout(PATIENCE, worker.events.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        wstream
            .sender()
            .send_frame(Frame::Response(pullman_proto::Response {
                stream: wstream.id(),
                end: true,
                status: 204,
                headers: Vec::new(),
            }));
        match tokio::time::timeout(PATIENCE, next.recv()).await.unwrap() {
            Inbound::Frame(Frame::Response(r)) => assert_eq!(r.status, 204),
            other => panic!("expected RESPONSE, got {other:?}"),
        }
    }
}
