//! Starts real hub and worker processes for the end-to-end tests, and talks HTTP to them.
//!
//! Every process binds port 0 or a socket in a temporary directory, and is killed when its
//! handle drops. Waits have generous guards so a broken build fails instead of hanging;
//! no outcome depends on how fast anything is.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Longest any single wait in a test may take before the test fails as hung.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

pub const BIN: &str = env!("CARGO_BIN_EXE_pullman");

/// How workers reach the hub in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
    /// A Unix socket for the handshake, then shared memory.
    Shm,
}

pub const TRANSPORTS: [Transport; 3] = [Transport::Tcp, Transport::Unix, Transport::Shm];

/// `PULLMAN_E2E_TRANSPORT=tcp|unix|shm` runs every test that does not speak the protocol by
/// hand over that transport instead of the one it names:
/// `PULLMAN_E2E_TRANSPORT=shm cargo test --test e2e` is the whole suite over shared memory.
pub fn env_transport() -> Option<Transport> {
    match std::env::var("PULLMAN_E2E_TRANSPORT").ok()?.as_str() {
        "tcp" => Some(Transport::Tcp),
        "unix" => Some(Transport::Unix),
        "shm" => Some(Transport::Shm),
        "" => None,
        other => panic!("PULLMAN_E2E_TRANSPORT={other:?}: expected tcp, unix or shm"),
    }
}

/// Lines a child process wrote to stderr, collected by a thread.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Collects the lines `stderr` writes, in a thread of its own.
    pub fn follow(&self, stderr: ChildStderr) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }

    pub fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits until one line holds every one of `needles`.
    pub fn wait_for_line(&self, needles: &[&str]) {
        let start = Instant::now();
        let seen = || {
            let lines = self.0.lock().unwrap();
            lines.iter().any(|l| needles.iter().all(|n| l.contains(n)))
        };
        while !seen() {
            assert!(
                start.elapsed() < HANG_GUARD,
                "never saw a line with {needles:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `needle` has appeared `n` times.
    pub fn wait_for(&self, needle: &str, n: usize) {
        let start = Instant::now();
        while self.count(needle) < n {
            assert!(
                start.elapsed() < HANG_GUARD,
                "never saw {n} x {needle:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running hub.
pub struct HubProc {
    pub child: Child,
    pub front: SocketAddr,
    pub worker_addr: String,
    /// Every worker address the hub listens on, as it printed them (`worker_addr` is the
    /// first).
    pub worker_addrs: Vec<String>,
    /// The admin API's address, when the config has an `[admin]` table.
    pub admin: Option<SocketAddr>,
    /// The TLS listener's address, when the config has a `[hub.tls]` table.
    pub tls: Option<SocketAddr>,
    /// How this hub's workers connect (after any `PULLMAN_E2E_TRANSPORT` override).
    pub transport: Transport,
    pub log: Log,
    pub dir: tempfile::TempDir,
}

impl HubProc {
    /// Starts a hub on `pools_and_routes` (TOML `[[pool]]` and `[[route]]` tables), listening
    /// for workers on TCP or a Unix socket.
    pub fn start(transport: Transport, pools_and_routes: &str) -> HubProc {
        Self::start_with(transport, "", pools_and_routes)
    }

    /// Same, with extra `[hub]` keys.
    pub fn start_with(transport: Transport, hub_extra: &str, pools_and_routes: &str) -> HubProc {
        let transport = env_transport().unwrap_or(transport);
        Self::start_exact(transport, hub_extra, pools_and_routes)
    }

    /// Same, over exactly `transport` whatever the environment says: for tests that speak
    /// the protocol by hand.
    pub fn start_exact(transport: Transport, hub_extra: &str, pools_and_routes: &str) -> HubProc {
        let dir = tempfile::tempdir().unwrap();
        let workers = match transport {
            Transport::Tcp => "tcp://127.0.0.1:0".to_string(),
            Transport::Unix | Transport::Shm => {
                format!("unix://{}", dir.path().join("workers.sock").display())
            }
        };
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"{workers}\"]\n{hub_extra}\n{pools_and_routes}"
        );
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, config).unwrap();
        let mut hub = Self::from_config_file(&path);
        hub.dir = dir;
        hub.transport = transport;
        hub
    }

    /// Starts a hub on a config file the test wrote.
    pub fn from_config_file(path: &std::path::Path) -> HubProc {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["hub", "--config"])
            .arg(path)
            .env("PULLMAN_LOG", "info,pullman_hub::dispatch=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Log::default();
        log.follow(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(HANG_GUARD)
            .unwrap_or_else(|_| panic!("hub did not start:\n{}", log.text()));
        // pullman listening front=http://ADDR [tls=https://ADDR] [admin=http://ADDR] workers=URL
        let front = line
            .split("front=http://")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let worker_addrs: Vec<String> = line
            .split("workers=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect();
        let worker_addr = worker_addrs[0].clone();
        let named = |key: &str| -> Option<SocketAddr> {
            line.split(key)
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .map(|addr| addr.parse().unwrap())
        };
        let admin = named(" admin=http://").or_else(|| named(" admin=https://"));
        let tls = named(" tls=https://");
        let transport = if worker_addr.starts_with("tcp://") {
            Transport::Tcp
        } else if env_transport() == Some(Transport::Shm) {
            Transport::Shm
        } else {
            Transport::Unix
        };
        HubProc {
            child,
            front,
            worker_addr,
            worker_addrs,
            admin,
            tls,
            transport,
            log,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.front, path)
    }

    /// Starts a demo worker for `pool`.
    pub fn worker(&self, pool: &str, token: &str, concurrency: u32, name: &str) -> WorkerProc {
        let shm = self.transport == Transport::Shm;
        WorkerProc::start_opts(&self.worker_addr, shm, pool, token, concurrency, name)
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the hub to exit; returns whether it exited successfully.
    pub fn wait_exit(&mut self) -> bool {
        wait_exit(&mut self.child)
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running demo worker.
pub struct WorkerProc {
    pub child: Child,
    pub log: Log,
}

impl WorkerProc {
    /// A worker on `hub`; over shared memory if the hub is on a Unix socket and
    /// `PULLMAN_E2E_TRANSPORT=shm`.
    pub fn start(hub: &str, pool: &str, token: &str, concurrency: u32, name: &str) -> WorkerProc {
        Self::start_app(hub, pool, token, concurrency, name, "demo")
    }

    /// A demo worker on `hub`, over shared memory or not as `shm` says.
    pub fn start_opts(
        hub: &str,
        shm: bool,
        pool: &str,
        token: &str,
        concurrency: u32,
        name: &str,
    ) -> WorkerProc {
        Self::launch(hub, shm, pool, token, concurrency, name, "demo", &[])
    }

    /// A demo worker on `hub` with more flags.
    pub fn start_with_flags(
        hub: &str,
        pool: &str,
        token: &str,
        concurrency: u32,
        name: &str,
        flags: &[&str],
    ) -> WorkerProc {
        let shm = hub.starts_with("unix://") && env_transport() == Some(Transport::Shm);
        Self::launch(hub, shm, pool, token, concurrency, name, "demo", flags)
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        hub: &str,
        shm: bool,
        pool: &str,
        token: &str,
        concurrency: u32,
        name: &str,
        app: &str,
        flags: &[&str],
    ) -> WorkerProc {
        let mut child = Command::new(BIN)
            .args(["worker", "--hub", hub, "--pool", pool])
            // No token: the worker proves itself by its client certificate alone.
            .args(
                (!token.is_empty())
                    .then_some(["--token", token])
                    .into_iter()
                    .flatten(),
            )
            .args(["--concurrency", &concurrency.to_string(), "--name", name])
            .args(["--app", app])
            .args(shm.then_some("--shm"))
            .args(flags)
            .env("PULLMAN_LOG", "info,pullman=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Log::default();
        log.follow(child.stderr.take().unwrap());
        WorkerProc { child, log }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait_exit(&mut self) -> bool {
        wait_exit(&mut self.child)
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child) -> bool {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        assert!(start.elapsed() < HANG_GUARD, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client with keep-alive.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge client.
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn send(client: &HttpClient, req: http::Request<Full<Bytes>>) -> Answer {
    let resp = tokio::time::timeout(HANG_GUARD, client.request(req))
        .await
        .expect("request hung")
        .expect("request failed");
    collect(resp).await
}

/// A response read to its end.
pub async fn collect(resp: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("body hung")
        .expect("body failed")
        .to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &HttpClient, url: &str) -> Answer {
    send(
        client,
        http::Request::get(url).body(Full::default()).unwrap(),
    )
    .await
}

/// GETs `url` in a task of its own, for requests that run side by side.
pub fn spawn_get(client: &HttpClient, url: String) -> tokio::task::JoinHandle<Answer> {
    let client = client.clone();
    tokio::spawn(async move { get(&client, &url).await })
}

/// Waits until the hub answers `url` with 200 (its workers have connected).
pub async fn wait_ready(client: &HttpClient, url: &str) {
    let start = Instant::now();
    loop {
        let a = get(client, url).await;
        if a.status == 200 {
            return;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "never ready: last answer {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads everything a raw socket sends until it closes.
pub fn read_to_close(mut sock: std::net::TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut out = Vec::new();
    let _ = sock.read_to_end(&mut out);
    out
}

/// The next frame from a raw socket; `None` once it closes.
pub fn read_frame(sock: &mut impl Read, buf: &mut bytes::BytesMut) -> Option<pullman_proto::Frame> {
    loop {
        if let Some(f) = pullman_proto::decode(buf, 1 << 20).unwrap() {
            return Some(f);
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A worker's link spoken by hand, over TCP or a Unix socket.
pub enum RawSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl RawSocket {
    /// Connects to a worker address as the hub printed it (`tcp://` or `unix://`).
    pub fn connect(addr: &str) -> RawSocket {
        let sock = match addr.strip_prefix("unix://") {
            Some(path) => RawSocket::Unix(std::os::unix::net::UnixStream::connect(path).unwrap()),
            None => {
                let addr = addr.trim_start_matches("tcp://");
                RawSocket::Tcp(std::net::TcpStream::connect(addr).unwrap())
            }
        };
        match &sock {
            RawSocket::Tcp(s) => s.set_read_timeout(Some(HANG_GUARD)).unwrap(),
            RawSocket::Unix(s) => s.set_read_timeout(Some(HANG_GUARD)).unwrap(),
        }
        sock
    }

    pub fn shutdown(&self, how: std::net::Shutdown) {
        match self {
            RawSocket::Tcp(s) => s.shutdown(how).unwrap(),
            RawSocket::Unix(s) => s.shutdown(how).unwrap(),
        }
    }
}

impl Read for RawSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawSocket::Tcp(s) => s.read(buf),
            RawSocket::Unix(s) => s.read(buf),
        }
    }
}

impl std::io::Write for RawSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            RawSocket::Tcp(s) => s.write(buf),
            RawSocket::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a worker sends first on its link, written by hand: the connection preface and a
/// HELLO of this protocol version naming `pool`, `token`, the `modes` it serves and `name`.
pub fn opening(
    pool: &str,
    token: &str,
    modes: pullman_proto::Modes,
    name: &str,
) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::from(&pullman_proto::PREFACE[..]);
    pullman_proto::encode(
        &pullman_proto::Frame::Hello(pullman_proto::Hello {
            min_version: pullman_proto::PROTOCOL_VERSION,
            max_version: pullman_proto::PROTOCOL_VERSION,
            max_frame: 1 << 20,
            initial_window: 1 << 16,
            features: 0,
            modes,
            pool: pool.into(),
            token: token.into(),
            name: name.into(),
        }),
        &mut out,
        pullman_proto::HANDSHAKE_MAX_FRAME,
    )
    .unwrap();
    out
}

/// Speaks the worker protocol by hand on the hub's first worker address: the preface and
/// HELLO for `pool` (respond mode), then whatever the test wants.
pub fn raw_worker(hub: &HubProc, pool: &str, token: &str) -> (RawSocket, bytes::BytesMut) {
    let mut sock = RawSocket::connect(&hub.worker_addr);
    let out = opening(pool, token, pullman_proto::Modes::RESPOND, "raw");
    std::io::Write::write_all(&mut sock, &out).unwrap();
    let mut buf = bytes::BytesMut::new();
    match read_frame(&mut sock, &mut buf) {
        Some(pullman_proto::Frame::Welcome(_)) => {}
        other => panic!("expected WELCOME, got {other:?}"),
    }
    (sock, buf)
}

/// Reads frames until a REQUEST comes; returns its stream id.
pub fn next_request(sock: &mut RawSocket, buf: &mut bytes::BytesMut) -> u64 {
    loop {
        match read_frame(sock, buf) {
            Some(pullman_proto::Frame::Request(r)) => return r.stream,
            Some(_) => continue,
            None => panic!("the hub closed the link before sending a request"),
        }
    }
}

/// Writes `frames` to a raw worker's link.
pub fn write_frames(sock: &mut RawSocket, frames: &[pullman_proto::Frame]) {
    let mut out = bytes::BytesMut::new();
    for frame in frames {
        pullman_proto::encode(frame, &mut out, 1 << 20).unwrap();
    }
    std::io::Write::write_all(sock, &out).unwrap();
}

/// A TOML pool table.
pub fn pool(name: &str, token: &str, extra: &str) -> String {
    format!("[[pool]]\nname = \"{name}\"\ntoken = \"{token}\"\n{extra}\n")
}

/// A TOML route sending every path to `pool`.
pub fn route_all(pool: &str) -> String {
    format!("[[route]]\npath_prefix = \"/\"\npool = \"{pool}\"\n")
}

/// Peak resident memory of a process so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A request body read from an `AsyncRead`, for uploads the test produces as it goes.
pub struct ReaderBody<R>(pub R);

impl<R: tokio::io::AsyncRead + Unpin> http_body::Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut self.0).poll_read(cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if read.filled().is_empty() => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Some(Ok(
                http_body::Frame::data(Bytes::copy_from_slice(read.filled())),
            ))),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// `n` bytes of a fixed pseudo-random sequence (xorshift): a body no layer could guess or
/// compress away.
pub fn random_bytes(n: usize) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The admin token the admin tests configure.
pub const ADMIN_TOKEN: &str = "adm1n-t0ken";

/// An `[admin]` table on a free loopback port with [`ADMIN_TOKEN`].
pub fn admin_table() -> String {
    format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n")
}

/// A hub with pool `legacy` behind a PTTH listener (and a TCP one for pullman's workers);
/// `extra` goes into the pool's table.
pub fn ptth_hub(extra: &str) -> (HubProc, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\n\
         workers_listen = [\"tcp://127.0.0.1:0\", \"ptth://127.0.0.1:0?pool=legacy\"]\n\
         {}{}{}",
        admin_table(),
        pool("legacy", "unused", extra),
        route_all("legacy"),
    );
    std::fs::write(&path, config).unwrap();
    let hub = HubProc::from_config_file(&path);
    let ptth = hub
        .worker_addrs
        .iter()
        .find_map(|a| a.strip_prefix("ptth://"))
        .expect("the hub prints its PTTH listener")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    (hub, ptth)
}

/// Talks to a hub's admin API.
pub struct AdminClient {
    pub base: String,
    pub client: HttpClient,
}

impl AdminClient {
    pub fn new(hub: &HubProc) -> AdminClient {
        let addr = hub.admin.expect("the hub has no admin listener");
        AdminClient {
            base: format!("http://{addr}"),
            client: client(),
        }
    }

    /// A request with `token` (None: no Authorization header) and an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(token) = token {
            b = b.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::default(),
        };
        send(&self.client, b.body(body).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> Answer {
        self.call("PUT", path, Some(ADMIN_TOKEN), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call("DELETE", path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn post(&self, path: &str) -> Answer {
        self.call("POST", path, Some(ADMIN_TOKEN), None).await
    }

    /// `/metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let a = self.get("/metrics").await;
        assert_eq!(a.status, 200, "{a:?}");
        Metrics::parse(std::str::from_utf8(&a.body).unwrap())
    }

    /// Waits until `check` holds for `GET path` (JSON).
    pub async fn wait_until(&self, path: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let start = Instant::now();
        loop {
            let a = self.get(path).await;
            assert_eq!(a.status, 200, "{a:?}");
            if check(&a.json()) {
                return;
            }
            assert!(start.elapsed() < HANG_GUARD, "never true for {path}: {a:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A Prometheus text exposition: samples by series (`name{labels}` as written), and the
/// `# TYPE` of each family.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: std::collections::BTreeMap<String, f64>,
    pub types: std::collections::BTreeMap<String, String>,
}

impl Metrics {
    /// Parses the text format, failing on any line that is not a comment or a sample.
    pub fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                m.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            m.samples.insert(series.to_string(), value);
        }
        m
    }

    /// The value of `name{labels}`, labels written as in the exposition (`pool="a",outcome="ok"`).
    pub fn get(&self, name: &str, labels: &str) -> f64 {
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{labels}}}")
        };
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no series {key} in {:#?}", self.samples.keys()))
    }

    /// `pullman_requests_total` of `pool` and `outcome`.
    pub fn requests(&self, pool: &str, outcome: &str) -> f64 {
        self.get(
            "pullman_requests_total",
            &format!("pool=\"{pool}\",outcome=\"{outcome}\""),
        )
    }
}

/// POSTs to `url` with a body that stays open until the returned writer is dropped, so that
/// the request holds its worker for as long as the test wants (no timing involved). With
/// `/inspect`, the answer comes once the body has ended.
pub fn spawn_held_post(url: String) -> (tokio::task::JoinHandle<Answer>, tokio::io::DuplexStream) {
    let (writer, reader) = tokio::io::duplex(1024);
    let task = tokio::spawn(async move {
        let raw = Client::builder(TokioExecutor::new())
            .build_http::<ReaderBody<tokio::io::DuplexStream>>();
        let req = http::Request::post(url).body(ReaderBody(reader)).unwrap();
        let resp = tokio::time::timeout(HANG_GUARD, raw.request(req))
            .await
            .expect("request hung")
            .expect("request failed");
        collect(resp).await
    });
    (task, writer)
}

impl WorkerProc {
    /// Starts a worker running `app` (`demo`, `demo-filter`); over shared memory if the hub
    /// is on a Unix socket and `PULLMAN_E2E_TRANSPORT=shm`.
    pub fn start_app(
        hub: &str,
        pool: &str,
        token: &str,
        concurrency: u32,
        name: &str,
        app: &str,
    ) -> WorkerProc {
        let shm = hub.starts_with("unix://") && env_transport() == Some(Transport::Shm);
        Self::launch(hub, shm, pool, token, concurrency, name, app, &[])
    }
}

impl HubProc {
    /// Starts a `demo-filter` worker for a filter pool.
    pub fn filter_worker(
        &self,
        pool: &str,
        token: &str,
        concurrency: u32,
        name: &str,
    ) -> WorkerProc {
        WorkerProc::start_app(
            &self.worker_addr,
            pool,
            token,
            concurrency,
            name,
            "demo-filter",
        )
    }
}

/// What an in-process upstream server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body_len: u64,
    pub body_sha256: String,
}

/// An HTTP/1.1 and h2c server on port 0 that records every request it reads whole.
///
/// `/slow` answers after [`HANG_GUARD`]; `/stall` answers 200 and the start of a body whose
/// rest never comes; `/bytes?n=N` answers N pattern bytes; every other path answers a JSON
/// summary of the request (the body read whole and hashed).
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        use hyper_util::rt::TokioIo;
        use hyper_util::server::conn::auto;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(upstream_answer(req, log).await)
                            }
                        },
                    );
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far whose target contains `needle`.
    pub fn seen(&self, needle: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pattern `/bytes?n=N` answers with: byte i is `(i * 7 + i / 1000) % 256`, varied
/// enough that gzip has work to do and a misplaced chunk shows.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + i / 1000) % 256) as u8).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A response body of the upstream.
type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn upstream_answer(
    req: http::Request<hyper::body::Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> http::Response<UpstreamBody> {
    use sha2::Digest;
    let (parts, mut body) = req.into_parts();
    let mut hasher = sha2::Sha256::new();
    let mut len = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            hasher.update(&data);
        }
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |pq| pq.to_string());
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len: len,
        body_sha256: sha.clone(),
    });
    if parts.uri.path() == "/slow" {
        tokio::time::sleep(HANG_GUARD).await;
    }
    if parts.uri.path() == "/stall" {
        let start = futures_util::stream::iter([Ok(http_body::Frame::data(Bytes::from_static(
            b"the start, and then nothing",
        )))]);
        let body = http_body_util::StreamBody::new(futures_util::StreamExt::chain(
            start,
            futures_util::stream::pending(),
        ));
        return http::Response::new(body.boxed());
    }
    if parts.uri.path() == "/bytes" {
        let n = parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return http::Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(pattern(n))).boxed())
            .unwrap();
    }
    let summary = serde_json::json!({
        "upstream": true,
        "target": target,
        "body_len": len,
        "body_sha256": sha,
    });
    http::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(summary.to_string())).boxed())
        .unwrap()
}
