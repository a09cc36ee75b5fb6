//! pullman's Python binding: the native half of the `pullman` package.
//!
//! A thin layer over the worker SDK's pulling worker ([`pullman_worker::pull`]), as the C
//! API is: a Python thread takes a request with `Worker.next()`, reads its head (decoded
//! here, latin-1 as PEP 3333 has it), its body in chunks, and answers it. Every call that
//! waits (for a request, a body chunk, room to write) lets go of the GIL while it waits,
//! and that wait is what runs the link. `python/pullman/_interface.py` is the contract the
//! classes meet; the runners (`pullman.wsgi`, `pullman.asgi`) are Python over it.
//!
//! # Layout
//! - `worker.rs`: `Worker`: settings, gates, connect, next, drain, close.
//! - `request.rs`: `Request`: the head, the body, the answer or the filter's verdict.
//! - `wsgi.rs`, `asgi.rs`: a request's PEP 3333 environ and ASGI scope, built here (most
//!   of what a runner would spend in Python on a short request); `head.rs` what both read
//!   from the head.
//! - `proxies.rs`: `Proxies`, whose `x-forwarded-proto` the environ and scope believe.
//! - `errors.rs`: how the SDK's errors become the package's exceptions.
#![deny(missing_docs, missing_debug_implementations)]

mod asgi;
mod errors;
mod head;
mod proxies;
mod request;
mod worker;
mod wsgi;

use std::sync::OnceLock;
use std::thread::ThreadId;

use pyo3::prelude::*;

/// Python's main thread, the one its signal handlers run on, if the module was imported
/// there (as it nearly always is); `None` if not known.
static MAIN_THREAD: OnceLock<Option<ThreadId>> = OnceLock::new();

/// Whether this may be the thread Python runs signal handlers on: the only one whose waits
/// need to look for signals.
pub(crate) fn may_handle_signals() -> bool {
    match MAIN_THREAD.get() {
        Some(Some(main)) => *main == std::thread::current().id(),
        _ => true,
    }
}

/// The native module, imported as `pullman._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let threading = m.py().import("threading")?;
    let on_main = threading
        .call_method0("current_thread")?
        .is(&threading.call_method0("main_thread")?);
    let _ = MAIN_THREAD.set(on_main.then(|| std::thread::current().id()));
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<worker::Worker>()?;
    m.add_class::<request::Request>()?;
    m.add_class::<worker::Watch>()?;
    m.add_class::<proxies::Proxies>()?;
    Ok(())
}
