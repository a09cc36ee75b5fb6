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

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use pullman_link::Link;
use pullman_proto::{CloseCode, Frame};
use slab::Slab;
use tokio::sync::oneshot;

use super::queue::{WaitQueue, Waiter};
use crate::config::PoolConfig;
use crate::http1::conn::Conn;
use crate::metrics::{FilterStats, RequestMetrics};
use crate::upstream::UpstreamClient;

/// Credits one worker may hold unspent. Far above any real concurrency; a bound so that a
/// hostile worker cannot overflow the counter or make one link look like thousands of slots.
pub(crate) const MAX_WORKER_CREDITS: u32 = 1 << 16;

/// A worker granted more credits than [`MAX_WORKER_CREDITS`]: it breaks the protocol.
#[derive(Debug, thiserror::Error)]
#[error("worker holds {credits} credits, more than {MAX_WORKER_CREDITS}")]
pub(crate) struct TooManyCredits {
    credits: u32,
}

struct WorkerSlot {
    id: u64,
    meta: WorkerMeta,
    reach: Reach,
    credits: u32,
    in_ready: bool,
    draining: bool,
    /// Requests handed to this worker and not yet answered.
    in_flight: u32,
}

/// How the hub reaches a worker.
enum Reach {
    /// A pullman link: as many requests at once as the worker grants credits.
    Link(Link),
    /// A reverse-HTTP (PTTH) connection: one request at a time, one credit while idle. The
    /// connection is here while idle and with the request's lease while busy.
    Ptth(Option<Conn>),
}

#[derive(Default)]
struct State {
    waiting: WaitQueue<Lease>,
    workers: Slab<WorkerSlot>,
    /// Keys of workers with credits, each at most once: round robin among idle workers.
    ready: VecDeque<usize>,
}

/// What the admin API shows about a worker besides its counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerMeta {
    /// The name the worker gave in its HELLO.
    pub(crate) name: String,
    /// Its address, or `unix` for a Unix socket.
    pub(crate) peer: String,
}

/// A pool of workers and the requests waiting for them.
pub(crate) struct Pool {
    name: String,
    /// Replaced whole by the admin API or a reload; the queue and workers stay.
    config: ArcSwap<PoolConfig>,
    state: Mutex<State>,
    /// Waiting requests that gave up since the last purge (a hint: may overcount).
    abandoned: AtomicUsize,
    pub(crate) metrics: RequestMetrics,
    /// Filter pools: what their filters decided. Kept when the settings change.
    pub(crate) filter_stats: FilterStats,
    /// Filter pools: the upstream client, built again only when the upstream settings
    /// change, so its idle connections survive other changes.
    upstream: ArcSwapOption<UpstreamClient>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A pool's numbers at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolStatus {
    pub(crate) queued: usize,
    pub(crate) workers: usize,
    pub(crate) credits_free: u64,
    pub(crate) in_flight: u64,
}

/// One worker at one moment.
#[derive(Debug, Clone)]
pub(crate) struct WorkerStatus {
    pub(crate) id: u64,
    pub(crate) meta: WorkerMeta,
    pub(crate) in_flight: u32,
    pub(crate) credits: u32,
    pub(crate) draining: bool,
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
        let metrics = RequestMetrics::default();
        let upstream = UpstreamClient::for_pool(&config, &metrics.upstream_stalls);
        Arc::new(Pool {
            name: config.name.clone(),
            upstream: ArcSwapOption::new(upstream.map(Arc::new)),
            config: ArcSwap::from_pointee(config),
            state: Mutex::new(State::default()),
            abandoned: AtomicUsize::new(0),
            metrics,
            filter_stats: FilterStats::default(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The pool's settings now; a request keeps the ones it started with.
    pub(crate) fn config(&self) -> Arc<PoolConfig> {
        self.config.load_full()
    }

    /// Replaces the settings in place: waiting requests and connected workers stay. A
    /// smaller queue limit refuses new requests until the queue is below it; a new token
    /// applies to workers that connect from now on. The upstream client is built anew for
    /// new upstream settings, or TLS files renewed on disk; requests under way keep theirs.
    pub(crate) fn update(&self, config: PoolConfig) {
        debug_assert_eq!(config.name, self.name);
        let renewed = (self.upstream.load().as_ref()).is_some_and(|c| c.tls_files_changed(&config));
        if renewed || !UpstreamClient::same_settings(&self.config.load(), &config) {
            let client = UpstreamClient::for_pool(&config, &self.metrics.upstream_stalls);
            self.upstream.store(client.map(Arc::new));
        }
        self.config.store(Arc::new(config));
    }

    /// A filter pool's upstream client; `None` for a respond pool.
    pub(crate) fn upstream(&self) -> Option<Arc<UpstreamClient>> {
        self.upstream.load_full()
    }

    /// Queue, workers and credits now. Purges abandoned waiters first, so the depth counts
    /// requests that still wait.
    pub(crate) fn status(&self) -> PoolStatus {
        let mut s = self.state.lock();
        if self.abandoned.swap(0, Ordering::Relaxed) > 0 {
            s.waiting.purge();
        }
        let mut status = PoolStatus {
            queued: s.waiting.len(),
            workers: s.workers.len(),
            ..PoolStatus::default()
        };
        for (_, w) in &s.workers {
            status.credits_free += u64::from(w.credits);
            status.in_flight += u64::from(w.in_flight);
        }
        status
    }

    /// Whether nothing waits and no worker has a request in flight.
    pub(crate) fn is_idle(&self) -> bool {
        let status = self.status();
        status.queued == 0 && status.in_flight == 0
    }

    /// Every connected worker, oldest first.
    pub(crate) fn workers(&self) -> Vec<WorkerStatus> {
        let s = self.state.lock();
        let mut out: Vec<WorkerStatus> = s
            .workers
            .iter()
            .map(|(_, w)| WorkerStatus {
                id: w.id,
                meta: w.meta.clone(),
                in_flight: w.in_flight,
                credits: w.credits,
                draining: w.draining,
            })
            .collect();
        out.sort_by_key(|w| w.id);
        out
    }

    /// Stops giving worker `id` work and tells it so: a link gets DRAIN (as if the worker
    /// had sent it), an idle PTTH connection is closed and a busy one once its request
    /// ends. `false` if the worker is not in this pool.
    pub(crate) fn drain_worker(&self, id: u64) -> bool {
        let mut s = self.state.lock();
        let Some(key) = s.workers.iter().find(|(_, w)| w.id == id).map(|(k, _)| k) else {
            return false;
        };
        let w = &mut s.workers[key];
        w.draining = true;
        w.credits = 0;
        let link = match &mut w.reach {
            Reach::Link(link) => Some(link.clone()),
            Reach::Ptth(idle) => {
                if idle.take().is_some() {
                    s.workers.remove(key);
                }
                None
            }
        };
        s.ready.retain(|&k| k != key);
        drop(s);
        if let Some(link) = link {
            link.send(Frame::Drain { last_stream: 0 });
        }
        true
    }

    /// Asks for a worker. `front` re-queues a request that a failed worker never started.
    pub(crate) fn acquire(self: &Arc<Self>, front: bool) -> Acquire {
        let mut s = self.state.lock();
        if let Some(lease) = self.take_ready(&mut s) {
            return Acquire::Ready(lease);
        }
        let queue_limit = self.config.load().queue_limit;
        if !front && s.waiting.len() >= queue_limit {
            if self.abandoned.swap(0, Ordering::Relaxed) > 0 {
                s.waiting.purge();
            }
            if s.waiting.len() >= queue_limit {
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
    pub(crate) fn add_worker(
        &self,
        id: u64,
        meta: WorkerMeta,
        spawn: impl FnOnce(usize) -> Link,
    ) -> usize {
        let mut s = self.state.lock();
        let entry = s.workers.vacant_entry();
        let key = entry.key();
        let link = spawn(key);
        entry.insert(WorkerSlot {
            id,
            meta,
            reach: Reach::Link(link),
            credits: 0,
            in_ready: false,
            draining: false,
            in_flight: 0,
        });
        key
    }

    /// Adds a PTTH worker: its connection is one free slot, given to the oldest waiting
    /// request at once.
    pub(crate) fn add_ptth_worker(self: &Arc<Self>, id: u64, meta: WorkerMeta, conn: Conn) {
        let mut s = self.state.lock();
        let key = s.workers.insert(WorkerSlot {
            id,
            meta,
            reach: Reach::Ptth(Some(conn)),
            credits: 1,
            in_ready: false,
            draining: false,
            in_flight: 0,
        });
        self.dispatch(&mut s, key);
    }

    /// A PTTH worker's request ended and its connection may carry another: it is a free
    /// slot again (closed instead if the worker was drained meanwhile).
    pub(crate) fn ptth_idle_again(self: &Arc<Self>, key: usize, id: u64, conn: Conn) {
        let mut s = self.state.lock();
        let Some(w) = s.workers.get_mut(key).filter(|w| w.id == id) else {
            return;
        };
        w.in_flight = w.in_flight.saturating_sub(1);
        if w.draining {
            s.workers.remove(key);
            return;
        }
        w.reach = Reach::Ptth(Some(conn));
        w.credits = 1;
        self.dispatch(&mut s, key);
    }

    /// A PTTH worker's request ended and its connection was closed.
    pub(crate) fn ptth_gone(&self, key: usize, id: u64) {
        let mut s = self.state.lock();
        if s.workers.get(key).is_some_and(|w| w.id == id) {
            s.workers.remove(key);
            s.ready.retain(|&k| k != key);
        }
    }

    /// Closes the idle PTTH connections whose worker has closed its end (or sent bytes
    /// nobody asked for); the PTTH listener calls this now and then, so that workers that
    /// went away while idle do not linger in the pool's counts.
    pub(crate) fn sweep_ptth(&self) {
        let mut s = self.state.lock();
        let gone: Vec<usize> = s
            .workers
            .iter()
            .filter(|(_, w)| matches!(&w.reach, Reach::Ptth(Some(conn)) if !conn.is_usable()))
            .map(|(key, _)| key)
            .collect();
        for key in gone {
            tracing::debug!(
                pool = self.name(),
                worker_id = s.workers[key].id,
                "idle PTTH worker closed its connection"
            );
            s.workers.remove(key);
            s.ready.retain(|&k| k != key);
        }
    }

    /// A worker granted `n` more credits.
    pub(crate) fn add_credit(self: &Arc<Self>, key: usize, n: u32) -> Result<(), TooManyCredits> {
        let mut s = self.state.lock();
        let Some(w) = s.workers.get_mut(key) else {
            return Ok(());
        };
        if w.draining {
            return Ok(());
        }
        let credits = w.credits.saturating_add(n);
        if credits > MAX_WORKER_CREDITS {
            return Err(TooManyCredits { credits });
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

    /// Tells every worker that the pool takes no more work: links get DRAIN and are closed
    /// with `code` and `why`; idle PTTH connections are closed, busy ones when their
    /// request ends. Returns how many workers there were.
    pub(crate) fn close_workers(&self, code: CloseCode, why: &str) -> usize {
        let mut s = self.state.lock();
        let count = s.workers.len();
        let mut links = Vec::new();
        let mut idle = Vec::new();
        for (key, w) in &mut s.workers {
            w.draining = true;
            w.credits = 0;
            match &mut w.reach {
                Reach::Link(link) => links.push(link.clone()),
                Reach::Ptth(conn) if conn.is_some() => idle.push(key),
                Reach::Ptth(_) => {}
            }
        }
        for key in idle {
            s.workers.remove(key);
        }
        s.ready.clear();
        drop(s);
        for link in links {
            link.send(Frame::Drain { last_stream: 0 });
            link.close(code, why);
        }
        count
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
        let reach = match &mut w.reach {
            Reach::Link(link) => Leased::Link(link.clone()),
            Reach::Ptth(conn) => Leased::Ptth(conn.take()),
        };
        Lease {
            pool: Some(self.clone()),
            key,
            worker_id: w.id,
            reach,
        }
    }

    /// Gives back a credit that was never used (and a PTTH connection with it).
    fn refund(self: &Arc<Self>, key: usize, id: u64, conn: Option<Conn>) {
        let mut s = self.state.lock();
        let Some(w) = s.workers.get_mut(key).filter(|w| w.id == id) else {
            return;
        };
        w.in_flight = w.in_flight.saturating_sub(1);
        if let Reach::Ptth(idle) = &mut w.reach {
            *idle = conn;
            if idle.is_none() || w.draining {
                s.workers.remove(key);
                return;
            }
        }
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
    reach: Leased,
}

/// How a lease reaches its worker.
pub(crate) enum Leased {
    Link(Link),
    /// The PTTH connection, taken out of the pool for this request (`None` once used).
    Ptth(Option<Conn>),
}

impl Lease {
    pub(crate) fn reach(&mut self) -> &mut Leased {
        &mut self.reach
    }

    pub(crate) fn is_ptth(&self) -> bool {
        matches!(self.reach, Leased::Ptth(_))
    }

    /// The pool, the worker's key in it and its id: what a PTTH request needs to give the
    /// connection back.
    pub(crate) fn worker(&self) -> (usize, u64) {
        (self.key, self.worker_id)
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
            let conn = match &mut self.reach {
                Leased::Ptth(conn) => conn.take(),
                Leased::Link(_) => None,
            };
            pool.refund(self.key, self.worker_id, conn);
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
            // Closed first, so a purge that sees the count also sees the entry as abandoned.
            self.rx.close();
            tracing::debug!(pool = self.pool.name(), "a request left the queue");
            self.pool.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use pullman_link::{Control, ControlError, LinkError, Role, Settings};
    use pullman_proto::Frame;
    use tokio::io::DuplexStream;

    use super::*;

    /// A link handler that ignores everything: the pool only needs a `Link` to hand out.
    struct Quiet;

    impl Control for Quiet {
        fn on_frame(&mut self, _link: &Link, _frame: Frame) -> Result<(), ControlError> {
            Ok(())
        }
        fn on_closed(&mut self, _err: &LinkError) {}
    }

    /// Parsed rather than written out, so new pool keys take their defaults here too.
    fn config(queue_limit: usize) -> PoolConfig {
        let text = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n\
             [[pool]]\nname = \"test\"\ntoken = \"token\"\nqueue_limit = {queue_limit}\n\
             max_body_bytes = 1024\n"
        );
        let mut config = crate::Config::from_str(&text, "test").unwrap();
        config.pools.remove(0)
    }

    /// A pool and the far ends of its workers' links, kept open so the links stay up.
    struct Harness {
        pool: Arc<Pool>,
        peers: Vec<DuplexStream>,
    }

    impl Harness {
        fn new(queue_limit: usize) -> Harness {
            Harness {
                pool: Pool::new(config(queue_limit)),
                peers: Vec::new(),
            }
        }

        /// Adds worker `id` with a link over an in-memory pipe; returns its key.
        fn worker(&mut self, id: u64) -> usize {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            self.peers.push(theirs);
            self.pool.add_worker(id, WorkerMeta::default(), |_key| {
                let settings = Settings {
                    role: Role::Hub,
                    recv_max_frame: pullman_proto::DEFAULT_MAX_FRAME,
                    send_max_frame: pullman_proto::MAX_FRAME_LIMIT,
                    recv_initial_window: pullman_proto::DEFAULT_INITIAL_WINDOW,
                    send_initial_window: pullman_proto::DEFAULT_INITIAL_WINDOW,
                    ping_interval: None,
                };
                Link::spawn(ours, BytesMut::new(), settings, Quiet).0
            })
        }

        /// Adds PTTH worker `id` over a loopback connection; returns the worker's end.
        async fn ptth_worker(&mut self, id: u64) -> tokio::net::TcpStream {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let theirs = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (ours, _) = listener.accept().await.unwrap();
            self.pool
                .add_ptth_worker(id, WorkerMeta::default(), Conn::new(ours));
            theirs
        }

        fn credits(&self, key: usize) -> u32 {
            self.pool.state.lock().workers[key].credits
        }

        fn in_flight(&self, key: usize) -> u32 {
            self.pool.state.lock().workers[key].in_flight
        }

        fn queued(&self) -> usize {
            self.pool.state.lock().waiting.len()
        }
    }

    fn ready(a: Acquire) -> Lease {
        match a {
            Acquire::Ready(lease) => lease,
            Acquire::Wait(_) => panic!("expected a lease, the request was queued"),
            Acquire::Full => panic!("expected a lease, the queue was full"),
        }
    }

    fn wait(a: Acquire) -> Waiting {
        match a {
            Acquire::Wait(w) => w,
            Acquire::Ready(_) => panic!("expected to wait, got a lease"),
            Acquire::Full => panic!("expected to wait, the queue was full"),
        }
    }

    /// The lease this waiter has been handed, if any, without waiting for one.
    fn try_lease(w: &mut Waiting) -> Option<Lease> {
        let lease = w.rx.try_recv().ok()?;
        w.done = true;
        Some(lease)
    }

    /// Whether this waiter has been handed a lease; if so the lease is spent, as when the
    /// request goes to the worker (dropping it would give the credit back).
    fn served(w: &mut Waiting) -> bool {
        try_lease(w).map(Lease::spend).is_some()
    }

    #[tokio::test]
    async fn never_hands_out_more_leases_than_credits() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, 3).unwrap();

        let mut leases = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..5 {
            match h.pool.acquire(false) {
                Acquire::Ready(lease) => leases.push(lease),
                Acquire::Wait(w) => waiting.push(w),
                Acquire::Full => panic!("queue of 10 reported full"),
            }
        }
        assert_eq!(leases.len(), 3);
        assert_eq!(waiting.len(), 2);
        assert_eq!(h.credits(key), 0);
        assert_eq!(h.in_flight(key), 3);
        assert!(leases.iter().all(|l| l.key == key && l.worker_id == 1));
        for w in &mut waiting {
            assert!(!served(w));
        }
        // Spent leases do not come back as credit.
        for lease in leases {
            assert_eq!(lease.spend(), (key, 1));
        }
        assert_eq!(h.credits(key), 0);
        assert!(!served(&mut waiting[0]));
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        let mut waiting: Vec<Waiting> = (0..3).map(|_| wait(h.pool.acquire(false))).collect();

        for served in 0..3 {
            h.pool.add_credit(key, 1).unwrap();
            for (i, w) in waiting.iter_mut().enumerate() {
                let got = try_lease(w);
                assert_eq!(got.is_some(), i == served, "credit {served}, waiter {i}");
                if let Some(lease) = got {
                    lease.spend();
                }
            }
        }
    }

    #[tokio::test]
    async fn a_front_request_jumps_the_queue() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        let mut first = wait(h.pool.acquire(false));
        let mut second = wait(h.pool.acquire(false));
        let mut requeued = wait(h.pool.acquire(true));

        h.pool.add_credit(key, 1).unwrap();
        assert!(served(&mut requeued));
        assert!(!served(&mut first));
        assert!(!served(&mut second));

        h.pool.add_credit(key, 1).unwrap();
        assert!(served(&mut first));
        assert!(!served(&mut second));
    }

    #[tokio::test]
    async fn a_front_request_is_queued_past_the_limit() {
        let mut h = Harness::new(1);
        let key = h.worker(1);
        let mut queued = wait(h.pool.acquire(false));
        assert!(matches!(h.pool.acquire(false), Acquire::Full));
        // A request a failed worker never started must not be turned away.
        let mut requeued = wait(h.pool.acquire(true));
        h.pool.add_credit(key, 2).unwrap();
        assert!(served(&mut requeued));
        assert!(served(&mut queued));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_until_waiters_give_up() {
        let mut h = Harness::new(3);
        let key = h.worker(1);
        let mut waiting: Vec<Waiting> = (0..3).map(|_| wait(h.pool.acquire(false))).collect();
        assert!(matches!(h.pool.acquire(false), Acquire::Full));
        assert_eq!(h.queued(), 3);

        // Two requests time out or lose their client: their places free up.
        let mut kept = waiting.remove(1);
        drop(waiting);
        let mut new_a = wait(h.pool.acquire(false));
        let mut new_b = wait(h.pool.acquire(false));
        assert!(matches!(h.pool.acquire(false), Acquire::Full));
        assert_eq!(h.queued(), 3);

        // The survivor is still first in line.
        h.pool.add_credit(key, 1).unwrap();
        assert!(served(&mut kept));
        assert!(!served(&mut new_a));
        h.pool.add_credit(key, 2).unwrap();
        assert!(served(&mut new_a));
        assert!(served(&mut new_b));
    }

    #[tokio::test]
    async fn dropping_an_unused_lease_serves_the_next_waiter() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, 1).unwrap();
        let lease = ready(h.pool.acquire(false));
        let mut next = wait(h.pool.acquire(false));
        assert!(try_lease(&mut next).is_none());

        drop(lease);
        let lease = try_lease(&mut next).expect("the refunded credit goes to the waiter");
        assert_eq!(lease.key, key);
        assert_eq!(h.in_flight(key), 1);

        // With nobody waiting, the refund makes the worker ready again.
        drop(lease);
        assert_eq!(h.credits(key), 1);
        assert_eq!(h.in_flight(key), 0);
        ready(h.pool.acquire(false)).spend();
    }

    #[tokio::test]
    async fn a_lease_delivered_to_a_waiter_that_left_comes_back() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        let gone = wait(h.pool.acquire(false));
        let mut next = wait(h.pool.acquire(false));

        h.pool.add_credit(key, 1).unwrap();
        // `gone` was handed the lease but its request ended before taking it.
        drop(gone);
        assert!(served(&mut next));
        assert_eq!(h.credits(key), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_left_before_its_turn_costs_no_credit() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        let gone = wait(h.pool.acquire(false));
        drop(gone);

        h.pool.add_credit(key, 1).unwrap();
        assert_eq!(h.credits(key), 1);
        assert_eq!(h.in_flight(key), 0);
        assert_eq!(ready(h.pool.acquire(false)).key, key);
    }

    #[tokio::test]
    async fn a_draining_worker_gets_no_new_requests() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, 2).unwrap();
        let lease = ready(h.pool.acquire(false));

        h.pool.worker_draining(key);
        assert!(matches!(h.pool.acquire(false), Acquire::Wait(_)));
        // Credits it grants late and credits returned by unused leases are void.
        h.pool.add_credit(key, 5).unwrap();
        drop(lease);
        assert_eq!(h.credits(key), 0);
        assert_eq!(h.in_flight(key), 0);
        let mut w = wait(h.pool.acquire(false));
        assert!(!served(&mut w));

        // Another worker picks up the queue.
        let other = h.worker(2);
        h.pool.add_credit(other, 1).unwrap();
        // The first waiter went with its `Acquire::Wait` above; the second is served.
        let lease = try_lease(&mut w).expect("served by the other worker");
        assert_eq!(lease.worker_id, 2);
    }

    #[tokio::test]
    async fn a_removed_worker_is_not_leased() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, 3).unwrap();
        let lease = ready(h.pool.acquire(false));

        h.pool.remove_worker(key);
        assert!(h.pool.state.lock().ready.is_empty());
        let mut w = wait(h.pool.acquire(false));
        // The dead worker's unused lease gives nothing back, even once its key is reused.
        let newcomer = h.worker(2);
        assert_eq!(newcomer, key, "slab reuses the freed key");
        drop(lease);
        assert_eq!(h.credits(newcomer), 0);
        assert_eq!(h.in_flight(newcomer), 0);
        assert!(!served(&mut w));

        h.pool.add_credit(newcomer, 1).unwrap();
        assert_eq!(try_lease(&mut w).expect("served").worker_id, 2);
    }

    #[tokio::test]
    async fn idle_workers_take_turns() {
        let mut h = Harness::new(10);
        let a = h.worker(1);
        let b = h.worker(2);
        h.pool.add_credit(a, 2).unwrap();
        h.pool.add_credit(b, 2).unwrap();

        let order: Vec<u64> = (0..4)
            .map(|_| ready(h.pool.acquire(false)).spend().1)
            .collect();
        assert_eq!(order, [1, 2, 1, 2]);
        assert!(matches!(h.pool.acquire(false), Acquire::Wait(_)));
    }

    #[tokio::test]
    async fn credit_beyond_the_bound_is_refused() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, MAX_WORKER_CREDITS - 1).unwrap();
        h.pool.add_credit(key, 1).unwrap();
        assert!(h.pool.add_credit(key, 1).is_err());
        assert_eq!(h.credits(key), MAX_WORKER_CREDITS);
        assert!(h.pool.add_credit(key, u32::MAX).is_err());
        assert_eq!(h.credits(key), MAX_WORKER_CREDITS);

        let other = h.worker(2);
        assert!(h.pool.add_credit(other, MAX_WORKER_CREDITS + 1).is_err());
        assert_eq!(h.credits(other), 0);
    }

    #[tokio::test]
    async fn finished_counts_down_in_flight_for_the_right_worker() {
        let mut h = Harness::new(10);
        let key = h.worker(1);
        h.pool.add_credit(key, 1).unwrap();
        let (k, id) = ready(h.pool.acquire(false)).spend();
        assert_eq!(h.in_flight(key), 1);
        // A report for another worker that once held this key changes nothing.
        h.pool.finished(k, id + 1);
        assert_eq!(h.in_flight(key), 1);
        h.pool.finished(k, id);
        assert_eq!(h.in_flight(key), 0);
        // Finishing a request does not return its credit: the worker grants again.
        assert_eq!(h.credits(key), 0);
    }

    #[tokio::test]
    async fn updating_settings_keeps_the_queue_and_the_workers() {
        let mut h = Harness::new(2);
        let key = h.worker(1);
        let mut first = wait(h.pool.acquire(false));
        let _second = wait(h.pool.acquire(false));
        assert!(matches!(h.pool.acquire(false), Acquire::Full));

        h.pool.update(config(3));
        assert_eq!(h.pool.config().queue_limit, 3);
        let _third = wait(h.pool.acquire(false));
        assert_eq!(h.pool.status().queued, 3);
        assert_eq!(h.pool.workers().len(), 1);
        h.pool.add_credit(key, 1).unwrap();
        assert!(served(&mut first), "the oldest waiter is still first");
    }

    #[tokio::test]
    async fn a_drained_worker_gets_nothing_new_and_says_so() {
        let mut h = Harness::new(10);
        let a = h.worker(1);
        let b = h.worker(2);
        h.pool.add_credit(a, 2).unwrap();
        h.pool.add_credit(b, 2).unwrap();
        let held = ready(h.pool.acquire(false)).spend();
        assert_eq!(held, (a, 1));

        assert!(h.pool.drain_worker(1));
        assert!(!h.pool.drain_worker(99));
        for _ in 0..2 {
            assert_eq!(ready(h.pool.acquire(false)).spend().1, 2);
        }
        assert!(matches!(h.pool.acquire(false), Acquire::Wait(_)));
        let workers = h.pool.workers();
        assert_eq!(workers[0].id, 1);
        assert!(workers[0].draining);
        assert_eq!((workers[0].in_flight, workers[0].credits), (1, 0));
        assert!(!workers[1].draining);

        // Its request in flight still finishes and is counted down.
        h.pool.finished(held.0, held.1);
        assert_eq!(h.pool.workers()[0].in_flight, 0);
        let status = h.pool.status();
        assert_eq!((status.queued, status.in_flight, status.workers), (0, 2, 2));
    }

    #[tokio::test]
    async fn a_ptth_connection_is_one_slot_that_travels_with_its_lease() {
        let mut h = Harness::new(10);
        let mut waiting = wait(h.pool.acquire(false));
        let _theirs = h.ptth_worker(7).await;
        // The waiting request got the connection at once; nobody else can.
        let mut lease = try_lease(&mut waiting).expect("served by the new PTTH worker");
        assert!(lease.is_ptth());
        assert!(matches!(lease.reach(), Leased::Ptth(Some(_))));
        assert!(matches!(h.pool.acquire(false), Acquire::Wait(_)));
        assert_eq!(h.pool.status().in_flight, 1);

        // Unused, the lease brings the connection back: the slot is free again.
        drop(lease);
        let mut lease = ready(h.pool.acquire(false));
        let (key, id) = lease.worker();
        let Leased::Ptth(conn) = lease.reach() else {
            panic!("a PTTH lease")
        };
        let conn = conn.take().unwrap();
        lease.spend();
        // A kept-alive connection is a free slot again once its answer ended.
        h.pool.ptth_idle_again(key, id, conn);
        assert_eq!(h.pool.status().credits_free, 1);
        assert_eq!(h.pool.status().in_flight, 0);
        // A closed one leaves the pool.
        ready(h.pool.acquire(false)).spend();
        h.pool.ptth_gone(key, id);
        assert_eq!(h.pool.status().workers, 0);
    }

    #[tokio::test]
    async fn idle_ptth_workers_that_closed_are_swept_and_drained_ones_closed() {
        let mut h = Harness::new(10);
        let gone = h.ptth_worker(1).await;
        let mut kept = h.ptth_worker(2).await;
        drop(gone);
        // The close reaches the hub's socket before the sweep looks: wait for it here.
        let mut probe = [0u8; 1];
        for _ in 0..10_000 {
            h.pool.sweep_ptth();
            if h.pool.status().workers == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            h.pool.status().workers,
            1,
            "the closed worker was never swept"
        );
        assert_eq!(h.pool.workers()[0].id, 2);

        assert!(h.pool.drain_worker(2));
        assert_eq!(h.pool.status().workers, 0);
        let n = tokio::io::AsyncReadExt::read(&mut kept, &mut probe)
            .await
            .unwrap();
        assert_eq!(n, 0, "the drained worker's connection is closed");
    }
}
