//! `Worker`: a worker's settings, then the SDK's pulling worker, whose requests Python
//! threads take one by one.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pullman_worker::pull::{Mode, PullError, PullWorker};
use pullman_worker::{
    CpuGate, HubAddr, MemoryGate, Redirect, TlsSettings, Worker as SdkWorker, WorkerBuilder,
};
use pyo3::prelude::*;

use crate::errors::{invalid, to_py, wrong_state};
use crate::request::Request;

/// How long a wait in `next()` lasts at most before it looks for signals (Ctrl-C, a
/// SIGTERM handler) and waits again.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// When a wait of `timeout` seconds from now ends (`None`: never); `ValueError` for a
/// timeout that is negative, not a number, or too large to count.
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(t) = timeout else {
        return Ok(None);
    };
    Duration::try_from_secs_f64(t)
        .ok()
        .and_then(|t| Instant::now().checked_add(t))
        .map(Some)
        .ok_or_else(|| {
            invalid(format!(
                "the timeout must be a number of seconds >= 0, not {t}"
            ))
        })
}

/// A worker of a pullman hub. Settings go to the constructor and the `add_*_gate`
/// methods; `connect()` starts it; then any number of threads call `next()`.
#[pyclass(frozen, module = "pullman._native")]
pub struct Worker {
    state: Mutex<State>,
}

enum State {
    /// Being set up.
    Setup(Box<WorkerBuilder>, Mode),
    /// Connected (or dialing).
    Running(Arc<PullWorker>),
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connected = matches!(&*self.state.lock(), State::Running(_));
        f.debug_struct("Worker")
            .field("connected", &connected)
            .finish_non_exhaustive()
    }
}

impl Worker {
    fn with_setup(&self, change: impl FnOnce(WorkerBuilder) -> WorkerBuilder) -> PyResult<()> {
        let mut state = self.state.lock();
        let State::Setup(builder, _) = &mut *state else {
            return Err(wrong_state(
                "the worker is connected; settings come before connect()",
            ));
        };
        let taken = std::mem::take(&mut **builder);
        **builder = change(taken);
        Ok(())
    }

    fn running(&self) -> PyResult<Arc<PullWorker>> {
        match &*self.state.lock() {
            State::Running(pull) => Ok(pull.clone()),
            State::Setup(..) => Err(wrong_state("the worker is not connected; call connect()")),
        }
    }
}

#[pymethods]
impl Worker {
    /// Settings left out come from the environment the hub gives the programs it starts
    /// (`PULLMAN_HUB`, `PULLMAN_POOL`, `PULLMAN_TOKEN`). `hub` is `tcp://HOST:PORT` or
    /// `unix:///PATH`; `concurrency` is how many requests the worker holds at once (the
    /// credits it grants); `shm` asks a `unix://` hub for shared memory; `mode` is
    /// `"respond"` or `"filter"`, the kind of pool it serves. Gates: `ready` (a callable),
    /// `cpu_gate` (a share of the CPU), `memory_gate` (bytes), as the `add_*` methods.
    #[new]
    #[pyo3(signature = (
        hub=None, pool=None, token=None, concurrency=1, shm=false, name=None,
        mode="respond", ready=None, cpu_gate=None, memory_gate=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        hub: Option<&str>,
        pool: Option<String>,
        token: Option<String>,
        concurrency: u32,
        shm: bool,
        name: Option<String>,
        mode: &str,
        ready: Option<Py<PyAny>>,
        cpu_gate: Option<f64>,
        memory_gate: Option<u64>,
    ) -> PyResult<Worker> {
        let mode = match mode {
            "respond" => Mode::Respond,
            "filter" => Mode::Filter,
            other => {
                return Err(invalid(format!(
                    "mode {other:?} is neither \"respond\" nor \"filter\""
                )))
            }
        };
        if concurrency == 0 {
            return Err(invalid("concurrency must be at least 1"));
        }
        let mut builder = SdkWorker::builder().concurrency(concurrency).shm(shm);
        if let Some(hub) = hub {
            builder = builder.hub(hub.parse::<HubAddr>().map_err(invalid)?);
        }
        if let Some(pool) = pool {
            builder = builder.pool(pool);
        }
        if let Some(token) = token {
            builder = builder.token(token);
        }
        if let Some(name) = name {
            builder = builder.name(name);
        }
        let worker = Worker {
            state: Mutex::new(State::Setup(Box::new(builder), mode)),
        };
        if let Some(ready) = ready {
            worker.add_gate(ready)?;
        }
        if let Some(share) = cpu_gate {
            worker.add_cpu_gate(share)?;
        }
        if let Some(bytes) = memory_gate {
            worker.add_memory_gate(bytes)?;
        }
        Ok(worker)
    }

    /// Adds a gate: the worker takes a request only while every gate is open. `ready` is
    /// called with no arguments whenever the worker has a credit to grant, and every 200 ms
    /// while it returns false; it must be quick. One that raises counts as closed (and its
    /// exception is printed). A closed gate never cancels requests already taken.
    fn add_gate(&self, ready: Py<PyAny>) -> PyResult<()> {
        self.with_setup(|b| {
            b.gate(move || {
                let open = Python::attach(|py| match ready.call0(py) {
                    Ok(answer) => answer.is_truthy(py).unwrap_or(false),
                    Err(e) => {
                        e.print(py);
                        false
                    }
                });
                async move { open }
            })
        })
    }

    /// Adds the CPU gate: open while at most `max_busy` (0 < max_busy <= 1) of the CPU this
    /// worker may use (the host's, or its cgroup's quota) is busy.
    fn add_cpu_gate(&self, max_busy: f64) -> PyResult<()> {
        let gate = CpuGate::new(max_busy).map_err(invalid)?;
        self.with_setup(|b| b.gate(gate))
    }

    /// Adds the memory gate: open while at least `min_available` bytes of memory are
    /// available (the host's, or below its cgroup's limit).
    fn add_memory_gate(&self, min_available: u64) -> PyResult<()> {
        let gate = MemoryGate::new(min_available).map_err(invalid)?;
        self.with_setup(|b| b.gate(gate))
    }

    /// Redirect mode (respond pools): a `200` whose body is at least `min_bytes` long is
    /// answered `303 See Other` to `http://HOST:PORT/KEY` on the worker's own HTTP server on
    /// `port` (0: any free port), which serves it once to the client that follows, so that
    /// the body does not pass through the hub. `host` defaults to the worker's address on
    /// its TCP link to the hub; an unfetched response is dropped after `expiry` seconds.
    #[pyo3(signature = (port, host=None, min_bytes=pullman_worker::redirect::DEFAULT_MIN_BYTES, expiry=20.0))]
    fn redirect(
        &self,
        port: u16,
        host: Option<String>,
        min_bytes: u64,
        expiry: f64,
    ) -> PyResult<()> {
        let expiry = Duration::try_from_secs_f64(expiry)
            .ok()
            .filter(|e| !e.is_zero())
            .ok_or_else(|| {
                invalid(format!(
                    "the redirect expiry must be seconds, more than 0 and at most 3600, not {expiry}"
                ))
            })?;
        if let State::Setup(_, Mode::Filter) = &*self.state.lock() {
            return Err(invalid("redirect mode is for respond pools, not filters"));
        }
        let redirect = Redirect {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            host,
            min_bytes,
            expiry,
        };
        self.with_setup(|b| b.redirect(redirect))
    }

    /// TLS to a `tls://` hub: `ca`, a PEM file of the authorities that sign the hub's
    /// certificate (default: the system's roots); `cert` and `key`, this worker's client
    /// certificate and its key, for a pool that names its workers (`allowed_workers`). The
    /// files are read at `check()` and `connect()`; a hub that refuses the certificate ends
    /// the worker (`Refused`).
    #[pyo3(signature = (ca=None, cert=None, key=None))]
    fn tls(
        &self,
        ca: Option<std::path::PathBuf>,
        cert: Option<std::path::PathBuf>,
        key: Option<std::path::PathBuf>,
    ) -> PyResult<()> {
        let mut tls = TlsSettings::default();
        if let Some(ca) = ca {
            tls = tls.ca(ca);
        }
        match (cert, key) {
            (Some(cert), Some(key)) => tls = tls.identity(cert, key),
            (None, None) => {}
            _ => return Err(invalid("a client certificate needs both cert and key")),
        }
        self.with_setup(|b| b.tls(tls))
    }

    /// Checks the settings as `connect()` will (`ValueError` if one is missing or they
    /// contradict each other), without connecting.
    fn check(&self) -> PyResult<()> {
        match &*self.state.lock() {
            State::Setup(builder, _) => builder.check().map_err(invalid),
            State::Running(_) => Ok(()),
        }
    }

    /// Starts the worker: it dials the hub in the background, and keeps dialing, with
    /// backoff, while the hub is away. `ValueError` on missing or contradictory settings;
    /// a hub that refuses the worker for good ends it, and `next()` raises `Refused`.
    fn connect(&self) -> PyResult<()> {
        let mut state = self.state.lock();
        let State::Setup(builder, mode) = &mut *state else {
            return Err(wrong_state("the worker is connected already"));
        };
        // Checked first, so that a refused connect keeps every setting for the next try.
        builder.check().map_err(invalid)?;
        let worker = std::mem::take(&mut **builder)
            .try_build()
            .map_err(invalid)?;
        let pull =
            PullWorker::start(worker, *mode).map_err(|e| invalid(format!("cannot start: {e}")))?;
        *state = State::Running(Arc::new(pull));
        Ok(())
    }

    /// Waits for the next request, at most `timeout` seconds (`None`: as long as it takes),
    /// without the GIL; on Python's main thread it looks for signals every 100 ms (so Ctrl-C
    /// and signal handlers run). Returns `None` once the worker has drained (and on every later call); raises
    /// `TimeoutError` when the time passed and `Refused` if the hub refused the worker. Any
    /// number of threads may call it at once.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Request>> {
        let deadline = deadline(timeout)?;
        let pull = self.running()?;
        if !crate::may_handle_signals() {
            // No signal handler runs on this thread: one wait, with no timer unless asked.
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            return match py.detach(|| pull.next(timeout)) {
                Ok(pulled) => Ok(Some(Request::new(pulled))),
                Err(PullError::Drained) => Ok(None),
                Err(e) => Err(to_py(e)),
            };
        }
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = left.map_or(SIGNAL_CHECK, |left| left.min(SIGNAL_CHECK));
            match py.detach(|| pull.next(Some(wait))) {
                Ok(pulled) => return Ok(Some(Request::new(pulled))),
                Err(PullError::Drained) => return Ok(None),
                Err(PullError::Timeout) if left.is_none_or(|left| left > wait) => {
                    py.check_signals()?;
                }
                Err(e) => return Err(to_py(e)),
            }
        }
    }

    /// For the thread of an event loop, where the loop would wait for its events (an
    /// asyncio selector's `select`): waits without the GIL, running the worker's link on
    /// this thread, until a request waits, `watch`'s fd is readable (the loop has events of
    /// its own), or `timeout` seconds passed (`None`: no limit); then returns the requests
    /// waiting, at most `max`, possibly none. Every call also sends on the answers this
    /// thread gave since the last. `None` once the worker has drained; raises `Refused` as
    /// `next()` does. Without a watch, a wait on the main thread looks for signals every
    /// 100 ms.
    #[pyo3(signature = (max, timeout=None, watch=None))]
    fn next_batch(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
        watch: Option<PyRef<'_, Watch>>,
    ) -> PyResult<Option<Vec<Request>>> {
        if max == 0 {
            return Err(invalid("max must be at least 1"));
        }
        let deadline = deadline(timeout)?;
        let pull = self.running()?;
        // A clone, not the lock, held while waiting: a close() from another thread,
        // which holds the GIL, must not wait for this wait.
        let also = match &watch {
            Some(w) => {
                Some((w.inner.lock().clone()).ok_or_else(|| wrong_state("the watch is closed"))?)
            }
            None => None,
        };
        let also = also.as_deref();
        // Signals wake a loop through its own fd; with none, look for them in slices.
        let slices = also.is_none() && crate::may_handle_signals();
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = match (slices, left) {
                (true, left) => Some(left.map_or(SIGNAL_CHECK, |l| l.min(SIGNAL_CHECK))),
                (false, left) => left,
            };
            match py.detach(|| pull.next_batch(max, wait, also)) {
                Ok(batch)
                    if batch.is_empty() && slices && left.is_none_or(|l| l > SIGNAL_CHECK) =>
                {
                    py.check_signals()?;
                }
                Ok(batch) => return Ok(Some(batch.into_iter().map(Request::new).collect())),
                Err(PullError::Drained) => return Ok(None),
                Err(e) => return Err(to_py(e)),
            }
        }
    }

    /// Registers `fd` (an event loop's poller) for `next_batch` to wait on; the worker
    /// watches a duplicate, until the `Watch` is closed.
    fn watch(&self, fd: i32) -> PyResult<Watch> {
        if fd < 0 {
            return Err(invalid(format!("{fd} is not a file descriptor")));
        }
        let pull = self.running()?;
        // SAFETY: the fd is only duplicated, within this call, during which the caller
        // keeps it open (a number that is not an open fd fails the duplication, EBADF).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let watch = pull.watch(fd).map_err(to_py)?;
        Ok(Watch {
            inner: Mutex::new(Some(Arc::new(watch))),
        })
    }

    /// The requests, one `next()` after another, until the worker has drained.
    fn requests(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Request>> {
        self.next(py, None)
    }

    /// Starts draining: the hub sends nothing new, requests already taken finish (within
    /// the drain grace, 30 s), then `next()` returns `None`. Returns at once; safe from any
    /// thread, in a signal handler and more than once; nothing to do before `connect()`.
    fn drain(&self, py: Python<'_>) {
        if let Ok(pull) = self.running() {
            py.detach(|| pull.drain());
        }
    }

    /// Drains, and waits (without the GIL) until the worker's run has ended. A worker never
    /// connected has nothing to close. Closing twice is harmless.
    fn close(&self, py: Python<'_>) {
        if let Ok(pull) = self.running() {
            py.detach(|| pull.close());
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _kind: Option<Py<PyAny>>,
        _value: Option<Py<PyAny>>,
        _traceback: Option<Py<PyAny>>,
    ) {
        self.close(py);
    }

    /// Whether `connect()` was called.
    #[getter]
    fn connected(&self) -> bool {
        matches!(&*self.state.lock(), State::Running(_))
    }

    fn __repr__(&self) -> String {
        format!("<pullman._native.Worker connected={}>", self.connected())
    }
}

/// An event loop's fd that `Worker.next_batch` waits on; see `Worker.watch`.
#[pyclass(frozen, module = "pullman._native")]
pub struct Watch {
    inner: Mutex<Option<Arc<pullman_worker::pull::Watch>>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

#[pymethods]
impl Watch {
    /// Stops watching (the worker closes its duplicate of the fd). Idempotent.
    fn close(&self) {
        self.inner.lock().take();
    }
}
