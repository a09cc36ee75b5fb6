//! The front: the listener clients connect to, HTTP/1.1 and HTTP/2 (prior knowledge).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};

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

/// Accepts clients until `shutdown` flips, then asks every open connection to close. Each
/// connection task holds a clone of `alive`; when all have ended, its receiver sees the
/// channel close. One timer here checks all connections for idleness.
pub(crate) async fn run(
    listener: TcpListener,
    hub: Arc<HubShared>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let connections = Arc::new(Connections::default());
    let idle = hub.idle_timeout;
    let mut check = tokio::time::interval(idle.max(Duration::from_millis(10)) / 2);
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
            _ = check.tick() => connections.close_idle(idle),
            _ = shutdown.changed() => {
                connections.close_all();
                return;
            }
        }
    }
}

/// The open client connections.
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Connections {
    fn open(self: &Arc<Self>) -> Open {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            in_progress: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            close: Notify::new(),
        });
        self.open.lock().insert(id, activity.clone());
        Open {
            connections: self.clone(),
            id,
            activity,
        }
    }

    /// Asks the connections with no request in progress and none for `idle` to close.
    fn close_idle(&self, idle: Duration) {
        let idle_ms = idle.as_millis() as u64;
        for activity in self.open.lock().values() {
            let quiet_ms = activity
                .now_ms()
                .saturating_sub(activity.last_ms.load(Ordering::Relaxed));
            if activity.in_progress.load(Ordering::Relaxed) == 0 && quiet_ms >= idle_ms {
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

/// Requests in progress on one connection and when the last one ended: what the idle
/// timeout looks at; and the signal that asks the connection to close.
struct Activity {
    in_progress: AtomicUsize,
    last_ms: AtomicU64,
    epoch: Instant,
    close: Notify,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
