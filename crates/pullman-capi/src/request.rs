//! `pm_request`: one request a C thread holds: its head read in place, its body read in
//! chunks, and its answer (a response, or a filter's pass verdict) sent back to the SDK.

use std::ffi::c_char;

use bytes::Bytes;
use pullman_worker::pull::{Edit, Pulled};
use pullman_worker::RequestInfo;

use crate::error::{guard, Fail, PmCode};
use crate::handle::REQUESTS;

/// A view of bytes the library owns: `ptr` to `len` bytes, not NUL-terminated. `ptr` is
/// null only when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PmBytes {
    /// The first byte.
    pub ptr: *const u8,
    /// How many.
    pub len: usize,
}

impl PmBytes {
    fn of(bytes: &[u8]) -> PmBytes {
        PmBytes {
            ptr: if bytes.is_empty() {
                std::ptr::null()
            } else {
                bytes.as_ptr()
            },
            len: bytes.len(),
        }
    }
}

/// A header edit of a pass verdict, given to `pm_request_edit`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmEdit {
    /// Replace every field of this name with one of this value.
    Set = 0,
    /// Add a field, keeping those already there.
    Append = 1,
    /// Remove every field of this name (the value is ignored).
    Remove = 2,
}

/// A request a C thread holds.
pub struct PmRequest {
    pulled: Pulled,
    /// The chunk `pm_request_read` returned last, kept alive for the caller.
    chunk: Bytes,
    /// Whether `pm_worker_run` owns it (and frees it when the handler returns).
    in_callback: bool,
}

impl std::fmt::Debug for PmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmRequest")
            .field("pulled", &self.pulled)
            .field("in_callback", &self.in_callback)
            .finish_non_exhaustive()
    }
}

impl PmRequest {
    pub(crate) fn new(pulled: Pulled, in_callback: bool) -> PmRequest {
        PmRequest {
            pulled,
            chunk: Bytes::new(),
            in_callback,
        }
    }

    fn info(&self) -> &RequestInfo {
        self.pulled.info()
    }
}

/// Looks a request handle up.
///
/// # Safety
/// A live handle is a `PmRequest` this library boxed; one thread uses it at a time.
unsafe fn request<'a>(r: *mut PmRequest) -> Result<&'a mut PmRequest, Fail> {
    REQUESTS.check(r)?;
    // SAFETY: checked live; the caller uses it from one thread at a time.
    Ok(unsafe { &mut *r })
}

/// Bytes argument `ptr`, `len`: null is allowed only with `len` 0.
///
/// # Safety
/// `ptr` points to `len` readable bytes, or is null.
unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Fail::null(what))
        };
    }
    // SAFETY: the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` to an out pointer.
///
/// # Safety
/// `out` is null or points to writable memory for one `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), Fail> {
    if out.is_null() {
        return Err(Fail::null("out"));
    }
    // SAFETY: checked non-null; the caller's promise.
    unsafe { out.write(value) };
    Ok(())
}

/// Runs `view` on a live request and writes the bytes it picks to `*out`.
unsafe fn view(
    r: *mut PmRequest,
    out: *mut PmBytes,
    view: impl FnOnce(&PmRequest) -> PmBytes,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        unsafe { put(out, view(r)) }
    })
}

/// The method, e.g. `GET`. The bytes (this and every other view of the head) lie in the
/// request itself, in shared memory when the link uses it, and stay valid until
/// `pm_request_free`.
#[no_mangle]
pub unsafe extern "C" fn pm_request_method(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe { view(r, out, |r| PmBytes::of(r.info().head.method())) }
}

/// The request target as the client sent it: path and query (`/a/b?x=1`).
#[no_mangle]
pub unsafe extern "C" fn pm_request_target(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe { view(r, out, |r| PmBytes::of(r.info().head.target())) }
}

/// The target up to its first `?`.
#[no_mangle]
pub unsafe extern "C" fn pm_request_path(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe { view(r, out, |r| PmBytes::of(r.info().head.path())) }
}

/// The target after its first `?`; empty (`len` 0) if there is none.
#[no_mangle]
pub unsafe extern "C" fn pm_request_query(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe {
        view(r, out, |r| {
            PmBytes::of(r.info().head.query().unwrap_or_default())
        })
    }
}

/// The client's address as the hub saw it (`ip:port`); empty if unknown.
#[no_mangle]
pub unsafe extern "C" fn pm_request_peer(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe { view(r, out, |r| PmBytes::of(r.info().peer.as_bytes())) }
}

/// Whether the client reached the hub over TLS (the hub's `[hub.tls]` listener): the
/// request's URL is `https`.
#[no_mangle]
pub unsafe extern "C" fn pm_request_tls(r: *mut PmRequest, out: *mut bool) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        unsafe { put(out, r.info().tls) }
    })
}

/// The request's id (its `x-request-id`, which the hub sets on every request).
#[no_mangle]
pub unsafe extern "C" fn pm_request_id(r: *mut PmRequest, out: *mut PmBytes) -> PmCode {
    unsafe {
        view(r, out, |r| {
            PmBytes::of(
                r.info()
                    .head
                    .header_value(b"x-request-id")
                    .unwrap_or_default(),
            )
        })
    }
}

/// Milliseconds the hub gives this request, counted from when this worker received it;
/// 0 for no deadline. Past it the hub answers 504 and cancels the request.
#[no_mangle]
pub unsafe extern "C" fn pm_request_deadline_ms(r: *mut PmRequest, out: *mut u32) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        unsafe { put(out, r.info().deadline_ms) }
    })
}

/// Whether the request's head lies in memory shared with the hub (read in place, no copy).
#[no_mangle]
pub unsafe extern "C" fn pm_request_in_shared_memory(r: *mut PmRequest, out: *mut bool) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        unsafe { put(out, pullman_worker::is_shared_memory(r.info().head.raw())) }
    })
}

/// The number of header fields (a name sent twice counts twice).
#[no_mangle]
pub unsafe extern "C" fn pm_request_header_count(r: *mut PmRequest, out: *mut usize) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        unsafe { put(out, r.info().head.header_count()) }
    })
}

/// Header field `index` (from 0, in the order sent): its name (lowercase for HTTP/2,
/// as sent for HTTP/1.1) and value. `PM_CODE_NOT_FOUND` past the last.
#[no_mangle]
pub unsafe extern "C" fn pm_request_header_at(
    r: *mut PmRequest,
    index: usize,
    name: *mut PmBytes,
    value: *mut PmBytes,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        if name.is_null() || value.is_null() {
            return Err(Fail::null("name or value"));
        }
        let (n, v) = r.info().head.header(index).ok_or_else(|| {
            Fail::new(
                PmCode::NotFound,
                format!("the request has no header {index}"),
            )
        })?;
        unsafe {
            put(name, PmBytes::of(n))?;
            put(value, PmBytes::of(v))
        }
    })
}

/// The value of the first header field named `name` (`name_len` bytes, compared without
/// regard to case). `PM_CODE_NOT_FOUND` if there is none.
#[no_mangle]
pub unsafe extern "C" fn pm_request_header(
    r: *mut PmRequest,
    name: *const c_char,
    name_len: usize,
    out: *mut PmBytes,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let name = unsafe { bytes_arg(name.cast(), name_len, "name")? };
        let value = r.info().head.header_value(name).ok_or_else(|| {
            Fail::new(
                PmCode::NotFound,
                format!(
                    "the request has no {:?} header",
                    String::from_utf8_lossy(name)
                ),
            )
        })?;
        unsafe { put(out, PmBytes::of(value)) }
    })
}

/// Reads the next chunk of the request body into `*chunk`, waiting for it to arrive; `len`
/// 0 means the body ended. The bytes (in shared memory when the link uses it) stay valid
/// until the next read or `pm_request_free`. Reading is what lets the client send more.
/// `PM_CODE_CLOSED` if the request was cancelled or the link broke.
#[no_mangle]
pub unsafe extern "C" fn pm_request_read(r: *mut PmRequest, chunk: *mut PmBytes) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        if chunk.is_null() {
            return Err(Fail::null("chunk"));
        }
        r.chunk = Bytes::new();
        r.chunk = r.pulled.read()?.unwrap_or_default();
        unsafe { put(chunk, PmBytes::of(&r.chunk)) }
    })
}

/// Adds a field to the response's head (for `pm_request_respond` or `pm_request_start`,
/// also a filter's block response). Name and value are copied. `content-length` is set
/// for you by `pm_request_respond`; with `pm_request_start`, set it to send a body of known
/// length, else it goes chunked.
#[no_mangle]
pub unsafe extern "C" fn pm_request_add_header(
    r: *mut PmRequest,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let name = unsafe { bytes_arg(name.cast(), name_len, "name")? };
        let value = unsafe { bytes_arg(value.cast(), value_len, "value")? };
        Ok(r.pulled.add_header(name, value)?)
    })
}

/// Answers with `status`, the headers added, and `body` (`len` bytes, copied; null when
/// `len` is 0), all at once. In a filter pool this blocks the request: the upstream never
/// sees it. `PM_CODE_CLOSED` if the hub cancelled the request meanwhile.
#[no_mangle]
pub unsafe extern "C" fn pm_request_respond(
    r: *mut PmRequest,
    status: u16,
    body: *const u8,
    len: usize,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let body = unsafe { bytes_arg(body, len, "body")? };
        Ok(r.pulled.respond(status, Bytes::copy_from_slice(body))?)
    })
}

/// Sends the response head (`status` and the headers added) and opens its body, which
/// `pm_request_write` fills and `pm_request_finish` ends.
#[no_mangle]
pub unsafe extern "C" fn pm_request_start(r: *mut PmRequest, status: u16) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        Ok(r.pulled.start(status)?)
    })
}

/// Writes `len` bytes (copied) of the response body started by `pm_request_start`. Waits
/// while the client is slower than the writer. `PM_CODE_CLOSED` if the request was
/// cancelled: stop writing then.
#[no_mangle]
pub unsafe extern "C" fn pm_request_write(
    r: *mut PmRequest,
    data: *const u8,
    len: usize,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let data = unsafe { bytes_arg(data, len, "data")? };
        Ok(r.pulled.write(Bytes::copy_from_slice(data))?)
    })
}

/// Ends the response body started by `pm_request_start`.
#[no_mangle]
pub unsafe extern "C" fn pm_request_finish(r: *mut PmRequest) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        Ok(r.pulled.finish()?)
    })
}

/// Adds a header edit to a filter's pass verdict, applied in the order added: `op` is
/// `PM_EDIT_SET`, `PM_EDIT_APPEND` or `PM_EDIT_REMOVE` (whose value is ignored). Name and
/// value are copied. The hub refuses (502) edits of `host` and hop-by-hop fields unless
/// the pool allows them.
#[no_mangle]
pub unsafe extern "C" fn pm_request_edit(
    r: *mut PmRequest,
    op: u32,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let name = unsafe { bytes_arg(name.cast(), name_len, "name")? };
        let value = unsafe { bytes_arg(value.cast(), value_len, "value")? };
        let edit = match op {
            0 => Edit::Set,
            1 => Edit::Append,
            2 => Edit::Remove,
            _ => return Err(Fail::invalid(format!("edit {op} is not a PM_EDIT_* value"))),
        };
        Ok(r.pulled.edit(edit, name, value)?)
    })
}

/// Sends the request to `target` (path and query, from `/`; copied) on the upstream
/// instead of the one the client asked for. For a filter's pass verdict.
#[no_mangle]
pub unsafe extern "C" fn pm_request_set_target(
    r: *mut PmRequest,
    target: *const c_char,
    len: usize,
) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        let target = unsafe { bytes_arg(target.cast(), len, "target")? };
        Ok(r.pulled.set_target(target)?)
    })
}

/// A filter's verdict: pass the request on to the upstream with the edits added. The body
/// goes on unchanged: the hub's copy when the pool buffers bodies for its filters, or, when
/// it streams them, the body itself, which the filter must then not have read.
/// `PM_CODE_WRONG_STATE` in a respond pool.
#[no_mangle]
pub unsafe extern "C" fn pm_request_pass(r: *mut PmRequest) -> PmCode {
    guard(|| {
        let r = unsafe { request(r)? };
        Ok(r.pulled.pass()?)
    })
}

/// Frees a request from `pm_worker_next`. One not answered is answered 500; a streamed
/// response not finished (`pm_request_finish`) is aborted: the client's response is cut
/// short, never passed off as whole. Every view into it dies with it. Not for a request
/// `pm_worker_run` handed to a handler: the library frees those.
#[no_mangle]
pub unsafe extern "C" fn pm_request_free(r: *mut PmRequest) -> PmCode {
    guard(|| {
        let live = unsafe { request(r)? };
        if live.in_callback {
            return Err(Fail::state(
                "pm_worker_run frees this request when the handler returns",
            ));
        }
        drop(REQUESTS.remove(r)?);
        Ok(())
    })
}
