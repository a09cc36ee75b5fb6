//! The demo app: the worker behind `pullman demo`, the end-to-end tests and the benchmarks.
//!
//! `GET /hello`; `/echo` (the body back, same content type); `/inspect` (JSON about the
//! request); `/sleep?ms=N` (JSON with this worker's requests in progress when it started; N
//! may have decimals, and the sleep ends within about 0.1 ms of it);
//! `/status?code=N`; `/bytes?n=N` (N bytes, streamed); `/stats` (served and cancelled counts);
//! `/sink` (reads the body, answers its length: a round trip without work, for benchmarks).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use pullman_worker::{Handler, RequestBody, RequestInfo, ResponseBody};
use sha2::{Digest, Sha256};

/// Chunk size of `/bytes` bodies.
const BYTES_CHUNK: usize = 64 * 1024;
/// Longest `/sleep` honoured, so a typo cannot park a worker for a day.
const MAX_SLEEP_MS: f64 = 600_000.0;

/// The demo handler and its counters.
#[derive(Debug)]
pub struct DemoApp {
    name: String,
    in_progress: AtomicUsize,
    served: AtomicU64,
    cancelled: AtomicU64,
}

impl DemoApp {
    pub fn new(name: String) -> DemoApp {
        DemoApp {
            name,
            in_progress: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    async fn answer(
        &self,
        req: Request<RequestBody>,
        in_progress: usize,
    ) -> Response<ResponseBody> {
        let query = req.uri().query().unwrap_or("").to_string();
        match req.uri().path() {
            "/hello" => text(StatusCode::OK, "hello from pullman\n"),
            "/echo" => {
                let content_type = req.headers().get(CONTENT_TYPE).cloned();
                let mut resp = Response::new(ResponseBody::from_body(req.into_body()));
                if let Some(ct) = content_type {
                    resp.headers_mut().insert(CONTENT_TYPE, ct);
                }
                resp
            }
            "/inspect" => self.inspect(req).await,
            "/sleep" => {
                let d = match param_ms(&query, "ms", MAX_SLEEP_MS) {
                    Ok(d) => d.unwrap_or_default(),
                    Err(why) => return text(StatusCode::BAD_REQUEST, why),
                };
                pullman_worker::time::sleep_precisely(d).await;
                json(serde_json::json!({ "worker": self.name, "inflight": in_progress }))
            }
            "/status" => {
                let code = param(&query, "code").ok().flatten();
                match code.and_then(|c| StatusCode::from_u16(u16::try_from(c).ok()?).ok()) {
                    Some(code) => text(code, format!("status {}\n", code.as_u16())),
                    None => text(StatusCode::BAD_REQUEST, "usage: /status?code=N\n"),
                }
            }
            "/bytes" => match param(&query, "n") {
                Ok(n) => bytes(n.unwrap_or(0)),
                Err(why) => text(StatusCode::BAD_REQUEST, why),
            },
            "/sink" => {
                let mut body = req.into_body();
                let mut len = 0usize;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => len += f.data_ref().map_or(0, |d| d.len()),
                        Err(e) => {
                            return text(StatusCode::BAD_REQUEST, format!("body failed: {e}\n"))
                        }
                    }
                }
                text(StatusCode::OK, format!("{len} bytes\n"))
            }
            "/stats" => json(serde_json::json!({
                "worker": self.name,
                "served": self.served.load(Ordering::Relaxed),
                "cancelled": self.cancelled.load(Ordering::Relaxed),
                "inflight": in_progress - 1,
            })),
            _ => text(StatusCode::NOT_FOUND, "no such demo route\n"),
        }
    }

    /// `pace_ms=N` sleeps N ms after each chunk: a slow reader, for flow-control tests.
    async fn inspect(&self, req: Request<RequestBody>) -> Response<ResponseBody> {
        let pace = match param(req.uri().query().unwrap_or(""), "pace_ms") {
            Ok(ms) => Duration::from_millis(ms.unwrap_or(0)),
            Err(why) => return text(StatusCode::BAD_REQUEST, why),
        };
        let (parts, mut body) = req.into_parts();
        let info = parts.extensions.get::<RequestInfo>();
        let head_in_shm =
            info.is_some_and(|info| pullman_worker::is_shared_memory(info.head.as_block()));
        let tls = info.is_some_and(|info| info.tls);
        // Chunks of more than 16 bytes: smaller ones travel inside a ring descriptor.
        let (mut big_chunks, mut chunks_in_shm) = (0u64, 0u64);
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        if data.len() > 16 {
                            big_chunks += 1;
                            chunks_in_shm += pullman_worker::is_shared_memory(&data) as u64;
                        }
                        len += data.len() as u64;
                        hasher.update(&data);
                        if !pace.is_zero() {
                            tokio::time::sleep(pace).await;
                        }
                    }
                }
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("body failed: {e}\n")),
            }
        }
        let headers: serde_json::Map<String, serde_json::Value> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                )
            })
            .collect();
        let sha: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        json(serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "headers": headers,
            "body_len": len,
            "body_sha256": sha,
            "worker": self.name,
            "head_in_shm": head_in_shm,
            "tls": tls,
            "body_chunks": big_chunks,
            "body_chunks_in_shm": chunks_in_shm,
        }))
    }
}

impl Handler for DemoApp {
    async fn call(&self, req: Request<RequestBody>) -> Response<ResponseBody> {
        tracing::debug!("request started path={}", req.uri().path());
        let mut tracker = Tracker::start(self);
        let resp = self.answer(req, tracker.in_progress).await;
        tracker.done = true;
        resp
    }
}

/// Counts a request in progress; dropped unfinished (the hub cancelled it), it counts a
/// cancellation.
struct Tracker<'a> {
    app: &'a DemoApp,
    in_progress: usize,
    done: bool,
}

impl<'a> Tracker<'a> {
    fn start(app: &'a DemoApp) -> Tracker<'a> {
        let in_progress = app.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        Tracker {
            app,
            in_progress,
            done: false,
        }
    }
}

impl Drop for Tracker<'_> {
    fn drop(&mut self) {
        self.app.in_progress.fetch_sub(1, Ordering::SeqCst);
        if self.done {
            self.app.served.fetch_add(1, Ordering::Relaxed);
        } else {
            self.app.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(worker = %self.app.name, "request cancelled");
        }
    }
}

/// The number in `key=N` of `query`: `Ok(None)` when the key is absent, and why not when
/// its value is not a number (a 400: a typo must not pass for 0).
fn param(query: &str, key: &str) -> Result<Option<u64>, String> {
    let Some(value) = value_of(query, key) else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{key}={value}: not a number of 0 to {}\n", u64::MAX))
}

/// `key=` as a duration in milliseconds, decimals allowed, at most `max_ms`.
fn param_ms(query: &str, key: &str, max_ms: f64) -> Result<Option<Duration>, String> {
    let Some(value) = value_of(query, key) else {
        return Ok(None);
    };
    match value.parse::<f64>() {
        Ok(ms) if ms >= 0.0 && ms.is_finite() => {
            Ok(Some(Duration::from_secs_f64(ms.min(max_ms) / 1000.0)))
        }
        _ => Err(format!("{key}={value}: not a number of milliseconds\n")),
    }
}

fn value_of<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn text(status: StatusCode, body: impl Into<ResponseBody>) -> Response<ResponseBody> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(value: serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(value.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `n` bytes of a repeating pattern, streamed in chunks with an exact length.
fn bytes(n: u64) -> Response<ResponseBody> {
    let (tx, body) = ResponseBody::channel(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(
            (0..BYTES_CHUNK)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        let mut left = n;
        while left > 0 {
            let take = left.min(BYTES_CHUNK as u64) as usize;
            if tx.send(chunk.slice(..take)).await.is_err() {
                return;
            }
            left -= take as u64;
        }
    });
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(app: &DemoApp, target: &str) -> StatusCode {
        let req = Request::get(target).body(RequestBody::empty()).unwrap();
        app.call(req).await.status()
    }

    #[tokio::test]
    async fn a_parameter_that_is_not_a_number_is_a_400_not_a_zero() {
        let app = DemoApp::new("test".into());
        for target in [
            "/sleep?ms=abc",
            "/sleep?ms=-1",
            "/sleep?ms=inf",
            "/bytes?n=-1",
            "/inspect?pace_ms=1.5",
        ] {
            assert_eq!(
                status(&app, target).await,
                StatusCode::BAD_REQUEST,
                "{target}"
            );
        }
        for target in [
            "/sleep?ms=0",
            "/sleep?ms=0.3",
            "/sleep",
            "/bytes?n=3",
            "/inspect?pace_ms=0",
        ] {
            assert_eq!(status(&app, target).await, StatusCode::OK, "{target}");
        }
    }
}
