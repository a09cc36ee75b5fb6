//! The hub: its listeners, its pools and routes, and the one shutdown path.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, WorkerListen};
use crate::error::{HubError, RequestError};
use crate::front::ACCEPT_ERROR_PAUSE;
use crate::pool::Pool;
use crate::programs::Supervisor;
use crate::reload::{ChangeError, Reconfig};
use crate::router::{RouteInput, Router};
use crate::workers::WorkerPort;
use pullman_proto::{CloseCode, Frame};

/// The routing table and the pools it points into: swapped whole, so a request sees one
/// consistent version.
pub(crate) struct Routing {
    pub(crate) router: Router,
    pub(crate) pools: PoolTable,
}

/// The pools by name. Looked up once per request, so hashed with FxHash: names come from
/// the config file, not from clients.
pub(crate) type PoolTable = rustc_hash::FxHashMap<String, Arc<Pool>>;

/// What every connection and request of the hub shares.
pub(crate) struct HubShared {
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) max_header_bytes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    /// Pools removed from the routing table whose requests are still finishing.
    pub(crate) retiring: Mutex<HashMap<String, Arc<Pool>>>,
    /// `[metrics] enabled`: whether requests are counted and timed.
    pub(crate) metrics_enabled: AtomicBool,
    /// Requests no route matched (they have no pool to be counted in).
    pub(crate) unrouted: AtomicU64,
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

    /// The pool a worker asks for in its HELLO: only pools in the routing table take new
    /// workers.
    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.routing.load().pools.get(name).cloned()
    }

    /// Every pool with workers: those in the routing table, then those still emptying.
    pub(crate) fn all_pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self.routing.load().pools.values().cloned().collect();
        pools.sort_by(|a, b| a.name().cmp(b.name()));
        let mut retiring: Vec<Arc<Pool>> = self.retiring.lock().values().cloned().collect();
        retiring.sort_by(|a, b| a.name().cmp(b.name()));
        pools.extend(retiring);
        pools
    }
}

/// Re-reads the hub's config file and applies it: what SIGHUP does. Cloned freely.
#[derive(Clone)]
pub struct ReloadHandle(Arc<Reconfig>);

impl std::fmt::Debug for ReloadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadHandle").finish_non_exhaustive()
    }
}

impl ReloadHandle {
    /// Reloads; on error the hub keeps its configuration and the error says why.
    pub fn reload(&self) -> Result<(), HubError> {
        self.0.reload().map_err(|e| match e {
            ChangeError::Invalid(m)
            | ChangeError::NotFound(m)
            | ChangeError::Conflict(m)
            | ChangeError::Unavailable(m) => HubError::Reload(m),
        })
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
    supervisor: Arc<Supervisor>,
    reconfig: Arc<Reconfig>,
    admin: Option<(TcpListener, SocketAddr)>,
}

enum BoundWorkerListener {
    Tcp(TcpListener, SocketAddr),
    Unix(UnixListener, PathBuf),
}

impl Hub {
    /// Binds every listener the config names (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Hub, HubError> {
        let pools: PoolTable = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), Pool::new(p.clone())))
            .collect();
        let router = Router::new(&config.routes);
        let hub = &config.hub;
        let shared = Arc::new(HubShared {
            routing: ArcSwap::from_pointee(Routing { router, pools }),
            http: crate::front::http_builder(hub.max_header_bytes),
            max_header_bytes: hub.max_header_bytes,
            idle_timeout: hub.idle_timeout,
            header_read_timeout: hub.header_read_timeout,
            retiring: Mutex::new(HashMap::new()),
            metrics_enabled: AtomicBool::new(config.metrics.enabled),
            unrouted: AtomicU64::new(0),
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
        let admin = match &config.admin {
            Some(admin) => {
                let addr = admin.listen.to_string();
                let l = TcpListener::bind(admin.listen)
                    .await
                    .map_err(listen_err(addr.clone()))?;
                let local = l.local_addr().map_err(listen_err(addr))?;
                Some((l, local))
            }
            None => None,
        };
        let worker_port = Arc::new(WorkerPort {
            shared: shared.clone(),
            ping_interval: hub.ping_interval,
        });
        let supervisor = Arc::new(Supervisor::new(program_hub_url(&worker_listeners)));
        let drain_grace = hub.drain_grace;
        Ok(Hub {
            reconfig: Arc::new(Reconfig::new(shared.clone(), config, supervisor.clone())),
            shared,
            front,
            front_addr,
            worker_listeners,
            worker_port,
            drain_grace,
            supervisor,
            admin,
        })
    }

    /// Names the file the config came from, which `POST /reload` and
    /// [`ReloadHandle::reload`] read again.
    pub fn set_config_file(&mut self, path: impl Into<PathBuf>) {
        self.reconfig.set_file(path.into());
    }

    /// A handle that reloads the config file (for SIGHUP).
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(self.reconfig.clone())
    }

    /// Where the admin API listens, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
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

    /// The supervisor of the config's programs.
    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting, lets requests in
    /// flight finish within the grace period, stops the programs, tells the other workers
    /// DRAIN and closes their links.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.reconfig.start_programs();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let front = tokio::spawn(crate::front::run(
            self.front,
            self.shared.clone(),
            stop_rx.clone(),
            alive_tx,
        ));
        if let Some((listener, _)) = self.admin {
            let admin = crate::admin::Admin::new(self.reconfig.clone(), self.shared.clone());
            tokio::spawn(crate::admin::run(
                listener,
                Arc::new(admin),
                stop_rx.clone(),
            ));
        }
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
        self.supervisor.shutdown().await;
        for pool in self.shared.all_pools() {
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

/// The address the hub's own programs dial: a Unix socket when there is one (no TCP stack in
/// the way), else the first TCP listener, on loopback if it listens on every address.
fn program_hub_url(listeners: &[BoundWorkerListener]) -> String {
    let unix = listeners.iter().find_map(|l| match l {
        BoundWorkerListener::Unix(_, path) => Some(WorkerListen::Unix(path.clone())),
        BoundWorkerListener::Tcp(..) => None,
    });
    let tcp = || {
        listeners.iter().find_map(|l| match l {
            BoundWorkerListener::Tcp(_, addr) => {
                let mut addr = *addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Some(WorkerListen::Tcp(addr))
            }
            BoundWorkerListener::Unix(..) => None,
        })
    };
    unix.or_else(tcp).map(|l| l.to_string()).unwrap_or_default()
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
