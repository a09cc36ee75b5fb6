//! The worker's runtime, driven by the callers' threads themselves.
//!
//! The SDK's link runs on a single-threaded tokio runtime that has no thread of its own:
//! a thread waiting in it (in [`PullWorker::next`](super::PullWorker::next) for a request,
//! in [`Pulled::read`](super::Pulled::read) for a body chunk, ...) runs the link's I/O and
//! the SDK's tasks while it waits. So a request read from the socket, handed to the
//! caller, answered and written back costs no thread switch when one thread does it all,
//! which is what makes a C worker as fast as a Rust one on short requests.
//!
//! Two things keep that from stalling:
//! - **Hand-off**: one thread at a time waits for requests by driving the runtime (the
//!   *puller*); the others wait on a condition variable. While requests take long
//!   (the recent average above [`SLOW`]), the puller wakes an idle thread as it leaves
//!   with a request, so the next request finds a thread at once.
//! - **The keeper**: a thread of the SDK that looks every [`TICK`] whether anyone has
//!   driven the runtime since its last look. If not (every calling thread busy in its own
//!   code, or none calling), it wakes an idle one to take over, or drives the runtime
//!   itself until a caller asks for it, so that PINGs are answered, answers are flushed and
//!   cancellations are seen however long the caller's code runs. While the worker is idle
//!   (a thread waits on the link, no request is out) it looks less and less often, up to
//!   [`IDLE_TICK`]; the next request handed out wakes it.

use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, Notify};

use super::{Incoming, PullError, Reply};

/// How often the keeper looks whether the runtime is being driven while requests are out.
const TICK: Duration = Duration::from_millis(1);
/// How seldom it looks at most while the worker is idle.
const IDLE_TICK: Duration = Duration::from_millis(64);
/// How long the keeper drives at a time when no calling thread does (it stops at once when a
/// calling thread wants to).
const KEEPER_TURN: Duration = Duration::from_millis(50);
/// Average time a request spends with its caller above which the puller wakes an idle thread as it
/// leaves with a request: below it, the same thread is back before a wake-up would pay.
const SLOW: Duration = Duration::from_micros(50);
/// One request in this many is timed for that average.
const TIMED: u64 = 8;

/// A runtime driven by whichever thread waits on it, and the requests it receives.
pub(crate) struct Driven {
    runtime: Runtime,
    inbox: Arc<Inbox>,
    /// Answers given by calling threads, for the SDK's tasks waiting on them: handed over by the
    /// next thread to enter the runtime, from inside it, so that the tasks they wake are
    /// queued there (no wake-up from outside, no extra entry into the runtime per answer).
    outbox: Mutex<Vec<(oneshot::Sender<Reply>, Reply)>>,
}

/// What the runtime's tasks and the calling threads share. Apart from [`Driven`] so that the
/// tasks on the runtime do not keep their own runtime alive.
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Idle calling threads in `next` wait here.
    changed: Condvar,
    /// Wakes the puller when a request arrives or the run ends.
    arrived: Notify,
    /// Ends the keeper's turn when a calling thread wants to drive.
    wanted: Notify,
    /// Threads inside the runtime now.
    driving: AtomicUsize,
    /// Counts calling threads' visits to the runtime and requests taken: the keeper's sign that
    /// the callers is alive.
    progress: AtomicU64,
    /// Moving average of the time a request spends with its caller, in nanoseconds.
    service_ns: AtomicU64,
    /// Requests handed out in all, to pick the ones timed.
    handed: AtomicU64,
    /// Requests handed out and not yet freed.
    in_flight: AtomicUsize,
    /// Whether the keeper sleeps a long (idle) tick; it waits on `alarm` then.
    dozing: AtomicBool,
    alarm: Mutex<()>,
    wake_keeper: Condvar,
}

struct State {
    waiting: VecDeque<Incoming>,
    /// Set when the SDK's run ended: `Ok` when it drained, the reason when refused.
    ended: Option<Result<(), String>>,
    puller: Puller,
    /// calling threads waiting on `changed`.
    idle: usize,
}

/// Who waits for requests by driving the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Puller {
    Nobody,
    Caller,
    Keeper,
}

impl Driven {
    /// A runtime for one worker, and its keeper thread.
    pub(crate) fn start() -> std::io::Result<Arc<Driven>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let driven = Arc::new(Driven {
            runtime,
            outbox: Mutex::new(Vec::new()),
            inbox: Arc::new(Inbox {
                state: Mutex::new(State {
                    waiting: VecDeque::new(),
                    ended: None,
                    puller: Puller::Nobody,
                    idle: 0,
                }),
                changed: Condvar::new(),
                arrived: Notify::new(),
                wanted: Notify::new(),
                driving: AtomicUsize::new(0),
                progress: AtomicU64::new(0),
                service_ns: AtomicU64::new(0),
                handed: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                dozing: AtomicBool::new(false),
                alarm: Mutex::new(()),
                wake_keeper: Condvar::new(),
            }),
        });
        let weak = Arc::downgrade(&driven);
        std::thread::Builder::new()
            .name("pullman-keeper".into())
            .spawn(move || keep(weak))?;
        Ok(driven)
    }

    /// The inbox, for the tasks that put requests in it.
    pub(crate) fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    /// A request was handed out. The first after a quiet spell wakes the keeper, which
    /// watches closely again while requests are out. Returns when it was handed out if it
    /// is one of the requests timed (one in [`TIMED`]): the average their times make
    /// decides hand-offs, and reading the clock twice for every request cost a short
    /// request 3 % of its CPU.
    pub(crate) fn taken(&self) -> Option<Instant> {
        let inbox = &self.inbox;
        inbox.in_flight.fetch_add(1, Ordering::SeqCst);
        if inbox.dozing.load(Ordering::SeqCst) {
            let _alarm = inbox.alarm.lock();
            inbox.wake_keeper.notify_one();
        }
        let handed = inbox.handed.fetch_add(1, Ordering::Relaxed);
        (handed % TIMED == 0).then(Instant::now)
    }

    /// A request was freed; `since` is when it was handed out, if it was timed.
    pub(crate) fn freed(&self, since: Option<Instant>) {
        self.inbox.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(since) = since {
            self.inbox.freed(since);
        }
    }

    /// Starts `task` on the runtime; it runs whenever some thread drives.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// Runs `f` to completion on this calling thread, driving the runtime meanwhile if no other
    /// thread does (else waiting for `f` alone).
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        let inbox = &self.inbox;
        inbox.driving.fetch_add(1, Ordering::SeqCst);
        let out = self.drive(f);
        inbox.driving.fetch_sub(1, Ordering::SeqCst);
        inbox.progress.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Runs `f` on the runtime, handing over the answers waiting in the outbox first. The
    /// caller counted itself in `driving` already.
    fn drive<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(async {
            let answers = std::mem::take(&mut *self.outbox.lock());
            for (to, answer) in answers {
                // A request the hub cancelled meanwhile has no one waiting: nothing to do.
                let _ = to.send(answer);
            }
            f.await
        })
    }

    /// Gives the SDK's task waiting on `to` its answer: through the outbox when no thread
    /// is in the runtime (the next to enter hands it over; this thread's own next call, at
    /// the latest the keeper's next look), else at once, waking the thread that drives.
    /// `Err` if the request is cancelled already.
    pub(crate) fn answer(
        &self,
        to: oneshot::Sender<Reply>,
        answer: Reply,
    ) -> Result<(), PullError> {
        let closed = || PullError::Closed("the hub cancelled this request".into());
        let mut outbox = self.outbox.lock();
        // A thread that enters the runtime counts itself before it empties the outbox,
        // under this lock: an answer left here is always found.
        if self.inbox.driving.load(Ordering::SeqCst) == 0 {
            if to.is_closed() {
                return Err(closed());
            }
            outbox.push((to, answer));
            return Ok(());
        }
        drop(outbox);
        to.send(answer).map_err(|_| closed())
    }

    /// The next request; [`PullError::Timeout`], [`PullError::Drained`] or
    /// [`PullError::Refused`] when there is none.
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Result<Incoming, PullError> {
        let inbox = &self.inbox;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = inbox.state.lock();
        loop {
            if let Some(incoming) = state.waiting.pop_front() {
                inbox.progress.fetch_add(1, Ordering::Relaxed);
                if state.idle > 0 && inbox.slow() {
                    // This thread will be away a while: another one pulls meanwhile.
                    inbox.changed.notify_one();
                }
                return Ok(incoming);
            }
            match &state.ended {
                Some(Ok(())) => return Err(PullError::Drained),
                Some(Err(why)) => return Err(PullError::Refused(why.clone())),
                None => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PullError::Timeout);
            }
            match state.puller {
                Puller::Nobody => {
                    state.puller = Puller::Caller;
                    MutexGuard::unlocked(&mut state, || {
                        self.block_on(inbox.news(deadline));
                    });
                    state.puller = Puller::Nobody;
                    if state.waiting.is_empty() && state.idle > 0 {
                        // Left without a request (a timeout): someone else pulls.
                        inbox.changed.notify_one();
                    }
                    continue;
                }
                Puller::Keeper => inbox.wanted.notify_one(),
                Puller::Caller => {}
            }
            state.idle += 1;
            match deadline {
                None => inbox.changed.wait(&mut state),
                Some(d) => {
                    inbox.changed.wait_until(&mut state, d);
                }
            }
            state.idle -= 1;
        }
    }

    /// Requests for a thread that runs an event loop of its own (Python's asyncio, a C
    /// program's epoll loop) and calls this where it would wait for events: it drives the
    /// runtime on this thread until a request waits, `also` (the loop's own poller, if
    /// given) is readable, or `timeout` passed, then takes the requests waiting, at most
    /// `max`, possibly none. It drives at least one turn even when requests wait already,
    /// so that the answers this thread gave since its last call go out now. Once the run
    /// ended and nothing waits, [`PullError::Drained`] or [`PullError::Refused`].
    pub(crate) fn next_batch(
        &self,
        max: usize,
        timeout: Option<Duration>,
        also: Option<&Watched>,
    ) -> Result<Vec<Incoming>, PullError> {
        if also.is_some_and(|w| w.owner != self.address()) {
            return Err(PullError::Invalid(
                "this watch was made by another worker".into(),
            ));
        }
        let inbox = &self.inbox;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = inbox.state.lock();
        loop {
            match state.puller {
                Puller::Nobody => break,
                Puller::Keeper => inbox.wanted.notify_one(),
                Puller::Caller => {}
            }
            // Another thread drives: wait for it to leave (or for the deadline).
            state.idle += 1;
            let timed_out = match deadline {
                None => {
                    inbox.changed.wait(&mut state);
                    false
                }
                Some(d) => inbox.changed.wait_until(&mut state, d).timed_out(),
            };
            state.idle -= 1;
            if timed_out {
                break;
            }
        }
        if state.puller == Puller::Nobody {
            state.puller = Puller::Caller;
            MutexGuard::unlocked(&mut state, || {
                self.block_on(async {
                    // One turn of the runtime first: the answers just handed over are
                    // written even when the wait below ends at once.
                    tokio::task::yield_now().await;
                    let readable = async {
                        match also {
                            Some(fd) => readable(fd).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = inbox.news(deadline) => {}
                        () = readable => {}
                    }
                });
            });
            state.puller = Puller::Nobody;
            if state.idle > 0 {
                inbox.changed.notify_one();
            }
        }
        let n = state.waiting.len().min(max);
        if n == 0 {
            match &state.ended {
                Some(Ok(())) => return Err(PullError::Drained),
                Some(Err(why)) => return Err(PullError::Refused(why.clone())),
                None => {}
            }
        }
        inbox.progress.fetch_add(1, Ordering::Relaxed);
        Ok(state.waiting.drain(..n).collect())
    }

    /// What tells this worker's [`Watched`] from another's.
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// `fd` registered with the runtime, through a duplicate of it, so that its owner may
    /// close it whenever it likes.
    pub(crate) fn watch(&self, fd: BorrowedFd<'_>) -> std::io::Result<Watched> {
        let dup = fd.try_clone_to_owned()?;
        let _entered = self.runtime.enter();
        // The safe constructor is deprecated because a borrowed raw fd may close under it;
        // an OwnedFd, which this one owns, cannot.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(dup, Interest::READABLE)?;
        Ok(Watched {
            fd,
            owner: self.address(),
        })
    }

    /// Waits, driving the runtime, until the SDK's run ended.
    pub(crate) fn wait_ended(&self) {
        let inbox = &self.inbox;
        self.block_on(async {
            loop {
                let notified = inbox.arrived.notified();
                if inbox.state.lock().ended.is_some() {
                    return;
                }
                notified.await;
            }
        });
    }
}

/// A file descriptor of the caller's that [`Driven::next_batch`] waits on, registered with
/// the runtime (through a duplicate) until dropped.
pub(crate) struct Watched {
    fd: AsyncFd<OwnedFd>,
    /// The address of the [`Driven`] whose runtime watches it: only that one's
    /// [`Driven::next_batch`] may wait on it (another's would never see it ready).
    owner: usize,
}

/// Completes once `watched` is readable. The runtime's readiness is edge-triggered and
/// outlives what the caller reads, so a readiness the fd no longer has (its events were
/// taken since) is cleared and waited for again.
async fn readable(watched: &Watched) {
    loop {
        let Ok(mut guard) = watched.fd.readable().await else {
            // The runtime cannot watch it: do not spin on it.
            return std::future::pending().await;
        };
        let mut fds = [PollFd::new(&watched.fd, PollFlags::IN)];
        if poll(&mut fds, Some(&Timespec::default())).is_ok_and(|n| n > 0) {
            return;
        }
        guard.clear_ready();
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // Answers no thread entered the runtime to hand over still reach whoever waits.
        for (to, answer) in std::mem::take(&mut *self.outbox.lock()) {
            let _ = to.send(answer);
        }
    }
}

impl Inbox {
    /// Queues a request for a calling thread.
    pub(crate) fn push(&self, incoming: Incoming) {
        let mut state = self.state.lock();
        state.waiting.push_back(incoming);
        let wake_idle = state.puller != Puller::Caller && state.idle > 0;
        drop(state);
        self.arrived.notify_waiters();
        if wake_idle {
            // No calling thread is pulling (the keeper drives, or a thread reading a body):
            // an idle one takes the request.
            self.changed.notify_one();
        }
    }

    /// Records that the SDK's run ended; every waiting and later `next` returns.
    pub(crate) fn end(&self, result: Result<(), String>) {
        self.state.lock().ended = Some(result);
        self.arrived.notify_waiters();
        self.wanted.notify_one();
        self.changed.notify_all();
    }

    /// A timed request handed out at `since` was freed.
    fn freed(&self, since: Instant) {
        let took = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // An average over roughly the last 4 timed requests (32 in all); racing updates
        // lose a sample.
        let old = self.service_ns.load(Ordering::Relaxed);
        let new = old - old / 4 + took / 4;
        self.service_ns.store(new, Ordering::Relaxed);
    }

    /// The keeper's sleep of `tick`; a long one ends early when a request is handed out.
    fn doze(&self, tick: Duration) {
        let mut alarm = self.alarm.lock();
        let long = tick > TICK;
        self.dozing.store(long, Ordering::SeqCst);
        if !(long && self.in_flight.load(Ordering::SeqCst) > 0) {
            self.wake_keeper.wait_for(&mut alarm, tick);
        }
        self.dozing.store(false, Ordering::SeqCst);
    }

    /// Whether requests have recently spent long with their callers.
    fn slow(&self) -> bool {
        Duration::from_nanos(self.service_ns.load(Ordering::Relaxed)) > SLOW
    }

    /// Completes when a request waits, the run ended, or `deadline` passed.
    async fn news(&self, deadline: Option<Instant>) {
        let news = async {
            loop {
                let notified = self.arrived.notified();
                {
                    let state = self.state.lock();
                    if !state.waiting.is_empty() || state.ended.is_some() {
                        return;
                    }
                }
                notified.await;
            }
        };
        match deadline {
            Some(d) => {
                let _ = tokio::time::timeout_at(d.into(), news).await;
            }
            None => news.await,
        }
    }
}

/// The keeper's loop: every tick, if no calling thread drove the runtime or took a request
/// since the last, get the runtime driven. Ends with the worker's run, or when the worker
/// is gone.
fn keep(driven: Weak<Driven>) {
    let mut seen = u64::MAX;
    let mut tick = TICK;
    loop {
        let Some(inbox) = driven.upgrade().map(|d| d.inbox.clone()) else {
            return;
        };
        inbox.doze(tick);
        let Some(driven) = driven.upgrade() else {
            return;
        };
        let inbox = &driven.inbox;
        let progress = inbox.progress.load(Ordering::Relaxed);
        let driving = inbox.driving.load(Ordering::Relaxed) > 0;
        let quiet = progress == seen;
        let stalled = quiet && !driving;
        seen = progress;
        // Idle: a calling thread waits on the link, no request is out and none was taken since
        // the last look; nothing to watch. (Between two requests of a busy worker none is
        // out either, but requests were taken.)
        let idle = quiet && driving && inbox.in_flight.load(Ordering::SeqCst) == 0;
        tick = if idle {
            (tick * 2).min(IDLE_TICK)
        } else {
            TICK
        };
        if !stalled {
            continue;
        }
        let mut state = inbox.state.lock();
        if state.ended.is_some() {
            return;
        }
        if state.puller != Puller::Nobody {
            continue;
        }
        if state.idle > 0 {
            inbox.changed.notify_one();
            continue;
        }
        state.puller = Puller::Keeper;
        drop(state);
        inbox.driving.fetch_add(1, Ordering::SeqCst);
        driven.drive(async {
            let _ = tokio::time::timeout(KEEPER_TURN, inbox.wanted.notified()).await;
        });
        inbox.driving.fetch_sub(1, Ordering::SeqCst);
        let mut state = inbox.state.lock();
        state.puller = Puller::Nobody;
        if state.idle > 0 {
            inbox.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use pullman_proto::{HeadBuilder, Version};

    use super::*;
    use crate::{RequestBody, RequestInfo};

    fn incoming() -> (Incoming, oneshot::Receiver<Reply>) {
        let (reply, answer) = oneshot::channel();
        let info = RequestInfo {
            peer: String::new(),
            tls: false,
            deadline_ms: 0,
            head: HeadBuilder::new(Version::Http11, b"GET", b"/", 0).finish(),
        };
        let body = RequestBody::empty();
        let gone = Arc::default();
        let incoming = Incoming {
            info,
            body,
            reply,
            gone,
        };
        (incoming, answer)
    }

    /// Runs `f` on a thread; its result, or a failure if it has not returned within a
    /// minute (a wait that should have ended did not).
    fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the wait did not end")
    }

    #[test]
    fn a_batch_wait_ends_with_requests_with_the_watched_fd_readable_or_at_the_end() {
        let driven = Driven::start().unwrap();
        let (mut loop_side, mut poller) = UnixStream::pair().unwrap();
        let watched = Arc::new(driven.watch(poller.as_fd()).unwrap());

        // Nothing: the timeout ends the wait.
        let got = driven.next_batch(8, Some(Duration::from_millis(1)), Some(&watched));
        assert_eq!(got.map(|b| b.len()), Ok(0));

        // The fd readable: the wait ends with no request, and again while it stays readable.
        loop_side.write_all(b"x").unwrap();
        for _ in 0..2 {
            let (d, w) = (driven.clone(), watched.clone());
            let got = within_a_minute(move || d.next_batch(8, None, Some(&w)).map(|b| b.len()));
            assert_eq!(got, Ok(0));
        }
        poller.read_exact(&mut [0]).unwrap();

        // Requests waiting: at most `max` of them, the rest for the next call.
        let answers: Vec<_> = (0..3)
            .map(|_| {
                let (incoming, answer) = incoming();
                driven.inbox.push(incoming);
                answer
            })
            .collect();
        let (d, w) = (driven.clone(), watched.clone());
        let got = within_a_minute(move || d.next_batch(2, None, Some(&w)).map(|b| b.len()));
        assert_eq!(got, Ok(2));
        assert_eq!(driven.next_batch(2, None, None).map(|b| b.len()), Ok(1));

        // Another worker's watch is refused, not waited on for ever.
        let other = Driven::start().unwrap();
        let foreign = other.watch(poller.as_fd()).unwrap();
        assert!(matches!(
            driven.next_batch(2, None, Some(&foreign)),
            Err(PullError::Invalid(_))
        ));

        // The end: drained, once nothing waits.
        driven.inbox.end(Ok(()));
        assert_eq!(
            driven.next_batch(2, None, Some(&watched)).map(|b| b.len()),
            Err(PullError::Drained)
        );
        drop(answers);
    }
}
