//! A worker's life: dial the hub, say HELLO, grant credits, serve, and on shutdown drain.

use std::future::Future;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pullman_link::handshake::{recv_frame, send_hello};
use pullman_link::{
    Control, ControlError, Link, LinkError, Role, Settings, ShmTransport, Stream, SHM_MAX_FRAME,
};
use pullman_proto::preface::is_http_response;
use pullman_proto::{
    decode, CloseCode, EncodeError, Frame, Hello, Modes, Request, Response, Welcome,
    DEFAULT_INITIAL_WINDOW, DEFAULT_MAX_FRAME, FEATURE_SHM, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
use pullman_shm::handoff::recv_with_fds;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::addr::HubAddr;
use crate::backoff::Backoff;
use crate::error::WorkerError;
use crate::filter::{Filter, Filtered};
use crate::gate::{Gate, Gates, GATE_RECHECK};
use crate::handler::{Handled, Handler, Service, ViewHandler, Viewed};
use crate::redirect::{Parking, Redirect, Redirecting, Server};
use crate::tls::{HubTls, TlsSettings};

/// How long the hub has to answer HELLO.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a draining worker gives requests in flight.
const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Where [`WorkerBuilder::try_build`] finds the hub address when [`WorkerBuilder::hub`] was
/// not called. The hub's supervisor sets it, with [`ENV_POOL`] and [`ENV_TOKEN`], for every
/// program it starts, so a supervised worker needs no flags.
pub const ENV_HUB: &str = "PULLMAN_HUB";
/// Where the pool comes from when [`WorkerBuilder::pool`] was not called.
pub const ENV_POOL: &str = "PULLMAN_POOL";
/// Where the token comes from when [`WorkerBuilder::token`] was not called.
pub const ENV_TOKEN: &str = "PULLMAN_TOKEN";

/// A worker's settings. Build one with [`Worker::builder`], then [`Worker::run`] it.
#[derive(Debug)]
pub struct Worker {
    hub: HubAddr,
    pool: String,
    token: String,
    concurrency: u32,
    name: String,
    drain_grace: Duration,
    shm: bool,
    gates: Gates,
    redirect: Option<Redirect>,
    /// For a `tls://` hub.
    tls: Option<HubTls>,
}

/// Builds a [`Worker`].
#[derive(Debug, Default)]
pub struct WorkerBuilder {
    hub: Option<HubAddr>,
    pool: Option<String>,
    token: Option<String>,
    concurrency: Option<u32>,
    name: Option<String>,
    drain_grace: Option<Duration>,
    shm: bool,
    gates: Gates,
    redirect: Option<Redirect>,
    tls: Option<TlsSettings>,
}

impl WorkerBuilder {
    /// The hub's worker address. Default: [`ENV_HUB`] from the environment.
    pub fn hub(mut self, hub: HubAddr) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The pool to serve. Default: [`ENV_POOL`] from the environment.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// The pool's token. Default: [`ENV_TOKEN`] from the environment; without either, a
    /// worker that presents a client certificate ([`TlsSettings::identity`]) sends none,
    /// for a pool that takes its workers by certificate alone (`allowed_workers` and no
    /// token).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How many requests this worker runs at once (the credits it grants). Default 1.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// A label the hub shows in its logs. Default `worker-PID`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long a drain waits for requests in flight. Default 30 s.
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = Some(grace);
        self
    }

    /// Whether to ask the hub for the shared-memory transport (a `unix://` hub only).
    /// Requests are then read in place from memory the hub wrote, without a copy; a hub
    /// that does not grant it keeps the stream protocol. Default off.
    pub fn shm(mut self, on: bool) -> Self {
        self.shm = on;
        self
    }

    /// Adds a gate: the worker grants the hub a credit (takes a request) only while every
    /// gate is open. A closed gate holds credits back, asked again every
    /// [`GATE_RECHECK`], and never refuses or cancels requests
    /// already granted. Call once per gate: a [`CpuGate`](crate::CpuGate), a
    /// [`MemoryGate`](crate::MemoryGate), an `FnMut() -> impl Future<Output = bool>`
    /// closure, or a [`Gate`] of your own. Default: none, credits go back as soon as a
    /// request ends.
    pub fn gate(mut self, gate: impl Gate) -> Self {
        self.gates.push(gate);
        self
    }

    /// Redirect mode: large `200` responses are parked on a server of the worker's own and
    /// answered with `303 See Other` to them, so that their bodies go to the client without
    /// passing through the hub (see [`redirect`](crate::redirect)). For
    /// the handlers of [`Worker::run`] and [`Worker::run_views`]; [`Worker::run_filter`]
    /// refuses it. Default off.
    pub fn redirect(mut self, redirect: Redirect) -> Self {
        self.redirect = Some(redirect);
        self
    }

    /// How to reach a `tls://` hub: the authority that signs its certificate and this
    /// worker's own certificate, if its pool asks for one. Default, for a `tls://` hub: the
    /// system's roots and no client certificate. Only for a `tls://` hub.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The worker; fails if the hub, pool or token is neither set nor in the environment,
    /// concurrency is 0, or shared memory is asked of a hub that is not on a Unix socket.
    pub fn try_build(self) -> Result<Worker, WorkerError> {
        let Settled {
            hub,
            pool,
            token,
            concurrency,
            tls,
        } = self.settle()?;
        Ok(Worker {
            tls,
            hub,
            pool,
            token,
            concurrency,
            name: self
                .name
                .unwrap_or_else(|| format!("worker-{}", std::process::id())),
            drain_grace: self.drain_grace.unwrap_or(DEFAULT_DRAIN_GRACE),
            shm: self.shm,
            gates: self.gates,
            redirect: self.redirect,
        })
    }

    /// Checks the settings as [`WorkerBuilder::try_build`] does, and keeps the builder: for
    /// callers (the C API) whose builder must outlive a failed attempt.
    pub fn check(&self) -> Result<(), WorkerError> {
        self.settle().map(drop)
    }

    /// The required settings, from the builder or the environment, checked.
    fn settle(&self) -> Result<Settled, WorkerError> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let missing = |what: &str, env: &str| {
            WorkerError::Settings(format!("{what} is required (or {env} in the environment)"))
        };
        let concurrency = self.concurrency.unwrap_or(1);
        if concurrency == 0 {
            return Err(WorkerError::Settings(
                "concurrency must be at least 1".into(),
            ));
        }
        let hub = match &self.hub {
            Some(hub) => hub.clone(),
            None => from_env(ENV_HUB)
                .ok_or_else(|| missing("the hub address", ENV_HUB))?
                .parse()
                .map_err(|e| WorkerError::Settings(format!("{ENV_HUB}: {e}")))?,
        };
        if let Some(redirect) = &self.redirect {
            redirect.validate(&hub)?;
        }
        let tls = match (&hub, &self.tls) {
            (HubAddr::Tls(_), settings) => {
                let host = hub.host().unwrap_or_default();
                Some(settings.clone().unwrap_or_default().connector(host)?)
            }
            (_, Some(_)) => {
                return Err(WorkerError::Settings(format!(
                    "TLS settings need a tls:// hub address, not {hub}"
                )))
            }
            (_, None) => None,
        };
        if self.shm && !matches!(hub, HubAddr::Unix(_)) {
            return Err(WorkerError::Settings(format!(
                "shared memory needs a unix:// hub address, not {hub}"
            )));
        }
        Ok(Settled {
            hub,
            pool: (self.pool.clone())
                .or_else(|| from_env(ENV_POOL))
                .ok_or_else(|| missing("the pool", ENV_POOL))?,
            token: (self.token.clone())
                .or_else(|| from_env(ENV_TOKEN))
                .or_else(|| {
                    let by_certificate = self.tls.as_ref().is_some_and(|t| t.has_identity());
                    by_certificate.then(String::new)
                })
                .ok_or_else(|| missing("the token", ENV_TOKEN))?,
            concurrency,
            tls,
        })
    }

    /// The worker.
    ///
    /// # Panics
    /// If a required setting is missing; use [`WorkerBuilder::try_build`] to handle that.
    pub fn build(self) -> Worker {
        match self.try_build() {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The settings a worker cannot do without, as [`WorkerBuilder::settle`] found them.
struct Settled {
    hub: HubAddr,
    pool: String,
    token: String,
    concurrency: u32,
    tls: Option<HubTls>,
}

/// What the requests of one worker share.
#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
    highest_stream: AtomicU64,
    /// Where redirect mode parks responses, if it is on.
    parking: Option<Arc<Parking>>,
}

/// The credits of one link that its gates hold back: the first grant, and one for each
/// request that ends, until every gate is open.
#[derive(Debug, Default)]
struct Held {
    n: AtomicU32,
    more: Notify,
}

impl Held {
    fn add(&self, n: u32) {
        self.n.fetch_add(n, Ordering::SeqCst);
        self.more.notify_one();
    }
}

/// A TCP connection to the hub; redirect mode learns the worker's address on it.
async fn connect_tcp<H: Service>(
    addr: &str,
    control: &WorkerControl<H>,
) -> Result<TcpStream, DialError> {
    let sock = TcpStream::connect(addr)
        .await
        .map_err(|e| DialError::Retry(e.to_string()))?;
    let _ = sock.set_nodelay(true);
    if let (Some(parking), Ok(local)) = (&control.shared.parking, sock.local_addr()) {
        parking.set_link_ip(local.ip());
    }
    Ok(sock)
}

enum DialError {
    /// Retrying will not help.
    Fatal(WorkerError),
    /// Try again after a pause.
    Retry(String),
}

impl Worker {
    /// Starts building a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// Serves `handler` until `shutdown` resolves, then drains: tells the hub DRAIN, takes
    /// nothing new, finishes what is in flight (within the drain grace), and closes.
    /// Reconnects when the link breaks, pausing between failed dials for at most a second,
    /// so a restarted hub is served again within about a second. Returns an error only when
    /// the hub refuses the worker for good (wrong token, unknown pool, a respond pool for a
    /// filter or the other way round) or the hub address is an HTTP server's.
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let Some(redirect) = self.redirect.clone() else {
            return self.serve(Arc::new(Handled(handler)), None, shutdown).await;
        };
        // Bound before the first dial, so that a port in use stops the worker at once; it
        // stops serving when this returns.
        let server = Server::start(redirect).await?;
        let parking = server.parking();
        let handler = Redirecting {
            handler,
            parking: parking.clone(),
        };
        self.serve(Arc::new(Handled(handler)), Some(parking), shutdown)
            .await
    }

    /// Serves `handler`, which takes each request as a head view and a body (see
    /// [`ViewHandler`]), with the same life as [`Worker::run`], redirect mode included.
    pub async fn run_views<H: ViewHandler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let Some(redirect) = self.redirect.clone() else {
            return self.serve(Arc::new(Viewed(handler)), None, shutdown).await;
        };
        let server = Server::start(redirect).await?;
        let parking = server.parking();
        let handler = Redirecting {
            handler,
            parking: parking.clone(),
        };
        self.serve(Arc::new(Viewed(handler)), Some(parking), shutdown)
            .await
    }

    /// Serves `filter` for a filter pool, with the same life as [`Worker::run`]: the hub
    /// sends the filter each request (and, for pools with `filter_response = true`, each
    /// upstream response) and forwards what the filter passes.
    pub async fn run_filter<F: Filter>(
        self,
        filter: F,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        if self.redirect.is_some() {
            return Err(WorkerError::Settings(
                "redirect mode is for respond pools: a filter's answers are not redirected".into(),
            ));
        }
        self.serve(Arc::new(Filtered(filter)), None, shutdown).await
    }

    async fn serve<S: Service>(
        mut self,
        handler: Arc<S>,
        parking: Option<Arc<Parking>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let shared = Arc::new(Shared {
            parking,
            ..Shared::default()
        });
        let mut gates = std::mem::take(&mut self.gates);
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new();
        loop {
            // Each link holds its own credits: a request of a link that broke gives its
            // credit back to nothing.
            let held = (!gates.is_empty()).then(|| Arc::new(Held::default()));
            let control = WorkerControl {
                handler: handler.clone(),
                shared: shared.clone(),
                held: held.clone(),
            };
            let dialed = tokio::select! {
                d = self.dial(control) => d,
                () = &mut shutdown => return Ok(()),
            };
            match dialed {
                Ok((link, mut ended)) => {
                    backoff.reset();
                    tracing::info!(hub = %self.hub, pool = %self.pool, concurrency = self.concurrency, "connected to hub");
                    match &held {
                        None => link.send(Frame::Credit {
                            n: self.concurrency,
                        }),
                        Some(held) => held.add(self.concurrency),
                    }
                    tokio::select! {
                        err = &mut ended => {
                            let why = err.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string());
                            tracing::warn!(hub = %self.hub, reason = %why, "link to hub ended; reconnecting");
                        }
                        () = &mut shutdown => {
                            self.drain(&link, &shared, ended).await;
                            return Ok(());
                        }
                        never = grant(&link, held.as_deref(), &mut gates) => match never {},
                    }
                }
                Err(DialError::Fatal(e)) => return Err(e),
                Err(DialError::Retry(why)) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(hub = %self.hub, reason = %why, retry_in = ?pause, "cannot reach hub");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = &mut shutdown => return Ok(()),
                    }
                }
            }
        }
    }

    async fn drain(&self, link: &Link, shared: &Shared, ended: JoinHandle<LinkError>) {
        shared.draining.store(true, Ordering::SeqCst);
        link.send(Frame::Drain {
            last_stream: shared.highest_stream.load(Ordering::SeqCst),
        });
        tracing::info!(
            in_flight = shared.in_flight.load(Ordering::SeqCst),
            "draining"
        );
        let finished = async {
            loop {
                let idle = shared.idle.notified();
                if shared.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
            // Clients told to fetch from this worker still can, until their keys expire.
            if let Some(parking) = &shared.parking {
                parking.wait_empty().await;
            }
        };
        if tokio::time::timeout(self.drain_grace, finished)
            .await
            .is_err()
        {
            tracing::warn!("drain grace over with requests still in flight");
        }
        link.close(CloseCode::Normal, "worker drained");
        let _ = tokio::time::timeout(Duration::from_secs(1), ended).await;
    }

    async fn dial<H: Service>(
        &self,
        control: WorkerControl<H>,
    ) -> Result<(Link, JoinHandle<LinkError>), DialError> {
        match &self.hub {
            HubAddr::Tcp(addr) => {
                let sock = connect_tcp(addr, &control).await?;
                self.handshake(sock, control).await
            }
            HubAddr::Tls(addr) => {
                let sock = connect_tcp(addr, &control).await?;
                // `settle` makes one for every tls:// hub.
                let tls = self.tls.as_ref().ok_or_else(|| {
                    DialError::Fatal(WorkerError::Settings("no TLS settings".into()))
                })?;
                let io = tls.connect(sock).await.map_err(|e| match e {
                    Ok(fatal) => DialError::Fatal(fatal),
                    Err(other) => DialError::Retry(other),
                })?;
                self.handshake(io, control).await
            }
            HubAddr::Unix(path) => {
                let sock = UnixStream::connect(path)
                    .await
                    .map_err(|e| DialError::Retry(e.to_string()))?;
                if self.shm {
                    self.handshake_shm(sock, control).await
                } else {
                    self.handshake(sock, control).await
                }
            }
        }
    }

    async fn handshake<S, H>(
        &self,
        mut io: S,
        control: WorkerControl<H>,
    ) -> Result<(Link, JoinHandle<LinkError>), DialError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        H: Service,
    {
        let hello = self.hello(0, H::MODES);
        let mut buf = BytesMut::with_capacity(1024);
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            send_hello(&mut io, &hello).await?;
            recv_frame(&mut io, &mut buf, HANDSHAKE_MAX_FRAME).await
        })
        .await
        .map_err(|_| DialError::Retry("no WELCOME in time".into()))?
        .map_err(|e| self.no_welcome(e, &buf))?;
        let welcome = welcome(answer)?;
        let settings = self.settings(&welcome, DEFAULT_MAX_FRAME);
        Ok(Link::spawn(io, buf, settings, control))
    }

    /// Why the hub's answer was no frame: an HTTP response means the address is wrong, which
    /// retrying will not fix; anything else may pass.
    fn no_welcome(&self, e: LinkError, read: &[u8]) -> DialError {
        if let Some(fatal) = match &e {
            LinkError::Io(io) => crate::tls::fatal(io),
            _ => None,
        } {
            return DialError::Fatal(fatal);
        }
        if is_http_response(read) {
            DialError::Fatal(WorkerError::NotWorkerPort(self.hub.to_string()))
        } else {
            DialError::Retry(e.to_string())
        }
    }

    fn hello(&self, features: u32, modes: Modes) -> Frame {
        Frame::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            max_frame: DEFAULT_MAX_FRAME,
            initial_window: DEFAULT_INITIAL_WINDOW,
            features,
            modes,
            pool: self.pool.clone(),
            token: self.token.clone(),
            name: self.name.clone(),
        })
    }

    fn settings(&self, welcome: &Welcome, recv_max_frame: u32) -> Settings {
        Settings {
            role: Role::Worker,
            recv_max_frame,
            send_max_frame: welcome.max_frame,
            recv_initial_window: DEFAULT_INITIAL_WINDOW,
            send_initial_window: welcome.initial_window,
            ping_interval: (welcome.ping_interval_ms > 0)
                .then(|| Duration::from_millis(welcome.ping_interval_ms as u64)),
        }
    }

    /// HELLO asking for shared memory; WELCOME arrives with the descriptors (or without, if
    /// the hub keeps the stream protocol).
    async fn handshake_shm<H: Service>(
        &self,
        mut io: UnixStream,
        control: WorkerControl<H>,
    ) -> Result<(Link, JoinHandle<LinkError>), DialError> {
        let mut buf = BytesMut::with_capacity(1024);
        let mut fds = Vec::new();
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            send_hello(&mut io, &self.hello(FEATURE_SHM, H::MODES)).await?;
            let mut chunk = [0u8; 1024];
            loop {
                if let Some(frame) = decode(&mut buf, HANDSHAKE_MAX_FRAME)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?
                {
                    return Ok::<_, LinkError>(frame);
                }
                let n = io
                    .async_io(Interest::READABLE, || {
                        recv_with_fds(io.as_fd(), &mut chunk, &mut fds)
                    })
                    .await?;
                if n == 0 {
                    return Err(LinkError::Eof);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .map_err(|_| DialError::Retry("no WELCOME in time".into()))?
        .map_err(|e| self.no_welcome(e, &buf))?;
        let welcome = welcome(answer)?;
        if welcome.features & FEATURE_SHM == 0 {
            tracing::info!("the hub keeps the stream protocol");
            let settings = self.settings(&welcome, DEFAULT_MAX_FRAME);
            return Ok(Link::spawn(io, buf, settings, control));
        }
        if !buf.is_empty() {
            return Err(DialError::Retry(
                "bytes after WELCOME on a shared-memory link".into(),
            ));
        }
        let (channel, bell) =
            pullman_shm::open(fds).map_err(|e| DialError::Retry(e.to_string()))?;
        let max_frame = SHM_MAX_FRAME;
        let transport = ShmTransport::new(channel, bell, io, max_frame)
            .map_err(|e| DialError::Retry(e.to_string()))?;
        let settings = self.settings(&welcome, max_frame);
        tracing::info!("link to the hub over shared memory");
        Ok(Link::spawn_on(transport, settings, control))
    }
}

/// The hub's answer to HELLO: WELCOME, or why not.
fn welcome(answer: Frame) -> Result<Welcome, DialError> {
    Ok(match answer {
        Frame::Welcome(w) => w,
        Frame::Close { code, reason } => {
            let err = WorkerError::Refused {
                code,
                reason: reason.clone(),
            };
            return Err(match code {
                CloseCode::AuthFailed
                | CloseCode::UnknownPool
                | CloseCode::UnsupportedVersion
                | CloseCode::UnsupportedMode => DialError::Fatal(err),
                _ => DialError::Retry(reason),
            });
        }
        other => {
            return Err(DialError::Retry(format!(
                "expected WELCOME, got {:?}",
                other.frame_type()
            )))
        }
    })
}

/// Grants `held` credits whenever every gate is open, asking again every [`GATE_RECHECK`]
/// while one is closed; pends for ever without gates (`held` is `None`: credits go straight
/// back).
async fn grant(link: &Link, held: Option<&Held>, gates: &mut Gates) -> std::convert::Infallible {
    let Some(held) = held else {
        return std::future::pending().await;
    };
    let mut closed = false;
    loop {
        if held.n.load(Ordering::SeqCst) == 0 {
            held.more.notified().await;
            continue;
        }
        if gates.are_open().await {
            if closed {
                tracing::debug!("gates open: granting credits again");
                closed = false;
            }
            let n = held.n.swap(0, Ordering::SeqCst);
            if n > 0 {
                link.send(Frame::Credit { n });
            }
        } else {
            if !closed {
                tracing::debug!(
                    held = held.n.load(Ordering::SeqCst),
                    "a gate is closed: holding credits back"
                );
                closed = true;
            }
            tokio::time::sleep(GATE_RECHECK).await;
        }
    }
}

/// The worker's side of a link: each REQUEST runs the handler in a task of its own, and
/// each finished request grants its credit back (through the gates, if there are any).
struct WorkerControl<H> {
    handler: Arc<H>,
    shared: Arc<Shared>,
    /// `None` without gates.
    held: Option<Arc<Held>>,
}

impl<H: Service> Control for WorkerControl<H> {
    fn on_frame(&mut self, _link: &Link, frame: Frame) -> Result<(), ControlError> {
        match frame {
            Frame::Drain { .. } => {
                tracing::info!("hub is draining");
                Ok(())
            }
            other => Err(ControlError::Unexpected(other.frame_type())),
        }
    }

    fn on_request(
        &mut self,
        link: &Link,
        stream: Stream,
        request: Request,
    ) -> Result<(), ControlError> {
        if self.shared.draining.load(Ordering::SeqCst) {
            // It crossed our DRAIN on the wire: let the hub run it elsewhere.
            let stream_id = request.stream;
            let reason = "worker is draining".to_string();
            stream.sender().send_frame(Frame::Reject {
                stream: stream_id,
                retryable: true,
                reason,
            });
            return Ok(());
        }
        let shared = self.shared.clone();
        let handler = self.handler.clone();
        let link = link.clone();
        let held = self.held.clone();
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        shared
            .highest_stream
            .fetch_max(request.stream, Ordering::SeqCst);
        // Boxed: the request's future is about 2 KiB, and tokio moves a task's future into
        // its cell and its output over it, three copies of that size per request unboxed.
        tokio::spawn(Box::pin(async move {
            handler.serve(request, stream).await;
            let left = shared.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
            if !shared.draining.load(Ordering::SeqCst) {
                match held {
                    None => link.send(Frame::Credit { n: 1 }),
                    Some(held) => held.add(1),
                }
            }
            if left == 0 {
                shared.idle.notify_waiters();
            }
        }));
        Ok(())
    }

    fn on_closed(&mut self, err: &LinkError) {
        tracing::debug!(reason = %err, "link closed");
    }

    /// The handler's answer (its response head, or a filter's verdict) cannot travel: a
    /// field too long for the wire, or more than the hub takes in a frame. The worker failed
    /// at its job, so the client gets 502, as from a proxy whose upstream sent a head it
    /// could not use; a REJECT would read as a refusal (503, or a filter pool's
    /// `failure_mode`, which might forward the request unfiltered).
    fn unsendable_answer(&mut self, stream: u64, err: &EncodeError) -> Frame {
        tracing::error!(stream, error = %err, "the handler's answer cannot be sent; answering 502");
        Frame::Response(Response {
            stream,
            end: true,
            status: 502,
            headers: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use pullman_link::handshake::{recv_preface, send_frame};
    use pullman_proto::Opening;
    use tokio::net::UnixListener;

    use super::*;
    use crate::{RequestBody, ResponseBody};

    /// Hang guard only.
    const PATIENCE: Duration = Duration::from_secs(30);

    #[test]
    fn shared_memory_needs_a_unix_hub() {
        let built = Worker::builder()
            .hub("tcp://127.0.0.1:1".parse().unwrap())
            .pool("p")
            .token("t")
            .shm(true)
            .try_build();
        assert!(matches!(built, Err(WorkerError::Settings(_))), "{built:?}");
    }

    #[tokio::test]
    async fn a_hub_that_does_not_grant_shared_memory_keeps_the_stream_protocol() {
        let path = std::env::temp_dir().join(format!("pullman-worker-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let worker = Worker::builder()
            .hub(HubAddr::Unix(path.clone()))
            .pool("p")
            .token("t")
            .shm(true)
            .build();
        let running = tokio::spawn(worker.run(
            |_req: http::Request<RequestBody>| async { http::Response::new(ResponseBody::empty()) },
            std::future::pending(),
        ));
        let (mut sock, _) = listener.accept().await.unwrap();
        let _ = std::fs::remove_file(&path);
        let mut buf = BytesMut::new();
        let opening = tokio::time::timeout(PATIENCE, recv_preface(&mut sock, &mut buf)).await;
        assert_eq!(opening.unwrap().unwrap(), Opening::Preface);
        let hello = tokio::time::timeout(
            PATIENCE,
            recv_frame(&mut sock, &mut buf, HANDSHAKE_MAX_FRAME),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(
            matches!(&hello, Frame::Hello(h) if h.features & FEATURE_SHM != 0),
            "{hello:?}"
        );
        // An older hub: WELCOME without the feature, and no descriptors.
        let welcome = Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            max_frame: DEFAULT_MAX_FRAME,
            initial_window: DEFAULT_INITIAL_WINDOW,
            features: 0,
            worker_id: 1,
            ping_interval_ms: 0,
        });
        send_frame(&mut sock, &welcome).await.unwrap();
        // The worker carries on over the socket: its CREDIT arrives there.
        let credit =
            tokio::time::timeout(PATIENCE, recv_frame(&mut sock, &mut buf, DEFAULT_MAX_FRAME))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(credit, Frame::Credit { n: 1 });
        running.abort();
    }
}
