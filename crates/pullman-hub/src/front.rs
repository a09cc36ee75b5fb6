//! The front: the listener clients connect to, HTTP/1.1 and HTTP/2 (prior knowledge).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::exchange;
use crate::hub::HubShared;

/// Pause after a failed accept (out of descriptors, say) before trying again, so the loop
/// does not spin while the condition lasts.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Builds the HTTP server settings once; every connection shares them. hyper's own header
/// read timeout is off: it also runs while a keep-alive connection waits for its next
/// request, so it would close idle connections at `header_read_timeout` instead of
/// `idle_timeout`. [`Connections::sweep`] applies it from a head's first byte instead.
pub(crate) fn http_builder(max_header_bytes: usize) -> auto::Builder<TokioExecutor> {
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

/// Accepts clients until `shutdown` flips, then asks every open connection to close. Each
/// connection task holds a clone of `alive`; when all have ended, its receiver sees the
/// channel close. One timer here checks all connections for idleness and slow heads.
pub(crate) async fn run(
    listener: TcpListener,
    hub: Arc<HubShared>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let connections = Arc::new(Connections::new());
    let (idle, head) = (hub.idle_timeout, hub.header_read_timeout);
    let mut check = tokio::time::interval(idle.min(head).max(Duration::from_millis(10)) / 2);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    // Registered before its task runs, so a shutdown cannot miss it.
                    let open = connections.open();
                    tokio::spawn(serve_connection(sock, peer, hub.clone(), open, alive.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            _ = check.tick() => connections.sweep(idle, head),
            _ = shutdown.changed() => {
                connections.close_all();
                return;
            }
        }
    }
}

/// The open client connections, and the clock their activity is noted by.
struct Connections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Connections {
    fn new() -> Connections {
        Connections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(self: &Arc<Self>) -> Open {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            in_progress: AtomicUsize::new(0),
            last_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            head_since_ms: AtomicU64::new(NO_HEAD),
            epoch: self.epoch,
            close: Notify::new(),
            abort: AtomicBool::new(false),
        });
        self.open.lock().insert(id, activity.clone());
        Open {
            connections: self.clone(),
            id,
            activity,
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
                activity.abort.store(true, Ordering::Relaxed);
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
}

impl Drop for Open {
    fn drop(&mut self) {
        self.connections.open.lock().remove(&self.id);
    }
}

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
    abort: AtomicBool,
}

impl Activity {
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
async fn serve_connection(
    sock: TcpStream,
    peer: SocketAddr,
    hub: Arc<HubShared>,
    open: Open,
    _alive: mpsc::Sender<()>,
) {
    let activity = open.activity.clone();
    // Formatted once per connection, not per request.
    let peer_text: Arc<str> = peer.to_string().into();
    let service = {
        let (hub, activity, peer_text) = (hub.clone(), activity.clone(), peer_text.clone());
        service_fn(move |req| {
            let (hub, activity, peer_text) = (hub.clone(), activity.clone(), peer_text.clone());
            activity.in_progress.fetch_add(1, Ordering::Relaxed);
            activity.head_done();
            async move {
                let resp = exchange::serve(hub, req, &peer_text).await;
                activity.last_ms.store(activity.now_ms(), Ordering::Relaxed);
                activity.in_progress.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let sock = Watched {
        sock,
        activity: activity.clone(),
        protocol: Protocol::Unknown { preface_seen: 0 },
    };
    let conn = hub.http.serve_connection(TokioIo::new(sock), service);
    tokio::pin!(conn);
    let asked_to_close = activity.close.notified();
    tokio::pin!(asked_to_close);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
                return;
            }
            () = &mut asked_to_close, if !closing => {
                if activity.abort.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, "request head not received within header_read_timeout");
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// A client's socket that notes when the first bytes of a new HTTP/1 request head arrive:
/// bytes read while no request is in progress. HTTP/2 connections (their preface first) are
/// left alone: between requests their bytes are control frames, not heads. A write (a
/// response going out) clears the mark: bytes that came in meanwhile are a pipelined head,
/// not a slow one.
struct Watched {
    sock: TcpStream,
    activity: Arc<Activity>,
    protocol: Protocol,
}

/// What a client connection speaks, as far as its first bytes tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    /// Every byte so far matches the HTTP/2 preface (none yet, or fewer than it has).
    Unknown {
        preface_seen: usize,
    },
    Http1,
    Http2,
}

/// The start of the HTTP/2 connection preface; no HTTP/1 request line begins with it.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

impl Protocol {
    /// Takes the next bytes read from the client.
    fn after(self, read: &[u8]) -> Protocol {
        let Protocol::Unknown { preface_seen } = self else {
            return self;
        };
        let rest = &H2_PREFACE_START[preface_seen..];
        let n = read.len().min(rest.len());
        if read[..n] != rest[..n] {
            Protocol::Http1
        } else if preface_seen + n == H2_PREFACE_START.len() {
            Protocol::Http2
        } else {
            Protocol::Unknown {
                preface_seen: preface_seen + n,
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.sock).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if read.is_empty() {
            return Poll::Ready(Ok(()));
        }
        this.protocol = this.protocol.after(read);
        // Until the preface is whole, the bytes count as a head: a client cannot escape the
        // timeout by sending "P" and stopping.
        match this.protocol {
            Protocol::Http2 => this.activity.head_done(),
            Protocol::Http1 | Protocol::Unknown { .. } => this.activity.head_bytes(),
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.sock).poll_write(cx, buf))?;
        this.activity.head_done();
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.sock).poll_write_vectored(cx, bufs))?;
        this.activity.head_done();
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.sock.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_told_by_the_preface_across_reads() {
        let unknown = Protocol::Unknown { preface_seen: 0 };
        assert_eq!(unknown.after(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(unknown.after(b"PRI * HTTP/2.0\r\n\r\nSM"), Protocol::Http2);
        // A request line can start like the preface; the first difference decides.
        let p = unknown.after(b"P");
        assert_eq!(p, Protocol::Unknown { preface_seen: 1 });
        assert_eq!(p.after(b"OST / HTTP/1.1"), Protocol::Http1);
        let split = unknown.after(b"PRI * H");
        assert_eq!(split.after(b"TTP/2.0"), Protocol::Http2);
        assert_eq!(Protocol::Http1.after(b"PRI * HTTP/2"), Protocol::Http1);
    }
}
