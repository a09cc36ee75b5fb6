//! The ASGI 3 `http` scope of a request, built here rather than in Python.

use pullman_worker::RequestInfo;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::head::{is_https, peer_address, percent_decoded, server_address, text, version_name};
use crate::proxies::Proxies;

/// The scope of the request: header names lowercase, `path` percent-decoded as UTF-8
/// (an invalid sequence becomes U+FFFD), `raw_path` and `query_string` as sent; `state`
/// (what lifespan startup left) copied, one copy per request, as the spec asks. Spec 2.4:
/// a send on a request that is gone raises (`pullman.Closed`, an `OSError`).
pub(crate) fn scope<'py>(
    py: Python<'py>,
    info: &RequestInfo,
    in_shared_memory: bool,
    state: Option<&Bound<'py, PyDict>>,
    proxies: Option<&Proxies>,
) -> PyResult<Bound<'py, PyDict>> {
    let head = &info.head;
    let https = is_https(info, proxies);
    let scope = PyDict::new(py);
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.4"))?;
    scope.set_item(intern!(py, "asgi"), asgi)?;
    scope.set_item(intern!(py, "http_version"), version_name(head.version()))?;
    scope.set_item(
        intern!(py, "method"),
        text(py, &head.method().to_ascii_uppercase()),
    )?;
    let scheme = if https {
        intern!(py, "https")
    } else {
        intern!(py, "http")
    };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    let path = percent_decoded(head.path());
    scope.set_item(intern!(py, "path"), String::from_utf8_lossy(&path))?;
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, head.path()))?;
    scope.set_item(
        intern!(py, "query_string"),
        PyBytes::new(py, head.query().unwrap_or_default()),
    )?;
    scope.set_item(intern!(py, "root_path"), intern!(py, ""))?;
    let headers = PyList::empty(py);
    for (name, value) in head.headers() {
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, &name.to_ascii_lowercase()),
                PyBytes::new(py, value),
            ],
        )?;
        headers.append(pair)?;
    }
    scope.set_item(intern!(py, "headers"), headers)?;
    scope.set_item(intern!(py, "client"), peer_address(&info.peer))?;
    let (server_name, server_port) = server_address(head, https);
    scope.set_item(intern!(py, "server"), (text(py, server_name), server_port))?;
    let pullman = PyDict::new(py);
    let request_id = head.header_value(b"x-request-id").unwrap_or_default();
    pullman.set_item(intern!(py, "request_id"), text(py, request_id))?;
    pullman.set_item(intern!(py, "deadline_ms"), info.deadline_ms)?;
    pullman.set_item(intern!(py, "in_shared_memory"), in_shared_memory)?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "pullman"), pullman)?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    if let Some(state) = state {
        scope.set_item(intern!(py, "state"), state.copy()?)?;
    }
    Ok(scope)
}
