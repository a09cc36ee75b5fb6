//! The front: the listeners clients connect to, plain and TLS, HTTP/1.1 and HTTP/2 (prior
//! knowledge, or ALPN over TLS), the limits on their connections, and each request's start
//! and end.
//!
//! # Layout
//! - this file: the accept loops, the TLS handshake, the open connections and the sweep that closes idle ones
//!   and those whose head is too slow.
//! - `watched`: the client socket that notes when a request head starts to arrive.
//! - `request`: one request: route, hand to the pool's mode, exactly one response.
//! - `request_id`: the id each request carries (`x-request-id`): the client's, or the hub's.
//! - `head`: the request head as the view every transport carries.

mod head;
mod request;
mod request_id;
mod trace_context;
mod watched;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use request_id::RequestIds;
use trace_context::TraceIds;
use watched::Watched;

use crate::config::HubConfig;
use crate::error::HubError;
use crate::request::Client;
use crate::state::HubState;
use crate::tls::ServerTls;

/// What every client connection and request shares.
pub(crate) struct Front {
    pub(crate) state: Arc<HubState>,
    ids: RequestIds,
    traces: TraceIds,
    http: auto::Builder<TokioExecutor>,
    max_header_bytes: usize,
    idle_timeout: Duration,
    header_read_timeout: Duration,
    max_connections: usize,
    /// 0: none.
    max_connections_per_ip: usize,
    /// Bytes a second a client must keep while the hub reads its body or writes its
    /// response; 0: none.
    pub(crate) min_body_rate: u64,
}

impl Front {
    pub(crate) fn new(state: Arc<HubState>, hub: &HubConfig) -> Result<Front, HubError> {
        Ok(Front {
            state,
            ids: RequestIds::new()?,
            traces: TraceIds::new()?,
            http: http_builder(hub.max_header_bytes),
            max_header_bytes: hub.max_header_bytes,
            idle_timeout: hub.idle_timeout,
            header_read_timeout: hub.header_read_timeout,
            max_connections: hub.max_connections,
            max_connections_per_ip: hub.max_connections_per_ip,
            min_body_rate: hub.min_body_rate,
        })
    }
}

/// Builds the HTTP server settings once; every connection shares them. hyper's own header
/// read timeout is off: it also runs while a keep-alive connection waits for its next
/// request, so it would close idle connections at `header_read_timeout` instead of
/// `idle_timeout`. [`Connections::sweep`] applies it from a head's first byte instead.
fn http_builder(max_header_bytes: usize) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(1024);
    builder
}

/// A listener for clients: plain, or TLS with its settings.
pub(crate) struct ClientListener {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<Arc<ServerTls>>,
}

/// Accepts clients on every listener until `shutdown` flips, then asks every open
/// connection to close. Each connection task holds a clone of `alive`; when all have ended,
/// its receiver sees the channel close. The connection limits count the listeners'
/// connections together, and one timer here checks them all for idleness and slow heads.
pub(crate) async fn run(
    listeners: Vec<ClientListener>,
    front: Arc<Front>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let connections = Arc::new(Connections::new());
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept(l, front.clone(), connections.clone(), alive.clone())))
        .collect();
    drop(alive);
    let (idle, head) = (front.idle_timeout, front.header_read_timeout);
    let mut check = tokio::time::interval(idle.min(head).max(Duration::from_millis(10)) / 2);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => connections.sweep(idle, head),
            _ = shutdown.changed() => {
                // Each accepted connection is registered before its task runs, so once the
                // accept loops are gone none can miss this.
                for task in &accepting {
                    task.abort();
                }
                for task in accepting {
                    let _ = task.await;
                }
                connections.close_all();
                return;
            }
        }
    }
}

/// Accepts clients on one listener, each admitted one in a task of its own.
async fn accept(
    ClientListener { listener, tls }: ClientListener,
    front: Arc<Front>,
    connections: Arc<Connections>,
    alive: mpsc::Sender<()>,
) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let _ = sock.set_nodelay(true);
                match connections.admit(peer.ip(), &front) {
                    Ok(open) => {
                        let (front, tls, alive) = (front.clone(), tls.clone(), alive.clone());
                        tokio::spawn(async move {
                            match tls {
                                None => serve_connection(sock, peer, false, front, open).await,
                                Some(tls) => serve_tls(sock, peer, &tls, front, open).await,
                            }
                            drop(alive);
                        });
                    }
                    Err(why) => refuse(&sock, peer, why),
                }
            }
            Err(e) => crate::accept::pause_after(e, "client").await,
        }
    }
}

/// Completes the TLS handshake, within `header_read_timeout`, then serves the connection.
/// A handshake that fails or stalls costs that connection alone.
async fn serve_tls(
    sock: TcpStream,
    peer: SocketAddr,
    tls: &ServerTls,
    front: Arc<Front>,
    open: Open,
) {
    match tls.handshake(sock, front.header_read_timeout).await {
        Ok(stream) => serve_connection(stream, peer, true, front, open).await,
        Err(why) => tracing::debug!(%peer, "client connection closed: {why}"),
    }
}

/// Answers a client refused at accept 503 with the reason, in a few bytes the socket takes
/// at once, and closes it.
fn refuse(sock: &TcpStream, peer: SocketAddr, why: &str) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{why}\n",
        why.len() + 1
    );
    let _ = sock.try_write(response.as_bytes());
    tracing::debug!(%peer, why, "client connection refused");
}

/// The open client connections, and the clock their activity is noted by.
struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    /// Open connections per client address, while `max_connections_per_ip` is set.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Connections {
    fn new() -> Connections {
        Connections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// A place for a new connection from `ip`, or why there is none: the hub's
    /// `max_connections` or the address's `max_connections_per_ip` is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr, front: &Front) -> Result<Open, &'static str> {
        if self.open.lock().len() >= front.max_connections {
            return Err(
                "the hub has as many client connections open as it takes (max_connections)",
            );
        }
        let counted = if front.max_connections_per_ip > 0 {
            let ip = ip.to_canonical();
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_default();
            if *n >= front.max_connections_per_ip {
                return Err("too many connections from this address (max_connections_per_ip)");
            }
            *n += 1;
            Some(ip)
        } else {
            None
        };
        let mut open = self.open();
        open.counted = counted;
        Ok(open)
    }

    fn open(self: &Arc<Self>) -> Open {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            in_progress: AtomicUsize::new(0),
            last_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            head_since_ms: AtomicU64::new(NO_HEAD),
            epoch: self.epoch,
            close: Notify::new(),
            abort: AtomicU8::new(KEEP),
            resets: AtomicU32::new(0),
            resets_since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
        });
        self.open.lock().insert(id, activity.clone());
        Open {
            connections: self.clone(),
            id,
            activity,
            counted: None,
        }
    }

    /// Closes the connections whose request head has taken `head` since its first byte, and
    /// asks those with no request in progress and none for `idle` to close.
    fn sweep(&self, idle: Duration, head: Duration) {
        let (idle_ms, head_ms) = (idle.as_millis() as u64, head.as_millis() as u64);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for activity in self.open.lock().values() {
            if activity.in_progress.load(Ordering::Relaxed) != 0 {
                continue;
            }
            let head_since = activity.head_since_ms.load(Ordering::Relaxed);
            if head_since != NO_HEAD && now_ms.saturating_sub(head_since) >= head_ms {
                // A graceful close would wait for the head to end: this client gets none.
                let _ = activity.abort.compare_exchange(
                    KEEP,
                    SLOW_HEAD,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                activity.close.notify_one();
            } else if now_ms.saturating_sub(activity.last_ms.load(Ordering::Relaxed)) >= idle_ms {
                activity.close.notify_one();
            }
        }
    }

    fn close_all(&self) {
        for activity in self.open.lock().values() {
            activity.close.notify_one();
        }
    }
}

/// A connection's place among the open ones, given up when its task ends.
struct Open {
    connections: Arc<Connections>,
    id: u64,
    activity: Arc<Activity>,
    /// The address it counts against, under `max_connections_per_ip`.
    counted: Option<IpAddr>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.connections.open.lock().remove(&self.id);
        if let Some(ip) = self.counted {
            let mut per_ip = self.connections.per_ip.lock();
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// One request being served on a connection. Dropped unfinished, the client cancelled it
/// (an HTTP/2 stream reset, or the connection gone): counted against the reset bound.
struct InProgress {
    activity: Arc<Activity>,
    finished: bool,
}

impl InProgress {
    fn start(activity: Arc<Activity>) -> InProgress {
        activity.in_progress.fetch_add(1, Ordering::Relaxed);
        activity.head_done();
        InProgress {
            activity,
            finished: false,
        }
    }

    /// The request got its response (dropping it unfinished counts a cancel).
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.last_ms.store(activity.now_ms(), Ordering::Relaxed);
        activity.in_progress.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            activity.cancelled();
        }
    }
}

/// Most requests a client may cancel on one connection within [`RESET_WINDOW`]; past it
/// the connection is closed. HTTP/2 rapid reset (CVE-2023-44487) opens and resets streams
/// as fast as it can, so that the server starts work the client never waits for; h2 itself
/// closes a connection whose streams are reset before the hub sees them, and this bounds
/// those reset after. A browser cancels a few streams when a page changes, not hundreds.
const MAX_RESETS: u32 = 200;
/// The window [`MAX_RESETS`] counts in.
const RESET_WINDOW: Duration = Duration::from_secs(10);

/// `Activity::abort`: close gracefully when asked.
const KEEP: u8 = 0;
/// `Activity::abort`: the request head took longer than `header_read_timeout`.
const SLOW_HEAD: u8 = 1;
/// `Activity::abort`: the client cancelled more than [`MAX_RESETS`] requests.
const TOO_MANY_RESETS: u8 = 2;

/// `Activity::head_since_ms` when no request head is arriving.
const NO_HEAD: u64 = u64::MAX;

/// What the sweep looks at on one connection: requests in progress, when the last one
/// ended (idle timeout), when the bytes of the next head began to arrive (header read
/// timeout); and the signal that asks the connection to close, gracefully or not.
struct Activity {
    in_progress: AtomicUsize,
    last_ms: AtomicU64,
    head_since_ms: AtomicU64,
    epoch: Instant,
    close: Notify,
    /// Why the connection is to be dropped rather than closed gracefully, if it is:
    /// [`KEEP`], [`SLOW_HEAD`] or [`TOO_MANY_RESETS`].
    abort: AtomicU8,
    /// Requests cancelled since `resets_since_ms`.
    resets: AtomicU32,
    resets_since_ms: AtomicU64,
}

impl Activity {
    /// A request was cancelled by the client; too many in [`RESET_WINDOW`] close the
    /// connection.
    fn cancelled(&self) {
        let now = self.now_ms();
        let since = self.resets_since_ms.load(Ordering::Relaxed);
        let n = if now.saturating_sub(since) > RESET_WINDOW.as_millis() as u64 {
            self.resets_since_ms.store(now, Ordering::Relaxed);
            self.resets.store(1, Ordering::Relaxed);
            1
        } else {
            self.resets.fetch_add(1, Ordering::Relaxed) + 1
        };
        if n > MAX_RESETS
            && (self.abort)
                .compare_exchange(KEEP, TOO_MANY_RESETS, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.close.notify_one();
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Bytes that can only be a request head arrived: notes when the first of them did,
    /// unless a request is in progress (then they are its body, or a pipelined head).
    fn head_bytes(&self) {
        if self.in_progress.load(Ordering::Relaxed) == 0
            && self.head_since_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// No head is waited on any more: a request started, a response went out, or the
    /// connection turned out to be HTTP/2.
    fn head_done(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) != NO_HEAD {
            self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        }
    }
}

/// Serves one client connection until it ends, closing it gracefully (a response being
/// written finishes first) when asked. The task waits on the connection and on its own close
/// signal only: it wakes several times per request, and each wake-up polls both.
async fn serve_connection<S>(sock: S, peer: SocketAddr, tls: bool, front: Arc<Front>, open: Open)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = open.activity.clone();
    // Made once per connection, not per request.
    let client = Arc::new(Client {
        addr: peer.to_string().into(),
        tls,
    });
    let service = {
        let (front, activity) = (front.clone(), activity.clone());
        service_fn(move |req| {
            let (front, client) = (front.clone(), client.clone());
            let in_progress = InProgress::start(activity.clone());
            async move {
                let resp = request::serve(&front, req, &client).await;
                in_progress.finish();
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let sock = Watched::new(sock, activity.clone(), front.min_body_rate);
    let conn = front.http.serve_connection(TokioIo::new(sock), service);
    tokio::pin!(conn);
    let asked_to_close = activity.close.notified();
    tokio::pin!(asked_to_close);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    match crate::rate::too_slow(&*e) {
                        Some(slow) => tracing::info!(%peer, "client connection closed: {slow}"),
                        None => tracing::debug!(%peer, error = %e, "client connection ended with an error"),
                    }
                }
                return;
            }
            () = &mut asked_to_close, if !closing => {
                match activity.abort.load(Ordering::Relaxed) {
                    SLOW_HEAD => {
                        tracing::debug!(%peer, "request head not received within header_read_timeout");
                        return;
                    }
                    TOO_MANY_RESETS => {
                        tracing::info!(%peer, "client connection closed: more than {MAX_RESETS} requests cancelled within {RESET_WINDOW:?} (HTTP/2 rapid reset)");
                        return;
                    }
                    _ => {}
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
