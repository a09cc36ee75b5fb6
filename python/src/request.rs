//! `Request`: one request a Python thread holds: its head decoded as PEP 3333 asks
//! (latin-1), its body read in chunks without the GIL, and its answer (a response, or in a
//! filter pool a pass verdict).

use std::borrow::Cow;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use pullman_proto::{HeadBuilder, Version};
use pullman_worker::pull::{self, Edit, Mode, Pulled};
use pullman_worker::{RequestBody, RequestInfo};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::errors::{invalid, to_py, wrong_state};
use crate::head::{body_size, latin1, version_name};
use crate::proxies::Proxies;
use crate::{asgi, wsgi};

/// A request from `Worker.next()`. Answer it with `respond()`, with `start()`, `write()`
/// and `finish()`, or in a filter pool with `pass_()` or `block()`; `close()` releases it
/// (one released unanswered is answered 500, as is one the garbage collector takes).
#[pyclass(frozen, module = "pullman._native")]
pub struct Request {
    /// `None` once closed.
    pulled: Mutex<Option<Pulled>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("pulled", &*self.pulled.lock())
            .finish()
    }
}

/// A `str` of latin-1 characters back to its bytes: itself when ASCII (the usual case, no
/// copy), else one byte per character.
fn to_latin1<'a>(text: &'a str, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if text.is_ascii() {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned)
        .ok_or_else(|| invalid(format!("{what} {text:?} has a character beyond latin-1")))
}

/// Header fields as Python gives them: `(name, value)` pairs (tuples or lists), each a
/// `str` (WSGI's latin-1) or `bytes` (ASGI's), taken as they are.
type Fields = Vec<Field>;

/// One header field; see [`Fields`].
pub(crate) struct Field {
    name: Text,
    value: Text,
}

/// A header's name or value: `str` of latin-1 characters, or `bytes`.
#[derive(FromPyObject)]
enum Text {
    Str(String),
    Bytes(PyBackedBytes),
}

impl Text {
    fn bytes(&self, what: &str) -> PyResult<Cow<'_, [u8]>> {
        match self {
            Text::Str(text) => to_latin1(text, what),
            Text::Bytes(bytes) => Ok(Cow::Borrowed(bytes)),
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Field {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Field> {
        let pair = || invalid("a header is a (name, value) pair of str or bytes");
        let (name, value) = if let Ok(tuple) = obj.cast::<PyTuple>() {
            if tuple.len() != 2 {
                return Err(pair());
            }
            (tuple.get_item(0)?, tuple.get_item(1)?)
        } else if let Ok(list) = obj.cast::<PyList>() {
            if list.len() != 2 {
                return Err(pair());
            }
            (list.get_item(0)?, list.get_item(1)?)
        } else {
            return Err(pair());
        };
        Ok(Field {
            name: name.extract().map_err(|_: PyErr| pair())?,
            value: value.extract().map_err(|_: PyErr| pair())?,
        })
    }
}

impl Request {
    pub(crate) fn new(pulled: Pulled) -> Request {
        Request {
            pulled: Mutex::new(Some(pulled)),
        }
    }

    /// The request's lock. A thread that must wait for it (another thread is using the
    /// request) waits without the GIL, so that the thread inside, which may need the GIL
    /// (to raise, or to run a callback), is never stuck behind it.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Option<Pulled>> {
        loop {
            if let Some(guard) = self.pulled.try_lock() {
                return guard;
            }
            py.detach(|| drop(self.pulled.lock()));
        }
    }

    /// Runs `f` on the open request.
    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&mut Pulled) -> PyResult<T>) -> PyResult<T> {
        match self.lock(py).as_mut() {
            Some(pulled) => f(pulled),
            None => Err(wrong_state("the request is closed")),
        }
    }

    /// A view of the head, decoded.
    fn head<T>(&self, py: Python<'_>, f: impl FnOnce(&Pulled) -> T) -> PyResult<T> {
        self.with(py, |p| Ok(f(p)))
    }

    /// A whole answer, `status`, `headers` and `body` at once, from a pool of kind `mode`
    /// (else `WrongState(misuse)`).
    fn answer(
        &self,
        py: Python<'_>,
        mode: Mode,
        misuse: &str,
        status: u16,
        headers: &[Field],
        body: Option<PyBackedBytes>,
    ) -> PyResult<()> {
        self.with(py, |p| {
            if p.mode() != mode {
                return Err(wrong_state(misuse));
            }
            Self::add_headers(p, headers, true)?;
            // The Python object itself goes to the link, no copy.
            let body = body.map_or_else(Bytes::new, Bytes::from_owner);
            p.respond(status, body).map_err(to_py)
        })
    }

    /// Adds `headers` to the response; `content-length` too unless `sized` (a whole body,
    /// whose length the SDK sets).
    fn add_headers(pulled: &mut Pulled, headers: &[Field], sized: bool) -> PyResult<()> {
        for field in headers {
            let name = field.name.bytes("the header name")?;
            if sized && name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let value = field.value.bytes("the header value")?;
            pulled.add_header(&name, &value).map_err(to_py)?;
        }
        Ok(())
    }
}

#[pymethods]
impl Request {
    /// The method, e.g. `"GET"`.
    #[getter]
    fn method(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| latin1(p.info().head.method()))
    }

    /// The target as the client sent it: path and query (`"/a/b?x=1"`).
    #[getter]
    fn target(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| latin1(p.info().head.target()))
    }

    /// The client's HTTP version: `"1.0"`, `"1.1"`, `"2"` or `"3"`.
    #[getter]
    fn http_version(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.head(py, |p| version_name(p.info().head.version()))
    }

    /// The target up to its first `?`, undecoded.
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| latin1(p.info().head.path()))
    }

    /// The target after its first `?`; `""` if there is none.
    #[getter]
    fn query(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| latin1(p.info().head.query().unwrap_or_default()))
    }

    /// The header fields in the order sent, as `(name, value)` pairs (names lowercase for
    /// HTTP/2, as sent for HTTP/1.1).
    #[getter]
    fn headers(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        self.head(py, |p| {
            let head = &p.info().head;
            (0..head.header_count())
                .filter_map(|i| head.header(i))
                .map(|(name, value)| (latin1(name), latin1(value)))
                .collect()
        })
    }

    /// The value of the first header field named `name` (any case), or `None`.
    fn header(&self, py: Python<'_>, name: &str) -> PyResult<Option<String>> {
        self.head(py, |p| {
            p.info().head.header_value(name.as_bytes()).map(latin1)
        })
    }

    /// The client's address as the hub saw it (`"ip:port"`); `""` if unknown.
    #[getter]
    fn peer(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| p.info().peer.clone())
    }

    /// Whether the client reached the hub over TLS (its `[hub.tls]` listener).
    #[getter]
    fn tls(&self, py: Python<'_>) -> PyResult<bool> {
        self.head(py, |p| p.info().tls)
    }

    /// The request's id (its `x-request-id`, which the hub sets on every request).
    #[getter]
    fn request_id(&self, py: Python<'_>) -> PyResult<String> {
        self.head(py, |p| {
            latin1(
                p.info()
                    .head
                    .header_value(b"x-request-id")
                    .unwrap_or_default(),
            )
        })
    }

    /// Milliseconds the hub gives this request, from its arrival here; 0 for no deadline.
    #[getter]
    fn deadline_ms(&self, py: Python<'_>) -> PyResult<u32> {
        self.head(py, |p| p.info().deadline_ms)
    }

    /// Whether the head lies in memory shared with the hub (read in place, no copy).
    #[getter]
    fn in_shared_memory(&self, py: Python<'_>) -> PyResult<bool> {
        self.head(py, |p| {
            pullman_worker::is_shared_memory(p.info().head.raw())
        })
    }

    /// The body's length when the head tells it (its `content-length`, or 0 for an HTTP/1
    /// request with neither `content-length` nor `transfer-encoding`); `None` when only its
    /// end will tell.
    #[getter]
    fn body_size(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.head(py, |p| body_size(&p.info().head))
    }

    /// The PEP 3333 environ: `base` (the keys the same for every request) plus this
    /// request's (CGI variables, `wsgi.url_scheme`, `HTTP_*` headers, `pullman.request_id`,
    /// `pullman.deadline_ms`). `wsgi.input` is the caller's to add. `wsgi.url_scheme` is
    /// `https` only on the word of one of `proxies`.
    #[pyo3(signature = (base, proxies=None))]
    fn wsgi_environ<'py>(
        &self,
        py: Python<'py>,
        base: &Bound<'py, PyDict>,
        proxies: Option<PyRef<'py, Proxies>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.with(py, |p| {
            wsgi::environ(py, p.info(), base, proxies.as_deref())
        })
    }

    /// The ASGI 3 `http` scope, with a copy of `state` (what lifespan startup left) if
    /// given; `scheme` is `https` only on the word of one of `proxies`.
    #[pyo3(signature = (state=None, proxies=None))]
    fn asgi_scope<'py>(
        &self,
        py: Python<'py>,
        state: Option<&Bound<'py, PyDict>>,
        proxies: Option<PyRef<'py, Proxies>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.with(py, |p| {
            let shared = pullman_worker::is_shared_memory(p.info().head.raw());
            asgi::scope(py, p.info(), shared, state, proxies.as_deref())
        })
    }

    /// A request from no hub, with this head and an empty body, whose answer goes nowhere:
    /// for tests of code that reads requests (the package's own fake uses it, so that its
    /// environ and scope are the real ones). `x-request-id` is added to the headers when
    /// `request_id` is given and they have none. `tls`: the client came over TLS.
    #[staticmethod]
    #[pyo3(signature = (
        method="GET", target="/", headers=Vec::new(), peer=String::new(), http_version="1.1",
        deadline_ms=0, request_id=None, tls=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn detached(
        method: &str,
        target: &str,
        mut headers: Fields,
        peer: String,
        http_version: &str,
        deadline_ms: u32,
        request_id: Option<&str>,
        tls: bool,
    ) -> PyResult<Request> {
        let version = match http_version {
            "1.0" => Version::Http10,
            "1.1" => Version::Http11,
            "2" => Version::Http2,
            "3" => Version::Http3,
            other => return Err(invalid(format!("no HTTP version {other:?}"))),
        };
        if let Some(id) = request_id {
            let mut has_id = false;
            for field in &headers {
                has_id |= field
                    .name
                    .bytes("the header name")?
                    .eq_ignore_ascii_case(b"x-request-id");
            }
            if !has_id {
                headers.push(Field {
                    name: Text::Str("x-request-id".into()),
                    value: Text::Str(id.into()),
                });
            }
        }
        let method = to_latin1(method, "the method")?;
        let target = to_latin1(target, "the target")?;
        let mut head = HeadBuilder::new(version, &method, &target, headers.len());
        for field in &headers {
            let name = field.name.bytes("the header name")?;
            let value = field.value.bytes("the header value")?;
            head.header(&name, &value).map_err(invalid)?;
        }
        let info = RequestInfo {
            peer,
            tls,
            deadline_ms,
            head: head.finish(),
        };
        let (pulled, _nowhere) = pull::unlinked(Mode::Respond, info, RequestBody::empty())
            .map_err(|e| invalid(format!("cannot start: {e}")))?;
        Ok(Request::new(pulled))
    }

    /// The next chunk of the body, waiting for it without the GIL; `b""` once it ended.
    /// Reading is what lets the client send more. Raises `Closed` if the request was
    /// cancelled.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(py, |p| {
            let chunk = py.detach(|| p.read()).map_err(to_py)?;
            Ok(PyBytes::new(py, chunk.as_deref().unwrap_or_default()))
        })
    }

    /// Answers with `status`, `headers` (`(name, value)` pairs) and `body` (bytes or
    /// bytearray), all at once; `content-length` is set from the body (one in `headers` is
    /// dropped). In a filter pool, use `block()`.
    #[pyo3(signature = (status, headers=Vec::new(), body=None))]
    fn respond(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Fields,
        body: Option<PyBackedBytes>,
    ) -> PyResult<()> {
        let misuse = "a filter answers with block() or pass_()";
        self.answer(py, Mode::Respond, misuse, status, &headers, body)
    }

    /// A filter's verdict that answers the client itself (the upstream never sees the
    /// request), as `respond()` does in a respond pool.
    #[pyo3(signature = (status, headers=Vec::new(), body=None))]
    fn block(
        &self,
        py: Python<'_>,
        status: u16,
        headers: Fields,
        body: Option<PyBackedBytes>,
    ) -> PyResult<()> {
        let misuse = "block() is a filter's verdict; this worker serves a respond pool";
        self.answer(py, Mode::Filter, misuse, status, &headers, body)
    }

    /// Sends the response head and opens its body, which `write()` fills and `finish()`
    /// ends. With a `content-length` among `headers` the body must be that long; without,
    /// it goes chunked.
    #[pyo3(signature = (status, headers=Vec::new()))]
    fn start(&self, py: Python<'_>, status: u16, headers: Fields) -> PyResult<()> {
        self.with(py, |p| {
            Self::add_headers(p, &headers, false)?;
            p.start(status).map_err(to_py)
        })
    }

    /// Writes a chunk of the body `start()` opened, waiting without the GIL while the client
    /// is slower than the writer. Raises `Closed` if the request was cancelled.
    fn write(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<()> {
        // The Python object itself goes to the link, no copy.
        let chunk = Bytes::from_owner(data);
        self.with(py, |p| py.detach(|| p.write(chunk)).map_err(to_py))
    }

    /// Ends the body `start()` opened.
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |p| p.finish().map_err(to_py))
    }

    /// A filter's verdict: pass the request on to the upstream, with these header edits
    /// (applied in the order remove, set, append) and, if given, another `target` (a path
    /// and query from `/`).
    #[pyo3(signature = (set_headers=None, append_headers=None, remove_headers=None, target=None))]
    fn pass_(
        &self,
        py: Python<'_>,
        set_headers: Option<Fields>,
        append_headers: Option<Fields>,
        remove_headers: Option<Vec<String>>,
        target: Option<&str>,
    ) -> PyResult<()> {
        self.with(py, |p| {
            for name in remove_headers.unwrap_or_default() {
                p.edit(Edit::Remove, name.as_bytes(), b"").map_err(to_py)?;
            }
            let edits = [(Edit::Set, set_headers), (Edit::Append, append_headers)];
            for (edit, fields) in edits {
                for field in fields.unwrap_or_default() {
                    let name = field.name.bytes("the header name")?;
                    let value = field.value.bytes("the header value")?;
                    p.edit(edit, &name, &value).map_err(to_py)?;
                }
            }
            if let Some(target) = target {
                p.set_target(target.as_bytes()).map_err(to_py)?;
            }
            p.pass().map_err(to_py)
        })
    }

    /// Calls `callback()` once, with the GIL, if the request goes away before `close()`:
    /// the hub cancelled it (its client left, its deadline passed) or the link broke before
    /// its answer was sent whole. It runs on a thread of the library (at once, on this
    /// thread, if the request is gone already) and must be quick; an exception it raises is
    /// printed. Never after `close()`; on a closed request, nothing happens.
    fn on_close(&self, py: Python<'_>, callback: Py<PyAny>) {
        if let Some(p) = self.lock(py).as_ref() {
            p.on_gone(move || {
                Python::attach(|py| {
                    if let Err(e) = callback.call0(py) {
                        e.print(py);
                    }
                })
            });
        }
    }

    /// Releases the request: one unanswered is answered 500, a streamed body not finished
    /// is aborted (the client sees it cut short, never whole). Closing twice is harmless.
    fn close(&self, py: Python<'_>) {
        let pulled = self.lock(py).take();
        drop(pulled);
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.lock(py).is_none()
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

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.lock(py).as_ref() {
            Some(p) => format!(
                "<pullman._native.Request {} {}>",
                latin1(p.info().head.method()),
                latin1(p.info().head.target())
            ),
            None => "<pullman._native.Request closed>".into(),
        }
    }
}
