//! The admin API: its own HTTP/1.1 listener, a bearer token, JSON in and out, and
//! `/metrics`. See `docs/admin-api.md`.
//!
//! # Layout
//! - this file: the listener (plain, or TLS with `admin.tls`) and the connection loop;
//! - `api`: the endpoints (a path enum and one handler each) and JSON errors;
//! - `auth`: the bearer token check.
//! - `metrics`: the hub's metric families (pools and programs) that `/metrics` renders.
//!
//! A PUT's body is read into a change (`api::Put`) that applies to a copy of the config
//! document without I/O, so `crate::fuzzing` can drive it.

mod api;
mod auth;
mod metrics;

pub(crate) use api::{put_offline, Kind};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::metrics::Source;
use crate::reload::Reconfig;
use crate::state::HubState;
use crate::tls::ServerTls;

/// Admin connections served at once. Operators and a Prometheus scraper need a handful;
/// the bound keeps a misbehaving script from taking the hub's descriptors. Past it, new
/// connections wait in the kernel's backlog.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Time an admin client has to send its request head.
const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin API reads and changes.
pub(crate) struct Admin {
    pub(crate) reconfig: Arc<Reconfig>,
    pub(crate) state: Arc<HubState>,
    /// What `/metrics` renders, in order: the hub's pools first.
    pub(crate) sources: Vec<Arc<dyn Source>>,
}

impl Admin {
    pub(crate) fn new(reconfig: Arc<Reconfig>, state: Arc<HubState>) -> Admin {
        Admin {
            sources: vec![state.clone(), reconfig.supervisor().clone()],
            reconfig,
            state,
        }
    }
}

/// Serves the admin API until `stop` flips: over TLS with `tls`, first bounded by the
/// header read timeout.
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    admin: Arc<Admin>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (sock, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                crate::accept::pause_after(e, "admin").await;
                continue;
            }
        };
        let (admin, tls) = (admin.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve(sock, peer, admin).await,
                Some(tls) => match tls.handshake(sock, ADMIN_HEADER_READ_TIMEOUT).await {
                    Ok(stream) => serve(stream, peer, admin).await,
                    Err(why) => tracing::debug!(%peer, "admin connection closed: {why}"),
                },
            }
            drop(permit);
        });
    }
}

/// Serves one admin connection.
async fn serve<S>(io: S, peer: SocketAddr, admin: Arc<Admin>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let admin = admin.clone();
        async move { Ok::<_, Infallible>(api::handle(&admin, req, peer).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN_HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
    }
}
