//! PTTH workers (reverse HTTP, as POTHEAD's `pothead.worker` speaks it): a worker dials the
//! PTTH listener of a pool and waits; it says nothing and gives no token, so the
//! connection joins the listener's pool at once as one free slot. The hub writes a request
//! on it when one comes (`dispatch::ptth`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{WorkerPort, NEXT_WORKER_ID};
use crate::config::PoolMode;
use crate::dispatch::WorkerMeta;
use crate::http1::conn::Conn;

/// How often the listener looks for idle workers that closed their connection, so that
/// the pool's counts drop them without waiting for a request to find them gone.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts PTTH workers for pool `pool` until `stop` flips.
pub(super) async fn accept_ptth_workers(
    listener: TcpListener,
    pool: String,
    port: Arc<WorkerPort>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
            _ = sweep.tick() => {
                if let Some(pool) = port.state.pool(&pool) {
                    pool.sweep_ptth();
                }
                continue;
            }
        };
        let (sock, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                crate::accept::pause_after(e, "PTTH worker").await;
                continue;
            }
        };
        // The pool is looked up in the current routing table: a reload may have removed
        // it, or made it a filter pool, since the listener was bound.
        let found = port.state.pool(&pool);
        let Some(found) = found.filter(|p| p.config().mode == PoolMode::Respond) else {
            tracing::warn!(
                %peer,
                pool,
                "PTTH worker refused: its listener's pool no longer exists or is not a respond pool"
            );
            continue;
        };
        let _ = sock.set_nodelay(true);
        let id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, pool, worker_id = id, "PTTH worker connected");
        let meta = WorkerMeta {
            name: "ptth".into(),
            peer: peer.to_string(),
        };
        found.add_ptth_worker(id, meta, Conn::new(sock));
    }
}
