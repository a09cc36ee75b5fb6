//! Hop-by-hop header fields (RFC 9110 section 7.6.1): they describe one connection, so the
//! hub drops them wherever it passes a message on (a worker's response to the client, a
//! client's request to an upstream).

use http::header::{HeaderName, CONNECTION};
use http::HeaderMap;

/// Header fields that describe one hop (RFC 9110 section 7.6.1), which a proxy never
/// forwards. `host` is not among them, but a filter may not edit it either unless the pool
/// allows (see `upstream::is_protected`).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_str(name.as_str())
}

/// The same for a field name as bytes, in lower case (as the head view carries them).
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(is_hop_by_hop_str)
}

fn is_hop_by_hop_str(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes from `headers` the hop-by-hop fields, and those the `connection` field names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass to see, without allocating.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    // Rebuilt rather than removed from, which would reorder the fields left.
    let all = std::mem::take(headers);
    headers.reserve(all.len());
    let mut name = None;
    for (n, value) in all {
        name = n.or(name);
        let Some(n) = &name else { continue };
        if !is_hop_by_hop(n) && !named.contains(n) {
            headers.append(n.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("host", "example.com".parse().unwrap());
        headers.append("accept", "a".parse().unwrap());
        headers.append("accept", "b".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["host", "accept"]);
        assert_eq!(headers.get_all("accept").iter().count(), 2);
    }
}
