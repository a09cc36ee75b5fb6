//! A stand-in hub that times link round trips: it plays the hub's end of one worker link
//! (with `pullman-link`, as the hub does) against a real `pullman worker --app demo`
//! process, so the figure is the transport's (and the two link tasks' and the handler's)
//! and nothing of HTTP's.
//!
//! A round trip runs from handing the link a REQUEST for `POST /sink` and its body until the
//! response's last byte has arrived at this end, one request at a time. The handshake is
//! the hub's: HELLO, WELCOME, and for shared memory the same [`ShmOffer`] the hub's worker
//! port uses (arenas, doorbells, SCM_RIGHTS).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pullman_link::handshake::{recv_frame, recv_preface, send_frame};
use pullman_link::{
    Control, ControlError, Inbound, Link, LinkError, Role, Settings, ShmOffer, SHM_MAX_FRAME,
};
use pullman_proto::handshake::negotiate_version;
use pullman_proto::{
    Frame, HeadBuilder, Hello, Mode, Opening, Request, Version, Welcome, DEFAULT_INITIAL_WINDOW,
    DEFAULT_MAX_FRAME, FEATURE_SHM, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::load::{new_histogram, LoadResult};
use crate::peers::process::Proc;
use crate::peers::Env;
use crate::procstat::ProcessTree;

/// How long the worker has to dial in and finish its handshake, and a round trip to finish:
/// hang guards only, far above anything a working link takes.
const GUARD: Duration = Duration::from_secs(30);
/// Credits held at most: the demo worker grants its concurrency (64 in the scenario), and a
/// worker that grants absurdly many must not grow a semaphore without bound.
const MAX_CREDITS: usize = 1 << 16;
/// Concurrency the worker is started with: one request at a time needs one credit, and a
/// second keeps a credit on hand while the first one's replacement is on its way.
const WORKER_CONCURRENCY: usize = 2;

/// The transports a link round trip can run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTransport {
    Tcp,
    Unix,
    /// A Unix socket for the handshake, then shared-memory rings.
    Shm,
}

impl LinkTransport {
    pub fn label(self) -> &'static str {
        match self {
            LinkTransport::Tcp => "TCP",
            LinkTransport::Unix => "Unix",
            LinkTransport::Shm => "shm",
        }
    }
}

/// The hub's end of a link to one worker process.
#[derive(Debug)]
pub struct LinkHub {
    link: Link,
    credits: Arc<Semaphore>,
    worker: Proc,
    _dir: tempfile::TempDir,
}

/// Credits feed the semaphore; nothing else is expected.
struct Credits(Arc<Semaphore>);

impl Control for Credits {
    fn on_frame(&mut self, _link: &Link, frame: Frame) -> Result<(), ControlError> {
        if let Frame::Credit { n } = frame {
            let room = MAX_CREDITS.saturating_sub(self.0.available_permits());
            self.0.add_permits((n as usize).min(room));
        }
        Ok(())
    }

    fn on_closed(&mut self, _err: &LinkError) {
        self.0.close();
    }
}

impl LinkHub {
    /// Listens (127.0.0.1:0 or a socket in a temp dir), starts `pullman worker --app demo`
    /// dialling it, and runs the hub's handshake. Must run inside a tokio runtime.
    pub async fn start(env: &Env, transport: LinkTransport) -> Result<LinkHub, Error> {
        let dir = tempfile::tempdir()?;
        let name = format!("link hub ({})", transport.label());
        let mut cmd = Command::new(env.pullman_bin());
        cmd.args(["worker", "--pool", "bench", "--token", "bench"])
            .args(["--concurrency", &WORKER_CONCURRENCY.to_string()])
            .args(["--threads", "1", "--app", "demo", "--name", "linkrt"])
            .args((transport == LinkTransport::Shm).then_some("--shm"))
            .env("PULLMAN_LOG", "warn");
        let log = dir.path().join("worker.log");
        let guarded = |e| Error::peer(&name, format!("worker: {e}"));
        let (link, credits, worker) = match transport {
            LinkTransport::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                cmd.arg("--hub")
                    .arg(format!("tcp://{}", listener.local_addr()?));
                let worker = Proc::spawn(&name, cmd, &log)?;
                let (mut io, _) = within(listener.accept()).await.map_err(guarded)??;
                io.set_nodelay(true)?;
                let (hello, buf) = greet(&mut io).await.map_err(guarded)?;
                let welcome = welcome(&hello, DEFAULT_MAX_FRAME, 0).map_err(guarded)?;
                send_frame(&mut io, &welcome)
                    .await
                    .map_err(|e| guarded(e.to_string()))?;
                let credits = Arc::new(Semaphore::new(0));
                let settings = settings(&hello, DEFAULT_MAX_FRAME);
                let (link, _) = Link::spawn(io, buf, settings, Credits(credits.clone()));
                (link, credits, worker)
            }
            LinkTransport::Unix | LinkTransport::Shm => {
                let path = dir.path().join("worker.sock");
                let listener = UnixListener::bind(&path)?;
                cmd.arg("--hub").arg(format!("unix://{}", path.display()));
                let worker = Proc::spawn(&name, cmd, &log)?;
                let (mut io, _) = within(listener.accept()).await.map_err(guarded)??;
                let (hello, buf) = greet(&mut io).await.map_err(guarded)?;
                let credits = Arc::new(Semaphore::new(0));
                let link = if hello.features & FEATURE_SHM != 0 {
                    if !buf.is_empty() {
                        return Err(guarded("frames after HELLO".into()));
                    }
                    let welcome = welcome(&hello, SHM_MAX_FRAME, FEATURE_SHM).map_err(guarded)?;
                    let offer = ShmOffer::new().map_err(|e| guarded(e.to_string()))?;
                    let t = within(offer.send(io, &welcome))
                        .await
                        .map_err(guarded)?
                        .map_err(|e| guarded(e.to_string()))?;
                    let settings = settings(&hello, SHM_MAX_FRAME);
                    Link::spawn_on(t, settings, Credits(credits.clone())).0
                } else {
                    let welcome = welcome(&hello, DEFAULT_MAX_FRAME, 0).map_err(guarded)?;
                    send_frame(&mut io, &welcome)
                        .await
                        .map_err(|e| guarded(e.to_string()))?;
                    let settings = settings(&hello, DEFAULT_MAX_FRAME);
                    Link::spawn(io, buf, settings, Credits(credits.clone())).0
                };
                (link, credits, worker)
            }
        };
        Ok(LinkHub {
            link,
            credits,
            worker,
            _dir: dir,
        })
    }

    /// The worker process, for its CPU time.
    pub fn worker(&self) -> ProcessTree {
        ProcessTree::new(self.worker.pid())
    }

    /// One `POST /sink` with `body`: from handing the REQUEST to the link until the
    /// response's last byte arrived. Waits for a credit first (not timed).
    pub async fn round_trip(&self, body: &Bytes) -> Result<Duration, Error> {
        let fail = |why: String| Error::peer("link round trip", why);
        let permit = within(self.credits.acquire())
            .await
            .map_err(fail)?
            .map_err(|_| fail("the link ended".into()))?;
        permit.forget();
        let request = sink_request(body.len());
        let started = Instant::now();
        let mut stream = self.link.open(request).map_err(|e| fail(e.to_string()))?;
        let sender = stream.sender();
        let exchange = async {
            tokio::join!(sender.send_data(body.clone(), true), async {
                let mut status = None;
                loop {
                    match stream.recv().await {
                        Inbound::Frame(Frame::Response(r)) => status = Some(r.status),
                        Inbound::Data(d) => stream.release(d.len()),
                        Inbound::End => return Ok(status),
                        other => return Err(format!("{other:?}")),
                    }
                }
            })
        };
        let (sent, answer) = within(exchange).await.map_err(fail)?;
        let elapsed = started.elapsed();
        sent.map_err(|e| fail(format!("sending the body: {e}")))?;
        match answer {
            Ok(Some(200)) => Ok(elapsed),
            Ok(status) => Err(fail(format!("status {status:?}"))),
            Err(why) => Err(fail(why)),
        }
    }

    /// Round trips with `body` back to back for `secs`, after `warm_up` untimed ones.
    pub async fn run(
        &self,
        body: &Bytes,
        secs: Duration,
        warm_up: usize,
    ) -> Result<LoadResult, Error> {
        for _ in 0..warm_up {
            self.round_trip(body).await?;
        }
        let mut hist = new_histogram();
        let began = Instant::now();
        while began.elapsed() < secs {
            let took = self.round_trip(body).await?;
            hist.saturating_record((took.as_micros() as u64).max(1));
        }
        Ok(LoadResult::from_histogram(
            hist,
            began.elapsed().as_secs_f64(),
        ))
    }
}

async fn within<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    tokio::time::timeout(GUARD, f)
        .await
        .map_err(|_| format!("nothing within {GUARD:?}"))
}

/// Reads the connection preface and HELLO; what was read past it stays in the buffer for
/// the link.
async fn greet<S>(io: &mut S) -> Result<(Hello, BytesMut), String>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    match within(recv_preface(io, &mut buf)).await? {
        Ok(Opening::Preface) => {}
        Ok(other) => return Err(format!("expected the connection preface, got {other:?}")),
        Err(e) => return Err(e.to_string()),
    }
    match within(recv_frame(io, &mut buf, HANDSHAKE_MAX_FRAME)).await? {
        Ok(Frame::Hello(h)) => Ok((h, buf)),
        Ok(other) => Err(format!("expected HELLO, got {:?}", other.frame_type())),
        Err(e) => Err(e.to_string()),
    }
}

fn welcome(hello: &Hello, max_frame: u32, features: u32) -> Result<Frame, String> {
    let version = negotiate_version(
        (PROTOCOL_VERSION, PROTOCOL_VERSION),
        (hello.min_version, hello.max_version),
    )
    .ok_or("no common protocol version")?;
    Ok(Frame::Welcome(Welcome {
        version,
        max_frame,
        initial_window: DEFAULT_INITIAL_WINDOW,
        features,
        worker_id: 1,
        ping_interval_ms: 0,
    }))
}

/// The hub's settings, without pings: a round trip must not share the link with them.
fn settings(hello: &Hello, recv_max_frame: u32) -> Settings {
    Settings {
        role: Role::Hub,
        recv_max_frame,
        send_max_frame: hello.max_frame,
        recv_initial_window: DEFAULT_INITIAL_WINDOW,
        send_initial_window: hello.initial_window,
        ping_interval: None,
    }
}

/// `POST /sink` with the head a client's request would have.
fn sink_request(len: usize) -> Request {
    let mut head = HeadBuilder::new(Version::Http11, b"POST", b"/sink", 3);
    let length = len.to_string();
    for (name, value) in [
        (&b"host"[..], &b"127.0.0.1"[..]),
        (b"content-type", b"application/octet-stream"),
        (b"content-length", length.as_bytes()),
    ] {
        // Three short fields always fit a head.
        let _ = head.header(name, value);
    }
    Request {
        stream: 0,
        end: len == 0,
        deadline_ms: GUARD.as_millis() as u32,
        mode: Mode::Respond,
        peer: "127.0.0.1:1".into(),
        tls: false,
        head: head.finish(),
    }
}
