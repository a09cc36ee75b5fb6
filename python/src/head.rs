//! What both adapters read from a request head beyond its plain fields: the scheme, the
//! server's and the client's address, the decoded path, the body's length; and bytes as
//! Python text.

use std::borrow::Cow;

use pullman_proto::{HeadView, Version};
use pullman_worker::RequestInfo;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::proxies::Proxies;

/// Bytes as a `str`, one character per byte (latin-1), as PEP 3333 has it.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Bytes as a Python `str`, one character per byte; ASCII (the usual case) with no copy
/// on the way.
pub(crate) fn text<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if bytes.is_ascii() => PyString::new(py, ascii),
        _ => PyString::new(py, &latin1(bytes)),
    }
}

/// The client's HTTP version as the adapters name it.
pub(crate) fn version_name(version: Version) -> &'static str {
    match version {
        Version::Http10 => "1.0",
        Version::Http11 => "1.1",
        Version::Http2 => "2",
        Version::Http3 => "3",
    }
}

/// Whether the client came over TLS: it reached the hub's TLS listener (the REQUEST's TLS
/// flag), or a trusted proxy's `x-forwarded-proto` (its first value) says `https`.
pub(crate) fn is_https(info: &RequestInfo, proxies: Option<&Proxies>) -> bool {
    if info.tls {
        return true;
    }
    if !proxies.is_some_and(|p| p.trusts(&info.peer)) {
        return false;
    }
    info.head
        .header_value(b"x-forwarded-proto")
        .is_some_and(|proto| {
            let first = proto.split(|&b| b == b',').next().unwrap_or_default();
            first.trim_ascii().eq_ignore_ascii_case(b"https")
        })
}

/// `host:port`, `[v6]:port` or either without the port, as (host, port). A port that is
/// not a number counts as absent; IPv6 brackets are dropped; a bare IPv6 address has no
/// port.
fn split_host_port(text: &[u8]) -> (&[u8], Option<u16>) {
    let (host, port) = if let Some(inner) = text.strip_prefix(b"[") {
        let Some(end) = inner.iter().position(|&b| b == b']') else {
            return (text, None);
        };
        (&inner[..end], inner[end + 1..].strip_prefix(b":"))
    } else {
        let mut colons = text.iter().enumerate().filter(|(_, &b)| b == b':');
        match (colons.next(), colons.next()) {
            (Some((at, _)), None) => (&text[..at], Some(&text[at + 1..])),
            _ => (text, None),
        }
    };
    let port = port
        .filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
        .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok());
    (host, port)
}

/// The (name, port) the client addressed, from `Host` (the scheme's port if it names
/// none); `localhost` for a request without one.
pub(crate) fn server_address(head: &HeadView, https: bool) -> (&[u8], u16) {
    let default_port = if https { 443 } else { 80 };
    let Some(host) = head.header_value(b"host").map(<[u8]>::trim_ascii) else {
        return (b"localhost", default_port);
    };
    let (name, port) = split_host_port(host);
    let name: &[u8] = if name.is_empty() { b"localhost" } else { name };
    (name, port.unwrap_or(default_port))
}

/// The client's (ip, port) from the request's peer (`ip:port`), port 0 if it has none;
/// `None` if the peer is unknown.
pub(crate) fn peer_address(peer: &str) -> Option<(&str, u16)> {
    if peer.is_empty() {
        return None;
    }
    let (ip, port) = split_host_port(peer.as_bytes());
    // `ip` is a slice of a `str` cut at ASCII bytes only.
    let ip = std::str::from_utf8(ip).unwrap_or(peer);
    Some((ip, port.unwrap_or(0)))
}

/// The path with its `%XX` escapes decoded (an escape that is not one stays as it is).
pub(crate) fn percent_decoded(path: &[u8]) -> Cow<'_, [u8]> {
    if !path.contains(&b'%') {
        return Cow::Borrowed(path);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let escape = path.get(i + 1..i + 3).filter(|_| path[i] == b'%');
        match escape.and_then(|e| Some(hex(e[0])? * 16 + hex(e[1])?)) {
            Some(byte) => {
                // Two hex digits make at most 255.
                out.push(u8::try_from(byte).unwrap_or(u8::MAX));
                i += 3;
            }
            None => {
                out.push(path[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The body's length when the head tells it: its `content-length`, or 0 for an HTTP/1
/// request with neither `content-length` nor `transfer-encoding` (RFC 9112 6.3); `None`
/// when only its end will tell (chunked, HTTP/2 without a length) or the length is not a
/// number.
pub(crate) fn body_size(head: &HeadView) -> Option<u64> {
    if let Some(length) = head.header_value(b"content-length") {
        return std::str::from_utf8(length.trim_ascii()).ok()?.parse().ok();
    }
    let http1 = matches!(head.version(), Version::Http10 | Version::Http11);
    (http1 && head.header_value(b"transfer-encoding").is_none()).then_some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split_as_clients_write_them() {
        assert_eq!(
            split_host_port(b"a.example:8080"),
            (&b"a.example"[..], Some(8080))
        );
        assert_eq!(split_host_port(b"a.example"), (&b"a.example"[..], None));
        assert_eq!(split_host_port(b"[::1]:9"), (&b"::1"[..], Some(9)));
        assert_eq!(split_host_port(b"[::1]"), (&b"::1"[..], None));
        assert_eq!(split_host_port(b"::1"), (&b"::1"[..], None));
        assert_eq!(split_host_port(b"a:x"), (&b"a"[..], None));
        assert_eq!(split_host_port(b"a:99999"), (&b"a"[..], None));
        assert_eq!(split_host_port(b"[::1"), (&b"[::1"[..], None));
    }

    #[test]
    fn escapes_decode_and_broken_ones_stay() {
        assert_eq!(&*percent_decoded(b"/a%20b/%C3%A9/%2F"), b"/a b/\xc3\xa9//");
        assert_eq!(&*percent_decoded(b"/100%/%zz/%4"), b"/100%/%zz/%4");
        assert!(matches!(percent_decoded(b"/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn peers_split_into_ip_and_port() {
        assert_eq!(peer_address("10.0.0.1:1234"), Some(("10.0.0.1", 1234)));
        assert_eq!(peer_address("[::1]:9"), Some(("::1", 9)));
        assert_eq!(peer_address(""), None);
    }
}
