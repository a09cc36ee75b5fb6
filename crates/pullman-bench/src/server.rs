//! The plain HTTP worker server the push peers (nginx, HAProxy) forward to, and the direct
//! baseline: the demo app's routes (`/hello`, `/echo`, `/sleep?ms=`, `/bytes?n=`) with the
//! same concurrency limit as a pullman worker (requests beyond it wait inside the server, as
//! they would in a real app with a fixed thread pool).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Chunk size of `/bytes` bodies (the demo app's too).
const BYTES_CHUNK: usize = 64 * 1024;
/// Longest `/sleep` honoured (the demo app's bound).
const MAX_SLEEP_MS: f64 = 600_000.0;

type Body = BoxBody<Bytes, hyper::Error>;

/// One worker: a listener and its concurrency limit (`None`: unlimited, the direct server).
#[derive(Debug)]
pub struct Worker {
    name: String,
    limit: Option<Arc<Semaphore>>,
    in_progress: AtomicUsize,
}

impl Worker {
    pub fn new(name: String, concurrency: Option<usize>) -> Arc<Worker> {
        Arc::new(Worker {
            name,
            limit: concurrency.map(|c| Arc::new(Semaphore::new(c.max(1)))),
            in_progress: AtomicUsize::new(0),
        })
    }

    /// Serves connections from `listener` until the process ends.
    pub async fn serve(self: Arc<Worker>, listener: TcpListener) {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = sock.set_nodelay(true);
            let worker = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let worker = worker.clone();
                    async move { Ok::<_, Infallible>(worker.answer(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    }

    async fn answer(&self, req: http::Request<hyper::body::Incoming>) -> http::Response<Body> {
        let _permit = match &self.limit {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let in_progress = self.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        let resp = self.route(req, in_progress).await;
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
        resp
    }

    async fn route(
        &self,
        req: http::Request<hyper::body::Incoming>,
        in_progress: usize,
    ) -> http::Response<Body> {
        let query = req.uri().query().unwrap_or("").to_string();
        match req.uri().path() {
            "/hello" => text(200, "hello from pullman\n"),
            "/echo" => {
                let ct = req.headers().get(http::header::CONTENT_TYPE).cloned();
                // Read the whole upload before answering, as the demo worker's stream does
                // at the same pace; the body goes back as it came.
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return text(400, format!("body failed: {e}\n")),
                };
                let mut resp = http::Response::new(full(body));
                if let Some(ct) = ct {
                    resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
                }
                resp
            }
            "/sleep" => {
                // Decimals allowed; as precise as the demo app's (`sleep_precisely`).
                let ms: f64 = param(&query, "ms").unwrap_or(0.0);
                let ms = if ms.is_finite() {
                    ms.clamp(0.0, MAX_SLEEP_MS)
                } else {
                    0.0
                };
                pullman_worker::time::sleep_precisely(Duration::from_secs_f64(ms / 1000.0)).await;
                let mut resp = http::Response::new(full(Bytes::from(format!(
                    "{{\"worker\":\"{}\",\"inflight\":{in_progress}}}",
                    self.name
                ))));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                resp
            }
            "/bytes" => bytes(param(&query, "n").unwrap_or(0)),
            _ => text(404, "no such demo route\n"),
        }
    }
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

fn text(status: u16, body: impl Into<Bytes>) -> http::Response<Body> {
    let mut resp = http::Response::new(full(body.into()));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn bytes(n: u64) -> http::Response<Body> {
    let chunk = Bytes::from(
        (0..BYTES_CHUNK)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let chunks = n.div_ceil(BYTES_CHUNK as u64);
    let frames = stream::iter((0..chunks).map(move |i| {
        let take = (n - i * BYTES_CHUNK as u64).min(BYTES_CHUNK as u64) as usize;
        Ok::<_, hyper::Error>(Frame::data(chunk.slice(..take)))
    }));
    let mut resp = http::Response::new(BodyExt::boxed(StreamBody::new(frames)));
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

fn param<T: std::str::FromStr>(query: &str, key: &str) -> Option<T> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Binds `count` workers on `host:0` and serves them all; prints
/// `server listening http://A http://B ...` once every listener is bound.
pub async fn run(count: usize, concurrency: Option<usize>) -> std::io::Result<()> {
    let mut urls = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count.max(1) {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}", listener.local_addr()?));
        tasks.spawn(Worker::new(format!("s{i}"), concurrency).serve(listener));
    }
    println!("server listening {}", urls.join(" "));
    while tasks.join_next().await.is_some() {}
    Ok(())
}
