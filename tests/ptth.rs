//! End to end: PTTH workers (reverse HTTP, as POTHEAD's speak it) on a `ptth://` listener,
//! played by scripted workers here: each dials the hub, reads the request the hub writes,
//! and answers (or fails) as the test says. `tests/pothead.rs` runs POTHEAD's own worker.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A request as a PTTH worker reads it.
#[derive(Debug)]
struct Received {
    /// Request line and header lines, as sent.
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A scripted PTTH worker: one connection to the hub.
struct PtthWorker {
    sock: BufReader<TcpStream>,
}

impl PtthWorker {
    async fn connect(addr: &str) -> PtthWorker {
        let sock = TcpStream::connect(addr).await.unwrap();
        PtthWorker {
            sock: BufReader::new(sock),
        }
    }

    /// Reads one request, body and all (by its length, or chunked); `None` if the hub closed
    /// the connection first.
    async fn request(&mut self) -> Option<Received> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(HANG_GUARD, self.sock.read_line(&mut line))
                .await
                .expect("no request came")
                .ok()?;
            if n == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut received = Received {
            head,
            body: Vec::new(),
        };
        if let Some(n) = received.header("content-length") {
            let mut body = vec![0; n.parse().unwrap()];
            self.sock.read_exact(&mut body).await.ok()?;
            received.body = body;
        } else if received.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                self.sock.read_line(&mut size).await.ok()?;
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.sock.read_exact(&mut chunk).await.ok()?;
                if size == 0 {
                    break;
                }
                received.body.extend_from_slice(&chunk[..size]);
            }
        }
        Some(received)
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.sock.get_mut().write_all(bytes).await.unwrap();
    }

    /// Waits for the hub to close the connection (a read returns its end, or an error).
    async fn closed_by_hub(mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(HANG_GUARD, self.sock.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the hub kept the worker's connection open");
    }
}

/// Waits until the pool has `n` workers connected.
async fn wait_workers(admin: &AdminClient, n: u64) {
    admin
        .wait_until("/pools/legacy", |p| p["workers"] == n)
        .await;
}

fn post(url: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    http::Request::post(url)
        .header("x-custom", "kept")
        .body(Full::new(body.into()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_headers_and_bodies_cross_both_ways() {
    let (hub, ptth) = ptth_hub("");
    let admin = AdminClient::new(&hub);
    let c = client();

    // A POST with a 1 MiB body, echoed chunked, with a status and fields of the worker's.
    let upload: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = PtthWorker::connect(&ptth).await;
    let worker = tokio::spawn(async move {
        let req = w.request().await.unwrap();
        w.write(b"HTTP/1.1 201 Created\r\nx-answer: yes\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        for part in req.body.chunks(100_000) {
            w.write(format!("{:x}\r\n", part.len()).as_bytes()).await;
            w.write(part).await;
            w.write(b"\r\n").await;
        }
        w.write(b"0\r\n\r\n").await;
        req
    });
    let a = send(&c, post(&hub.url("/upload?x=1"), upload.clone())).await;
    let req = worker.await.unwrap();
    assert_eq!(a.status, 201);
    assert_eq!(a.header("x-answer"), Some("yes"));
    assert_eq!(
        a.header("connection"),
        None,
        "hop-by-hop fields stay on their hop"
    );
    assert_eq!(a.body.len(), upload.len());
    assert!(a.body == upload, "the echoed body differs");
    assert!(
        req.head.starts_with("POST /upload?x=1 HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert_eq!(req.header("x-custom"), Some("kept"));
    assert_eq!(req.header("content-length"), Some("1048576"));
    assert!(req.body == upload, "the worker got a different body");

    // A GET answered 404 with a length, on a worker that closes after answering.
    let mut w = PtthWorker::connect(&ptth).await;
    let worker = tokio::spawn(async move {
        let req = w.request().await.unwrap();
        w.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope")
            .await;
        req
    });
    let a = get(&c, &hub.url("/missing")).await;
    let req = worker.await.unwrap();
    assert_eq!((a.status, &a.body[..]), (404, &b"nope"[..]));
    assert!(
        req.head.starts_with("GET /missing HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert!(req.body.is_empty());

    // Each answer is counted for the pool; the connections were closed and left the pool.
    let m = admin.metrics().await;
    assert_eq!(m.requests("legacy", "ok"), 2.0);
    wait_workers(&admin, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_takes_request_after_request() {
    let (hub, ptth) = ptth_hub("");
    let c = client();
    let mut w = PtthWorker::connect(&ptth).await;
    let worker = tokio::spawn(async move {
        let mut targets = Vec::new();
        for i in 0..3 {
            let req = w.request().await.unwrap();
            targets.push(req.head.lines().next().unwrap().to_string());
            let body = format!("answer {i}");
            w.write(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        }
        targets
    });
    for i in 0..3 {
        let a = get(&c, &hub.url(&format!("/n/{i}"))).await;
        assert_eq!(
            (a.status, a.body),
            (200, Bytes::from(format!("answer {i}")))
        );
    }
    let targets = worker.await.unwrap();
    assert_eq!(
        targets,
        [
            "GET /n/0 HTTP/1.1",
            "GET /n/1 HTTP/1.1",
            "GET /n/2 HTTP/1.1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_gone_before_the_request_was_written_costs_the_request_nothing() {
    let (hub, ptth) = ptth_hub("");
    let admin = AdminClient::new(&hub);
    let c = client();
    // A worker connects and goes away while idle.
    let gone = PtthWorker::connect(&ptth).await;
    wait_workers(&admin, 1).await;
    drop(gone);
    // The request finds it gone (or the pool swept it first), waits at the front of the
    // queue, and the next worker serves it.
    let pending = spawn_get(&c, hub.url("/first"));
    let mut w = PtthWorker::connect(&ptth).await;
    let req = w
        .request()
        .await
        .expect("the request reached the second worker");
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        .await;
    let a = pending.await.unwrap();
    assert_eq!((a.status, &a.body[..]), (200, &b"ok"[..]));
    assert!(req.head.starts_with("GET /first "), "{}", req.head);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_dies_mid_request_gets_that_client_a_502_and_others_are_served() {
    let (hub, ptth) = ptth_hub("");
    let c = client();
    let mut dying = PtthWorker::connect(&ptth).await;
    let a = spawn_get(&c, hub.url("/dies"));
    dying.request().await.unwrap();
    drop(dying);
    assert_eq!(a.await.unwrap().status, 502);

    let mut w = PtthWorker::connect(&ptth).await;
    let b = spawn_get(&c, hub.url("/lives"));
    w.request().await.unwrap();
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nalive")
        .await;
    let b = b.await.unwrap();
    assert_eq!((b.status, &b.body[..]), (200, &b"alive"[..]));
    assert!(
        hub.log
            .text()
            .contains("PTTH worker failed the request: 502"),
        "{}",
        hub.log.text()
    );
}

/// Whether a response arrived whole: a body that breaks off (or a connection closed before
/// the head, when the hub had not flushed it yet) is not.
async fn arrived_whole(c: &HttpClient, url: &str) -> bool {
    let sent = c.request(http::Request::get(url).body(Full::default()).unwrap());
    let Ok(resp) = tokio::time::timeout(HANG_GUARD, sent)
        .await
        .expect("request hung")
    else {
        return false;
    };
    let body = tokio::time::timeout(HANG_GUARD, resp.into_body().collect())
        .await
        .expect("body hung");
    body.is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_cut_short_is_an_aborted_response_never_a_short_200() {
    let (hub, ptth) = ptth_hub("");
    let admin = AdminClient::new(&hub);
    let c = client();
    for (answer, what) in [
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten.."[..],
            "length",
        ),
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nonly ten..\r\n"[..],
            "chunked",
        ),
    ] {
        let mut w = PtthWorker::connect(&ptth).await;
        let worker = tokio::spawn(async move {
            w.request().await.unwrap();
            w.write(answer).await;
        });
        let whole = arrived_whole(&c, &hub.url("/short")).await;
        worker.await.unwrap();
        assert!(
            !whole,
            "{what}: a body cut short reached the client as complete"
        );
    }
    let m = admin.metrics().await;
    assert_eq!(
        m.get(
            "pullman_worker_faults_total",
            "pool=\"legacy\",fault=\"length_mismatch\""
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbled_answer_is_502() {
    let (hub, ptth) = ptth_hub("");
    let c = client();
    let mut w = PtthWorker::connect(&ptth).await;
    let worker = tokio::spawn(async move {
        w.request().await.unwrap();
        w.write(b"SPDY/3 banana\r\n\r\n").await;
    });
    assert_eq!(get(&c, &hub.url("/x")).await.status, 502);
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_is_504_and_closes_the_workers_connection() {
    let (hub, ptth) = ptth_hub("timeout = \"300ms\"");
    let c = client();
    let mut w = PtthWorker::connect(&ptth).await;
    let a = spawn_get(&c, hub.url("/slow"));
    w.request().await.unwrap();
    let a = a.await.unwrap();
    assert_eq!(a.status, 504);
    w.closed_by_hub().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_closes_the_workers_connection() {
    let (hub, ptth) = ptth_hub("");
    let mut w = PtthWorker::connect(&ptth).await;
    let mut client = TcpStream::connect(hub.front).await.unwrap();
    client
        .write_all(b"GET /abandoned HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    w.request().await.unwrap();
    drop(client);
    w.closed_by_hub().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_is_503_with_retry_after() {
    let (hub, _ptth) = ptth_hub("queue_limit = 1\nqueue_timeout = \"30s\"");
    let admin = AdminClient::new(&hub);
    let c = client();
    let waiting = spawn_get(&c, hub.url("/waits"));
    admin
        .wait_until("/pools/legacy", |p| p["queued"] == 1)
        .await;
    let a = get(&c, &hub.url("/refused")).await;
    assert_eq!(a.status, 503);
    assert!(a.header("retry-after").is_some());
    waiting.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_reach_ptth_workers_with_a_host_field() {
    let (hub, ptth) = ptth_hub("");
    let c = h2_client();
    let mut w = PtthWorker::connect(&ptth).await;
    let worker = tokio::spawn(async move {
        let req = w.request().await.unwrap();
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nh2")
            .await;
        req
    });
    let a = get(&c, &hub.url("/over-h2")).await;
    let req = worker.await.unwrap();
    assert_eq!((a.status, &a.body[..]), (200, &b"h2"[..]));
    assert!(
        req.head.starts_with("GET /over-h2 HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert_eq!(req.header("host"), Some(hub.front.to_string().as_str()));
}
