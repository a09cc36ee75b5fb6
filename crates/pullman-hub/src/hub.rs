//! The hub: it binds its listeners, starts the front, the worker port, the admin API and
//! the supervisor over one shared state, and has the one shutdown path.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, WorkerListen};
use crate::error::HubError;
use crate::front::{ClientListener, Front};
use crate::programs::Supervisor;
use crate::reload::{ChangeError, Reconfig};
use crate::state::HubState;
use crate::tls::{HubTls, ServerTls};
use crate::worker_port::{
    accept_workers, check_socket_path, program_hub_url, BoundWorkerListener, WorkerPort,
};
use pullman_proto::CloseCode;

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
    state: Arc<HubState>,
    front: Arc<Front>,
    front_listeners: Vec<ClientListener>,
    front_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    worker_listeners: Vec<BoundWorkerListener>,
    worker_port: Arc<WorkerPort>,
    drain_grace: Duration,
    supervisor: Arc<Supervisor>,
    reconfig: Arc<Reconfig>,
    admin: Option<(TcpListener, SocketAddr)>,
    /// The admin listener's TLS settings, if `admin.tls` is set.
    admin_tls: Option<Arc<ServerTls>>,
}

impl Hub {
    /// Binds every listener the config names (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Hub, HubError> {
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        let hub = &config.hub;
        crate::upstream::check_tls(&config.pools).map_err(HubError::Tls)?;
        let state = Arc::new(HubState::new(&config));
        let listen_err = |addr: String| move |error| HubError::Listen { addr, error };
        let front_listener = TcpListener::bind(hub.listen)
            .await
            .map_err(listen_err(hub.listen.to_string()))?;
        let front_addr = front_listener
            .local_addr()
            .map_err(listen_err(hub.listen.to_string()))?;
        let mut front_listeners = vec![ClientListener {
            listener: front_listener,
            tls: None,
        }];
        let tls = HubTls::new(&config).map_err(HubError::Tls)?;
        let admin_tls = tls.admin.clone();
        let mut tls_addr = None;
        if let (Some(settings), Some(tls)) = (&tls.clients, &hub.tls) {
            let listener = TcpListener::bind(tls.listen)
                .await
                .map_err(listen_err(tls.listen.to_string()))?;
            tls_addr = Some(
                listener
                    .local_addr()
                    .map_err(listen_err(tls.listen.to_string()))?,
            );
            front_listeners.push(ClientListener {
                listener,
                tls: Some(settings.clone()),
            });
        }
        // Should a later listener fail, those bound so far go, socket files and all.
        let mut worker_listeners = Vec::new();
        for addr in &hub.workers_listen {
            worker_listeners.push(BoundWorkerListener::bind(addr, tls.workers.as_ref()).await?);
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
            state: state.clone(),
            ping_interval: hub.ping_interval,
        });
        let supervisor = Arc::new(Supervisor::new(program_hub_url(&worker_listeners)));
        let drain_grace = hub.drain_grace;
        Ok(Hub {
            front: Arc::new(Front::new(state.clone(), hub)?),
            reconfig: Arc::new(Reconfig::new(
                state.clone(),
                config,
                supervisor.clone(),
                tls,
            )),
            state,
            front_listeners,
            front_addr,
            tls_addr,
            worker_listeners,
            worker_port,
            drain_grace,
            supervisor,
            admin,
            admin_tls,
        })
    }

    /// Checks what [`Hub::bind`] would refuse that the config alone cannot tell, without
    /// binding anything: that each Unix worker listener's path is free, or a stale socket,
    /// and that the TLS certificates and keys can be read and go together (`check-config`
    /// runs this).
    pub fn check(config: &Config) -> Result<(), HubError> {
        HubTls::new(config).map_err(HubError::Tls)?;
        crate::upstream::check_tls(&config.pools).map_err(HubError::Tls)?;
        for addr in &config.hub.workers_listen {
            if let WorkerListen::Unix(path) = addr {
                check_socket_path(path)?;
            }
        }
        Ok(())
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

    /// Whether the admin API speaks TLS.
    pub fn admin_tls(&self) -> bool {
        self.admin_tls.is_some()
    }

    /// Where the admin API listens, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
    }

    /// Where clients connect.
    pub fn front_addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// Where clients connect over TLS, if `[hub.tls]` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Where workers connect, with any port 0 resolved.
    pub fn worker_addrs(&self) -> Vec<WorkerListen> {
        self.worker_listeners.iter().map(|l| l.addr()).collect()
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
            self.front_listeners,
            self.front,
            stop_rx.clone(),
            alive_tx,
        ));
        if let Some((listener, _)) = self.admin {
            let admin = crate::admin::Admin::new(self.reconfig.clone(), self.state.clone());
            tokio::spawn(crate::admin::run(
                listener,
                self.admin_tls,
                Arc::new(admin),
                stop_rx.clone(),
            ));
        }
        let mut accepting = Vec::new();
        for listener in self.worker_listeners {
            accepting.push(tokio::spawn(accept_workers(
                listener,
                self.worker_port.clone(),
                stop_rx.clone(),
            )));
        }
        shutdown.await;
        tracing::info!(grace = ?self.drain_grace, "draining: no new clients, finishing requests in flight");
        let _ = stop_tx.send(true);
        let _ = front.await;
        // The worker listeners close (and their socket files go) as their loops end.
        for task in accepting {
            let _ = task.await;
        }
        if tokio::time::timeout(self.drain_grace, alive_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; cancelling requests still in flight");
        }
        self.supervisor.shutdown().await;
        for pool in self.state.all_pools() {
            pool.close_workers(CloseCode::GoingAway, "hub shutting down");
        }
        // Give the links a moment to put their last frames on the wire.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::info!("drained");
    }
}
