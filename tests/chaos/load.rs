//! The load: client tasks sending a mix of requests over HTTP/1.1 and HTTP/2, and the
//! checker that accounts for each one.
//!
//! Every request ends in exactly one [`Outcome`]. A 200 (403 for the filter's refusal) must
//! carry exactly the body expected, byte for byte; 502, 503 and 504 are the hub's documented
//! answers to a worker, filter or link that failed (docs/metrics.md, outcome table); a body
//! that stops early after a good head is a documented cut (docs/architecture.md: a worker's
//! link failing resets its streams; a body shorter than its length is cut off) as long as
//! what did arrive is a correct prefix. Anything else is wrong, and so is a connection error
//! before a response head, or a request still unanswered after [`REQUEST_GUARD`]; but for
//! now a failure before the head with the signature of a known hub bug
//! ([`Outcome::NoHead`]) is listed in the summary rather than failing a run under faults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::rng::Rng;
use crate::support::{pattern, sha256_hex, HttpClient};

/// The longest one request may take, body included, before it counts as hung: far past
/// every deadline the hub's config sets (10 s), so only a hub that lost a request hits it.
pub const REQUEST_GUARD: Duration = Duration::from_secs(60);

/// Largest echo body, and largest download.
const MAX_ECHO: u64 = 1024 * 1024;
const MAX_DOWNLOAD: u64 = 4 * 1024 * 1024;

/// The header the hub's routes choose a pool by.
pub const POOL_HEADER: &str = "x-chaos-pool";

/// The respond pools, one per way a worker reaches the hub.
pub const RESPOND_POOLS: [&str; 3] = ["tcp", "unix", "shm"];
/// The filter pool, whose upstream is the test's server.
pub const FILTER_POOL: &str = "waf";

/// The demo app's chunk for `/bytes`: byte i of a download is `(i % CHUNK) % 251`.
const DEMO_CHUNK: usize = 64 * 1024;

/// What the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    H1,
    H2,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Hello,
    Sleep,
    Echo,
    Download,
    FilterDownload,
    FilterUpload,
    FilterDenied,
}

/// The body a successful answer must have.
#[derive(Debug)]
enum Expect {
    Exact(Bytes),
    DemoBytes(usize),
    UpstreamBytes(usize),
    SleepJson,
}

impl Expect {
    /// Whether `got` is the start of the expected body (all of it when `whole`).
    fn check(&self, got: &[u8], whole: bool) -> Result<(), String> {
        let (ok, len) = match self {
            Expect::Exact(want) => (want.starts_with(got), want.len()),
            Expect::DemoBytes(n) => (
                got.iter()
                    .enumerate()
                    .all(|(i, b)| *b == ((i % DEMO_CHUNK) % 251) as u8),
                *n,
            ),
            Expect::UpstreamBytes(n) => (got.len() <= *n && pattern(got.len()) == got, *n),
            Expect::SleepJson => {
                if !whole {
                    return Ok(());
                }
                let ok = serde_json::from_slice::<serde_json::Value>(got)
                    .is_ok_and(|v| v["worker"].is_string());
                (ok, got.len())
            }
        };
        if !ok {
            return Err(format!("{} bytes not as expected", got.len()));
        }
        if whole && got.len() != len {
            return Err(format!("{} bytes, expected {len}", got.len()));
        }
        Ok(())
    }
}

/// How one request ended.
#[derive(Debug)]
pub enum Outcome {
    /// A response with an acceptable status, read whole and right.
    Answered(u16),
    /// An acceptable head whose body stopped early after a correct prefix.
    Cut(u16),
    /// A status not documented for these faults, or a wrong body.
    Wrong(String),
    /// The request failed before any response head.
    ConnectionError(String),
    /// The hub closed the connection (HTTP/1.1) or reset the stream with INTERNAL_ERROR
    /// (h2) before any head: the signature of the hub bug that
    /// `a_body_cut_short_before_the_head_still_gets_an_answer` reproduces, met when a
    /// worker's link fails right after its RESPONSE (a kill, a cut).
    NoHead(String),
    /// No end within [`REQUEST_GUARD`].
    Hung,
}

/// Every request's outcome, counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent (counted before they go out).
    pub issued: u64,
    /// Requests whose end was recorded.
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub cut: u64,
    pub wrong: Vec<String>,
    pub connection_errors: Vec<String>,
    pub no_head: Vec<String>,
    pub hung: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, proto: Proto, kind: Kind, outcome: Outcome) {
        self.requests += 1;
        *self
            .by_kind
            .entry(format!("{kind:?}/{proto:?}"))
            .or_default() += 1;
        match outcome {
            Outcome::Answered(status) => *self.by_status.entry(status).or_default() += 1,
            Outcome::Cut(status) => {
                *self.by_status.entry(status).or_default() += 1;
                self.cut += 1;
            }
            Outcome::Wrong(why) => self.wrong.push(format!("{what}: {why}")),
            Outcome::ConnectionError(why) => self.connection_errors.push(format!("{what}: {why}")),
            Outcome::NoHead(why) => self.no_head.push(format!("{what}: {why}")),
            Outcome::Hung => self.hung.push(what.to_string()),
        }
    }

    /// Requests that ended with an answer (documented status, right body, or a clean cut).
    pub fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Requests sent whose end was never recorded.
    pub fn lost(&self) -> u64 {
        self.issued - self.requests
    }

    /// No request failed but in documented ways.
    pub fn is_clean(&self) -> bool {
        self.wrong.is_empty()
            && self.no_head.is_empty()
            && self.connection_errors.is_empty()
            && self.hung.is_empty()
            && self.lost() == 0
    }
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
}

/// An HTTP/1.1 client with keep-alive (its idle connections closed well before the hub's
/// `idle_timeout` would, so that no request races the hub's close of an idle connection).
pub fn h1_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(20))
        .build_http()
}

/// An HTTP/2 client with prior knowledge.
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Runs `client` until `stop` is set, or for `count` requests when given, recording each
/// outcome in `tally`.
pub async fn run_client(
    target: Target,
    proto: Proto,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    count: Option<u64>,
    tally: Arc<Mutex<Tally>>,
) {
    let client = match proto {
        Proto::H1 => h1_client(),
        Proto::H2 => h2_client(),
    };
    let mut sent = 0;
    // The request before, which may have left the connection in a state the next one meets.
    let mut previous = String::from("none");
    while !stop.load(Ordering::Relaxed) && count.is_none_or(|n| sent < n) {
        sent += 1;
        let (kind, pool, req, expect) = request(&target, &mut rng);
        let what = format!("{kind:?} {proto:?} pool {pool} {}", req.uri());
        tally.lock().unwrap().issued += 1;
        let outcome = tokio::time::timeout(REQUEST_GUARD, exchange(&client, req, kind, &expect))
            .await
            .unwrap_or(Outcome::Hung);
        let now = format!("{what} ({outcome:?})");
        let what = format!("{what} [after {previous}]");
        previous = now;
        tally.lock().unwrap().record(&what, proto, kind, outcome);
    }
}

/// The next request of the mix, and what its answer must hold.
fn request(
    target: &Target,
    rng: &mut Rng,
) -> (Kind, &'static str, http::Request<Full<Bytes>>, Expect) {
    const KINDS: [Kind; 7] = [
        Kind::Hello,
        Kind::Sleep,
        Kind::Echo,
        Kind::Download,
        Kind::FilterDownload,
        Kind::FilterUpload,
        Kind::FilterDenied,
    ];
    let kind = KINDS[rng.weighted(&[20, 15, 20, 10, 15, 15, 5])];
    let pool = match kind {
        Kind::FilterDownload | Kind::FilterUpload | Kind::FilterDenied => FILTER_POOL,
        _ => *rng.pick(&RESPOND_POOLS),
    };
    let get = |path: String| {
        http::Request::get(format!("{}{path}", target.base))
            .header(POOL_HEADER, pool)
            .body(Full::default())
            .unwrap()
    };
    let post = |path: &str, body: Bytes| {
        let req = http::Request::post(format!("{}{path}", target.base))
            .header(POOL_HEADER, pool)
            .header("content-type", "application/octet-stream");
        req.body(Full::new(body)).unwrap()
    };
    let (req, expect) = match kind {
        Kind::Hello => (
            get("/hello".into()),
            Expect::Exact(Bytes::from_static(b"hello from pullman\n")),
        ),
        Kind::Sleep => (
            get(format!("/sleep?ms={}", rng.range(0, 300))),
            Expect::SleepJson,
        ),
        Kind::Echo => {
            let len = rng.size(MAX_ECHO) as usize;
            let body = rng.bytes(len);
            (post("/echo", body.clone()), Expect::Exact(body))
        }
        Kind::Download => {
            let n = rng.size(MAX_DOWNLOAD) as usize;
            (get(format!("/bytes?n={n}")), Expect::DemoBytes(n))
        }
        Kind::FilterDownload => {
            let n = rng.size(MAX_DOWNLOAD) as usize;
            (get(format!("/bytes?n={n}")), Expect::UpstreamBytes(n))
        }
        Kind::FilterUpload => {
            let len = rng.size(MAX_ECHO) as usize;
            let body = rng.bytes(len);
            let target = format!("/upload/{}", rng.next_u64());
            // The test upstream's summary of what it read (tests/support: `Upstream`).
            let summary = serde_json::json!({
                "upstream": true,
                "target": target,
                "body_len": body.len(),
                "body_sha256": sha256_hex(&body),
            });
            (
                post(&target, body),
                Expect::Exact(Bytes::from(summary.to_string())),
            )
        }
        Kind::FilterDenied => (
            get(format!("/admin/{}", rng.next_u64())),
            Expect::Exact(Bytes::from_static(b"pullman demo filter: forbidden\n")),
        ),
    };
    (kind, pool, req, expect)
}

/// Sends `req` and reads its answer whole, checking it against `expect`.
async fn exchange(
    client: &HttpClient,
    req: http::Request<Full<Bytes>>,
    kind: Kind,
    expect: &Expect,
) -> Outcome {
    let resp = match client.request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            let why = format!("{e:?}");
            let hub_bug = why.contains("IncompleteMessage")
                || (why.contains("Reset") && why.contains("INTERNAL_ERROR"));
            return if hub_bug {
                Outcome::NoHead(why)
            } else {
                Outcome::ConnectionError(why)
            };
        }
    };
    let status = resp.status().as_u16();
    let success = if kind == Kind::FilterDenied { 403 } else { 200 };
    if status != success && !matches!(status, 502..=504) {
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        return Outcome::Wrong(format!("status {status}: {body:?}"));
    }
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    got.extend_from_slice(&data);
                }
            }
            Err(e) if status == success => {
                return match expect.check(&got, false) {
                    Ok(()) => Outcome::Cut(status),
                    Err(why) => Outcome::Wrong(format!("cut after {status}: {why} ({e})")),
                };
            }
            Err(_) => return Outcome::Cut(status),
        }
    }
    if status == success {
        if let Err(why) = expect.check(&got, true) {
            return Outcome::Wrong(format!("status {status}: {why}"));
        }
    }
    Outcome::Answered(status)
}
