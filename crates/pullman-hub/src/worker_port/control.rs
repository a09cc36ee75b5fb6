//! The hub's side of a worker's link once it is up: credits feed the pool, DRAIN stops new
//! work, the link's end removes the worker.

use std::sync::Arc;

use pullman_link::{Control, ControlError, Link, LinkError};
use pullman_proto::Frame;

use crate::dispatch::{Pool, WorkerMeta};

/// Makes the greeted worker one of its pool's, on the link `start` spawns.
pub(super) fn join(
    pool: &Arc<Pool>,
    worker_id: u64,
    meta: WorkerMeta,
    start: impl FnOnce(HubControl) -> Link,
) {
    let control_pool = pool.clone();
    pool.add_worker(worker_id, meta, move |key| {
        start(HubControl {
            pool: control_pool,
            key,
            worker_id,
        })
    });
}

/// The hub's side of a worker link: credits feed the pool, the end removes the worker.
pub(super) struct HubControl {
    pool: Arc<Pool>,
    key: usize,
    worker_id: u64,
}

impl Control for HubControl {
    fn on_frame(&mut self, _link: &Link, frame: Frame) -> Result<(), ControlError> {
        match frame {
            Frame::Credit { n } => self
                .pool
                .add_credit(self.key, n)
                .map_err(|e| ControlError::Refused(Box::new(e))),
            Frame::Drain { .. } => {
                tracing::info!(
                    pool = self.pool.name(),
                    worker_id = self.worker_id,
                    "worker draining"
                );
                self.pool.worker_draining(self.key);
                Ok(())
            }
            other => Err(ControlError::Unexpected(other.frame_type())),
        }
    }

    fn on_closed(&mut self, err: &LinkError) {
        tracing::info!(pool = self.pool.name(), worker_id = self.worker_id, reason = %err, "worker link ended");
        self.pool.remove_worker(self.key);
    }
}
