//! pullman's Python binding: the native half of the `pullman` package.
//!
//! The runners (`pullman.wsgi`, `pullman.asgi`) and their adapters are pure Python in
//! `python/pullman/`; this module will give them the worker SDK's pull loop (a request taken by
//! a Python thread, its head read, its body read and its answer written without the GIL).
//! `python/pullman/_interface.py` is the contract it must meet.
//!
//! # Layout
//! - `_native`: the module; for now only `__version__`.
#![deny(missing_docs, missing_debug_implementations)]

use pyo3::prelude::*;

/// The native module, imported as `pullman._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
