//! The front: the listener clients connect to, HTTP/1.1 and HTTP/2 (prior knowledge).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::exchange;
use crate::hub::HubShared;

/// Pause after a failed accept (out of descriptors, say) before trying again, so the loop
/// does not spin while the condition lasts.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Builds the HTTP server settings once; every connection shares them.
pub(crate) fn http_builder(
    max_header_bytes: usize,
    header_read_timeout: Duration,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(1024);
    builder
}

/// Accepts clients until `shutdown` flips. Each connection task holds a clone of `alive`;
/// when all have ended, its receiver sees the channel close.
pub(crate) async fn run(
    listener: TcpListener,
    hub: Arc<HubShared>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    tokio::spawn(serve_connection(sock, peer, hub.clone(), shutdown.clone(), alive.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Requests in progress on one connection and when the last one started: what the idle
/// timeout looks at.
struct Activity {
    in_progress: AtomicUsize,
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

async fn serve_connection(
    sock: TcpStream,
    peer: SocketAddr,
    hub: Arc<HubShared>,
    mut shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let activity = Arc::new(Activity {
        in_progress: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    // Formatted once per connection, not per request.
    let peer_text: Arc<str> = peer.to_string().into();
    let service = {
        let (hub, activity, peer_text) = (hub.clone(), activity.clone(), peer_text.clone());
        service_fn(move |req| {
            let (hub, activity, peer_text) = (hub.clone(), activity.clone(), peer_text.clone());
            activity.in_progress.fetch_add(1, Ordering::Relaxed);
            async move {
                let resp = exchange::serve(hub, req, &peer_text).await;
                activity.last_ms.store(activity.now_ms(), Ordering::Relaxed);
                activity.in_progress.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let conn = hub.http.serve_connection(TokioIo::new(sock), service);
    tokio::pin!(conn);
    let idle = hub.idle_timeout;
    let mut check = tokio::time::interval(idle.max(Duration::from_millis(10)) / 2);
    check.tick().await;
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
                return;
            }
            _ = check.tick(), if !closing => {
                let quiet_ms = activity.now_ms().saturating_sub(activity.last_ms.load(Ordering::Relaxed));
                if activity.in_progress.load(Ordering::Relaxed) == 0 && quiet_ms >= idle.as_millis() as u64 {
                    // Graceful: a response still being written finishes first.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = shutdown.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
