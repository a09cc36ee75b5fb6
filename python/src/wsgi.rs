//! The PEP 3333 environ of a request, built here rather than in Python: it is most of what
//! a WSGI runner spends on a short request.

use pullman_worker::RequestInfo;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::head::{is_https, peer_address, percent_decoded, server_address, text, version_name};
use crate::proxies::Proxies;

/// `base` (the keys the same for every request) plus this request's: the CGI variables,
/// `wsgi.url_scheme` (`https` only on a trusted proxy's word, see [`Proxies`]), a `HTTP_*` key per header (repeated fields joined with `", "`; names
/// with `_` dropped, as gunicorn and nginx drop them, since `X-Forwarded_For` would pose as
/// `X-Forwarded-For`), `pullman.request_id` and `pullman.deadline_ms`. `PATH_INFO` is the
/// path percent-decoded, one character per byte. `wsgi.input` is the caller's to add.
pub(crate) fn environ<'py>(
    py: Python<'py>,
    info: &RequestInfo,
    base: &Bound<'py, PyDict>,
    proxies: Option<&Proxies>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = base.copy()?;
    let head = &info.head;
    let https = is_https(info, proxies);
    let (server_name, server_port) = server_address(head, https);
    let request_id = head.header_value(b"x-request-id").unwrap_or_default();
    env.set_item(intern!(py, "REQUEST_METHOD"), text(py, head.method()))?;
    env.set_item(
        intern!(py, "PATH_INFO"),
        text(py, &percent_decoded(head.path())),
    )?;
    env.set_item(
        intern!(py, "QUERY_STRING"),
        text(py, head.query().unwrap_or_default()),
    )?;
    env.set_item(intern!(py, "SERVER_NAME"), text(py, server_name))?;
    env.set_item(intern!(py, "SERVER_PORT"), server_port.to_string())?;
    let protocol = match version_name(head.version()) {
        "1.0" => intern!(py, "HTTP/1.0"),
        "1.1" => intern!(py, "HTTP/1.1"),
        "2" => intern!(py, "HTTP/2"),
        _ => intern!(py, "HTTP/3"),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    let scheme = if https {
        intern!(py, "https")
    } else {
        intern!(py, "http")
    };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "pullman.request_id"), text(py, request_id))?;
    env.set_item(intern!(py, "pullman.deadline_ms"), info.deadline_ms)?;
    if let Some((ip, port)) = peer_address(&info.peer) {
        env.set_item(intern!(py, "REMOTE_ADDR"), ip)?;
        env.set_item(intern!(py, "REMOTE_PORT"), port.to_string())?;
    }
    let mut key = String::with_capacity(64);
    for (name, value) in head.headers() {
        if name.contains(&b'_') {
            continue;
        }
        key.clear();
        let upper = name.iter().map(|&b| match b {
            b'-' => '_',
            b => char::from(b.to_ascii_uppercase()),
        });
        let unprefixed = name.eq_ignore_ascii_case(b"content-type")
            || name.eq_ignore_ascii_case(b"content-length");
        if !unprefixed {
            key.push_str("HTTP_");
        }
        key.extend(upper);
        let key = PyString::new(py, &key);
        let value = text(py, value);
        match env.get_item(&key)? {
            Some(earlier) => {
                let joined = format!("{}, {}", earlier.extract::<String>()?, value.to_cow()?);
                env.set_item(key, joined)?;
            }
            None => env.set_item(key, value)?,
        }
    }
    if !request_id.is_empty() && !env.contains(intern!(py, "HTTP_X_REQUEST_ID"))? {
        env.set_item(intern!(py, "HTTP_X_REQUEST_ID"), text(py, request_id))?;
    }
    Ok(env)
}
