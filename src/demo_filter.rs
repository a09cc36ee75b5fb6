//! The demo filter: the worker behind `pullman worker --app demo-filter`, the filter tests
//! and the filter benchmark.
//!
//! Request phase: a path containing `/admin` gets 403 and never reaches the upstream; every
//! other request passes with `x-pullman-filtered: 1` added. Response phase (pools with
//! `filter_response = true`): a response to a client that accepts gzip, not already
//! encoded and with a body, is replaced by its gzip, compressed as it streams.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use pullman_worker::{Filter, Pass, RequestBody, ResponseBody, Verdict};

/// Compressed bytes gathered before they go out as one chunk: large enough that frames
/// carry real payloads, small enough that the client sees progress on a slow upstream.
const GZIP_CHUNK: usize = 32 * 1024;

/// The demo filter. It keeps no state.
#[derive(Debug, Clone, Copy)]
pub struct DemoFilter;

impl Filter for DemoFilter {
    async fn request(&self, req: &mut Request<RequestBody>) -> Verdict {
        if req.uri().path().contains("/admin") {
            let mut resp = Response::new(ResponseBody::from("pullman demo filter: forbidden\n"));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Verdict::respond(resp);
        }
        Pass::new()
            .set(
                HeaderName::from_static("x-pullman-filtered"),
                HeaderValue::from_static("1"),
            )
            .into()
    }

    async fn response(&self, req: &Request<()>, resp: &mut Response<RequestBody>) -> Verdict {
        let has_body = req.method() != Method::HEAD
            && !matches!(
                resp.status(),
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            )
            && !resp.status().is_informational();
        if !has_body
            || !accepts_gzip(req.headers())
            || resp.headers().contains_key(CONTENT_ENCODING)
        {
            return Verdict::pass();
        }
        let body = std::mem::replace(resp.body_mut(), RequestBody::empty());
        let mut headers = resp.headers().clone();
        headers.remove(CONTENT_LENGTH);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
        let mut out = Response::new(gzip(body));
        *out.status_mut() = resp.status();
        *out.headers_mut() = headers;
        Verdict::respond(out)
    }
}

/// Whether `accept-encoding` lists gzip (or `*`) with a weight above zero.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// `body`, gzipped as it streams.
fn gzip(body: RequestBody) -> ResponseBody {
    type Item = Result<http_body::Frame<Bytes>, pullman_worker::body::BoxError>;
    let encoder = GzEncoder::new(Vec::with_capacity(GZIP_CHUNK), Compression::fast());
    let frames = futures_util::stream::unfold(Some((body, encoder)), |state| async move {
        let (mut body, mut encoder) = state?;
        loop {
            let item: Item = match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(e) = encoder.write_all(&data) {
                        Err(e.into())
                    } else if encoder.get_ref().len() >= GZIP_CHUNK {
                        let out = std::mem::take(encoder.get_mut());
                        return Some((
                            Ok(http_body::Frame::data(Bytes::from(out))),
                            Some((body, encoder)),
                        ));
                    } else {
                        continue;
                    }
                }
                Some(Err(e)) => Err(e.into()),
                None => encoder
                    .finish()
                    .map(|rest| http_body::Frame::data(Bytes::from(rest)))
                    .map_err(Into::into),
            };
            return Some((item, None));
        }
    });
    ResponseBody::from_body(StreamBody::new(frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_weighted_zero() {
        let accepts = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(accepts("gzip"));
        assert!(accepts("br, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
