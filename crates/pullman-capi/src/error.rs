//! Result codes, the panic barrier every entry point runs in, and the per-thread message
//! of the last failure.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pullman_worker::pull::PullError;

/// What a call came to. Every function returns one; `PM_CODE_OK` is 0, and
/// `pm_last_error_message` says more about any other.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmCode {
    /// Done.
    Ok = 0,
    /// A pointer argument that must not be null was null.
    NullArgument = 1,
    /// A handle argument is not a live handle of the kind the function takes: freed
    /// already, never made by this library, or a handle of another kind.
    BadHandle = 2,
    /// An argument's value is wrong: a malformed hub address, a string that is not UTF-8,
    /// an invalid header name or value, a status outside 100..=999, a concurrency of 0.
    InvalidArgument = 3,
    /// The call does not fit the handle's state: a setting after connect, a second answer
    /// to one request, a write before `pm_request_start`, a pass verdict in a respond pool.
    WrongState = 4,
    /// The request has no such header.
    NotFound = 5,
    /// `pm_worker_next`'s timeout passed with no request.
    Timeout = 6,
    /// The worker has drained: no request will come any more.
    Drained = 7,
    /// The hub refused the worker for good (a wrong token, an unknown pool, a pool of the
    /// other mode), or the hub address is an HTTP server's; the message says which.
    Refused = 8,
    /// The request is gone: the hub cancelled it (its client left, its deadline passed) or
    /// the link broke while its body was read or written.
    Closed = 9,
    /// A bug in this library: it panicked, and the panic was stopped at its boundary.
    Panic = 10,
}

/// A failed call: its code and what to tell the caller.
#[derive(Debug)]
pub(crate) struct Fail {
    code: PmCode,
    message: String,
}

impl Fail {
    pub(crate) fn new(code: PmCode, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn code(&self) -> PmCode {
        self.code
    }

    pub(crate) fn null(what: &str) -> Fail {
        Fail::new(PmCode::NullArgument, format!("{what} is null"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Fail {
        Fail::new(PmCode::InvalidArgument, message)
    }

    pub(crate) fn state(message: impl Into<String>) -> Fail {
        Fail::new(PmCode::WrongState, message)
    }
}

impl From<PullError> for Fail {
    fn from(e: PullError) -> Fail {
        let code = match &e {
            PullError::Timeout => PmCode::Timeout,
            PullError::Drained => PmCode::Drained,
            PullError::Refused(_) => PmCode::Refused,
            PullError::Closed(_) => PmCode::Closed,
            PullError::WrongState(_) => PmCode::WrongState,
            PullError::Invalid(_) => PmCode::InvalidArgument,
        };
        Fail::new(code, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message with a NUL in it (from a peer's text, say) is cut there.
    let message = message.split('\0').next().unwrap_or_default();
    let message = CString::new(message).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs one entry point's body: its failure becomes a code and this thread's last error
/// message, and a panic stops here instead of unwinding into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Fail>) -> PmCode {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PmCode::Ok,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error in pullman's C API: {what}"));
            PmCode::Panic
        }
    }
}

/// The message of the last call on this thread that did not return `PM_CODE_OK`; an
/// empty string if there was none. The string belongs to the library and stays valid
/// until the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn pm_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The name of a code, e.g. `"PM_CODE_TIMEOUT"`, or `"unknown code"` for a number that is
/// none: a static string, never freed. Takes an `int`, so that any number is safe to pass.
#[no_mangle]
pub extern "C" fn pm_code_name(code: c_int) -> *const c_char {
    let name: &'static [u8] = match code {
        0 => b"PM_CODE_OK\0",
        1 => b"PM_CODE_NULL_ARGUMENT\0",
        2 => b"PM_CODE_BAD_HANDLE\0",
        3 => b"PM_CODE_INVALID_ARGUMENT\0",
        4 => b"PM_CODE_WRONG_STATE\0",
        5 => b"PM_CODE_NOT_FOUND\0",
        6 => b"PM_CODE_TIMEOUT\0",
        7 => b"PM_CODE_DRAINED\0",
        8 => b"PM_CODE_REFUSED\0",
        9 => b"PM_CODE_CLOSED\0",
        10 => b"PM_CODE_PANIC\0",
        _ => b"unknown code\0",
    };
    name.as_ptr().cast()
}
