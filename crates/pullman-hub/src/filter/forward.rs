//! What a passed request becomes on its way upstream, and what the upstream's response
//! becomes on its way to the client: hop-by-hop fields dropped, a filter's edits applied.

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response};
use pullman_proto::{EditOp, HeaderEdit};

use crate::body::HubBody;
use crate::error::RequestError;
use crate::hop::strip_hop_by_hop;
use crate::request::X_REQUEST_ID;
use crate::upstream::{is_protected, UpstreamBody, UpstreamClient};

/// The request to send upstream: the client's method, target (or the filter's), and
/// end-to-end header fields with the filter's edits.
pub(super) fn upstream_request(
    upstream: &UpstreamClient,
    parts: Parts,
    target: Option<&[u8]>,
    edits: &[HeaderEdit],
    allow_protected: bool,
    body_from_filter: bool,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, RequestError> {
    // For the log lines, as the client's head had it (edits may change the field).
    let id = parts.headers.get(X_REQUEST_ID).cloned();
    let request_id = id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let uri = match target {
        None => {
            let original = parts.uri.path_and_query().cloned();
            upstream.uri(original.unwrap_or_else(|| PathAndQuery::from_static("/")))?
        }
        Some(t) => {
            let parsed = PathAndQuery::try_from(t)
                .ok()
                .filter(|_| t.first() == Some(&b'/') && !t.contains(&b'#'));
            let Some(target) = parsed else {
                tracing::warn!(
                    request_id,
                    target = %String::from_utf8_lossy(t),
                    "filter gave an invalid target"
                );
                return Err(RequestError::WorkerError);
            };
            upstream
                .uri(target)
                .map_err(|_| RequestError::WorkerError)?
        }
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // HTTP/2 clients send the authority, not a host field; the upstream gets one either way.
    if !headers.contains_key(HOST) {
        if let Some(value) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(HOST, value);
        }
    }
    let sets_length = apply_edits(&mut headers, edits, allow_protected).map_err(|why| {
        tracing::warn!(request_id, %why, "unusable VERDICT");
        RequestError::WorkerError
    })?;
    if body_from_filter && !sets_length {
        // The filter's body may differ in length from the client's.
        headers.remove(CONTENT_LENGTH);
    }
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Applies a VERDICT's edits in order. Returns whether one of them sets `content-length`;
/// fails on a malformed name or value, or a protected field the pool does not let filters
/// edit.
pub(super) fn apply_edits(
    headers: &mut HeaderMap,
    edits: &[HeaderEdit],
    allow_protected: bool,
) -> Result<bool, String> {
    let mut sets_length = false;
    for edit in edits {
        let name = HeaderName::from_bytes(&edit.name).map_err(|_| {
            format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&edit.name)
            )
        })?;
        if !allow_protected && is_protected(&name) {
            return Err(format!(
                "edit of protected field {name} (allow with filter_edit_protected = true)"
            ));
        }
        match edit.op {
            EditOp::Remove => {
                headers.remove(&name);
            }
            op => {
                let value = HeaderValue::from_maybe_shared(edit.value.clone())
                    .map_err(|_| format!("invalid value for {name}"))?;
                if name == CONTENT_LENGTH {
                    let valid = value
                        .to_str()
                        .ok()
                        .is_some_and(|v| v.parse::<u64>().is_ok());
                    if !valid || op == EditOp::Append {
                        return Err("content-length must be set to one number".into());
                    }
                    sets_length = true;
                }
                if op == EditOp::Set {
                    headers.insert(name, value);
                } else {
                    headers.append(name, value);
                }
            }
        }
    }
    Ok(sets_length)
}

/// The upstream's response as the client gets it, unfiltered.
pub(super) fn client_response(resp: Response<UpstreamBody>) -> Response<HubBody> {
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(HubBody::Http(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    strip_hop_by_hop(out.headers_mut());
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn edit(op: EditOp, name: &'static str, value: &'static str) -> HeaderEdit {
        HeaderEdit {
            op,
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
        }
    }

    #[test]
    fn edits_apply_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("cookie", HeaderValue::from_static("secret"));
        let sets_length = apply_edits(
            &mut headers,
            &[
                edit(EditOp::Append, "x-a", "2"),
                edit(EditOp::Set, "x-b", "3"),
                edit(EditOp::Set, "x-b", "4"),
                edit(EditOp::Remove, "cookie", ""),
            ],
            false,
        )
        .unwrap();
        assert!(!sets_length);
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(headers.get_all("x-b").iter().collect::<Vec<_>>(), ["4"]);
        assert!(!headers.contains_key("cookie"));
    }

    #[test]
    fn protected_fields_need_the_pool_to_allow_them() {
        for name in ["host", "connection", "transfer-encoding", "te", "upgrade"] {
            let edits = [edit(EditOp::Set, name, "x")];
            let err = apply_edits(&mut HeaderMap::new(), &edits, false).unwrap_err();
            assert!(err.contains("protected"), "{name}: {err}");
        }
        let mut headers = HeaderMap::new();
        apply_edits(&mut headers, &[edit(EditOp::Set, "host", "b")], true).unwrap();
        assert_eq!(headers["host"], "b");
    }

    #[test]
    fn malformed_edits_are_refused() {
        for edits in [
            [edit(EditOp::Set, "bad name", "x")],
            [edit(EditOp::Set, "x-a", "line\nbreak")],
            [edit(EditOp::Set, "content-length", "ten")],
            [edit(EditOp::Append, "content-length", "10")],
        ] {
            assert!(apply_edits(&mut HeaderMap::new(), &edits, false).is_err());
        }
        let mut headers = HeaderMap::new();
        let sets = apply_edits(
            &mut headers,
            &[edit(EditOp::Set, "content-length", "10")],
            false,
        )
        .unwrap();
        assert!(sets);
    }
}
