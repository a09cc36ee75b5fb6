//! `pm_worker`: a worker's settings, then the SDK's pulling worker
//! ([`pullman_worker::pull`]), whose requests C threads take one by one.

use std::ffi::{c_char, c_void, CStr};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pullman_worker::pull::{Mode, PullWorker};
use pullman_worker::{CpuGate, HubAddr, MemoryGate, Redirect, TlsSettings, Worker, WorkerBuilder};

use crate::error::{guard, Fail, PmCode};
use crate::handle::{REQUESTS, WORKERS};
use crate::request::PmRequest;

/// A worker: settings until `pm_worker_connect`, then a running link to the hub.
pub struct PmWorker {
    state: Mutex<State>,
}

impl std::fmt::Debug for PmWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connected = matches!(&*self.state.lock(), State::Running(_));
        f.debug_struct("PmWorker")
            .field("connected", &connected)
            .finish_non_exhaustive()
    }
}

enum State {
    /// Being set up.
    Setup {
        builder: Box<WorkerBuilder>,
        concurrency: u32,
    },
    /// Connected (or dialing): requests come out of `running`.
    Running(Arc<Running>),
}

/// The kind of pool a worker serves, given to `pm_worker_connect`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmMode {
    /// A respond pool: the worker answers each request.
    Respond = 0,
    /// A filter pool: the worker passes each request on to the upstream (possibly
    /// edited) or answers it instead.
    Filter = 1,
}

/// Asked before the worker takes more work; returns whether it may. Called on one of the
/// library's threads, at most every 200 ms while it says no: it must return quickly and
/// must not call back into this library.
pub type PmGateFn = Option<unsafe extern "C" fn(userdata: *mut c_void) -> bool>;

/// Serves one request in `pm_worker_run`. The request belongs to the library: the handler
/// answers it and returns, and the library frees it then (an unanswered one gets 500).
pub type PmHandlerFn = Option<unsafe extern "C" fn(request: *mut PmRequest, userdata: *mut c_void)>;

/// A C pointer handed to the library's threads. Whoever passed it promised, in the
/// function's documentation, that it may be used from them.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: see above; the library never dereferences it, only passes it back.
unsafe impl Send for UserData {}
// SAFETY: as for Send.
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer. A method, not the field, so that closures capture the whole `UserData`
    /// (which is Send) rather than the bare pointer (which is not).
    fn get(self) -> *mut c_void {
        self.0
    }
}

/// A connected worker: the SDK's pulling worker, whose requests C threads take.
pub(crate) struct Running {
    pub(crate) pull: PullWorker,
    concurrency: u32,
}

impl From<PmMode> for Mode {
    fn from(mode: PmMode) -> Mode {
        match mode {
            PmMode::Respond => Mode::Respond,
            PmMode::Filter => Mode::Filter,
        }
    }
}

impl PmWorker {
    fn with_setup(
        &self,
        change: impl FnOnce(WorkerBuilder, &mut u32) -> Result<WorkerBuilder, Fail>,
    ) -> Result<(), Fail> {
        let mut state = self.state.lock();
        let State::Setup {
            builder,
            concurrency,
        } = &mut *state
        else {
            return Err(Fail::state(
                "the worker is connected; settings come before pm_worker_connect",
            ));
        };
        let taken = std::mem::take(&mut **builder);
        **builder = change(taken, concurrency)?;
        Ok(())
    }

    fn running(&self) -> Result<Arc<Running>, Fail> {
        match &*self.state.lock() {
            State::Running(running) => Ok(running.clone()),
            State::Setup { .. } => Err(Fail::state(
                "the worker is not connected; call pm_worker_connect",
            )),
        }
    }

    fn next(&self, timeout: Option<Duration>, in_callback: bool) -> Result<*mut PmRequest, Fail> {
        let pulled = self.running()?.pull.next(timeout)?;
        Ok(REQUESTS.insert(PmRequest::new(pulled, in_callback)))
    }
}

/// A C string argument as `&str`.
///
/// # Safety
/// `s` is null or points to a NUL-terminated string.
unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if s.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-null, NUL-terminated by the caller's promise.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Fail::invalid(format!("{what} is not UTF-8")))
}

/// Looks a worker handle up.
///
/// # Safety
/// A live handle is a `PmWorker` this library boxed; the caller frees it only once no
/// thread uses it.
unsafe fn worker<'a>(w: *const PmWorker) -> Result<&'a PmWorker, Fail> {
    WORKERS.check(w)?;
    // SAFETY: checked live just above.
    Ok(unsafe { &*w })
}

/// Makes a worker handle in `*out`, with no settings: those not set before
/// `pm_worker_connect` come from the environment (`PULLMAN_HUB`, `PULLMAN_POOL`,
/// `PULLMAN_TOKEN`, which the hub sets for the programs it starts), concurrency is 1.
/// Free it with `pm_worker_free`.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_new(out: *mut *mut PmWorker) -> PmCode {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let w = WORKERS.insert(PmWorker {
            state: Mutex::new(State::Setup {
                builder: Box::new(Worker::builder()),
                concurrency: 1,
            }),
        });
        // SAFETY: checked non-null; the caller gives a place for one pointer.
        unsafe { *out = w };
        Ok(())
    })
}

/// Sets the hub's worker address: `tcp://HOST:PORT` or `unix:///PATH`. `addr` is a
/// NUL-terminated string the call copies. Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_hub(w: *mut PmWorker, addr: *const c_char) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let addr: HubAddr = unsafe { text(addr, "addr")? }
            .parse()
            .map_err(|e| Fail::invalid(format!("{e}")))?;
        w.with_setup(|b, _| Ok(b.hub(addr)))
    })
}

/// Sets the pool this worker serves (copied). Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_pool(w: *mut PmWorker, pool: *const c_char) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let pool = unsafe { text(pool, "pool")? }.to_string();
        w.with_setup(|b, _| Ok(b.pool(pool)))
    })
}

/// Sets the pool's token (copied). Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_token(w: *mut PmWorker, token: *const c_char) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let token = unsafe { text(token, "token")? }.to_string();
        w.with_setup(|b, _| Ok(b.token(token)))
    })
}

/// Sets the label the hub shows for this worker in its logs (copied). Default
/// `worker-PID`. Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_name(w: *mut PmWorker, name: *const c_char) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let name = unsafe { text(name, "name")? }.to_string();
        w.with_setup(|b, _| Ok(b.name(name)))
    })
}

/// Sets how many requests the worker holds at once (the credits it grants the hub): at
/// least 1, default 1. `pm_worker_run` serves them on this many threads; a pull loop
/// should run at least this many threads calling `pm_worker_next`. Before
/// `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_concurrency(w: *mut PmWorker, n: u32) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        if n == 0 {
            return Err(Fail::invalid("concurrency must be at least 1"));
        }
        w.with_setup(|b, c| {
            *c = n;
            Ok(b.concurrency(n))
        })
    })
}

/// Asks the hub for the shared-memory transport (a `unix://` hub only): requests are
/// then read where the hub wrote them, without a copy. A hub that does not grant it keeps
/// the stream protocol. Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_shm(w: *mut PmWorker, on: bool) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        w.with_setup(|b, _| Ok(b.shm(on)))
    })
}

/// Adds a gate: the worker takes a request only while every gate is open. `gate` is
/// called with `userdata` on a thread of the library (so `userdata` must be safe to use
/// from there) whenever the worker has a credit to grant, and every 200 ms while it
/// returns false; it must be quick and must not call this library. A closed gate never
/// cancels requests already taken. Before `pm_worker_connect` only.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_add_gate(
    w: *mut PmWorker,
    gate: PmGateFn,
    userdata: *mut c_void,
) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let gate = gate.ok_or_else(|| Fail::null("gate"))?;
        let userdata = UserData(userdata);
        w.with_setup(|b, _| {
            Ok(b.gate(move || {
                // SAFETY: the caller gave a callable gate and a userdata it may take.
                let open = unsafe { gate(userdata.get()) };
                async move { open }
            }))
        })
    })
}

/// Adds the CPU gate: open while at most `max_busy` (0 < max_busy <= 1) of the CPU this
/// worker may use (the host's, or its cgroup's quota) is busy. Before `pm_worker_connect`.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_add_cpu_gate(w: *mut PmWorker, max_busy: f64) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let gate = CpuGate::new(max_busy).map_err(|e| Fail::invalid(e.to_string()))?;
        w.with_setup(|b, _| Ok(b.gate(gate)))
    })
}

/// Adds the memory gate: open while at least `min_available` bytes of memory are available
/// (the host's, or below its cgroup's limit). Before `pm_worker_connect`.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_add_memory_gate(w: *mut PmWorker, min_available: u64) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let gate = MemoryGate::new(min_available).map_err(|e| Fail::invalid(e.to_string()))?;
        w.with_setup(|b, _| Ok(b.gate(gate)))
    })
}

/// Turns on redirect mode (respond pools): a `200` whose body is at least `min_bytes` long
/// is answered `303 See Other` to `http://HOST:PORT/KEY` on the worker's own HTTP server on
/// `port` (0: any free port), which serves it once to the client that follows, so that the
/// body does not pass through the hub. `host` (a NUL-terminated string the call copies)
/// is what clients are sent to; null: the worker's address on its TCP link to the hub
/// (required with a `unix://` hub). A response nobody fetches is dropped after
/// `expiry_ms` (1 to 3,600,000). Before `pm_worker_connect`; a filter worker with it is
/// refused (`pm_worker_next` says `PM_CODE_REFUSED`).
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_redirect(
    w: *mut PmWorker,
    port: u16,
    host: *const c_char,
    min_bytes: u64,
    expiry_ms: u32,
) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let host = if host.is_null() {
            None
        } else {
            Some(unsafe { text(host, "host")? }.to_string())
        };
        let redirect = Redirect {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            host,
            min_bytes,
            expiry: Duration::from_millis(expiry_ms.into()),
        };
        w.with_setup(|b, _| Ok(b.redirect(redirect)))
    })
}

/// TLS to a `tls://` hub: `ca`, the path of a PEM file of the authorities that sign the
/// hub's certificate (null: the system's roots); `cert` and `key`, both or neither, the
/// paths of this worker's client certificate and its key (PEM), for a pool that names its
/// workers (`allowed_workers`). NUL-terminated strings the call copies; the files are read
/// at `pm_worker_connect`, which fails if they cannot be. A hub that refuses the
/// certificate ends the worker (`PM_CODE_REFUSED`). Before `pm_worker_connect`.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_set_tls(
    w: *mut PmWorker,
    ca: *const c_char,
    cert: *const c_char,
    key: *const c_char,
) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let path = |p: *const c_char, what: &str| -> Result<Option<String>, Fail> {
            if p.is_null() {
                return Ok(None);
            }
            Ok(Some(unsafe { text(p, what)? }.to_string()))
        };
        let mut tls = TlsSettings::default();
        if let Some(ca) = path(ca, "ca")? {
            tls = tls.ca(ca);
        }
        match (path(cert, "cert")?, path(key, "key")?) {
            (Some(cert), Some(key)) => tls = tls.identity(cert, key),
            (None, None) => {}
            _ => {
                return Err(Fail::invalid(
                    "a client certificate needs both cert and key",
                ))
            }
        }
        w.with_setup(|b, _| Ok(b.tls(tls)))
    })
}

/// Starts the worker for a pool of kind `mode` (`PM_MODE_RESPOND` or `PM_MODE_FILTER`):
/// it dials the hub in the background, and keeps dialing, with backoff, while the hub is
/// away. Fails at once on missing or contradictory settings; a hub that refuses the worker
/// for good ends it, and `pm_worker_next` then returns `PM_CODE_REFUSED` with the reason.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_connect(w: *mut PmWorker, mode: u32) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let mode = match mode {
            0 => PmMode::Respond,
            1 => PmMode::Filter,
            _ => {
                return Err(Fail::invalid(format!(
                    "mode {mode} is neither PM_MODE_RESPOND nor PM_MODE_FILTER"
                )))
            }
        };
        let mut state = w.state.lock();
        let State::Setup {
            builder,
            concurrency,
        } = &mut *state
        else {
            return Err(Fail::state("the worker is connected already"));
        };
        let concurrency = *concurrency;
        // Checked first, so that a refused connect keeps every setting for the next try.
        builder.check().map_err(|e| Fail::invalid(e.to_string()))?;
        let worker = std::mem::take(&mut **builder)
            .try_build()
            .map_err(|e| Fail::invalid(e.to_string()))?;
        let pull = PullWorker::start(worker, mode.into())
            .map_err(|e| Fail::invalid(format!("cannot start: {e}")))?;
        *state = State::Running(Arc::new(Running { pull, concurrency }));
        Ok(())
    })
}

/// Waits for the next request and puts it in `*out`. `timeout_ms` < 0 waits as long as it
/// takes. Returns `PM_CODE_TIMEOUT` when the time passed, `PM_CODE_DRAINED` once the
/// worker has drained (every later call says so too), `PM_CODE_REFUSED` if the hub
/// refused it. Any number of threads may call it at once.
///
/// The request is the caller's until `pm_request_free`: answer it (`pm_request_respond`,
/// `pm_request_start` .. `pm_request_finish`, or in a filter pool `pm_request_pass`), then
/// free it. One thread at a time may use a request.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_next(
    w: *mut PmWorker,
    timeout_ms: i64,
    out: *mut *mut PmRequest,
) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let req = w.next(timeout, false)?;
        // SAFETY: checked non-null.
        unsafe { *out = req };
        Ok(())
    })
}

/// Serves requests with `handler` on `concurrency` threads (this one and the rest started
/// here) until the worker drains; returns `PM_CODE_OK` then, or `PM_CODE_REFUSED`.
/// `handler` gets each request and `userdata` (used from all those threads at once). The
/// request is the library's: the handler answers it and must not free it; the library
/// frees it when the handler returns, and answers 500 for it if the handler did not.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_run(
    w: *mut PmWorker,
    handler: PmHandlerFn,
    userdata: *mut c_void,
) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        let handler = handler.ok_or_else(|| Fail::null("handler"))?;
        let running = w.running()?;
        let userdata = UserData(userdata);
        let serve = move || -> Result<(), Fail> {
            loop {
                let req = match w.next(None, true) {
                    Ok(req) => req,
                    Err(fail) if fail.code() == PmCode::Drained => return Ok(()),
                    Err(fail) => return Err(fail),
                };
                // SAFETY: a live request handle and the caller's handler and userdata.
                unsafe { handler(req, userdata.get()) };
                if let Ok(req) = REQUESTS.remove(req) {
                    drop(req);
                }
            }
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..running.concurrency)
                .map(|_| scope.spawn(serve))
                .collect();
            let mut result = serve();
            for other in others {
                let joined = other
                    .join()
                    .unwrap_or_else(|_| Err(Fail::new(PmCode::Panic, "a serving thread panicked")));
                result = result.and(joined);
            }
            result
        })
    })
}

/// Starts draining: the hub is told to send nothing new, requests already taken finish
/// (within the drain grace, 30 s), and then `pm_worker_next` returns `PM_CODE_DRAINED`.
/// Returns at once; safe to call from any thread and more than once (not from a signal
/// handler: see docs/c-api.md for a SIGTERM thread).
#[no_mangle]
pub unsafe extern "C" fn pm_worker_drain(w: *mut PmWorker) -> PmCode {
    guard(|| {
        let w = unsafe { worker(w)? };
        w.running()?.pull.drain();
        Ok(())
    })
}

/// Frees a worker. A connected one is drained first, and this waits for the drain to end.
/// No thread may use `w` during or after the call. Requests not yet freed stay valid.
#[no_mangle]
pub unsafe extern "C" fn pm_worker_free(w: *mut PmWorker) -> PmCode {
    guard(|| {
        let w = WORKERS.remove(w)?;
        if let State::Running(running) = &*w.state.lock() {
            running.pull.close();
        }
        Ok(())
    })
}
