//! A pool: one queue of waiting requests, the workers serving it, and the dispatcher that
//! pairs the oldest waiting request with a worker holding a free credit.
//!
//! Credits are what workers granted; the hub spends one per request and never more. Workers
//! with credits left sit in a ready ring, so finding one is O(1) whatever the number of
//! workers. A spent credit travels as a [`Lease`]: if the request holding it goes away
//! before using it, dropping the lease gives the credit back and serves the next request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pullman_link::Link;
use slab::Slab;
use tokio::sync::oneshot;

use crate::config::PoolConfig;
use crate::queue::{WaitQueue, Waiter};

/// Credits one worker may hold unspent. Far above any real concurrency; a bound so that a
/// hostile worker cannot overflow the counter or make one link look like thousands of slots.
pub(crate) const MAX_WORKER_CREDITS: u32 = 1 << 16;

struct WorkerSlot {
    id: u64,
    link: Link,
    credits: u32,
    in_ready: bool,
    draining: bool,
    /// Requests handed to this worker and not yet answered.
    in_flight: u32,
}

#[derive(Default)]
struct State {
    waiting: WaitQueue,
    workers: Slab<WorkerSlot>,
    /// Keys of workers with credits, each at most once: round robin among idle workers.
    ready: VecDeque<usize>,
}

/// A pool of workers and the requests waiting for them.
pub(crate) struct Pool {
    pub(crate) config: PoolConfig,
    state: Mutex<State>,
    /// Waiting requests that gave up since the last purge (a hint: may overcount).
    abandoned: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// What [`Pool::acquire`] found.
pub(crate) enum Acquire {
    /// A worker had a free credit.
    Ready(Lease),
    /// Queued; the lease comes when a worker frees up.
    Wait(Waiting),
    /// The queue is at its limit.
    Full,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool {
            config,
            state: Mutex::new(State::default()),
            abandoned: AtomicUsize::new(0),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Asks for a worker. `front` re-queues a request that a failed worker never started.
    pub(crate) fn acquire(self: &Arc<Self>, front: bool) -> Acquire {
        let mut s = self.state.lock();
        if let Some(lease) = self.take_ready(&mut s) {
            return Acquire::Ready(lease);
        }
        if !front && s.waiting.len() >= self.config.queue_limit {
            if self.abandoned.swap(0, Ordering::Relaxed) > 0 {
                s.waiting.purge();
            }
            if s.waiting.len() >= self.config.queue_limit {
                return Acquire::Full;
            }
        }
        let (tx, rx) = oneshot::channel();
        if front {
            s.waiting.push_front(Waiter::new(tx));
        } else {
            s.waiting.push_back(Waiter::new(tx));
        }
        Acquire::Wait(Waiting {
            rx,
            pool: self.clone(),
            done: false,
        })
    }

    /// Adds a worker; `spawn` starts its link (under the pool lock, so that the link cannot
    /// report credits before the worker is known). Returns the worker's key.
    pub(crate) fn add_worker(&self, id: u64, spawn: impl FnOnce(usize) -> Link) -> usize {
        let mut s = self.state.lock();
        let entry = s.workers.vacant_entry();
        let key = entry.key();
        let link = spawn(key);
        entry.insert(WorkerSlot {
            id,
            link,
            credits: 0,
            in_ready: false,
            draining: false,
            in_flight: 0,
        });
        key
    }

    /// A worker granted `n` more credits.
    pub(crate) fn add_credit(self: &Arc<Self>, key: usize, n: u32) -> Result<(), String> {
        let mut s = self.state.lock();
        let Some(w) = s.workers.get_mut(key) else {
            return Ok(());
        };
        if w.draining {
            return Ok(());
        }
        let credits = w.credits.saturating_add(n);
        if credits > MAX_WORKER_CREDITS {
            return Err(format!(
                "worker holds {credits} credits, more than {MAX_WORKER_CREDITS}"
            ));
        }
        w.credits = credits;
        self.dispatch(&mut s, key);
        Ok(())
    }

    /// A worker will take nothing new.
    pub(crate) fn worker_draining(&self, key: usize) {
        let mut s = self.state.lock();
        if let Some(w) = s.workers.get_mut(key) {
            w.draining = true;
            w.credits = 0;
        }
    }

    /// A worker's link ended.
    pub(crate) fn remove_worker(&self, key: usize) {
        let mut s = self.state.lock();
        if s.workers.contains(key) {
            s.workers.remove(key);
            s.ready.retain(|&k| k != key);
        }
    }

    /// A request finished on a worker (for the in-flight count).
    pub(crate) fn finished(&self, key: usize, id: u64) {
        let mut s = self.state.lock();
        if let Some(w) = s.workers.get_mut(key).filter(|w| w.id == id) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
    }

    /// Links of every connected worker (to tell them DRAIN).
    pub(crate) fn links(&self) -> Vec<Link> {
        self.state
            .lock()
            .workers
            .iter()
            .map(|(_, w)| w.link.clone())
            .collect()
    }

    /// Pairs waiting requests with worker `key`'s credits, then lists it as ready if any
    /// credits are left.
    fn dispatch(self: &Arc<Self>, s: &mut State, key: usize) {
        while s.workers[key].credits > 0 {
            let Some(waiter) = s.waiting.pop() else { break };
            let lease = self.lease(s, key);
            if let Err(lease) = waiter.serve(lease) {
                // Gave up between pop and send: take the credit back by hand, since
                // dropping the lease here would lock the pool again.
                lease.cancel();
                let w = &mut s.workers[key];
                w.credits += 1;
                w.in_flight -= 1;
            }
        }
        let w = &mut s.workers[key];
        if w.credits > 0 && !w.in_ready {
            w.in_ready = true;
            s.ready.push_back(key);
        }
    }

    fn take_ready(self: &Arc<Self>, s: &mut State) -> Option<Lease> {
        while let Some(key) = s.ready.pop_front() {
            let Some(w) = s.workers.get_mut(key) else {
                continue;
            };
            w.in_ready = false;
            if w.credits == 0 {
                continue;
            }
            let lease = self.lease(s, key);
            let w = &mut s.workers[key];
            if w.credits > 0 {
                w.in_ready = true;
                s.ready.push_back(key);
            }
            return Some(lease);
        }
        None
    }

    fn lease(self: &Arc<Self>, s: &mut State, key: usize) -> Lease {
        let w = &mut s.workers[key];
        w.credits -= 1;
        w.in_flight += 1;
        Lease {
            pool: Some(self.clone()),
            key,
            worker_id: w.id,
            link: w.link.clone(),
        }
    }

    /// Gives back a credit that was never used.
    fn refund(self: &Arc<Self>, key: usize, id: u64) {
        let mut s = self.state.lock();
        let Some(w) = s.workers.get_mut(key).filter(|w| w.id == id) else {
            return;
        };
        w.in_flight = w.in_flight.saturating_sub(1);
        if w.draining {
            return;
        }
        w.credits += 1;
        self.dispatch(&mut s, key);
    }
}

/// One spent credit of one worker: the right to send it one request.
pub(crate) struct Lease {
    /// `None` once the credit is used or cancelled.
    pool: Option<Arc<Pool>>,
    key: usize,
    worker_id: u64,
    link: Link,
}

impl Lease {
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// The request was handed to the worker: the credit is spent for good. Returns what
    /// the request needs to report its end with [`Pool::finished`].
    pub(crate) fn spend(mut self) -> (usize, u64) {
        self.pool = None;
        (self.key, self.worker_id)
    }

    /// Forgets the credit without giving it back (the worker is gone, or the caller
    /// accounts for it).
    pub(crate) fn cancel(mut self) {
        self.pool = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.refund(self.key, self.worker_id);
        }
    }
}

/// A queued request's claim to the next free worker.
pub(crate) struct Waiting {
    rx: oneshot::Receiver<Lease>,
    pool: Arc<Pool>,
    done: bool,
}

impl Waiting {
    /// Waits for a worker. `None` if the pool went away.
    pub(crate) async fn lease(&mut self) -> Option<Lease> {
        let lease = (&mut self.rx).await.ok();
        self.done = true;
        lease
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.done {
            self.pool.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}
