//! The hub: its listeners, its pools and routes, and the one shutdown path.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, WorkerListen};
use crate::error::{HubError, RequestError};
use crate::front::ACCEPT_ERROR_PAUSE;
use crate::pool::Pool;
use crate::router::{RouteInput, Router};
use crate::workers::WorkerPort;
use pullman_proto::{CloseCode, Frame};

/// The routing table and the pools it points into: swapped whole, so a request sees one
/// consistent version.
pub(crate) struct Routing {
    router: Router,
    pools: HashMap<String, Arc<Pool>>,
}

/// What every connection and request of the hub shares.
pub(crate) struct HubShared {
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) max_header_bytes: usize,
    pub(crate) idle_timeout: Duration,
}

impl HubShared {
    /// The pool a request goes to.
    pub(crate) fn route(&self, parts: &http::request::Parts) -> Result<Arc<Pool>, RequestError> {
        let routing = self.routing.load();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.host());
        let input = RouteInput {
            host,
            path: parts.uri.path(),
            method: &parts.method,
            headers: &parts.headers,
        };
        let name = routing.router.route(&input).ok_or(RequestError::NoRoute)?;
        routing
            .pools
            .get(name)
            .cloned()
            .ok_or(RequestError::NoRoute)
    }
}

/// A hub whose listeners are bound; [`Hub::run`] serves.
pub struct Hub {
    shared: Arc<HubShared>,
    front: TcpListener,
    front_addr: SocketAddr,
    worker_listeners: Vec<BoundWorkerListener>,
    worker_port: Arc<WorkerPort>,
    drain_grace: Duration,
}

enum BoundWorkerListener {
    Tcp(TcpListener, SocketAddr),
    Unix(UnixListener, PathBuf),
}

impl Hub {
    /// Binds every listener the config names (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Hub, HubError> {
        let pools: HashMap<String, Arc<Pool>> = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), Pool::new(p.clone())))
            .collect();
        let router = Router::new(&config.routes);
        let hub = &config.hub;
        let shared = Arc::new(HubShared {
            routing: ArcSwap::from_pointee(Routing {
                router,
                pools: pools.clone(),
            }),
            http: crate::front::http_builder(hub.max_header_bytes, hub.header_read_timeout),
            max_header_bytes: hub.max_header_bytes,
            idle_timeout: hub.idle_timeout,
        });
        let listen_err = |addr: String| move |source| HubError::Listen { addr, source };
        let front = TcpListener::bind(hub.listen)
            .await
            .map_err(listen_err(hub.listen.to_string()))?;
        let front_addr = front
            .local_addr()
            .map_err(listen_err(hub.listen.to_string()))?;
        let mut worker_listeners = Vec::new();
        for addr in &hub.workers_listen {
            worker_listeners.push(match addr {
                WorkerListen::Tcp(a) => {
                    let l = TcpListener::bind(a)
                        .await
                        .map_err(listen_err(addr.to_string()))?;
                    let local = l.local_addr().map_err(listen_err(addr.to_string()))?;
                    BoundWorkerListener::Tcp(l, local)
                }
                WorkerListen::Unix(path) => {
                    remove_stale_socket(path);
                    let l = UnixListener::bind(path).map_err(listen_err(addr.to_string()))?;
                    BoundWorkerListener::Unix(l, path.clone())
                }
            });
        }
        let worker_port = Arc::new(WorkerPort {
            pools,
            ping_interval: hub.ping_interval,
        });
        Ok(Hub {
            shared,
            front,
            front_addr,
            worker_listeners,
            worker_port,
            drain_grace: hub.drain_grace,
        })
    }

    /// Where clients connect.
    pub fn front_addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// Where workers connect, with any port 0 resolved.
    pub fn worker_addrs(&self) -> Vec<WorkerListen> {
        self.worker_listeners
            .iter()
            .map(|l| match l {
                BoundWorkerListener::Tcp(_, a) => WorkerListen::Tcp(*a),
                BoundWorkerListener::Unix(_, p) => WorkerListen::Unix(p.clone()),
            })
            .collect()
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting, lets requests in
    /// flight finish within the grace period, tells workers DRAIN and closes their links.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let front = tokio::spawn(crate::front::run(
            self.front,
            self.shared.clone(),
            stop_rx.clone(),
            alive_tx,
        ));
        let mut socket_files = Vec::new();
        for listener in self.worker_listeners {
            if let BoundWorkerListener::Unix(_, path) = &listener {
                socket_files.push(path.clone());
            }
            tokio::spawn(accept_workers(
                listener,
                self.worker_port.clone(),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        tracing::info!(grace = ?self.drain_grace, "draining: no new clients, finishing requests in flight");
        let _ = stop_tx.send(true);
        let _ = front.await;
        if tokio::time::timeout(self.drain_grace, alive_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; cancelling requests still in flight");
        }
        for pool in self.worker_port.pools.values() {
            for link in pool.links() {
                link.send(Frame::Drain { last_stream: 0 });
                link.close(CloseCode::GoingAway, "hub shutting down");
            }
        }
        for path in socket_files {
            let _ = std::fs::remove_file(path);
        }
        // Give the links a moment to put their last frames on the wire.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::info!("drained");
    }
}

/// A socket file left by a hub that died is in the way of bind; one that still answers is not
/// ours to remove, and bind then fails with a clear error.
fn remove_stale_socket(path: &std::path::Path) {
    if std::os::unix::net::UnixStream::connect(path).is_err() && path.exists() {
        let _ = std::fs::remove_file(path);
    }
}

/// Accepts worker connections until `stop` flips; each goes through the handshake on its own.
async fn accept_workers(
    listener: BoundWorkerListener,
    port: Arc<WorkerPort>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok(WorkerConn::Tcp(sock, peer)) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(port.clone().accept(sock, peer.to_string()));
            }
            Ok(WorkerConn::Unix(sock)) => {
                tokio::spawn(port.clone().accept_unix(sock));
            }
            Err(e) => {
                tracing::warn!(error = %e, "worker accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// A new worker connection, before its handshake.
enum WorkerConn {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl BoundWorkerListener {
    async fn accept(&self) -> std::io::Result<WorkerConn> {
        match self {
            BoundWorkerListener::Tcp(l, _) => {
                l.accept().await.map(|(s, peer)| WorkerConn::Tcp(s, peer))
            }
            BoundWorkerListener::Unix(l, _) => l.accept().await.map(|(s, _)| WorkerConn::Unix(s)),
        }
    }
}
