//! How the SDK's [`PullError`]s become Python exceptions: the classes of `pullman._errors`
//! (`Closed`, `WrongState`, `Refused`), which the pure-Python package raises too, and
//! Python's own `TimeoutError` and `ValueError`.

use pullman_worker::pull::PullError;
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;

/// An exception of class `name` from `pullman._errors`, saying `message`.
pub(crate) fn pullman_error(name: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = py
            .import("pullman._errors")
            .and_then(|errors| errors.getattr(name));
        match class {
            Ok(class) => match class.call1((message.clone(),)) {
                Ok(error) => PyErr::from_value(error),
                Err(e) => e,
            },
            // The package's own module missing: the build is broken; say what was meant.
            Err(_) => PyRuntimeError::new_err(format!("{name}: {message}")),
        }
    })
}

/// `WrongState(message)`.
pub(crate) fn wrong_state(message: impl Into<String>) -> PyErr {
    pullman_error("WrongState", message)
}

/// `ValueError(message)`.
pub(crate) fn invalid(message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(message.to_string())
}

/// The exception for `e`. `Drained` is no error to Python (`next()` returns `None`); it
/// only reaches here from calls that cannot see it.
pub(crate) fn to_py(e: PullError) -> PyErr {
    match e {
        PullError::Timeout => PyTimeoutError::new_err(e.to_string()),
        PullError::Drained => wrong_state(e.to_string()),
        PullError::Refused(why) => pullman_error("Refused", why),
        PullError::Closed(why) => pullman_error("Closed", why),
        PullError::WrongState(why) => wrong_state(why),
        PullError::Invalid(why) => invalid(why),
    }
}
