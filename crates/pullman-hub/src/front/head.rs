//! The request head as the view every transport carries.

use http::header::HOST;
use pullman_proto::{HeadBuilder, HeadView, Version};

use crate::error::RequestError;
use crate::request::{RequestId, TRACEPARENT, X_REQUEST_ID};

/// The head view of a request the front parsed. HTTP/2's authority becomes a `host` field
/// so that workers see one shape whatever the client spoke, and a request id the hub made
/// is its last field (one the client sent is among its own).
pub(crate) fn head_view(
    parts: &http::request::Parts,
    id: &RequestId,
) -> Result<HeadView, RequestError> {
    let version = match parts.version {
        http::Version::HTTP_10 => Version::Http10,
        http::Version::HTTP_2 => Version::Http2,
        http::Version::HTTP_3 => Version::Http3,
        _ => Version::Http11,
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let authority = parts
        .uri
        .authority()
        .filter(|_| !parts.headers.contains_key(HOST));
    let added = usize::from(authority.is_some())
        + usize::from(id.is_new)
        + usize::from(id.new_trace.is_some());
    let count = parts.headers.len() + added;
    if count > u16::MAX as usize {
        return Err(RequestError::HeadersTooLarge);
    }
    let mut b = HeadBuilder::new(
        version,
        parts.method.as_str().as_bytes(),
        target.as_bytes(),
        count,
    );
    if let Some(a) = authority {
        b.header(b"host", a.as_str().as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    for (name, value) in &parts.headers {
        b.header(name.as_str().as_bytes(), value.as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    if id.is_new {
        b.header(X_REQUEST_ID.as_str().as_bytes(), id.value.as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    if let Some(trace) = &id.new_trace {
        b.header(TRACEPARENT.as_str().as_bytes(), trace.as_bytes())
            .map_err(|_| RequestError::BadRequest)?;
    }
    Ok(b.finish())
}
