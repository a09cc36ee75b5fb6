//! End to end: a real hub process, real worker processes, real HTTP clients.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use pullman_proto::{CloseCode, Frame};
use pullman_worker::{RequestBody, ResponseBody, Worker};
use support::*;
use tokio::sync::Notify;

const TOKEN: &str = "t0ken";

fn one_pool(extra: &str) -> String {
    format!("{}{}", pool("demo", TOKEN, extra), route_all("demo"))
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_choose_pools_in_order_and_unmatched_is_404() {
    let config = format!(
        "{}{}{}",
        pool("a", "ta", ""),
        pool("b", "tb", ""),
        r#"
[[route]]
path = "/stats"
pool = "b"
[[route]]
host = "*.b.example"
pool = "b"
[[route]]
method = "POST"
path_regex = "^/insp[a-z]+$"
pool = "b"
[[route]]
header = { name = "x-pool", value = "a" }
pool = "a"
[[route]]
header = { name = "x-any" }
pool = "a"
[[route]]
path_prefix = "/inspect"
pool = "b"
"#
    );
    let hub = HubProc::start(Transport::Tcp, &config);
    let _wa = hub.worker("a", "ta", 2, "wa");
    let _wb = hub.worker("b", "tb", 2, "wb");
    let c = client();
    wait_ready(&c, &hub.url("/stats")).await;
    let req = |method: &str, path: &str, header: Option<(&str, &str)>| {
        let mut b = http::Request::builder().method(method).uri(hub.url(path));
        if let Some((n, v)) = header {
            b = b.header(n, v);
        }
        b.body(Full::<Bytes>::default()).unwrap()
    };
    let c2 = c.clone();
    let worker_of = move |r: http::Request<Full<Bytes>>| {
        let c = c2.clone();
        async move {
            let a = send(&c, r).await;
            assert_eq!(a.status, 200, "{a:?}");
            a.json()["worker"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(
        worker_of(req("GET", "/stats", None)).await,
        "wb",
        "exact path"
    );
    assert_eq!(
        worker_of(req("GET", "/inspect", Some(("host", "x.b.example:80")))).await,
        "wb",
        "host"
    );
    assert_eq!(
        worker_of(req("POST", "/inspect", Some(("x-pool", "a")))).await,
        "wb",
        "method + regex first"
    );
    assert_eq!(
        worker_of(req("GET", "/inspect", Some(("x-pool", "a")))).await,
        "wa",
        "header value"
    );
    assert_eq!(
        worker_of(req("GET", "/inspect", Some(("x-pool", "b")))).await,
        "wb",
        "other value"
    );
    assert_eq!(
        worker_of(req("GET", "/inspect", Some(("x-any", "")))).await,
        "wa",
        "header present"
    );
    assert_eq!(
        worker_of(req("GET", "/inspect?q=1", None)).await,
        "wb",
        "prefix"
    );
    for path in ["/stats/more", "/nowhere"] {
        let none = send(&c, req("GET", path, None)).await;
        assert_eq!(none.status, 404, "{path}");
        assert!(
            String::from_utf8_lossy(&none.body).contains("no route"),
            "{none:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_headers_and_bodies_pass_both_ways() {
    for transport in TRANSPORTS {
        let hub = HubProc::start(transport, &one_pool(""));
        let _w = hub.worker("demo", TOKEN, 4, "w1");
        let c = client();
        wait_ready(&c, &hub.url("/hello")).await;

        let teapot = get(&c, &hub.url("/status?code=418")).await;
        assert_eq!(teapot.status, 418);

        let req = http::Request::post(hub.url("/inspect?x=1&y=two"))
            .header("x-custom", "value 1")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"hello body")))
            .unwrap();
        let seen = send(&c, req).await.json();
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["path"], "/inspect");
        assert_eq!(seen["query"], "x=1&y=two");
        assert_eq!(seen["headers"]["x-custom"], "value 1");
        assert_eq!(seen["body_len"], 10);

        let big: Vec<u8> = (0..10 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let req = http::Request::post(hub.url("/echo"))
            .header("content-type", "application/x-test")
            .body(Full::new(Bytes::from(big.clone())))
            .unwrap();
        let echoed = send(&c, req).await;
        assert_eq!(echoed.status, 200, "{transport:?}");
        assert_eq!(echoed.header("content-type"), Some("application/x-test"));
        assert!(
            echoed.body == big,
            "{transport:?}: 10 MiB echo differs ({} bytes back)",
            echoed.body.len()
        );

        let streamed = get(&c, &hub.url("/bytes?n=3000000")).await;
        assert_eq!(streamed.body.len(), 3_000_000);
        assert_eq!(streamed.header("content-length"), Some("3000000"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_sleeps_over_five_single_credit_workers_never_overlap() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let _workers: Vec<_> = (0..5)
        .map(|i| hub.worker("demo", TOKEN, 1, &format!("w{i}")))
        .collect();
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=200")))
        .collect();
    let mut workers = std::collections::HashSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        let j = a.json();
        assert_eq!(j["inflight"], 1, "a worker ran two requests at once: {j}");
        workers.insert(j["worker"].as_str().unwrap().to_string());
    }
    assert!(workers.len() > 1, "all 50 went to one worker: {workers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_answers_503_with_retry_after() {
    let hub = HubProc::start(
        Transport::Tcp,
        &one_pool("queue_limit = 1\nqueue_timeout = \"60s\"\ntimeout = \"60s\""),
    );
    let _w = hub.worker("demo", TOKEN, 1, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    // One runs, one waits, the rest find the queue full: the first three answers are 503s
    // (the other two would take ten minutes).
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (c, url) = (c.clone(), hub.url("/sleep?ms=600000"));
        set.spawn(async move { get(&c, &url).await });
    }
    for _ in 0..3 {
        let a = tokio::time::timeout(HANG_GUARD, set.join_next())
            .await
            .expect("no quick answer")
            .unwrap()
            .unwrap();
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.header("retry-after"), Some("1"));
    }
    set.abort_all();
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_timeout_answers_503() {
    // A pool with no worker at all: the request waits out the queue timeout.
    let hub = HubProc::start(Transport::Tcp, &one_pool("queue_timeout = \"300ms\""));
    let a = get(&client(), &hub.url("/hello")).await;
    assert_eq!(a.status, 503);
    assert!(
        String::from_utf8_lossy(&a.body).contains("timed out waiting"),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deadline_answers_504_and_cancels_at_the_worker() {
    let hub = HubProc::start(Transport::Unix, &one_pool("timeout = \"500ms\""));
    let w = hub.worker("demo", TOKEN, 2, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let a = get(&c, &hub.url("/sleep?ms=600000")).await;
    assert_eq!(a.status, 504);
    w.log.wait_for("request cancelled", 1);
    let stats = get(&c, &hub.url("/stats")).await.json();
    assert_eq!(stats["cancelled"], 1);
    assert_eq!(stats["inflight"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_worker_fails_its_requests_at_once_and_others_serve_the_queue() {
    let hub = HubProc::start(
        Transport::Tcp,
        &one_pool("queue_timeout = \"60s\"\ntimeout = \"120s\""),
    );
    let mut doomed = hub.worker("demo", TOKEN, 2, "doomed");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let long: Vec<_> = (0..2)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=600000")))
        .collect();
    doomed.log.wait_for("request started path=/sleep", 2);
    let queued: Vec<_> = (0..3)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=10")))
        .collect();
    let killed_at = Instant::now();
    doomed.kill9();
    for t in long {
        let a = t.await.unwrap();
        assert_eq!(a.status, 502, "{a:?}");
    }
    // "At once": far sooner than the 600 s the requests asked for (the guard is generous
    // because the machine is shared, but a hang would take minutes).
    assert!(killed_at.elapsed() < Duration::from_secs(30));
    let _rescuer = hub.worker("demo", TOKEN, 2, "rescuer");
    for t in queued {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["worker"], "rescuer");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_that_disconnects_cancels_its_request_at_the_worker() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let w = hub.worker("demo", TOKEN, 1, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let mut sock = std::net::TcpStream::connect(hub.front).unwrap();
    sock.write_all(b"GET /sleep?ms=600000 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    w.log.wait_for("request started path=/sleep", 1);
    drop(sock);
    w.log.wait_for("request cancelled", 1);
    // The worker's only credit came back: it serves again.
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_token_is_refused_with_a_reason() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let mut w = hub.worker("demo", "not-the-token", 1, "intruder");
    assert!(
        !w.wait_exit(),
        "a worker with a wrong token must exit with an error"
    );
    assert!(w.log.text().contains("wrong token"), "{}", w.log.text());
    hub.log.wait_for("wrong token", 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_prior_knowledge_clients_are_served() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let _w = hub.worker("demo", TOKEN, 8, "w1");
    let c = h2_client();
    wait_ready(&c, &hub.url("/hello")).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| spawn_get(&c, hub.url(&format!("/inspect?i={i}"))))
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200);
        assert!(a.json()["headers"]["host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_without_losing_requests_in_flight() {
    let mut hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let w = hub.worker("demo", TOKEN, 5, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let tasks: Vec<_> = (0..5)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=1000")))
        .collect();
    w.log.wait_for("request started path=/sleep", 5);
    hub.signal(libc::SIGTERM);
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert!(
        hub.wait_exit(),
        "hub exited with an error:\n{}",
        hub.log.text()
    );
    assert!(
        std::net::TcpStream::connect(hub.front).is_err(),
        "still accepting after drain"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_bodies_get_431_and_413() {
    let hub = HubProc::start_with(
        Transport::Tcp,
        "max_header_bytes = 8192",
        &one_pool("max_body_bytes = 1000"),
    );
    let _w = hub.worker("demo", TOKEN, 2, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let req = http::Request::get(hub.url("/hello"))
        .header("x-big", "a".repeat(20_000))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&c, req).await.status, 431);
    let req = http::Request::post(hub.url("/echo"))
        .body(Full::new(Bytes::from(vec![b'x'; 5000])))
        .unwrap();
    assert_eq!(send(&c, req).await.status, 413);
    let req = http::Request::post(hub.url("/echo"))
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    assert_eq!(send(&c, req).await.status, 200);
}

/// Reads frames until a CANCEL comes; returns its stream and reason.
fn next_cancel(
    sock: &mut RawSocket,
    buf: &mut bytes::BytesMut,
) -> (u64, pullman_proto::CancelReason) {
    loop {
        match read_frame(sock, buf) {
            Some(Frame::Cancel { stream, reason }) => return (stream, reason),
            Some(_) => continue,
            None => panic!("the hub closed the link before sending CANCEL"),
        }
    }
}

fn response(stream: u64, end: bool, headers: &[(&'static str, &'static str)]) -> Frame {
    Frame::Response(pullman_proto::Response {
        stream,
        end,
        status: 200,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                )
            })
            .collect(),
    })
}

/// Grants one credit, sends `GET path` through the hub, and answers the REQUEST the raw
/// worker gets with `answer(stream)`. Returns the client's pending answer and the stream.
fn answer_raw(
    sock: &mut RawSocket,
    buf: &mut bytes::BytesMut,
    c: &HttpClient,
    hub: &HubProc,
    path: &str,
    answer: impl Fn(u64) -> Vec<Frame>,
) -> (tokio::task::JoinHandle<Answer>, u64) {
    write_frames(sock, &[Frame::Credit { n: 1 }]);
    let pending = spawn_get(c, hub.url(path));
    let stream = next_request(sock, buf);
    write_frames(sock, &answer(stream));
    (pending, stream)
}

fn body(stream: u64, data: &'static [u8]) -> Frame {
    Frame::Body {
        stream,
        data: Bytes::from_static(data),
        end: true,
    }
}

/// A worker's answers the hub cannot use while its link stays up: a body shorter or longer
/// than its `content-length`, an invalid header name, a REJECT. Each is logged once,
/// counted in `pullman_worker_faults_total`, and the worker is told (CANCEL `refused`); the
/// link keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn answers_the_hub_cannot_use_are_logged_counted_and_told_to_the_worker() {
    use pullman_proto::CancelReason::Refused;
    let hub = HubProc::start_exact(
        Transport::Tcp,
        "",
        &format!("{}{}", admin_table(), one_pool("")),
    );
    let admin = AdminClient::new(&hub);
    let (mut sock, mut buf) = raw_worker(&hub, "demo", TOKEN);
    let c = client();
    let fault = |m: &Metrics, fault: &str| {
        m.get(
            "pullman_worker_faults_total",
            &format!("pool=\"demo\",fault=\"{fault}\""),
        )
    };
    let before = admin.metrics().await;
    assert_eq!(fault(&before, "length_mismatch"), 0.0);

    // Shorter: 10 announced, 5 sent. The client's response is cut off.
    let (pending, stream) = answer_raw(&mut sock, &mut buf, &c, &hub, "/short", |stream| {
        vec![
            response(stream, false, &[("content-length", "10")]),
            body(stream, b"12345"),
        ]
    });
    assert_eq!(next_cancel(&mut sock, &mut buf), (stream, Refused));
    let _ = pending.await;
    hub.log.wait_for("shorter than its content-length 10", 1);

    // Longer: 3 announced, more sent.
    let (pending, stream) = answer_raw(&mut sock, &mut buf, &c, &hub, "/long", |stream| {
        vec![
            response(stream, false, &[("content-length", "3")]),
            body(stream, b"0123456789"),
        ]
    });
    assert_eq!(next_cancel(&mut sock, &mut buf), (stream, Refused));
    let _ = pending.await;
    hub.log.wait_for("longer than its content-length 3", 1);

    // An invalid header name: 502 for the client.
    let (pending, stream) = answer_raw(&mut sock, &mut buf, &c, &hub, "/bad-name", |stream| {
        vec![response(stream, true, &[("bad name", "x")])]
    });
    assert_eq!(next_cancel(&mut sock, &mut buf), (stream, Refused));
    assert_eq!(pending.await.unwrap().status, 502);
    hub.log
        .wait_for("invalid response header name \"bad name\"", 1);

    // A REJECT: 503 with Retry-After, logged with the worker's reason.
    let (pending, _) = answer_raw(&mut sock, &mut buf, &c, &hub, "/rejected", |stream| {
        vec![Frame::Reject {
            stream,
            retryable: false,
            reason: "not today".into(),
        }]
    });
    let rejected = pending.await.unwrap();
    assert_eq!(rejected.status, 503);
    assert_eq!(rejected.header("retry-after"), Some("1"));
    hub.log.wait_for("not today", 1);

    // A content-length that is not a number, and a status that is not final: 502.
    for (path, status, length) in [("/bad-length", 200, "ten"), ("/informational", 103, "0")] {
        let (pending, stream) = answer_raw(&mut sock, &mut buf, &c, &hub, path, |stream| {
            let mut frame = response(stream, true, &[("content-length", length)]);
            if let Frame::Response(r) = &mut frame {
                r.status = status;
            }
            vec![frame]
        });
        assert_eq!(next_cancel(&mut sock, &mut buf), (stream, Refused));
        assert_eq!(pending.await.unwrap().status, 502, "{path}");
    }

    // Hop-by-hop fields, and those `connection` names, stay behind.
    let (pending, _) = answer_raw(&mut sock, &mut buf, &c, &hub, "/hops", |stream| {
        vec![response(
            stream,
            true,
            &[
                ("connection", "x-secret"),
                ("x-secret", "1"),
                ("x-kept", "1"),
                ("content-length", "0"),
            ],
        )]
    });
    let hops = pending.await.unwrap();
    assert_eq!(hops.status, 200);
    assert_eq!(hops.header("x-kept"), Some("1"));
    assert_eq!(hops.header("x-secret"), None);

    // The link stayed up and serves on.
    let (pending, _) = answer_raw(&mut sock, &mut buf, &c, &hub, "/fine", |stream| {
        vec![response(stream, true, &[("content-length", "0")])]
    });
    assert_eq!(pending.await.unwrap().status, 200);

    let m = admin.metrics().await;
    assert_eq!(fault(&m, "length_mismatch"), 2.0);
    assert_eq!(fault(&m, "bad_answer"), 3.0);
    assert_eq!(fault(&m, "rejected"), 1.0);
    // Each was logged once.
    assert_eq!(hub.log.count("shorter than its content-length"), 1);
    assert_eq!(hub.log.count("longer than its content-length"), 1);
}

/// RFC 9112 section 3.2.2: an absolute-form target's authority wins over `Host`, for
/// routing as for what the worker sees.
#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_form_request_is_routed_by_its_target_not_its_host_field() {
    let config = format!(
        "{}{}[[route]]\nhost = \"a.example\"\npool = \"a\"\n[[route]]\nhost = \"b.example\"\npool = \"b\"\n",
        pool("a", "ta", ""),
        pool("b", "tb", ""),
    );
    let hub = HubProc::start(Transport::Tcp, &config);
    let _a = hub.worker("a", "ta", 1, "wa");
    let _b = hub.worker("b", "tb", 1, "wb");
    let c = client();
    let host = |h: &str| {
        http::Request::get(hub.url("/sleep?ms=1"))
            .header("host", h)
            .body(Full::default())
            .unwrap()
    };
    for (h, name) in [("a.example", "wa"), ("b.example", "wb")] {
        loop {
            let a = send(&c, host(h)).await;
            if a.status == 200 {
                assert_eq!(a.json()["worker"], name);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let addr = hub.url("").trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.write_all(
        b"GET http://a.example/sleep?ms=1 HTTP/1.1\r\nhost: b.example\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let answer = String::from_utf8(read_to_close(sock)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"worker\":\"wa\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_stops_answering_pings_is_dropped_and_its_request_fails() {
    let hub = HubProc::start_exact(Transport::Tcp, "ping_interval = \"100ms\"", &one_pool(""));
    let (mut sock, mut buf) = raw_worker(&hub, "demo", TOKEN);
    let mut out = bytes::BytesMut::new();
    pullman_proto::encode(&Frame::Credit { n: 1 }, &mut out, 1 << 20).unwrap();
    sock.write_all(&out).unwrap();
    let c = client();
    let pending = spawn_get(&c, hub.url("/hello"));
    // Read (and ignore) what the hub sends, PINGs included, never answering, until it
    // gives up on this worker and closes.
    let mut pings = 0;
    let mut closed_with = None;
    while let Some(frame) = read_frame(&mut sock, &mut buf) {
        match frame {
            Frame::Ping { .. } => pings += 1,
            Frame::Close { code, .. } => closed_with = Some(code),
            _ => {}
        }
    }
    assert!(pings >= 3, "closed after {pings} pings");
    assert_eq!(closed_with, Some(CloseCode::Timeout));
    hub.log.wait_for("missed", 1);
    assert_eq!(pending.await.unwrap().status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_frame_after_the_handshake_closes_only_that_link() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &one_pool(""));
    let _good = hub.worker("demo", TOKEN, 2, "good");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let (mut sock, mut buf) = raw_worker(&hub, "demo", TOKEN);
    // A CREDIT frame on stream 7: control frames must use stream 0.
    let mut out = bytes::BytesMut::new();
    pullman_proto::encode(&Frame::Credit { n: 1 }, &mut out, 1 << 20).unwrap();
    out[13] = 7;
    sock.write_all(&out).unwrap();
    let mut last = None;
    while let Some(f) = read_frame(&mut sock, &mut buf) {
        last = Some(f);
    }
    assert!(
        matches!(
            last,
            Some(Frame::Close {
                code: CloseCode::ProtocolError,
                ..
            })
        ),
        "{last:?}"
    );
    for _ in 0..10 {
        assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_response_does_not_hold_up_a_small_one_on_the_same_link() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let _w = hub.worker("demo", TOKEN, 2, "only");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    // Start a 100 MiB response and read none of it: its stream's window fills and stays full.
    let big = c.request(
        http::Request::get(hub.url("/bytes?n=104857600"))
            .body(Full::default())
            .unwrap(),
    );
    let big = tokio::time::timeout(HANG_GUARD, big)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(big.status(), 200);
    // The same worker, on the same link, still answers small requests.
    for _ in 0..20 {
        let a = get(&c, &hub.url("/hello")).await;
        assert_eq!(a.status, 200);
    }
    drop(big);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_to_a_slow_worker_is_flow_controlled_not_buffered() {
    let hub = HubProc::start(Transport::Tcp, &one_pool("max_body_bytes = 1073741824"));
    let _w = hub.worker("demo", TOKEN, 1, "slow");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let before = peak_rss_kib(hub.child.id());
    const MIB: usize = 1 << 20;
    const TOTAL_MIB: usize = 64;
    let (mut tx, body) = tokio::io::duplex(MIB);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = vec![7u8; MIB];
        for _ in 0..TOTAL_MIB {
            if tx.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let stream = ReaderBody(body);
    let req = http::Request::post(hub.url("/inspect?pace_ms=2"))
        .body(stream)
        .unwrap();
    let raw = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = tokio::time::timeout(HANG_GUARD, raw.request(req))
        .await
        .unwrap()
        .unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["body_len"], (TOTAL_MIB * MIB) as u64);
    let grown_kib = peak_rss_kib(hub.child.id()) - before;
    // The worker reads slowly; without flow control the hub would hold most of the 64 MiB.
    assert!(
        grown_kib < 16 * 1024,
        "hub peak RSS grew by {grown_kib} KiB during a {TOTAL_MIB} MiB upload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_idle_connections_are_closed() {
    let hub = HubProc::start_with(
        Transport::Tcp,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"300ms\"",
        &one_pool(""),
    );
    let _w = hub.worker("demo", TOKEN, 1, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;

    // Half a request head, then silence: the hub gives up on it.
    let mut slow = std::net::TcpStream::connect(hub.front).unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(slow)).into_owned();
    assert!(!answer.contains("hello from pullman"), "{answer}");

    // A whole request, its answer, then silence: the idle connection is closed.
    let mut idle = std::net::TcpStream::connect(hub.front).unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(idle)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("hello from pullman"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keep_alive_connection_outlives_the_header_read_timeout() {
    let hub = HubProc::start_with(
        Transport::Tcp,
        "header_read_timeout = \"200ms\"\nidle_timeout = \"60s\"",
        &one_pool(""),
    );
    let _w = hub.worker("demo", TOKEN, 1, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;
    let mut sock = std::net::TcpStream::connect(hub.front).unwrap();
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    for round in 0..2 {
        sock.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let answer = read_one_response(&mut sock);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer}"
        );
        // Idle for five header read timeouts: only idle_timeout may close it.
        std::thread::sleep(Duration::from_secs(1));
    }
    // A head that stops half way is still cut off, also one that stops where it could
    // still become the HTTP/2 preface.
    for start in [&b"GET /hello HTTP/1.1\r\n"[..], b"P"] {
        let mut slow = std::net::TcpStream::connect(hub.front).unwrap();
        slow.write_all(start).unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(slow)).into_owned();
        assert!(!answer.contains("hello from pullman"), "{answer}");
    }
}

/// Reads one response with a `content-length` body from `sock`.
fn read_one_response(sock: &mut std::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).expect("the connection stays open");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = text[..end]
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        if got.len() >= end + 4 + length {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_the_queue_frees_its_place() {
    let hub = HubProc::start(
        Transport::Tcp,
        &one_pool("queue_limit = 1\nqueue_timeout = \"60s\"\ntimeout = \"120s\""),
    );
    let w = hub.worker("demo", TOKEN, 1, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    // The worker's one credit is busy for the rest of the test.
    let busy = spawn_get(&c, hub.url("/sleep?ms=600000"));
    w.log.wait_for("request started path=/sleep", 1);
    // A client takes the queue's only place, and leaves.
    let queued_before = hub.log.count("request queued");
    let mut leaver = std::net::TcpStream::connect(hub.front).unwrap();
    leaver
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    hub.log.wait_for("request queued", queued_before + 1);
    drop(leaver);
    hub.log.wait_for("a request left the queue", 1);
    // Its place is free: the next request waits in it (instead of a 503), and is served
    // as soon as the busy request goes away and frees the worker.
    let probe = spawn_get(&c, hub.url("/hello"));
    busy.abort();
    let a = probe.await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_drains_on_sigterm_finishing_what_it_has_and_taking_nothing_new() {
    let hub = HubProc::start(Transport::Tcp, &one_pool("queue_timeout = \"60s\""));
    let mut w = hub.worker("demo", TOKEN, 2, "leaving");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let in_flight = spawn_get(&c, hub.url("/sleep?ms=1000"));
    w.log.wait_for("request started path=/sleep", 1);
    unsafe { libc::kill(w.child.id() as i32, libc::SIGTERM) };
    w.log.wait_for("draining", 1);
    // Sent after the drain began: it must wait for another worker.
    let later = spawn_get(&c, hub.url("/inspect"));
    let a = in_flight.await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        w.wait_exit(),
        "the draining worker exited with an error:\n{}",
        w.log.text()
    );
    let _next = hub.worker("demo", TOKEN, 1, "next");
    let a = later.await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["worker"], "next");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_before_its_hub_connects_when_the_hub_comes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("later.sock");
    let hub_addr = format!("unix://{}", sock.display());
    let w = WorkerProc::start(&hub_addr, "demo", TOKEN, 1, "early");
    w.log.wait_for("cannot reach hub", 1);
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"{hub_addr}\"]\n{}",
        one_pool("")
    );
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, config).unwrap();
    let hub = HubProc::from_config_file(&path);
    let a = get(&client(), &hub.url("/inspect")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["worker"], "early");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_waiting_to_reconnect_stops_at_once_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix://{}", dir.path().join("nobody.sock").display());
    let mut w = WorkerProc::start(&nowhere, "demo", TOKEN, 1, "patient");
    // Several failures in: the backoff has grown, and the signal handler is in place.
    w.log.wait_for("cannot reach hub", 4);
    let sent = Instant::now();
    unsafe { libc::kill(w.child.id() as i32, libc::SIGTERM) };
    assert!(w.wait_exit(), "{}", w.log.text());
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        sent.elapsed()
    );
}

/// The hub's shared-memory mappings (`/memfd:pullman-...` lines of /proc/PID/maps).
fn shm_mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:pullman-"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handler_reads_head_and_body_inside_the_shared_memory_mapping() {
    for transport in [Transport::Shm, Transport::Unix] {
        let hub = HubProc::start_exact(transport, "", &one_pool("max_body_bytes = 4194304"));
        let _w = hub.worker("demo", TOKEN, 2, "w1");
        let c = client();
        wait_ready(&c, &hub.url("/hello")).await;
        let body: Vec<u8> = (0..1024 * 1024u32).map(|i| i as u8).collect();
        let req = http::Request::post(hub.url("/inspect"))
            .header("x-check", "in place")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let seen = send(&c, req).await.json();
        assert_eq!(seen["body_len"], 1024 * 1024);
        assert_eq!(seen["headers"]["x-check"], "in place");
        let chunks = seen["body_chunks"].as_u64().unwrap();
        assert!(chunks > 0, "{seen}");
        if transport == Transport::Shm {
            assert_eq!(seen["head_in_shm"], true, "{seen}");
            assert_eq!(seen["body_chunks_in_shm"], chunks, "{seen}");
            assert!(hub.log.count("over shared memory") >= 1);
        } else {
            // The check can fail: over a socket nothing lies in shared memory.
            assert_eq!(seen["head_in_shm"], false, "{seen}");
            assert_eq!(seen["body_chunks_in_shm"], 0, "{seen}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shm_worker_fails_its_request_and_its_arenas_are_unmapped() {
    let hub = HubProc::start_exact(
        Transport::Shm,
        "",
        &one_pool("queue_timeout = \"60s\"\ntimeout = \"120s\""),
    );
    let mut doomed = hub.worker("demo", TOKEN, 1, "doomed");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let pid = hub.child.id();
    assert_eq!(
        shm_mappings(pid),
        2,
        "the hub maps two arenas per shm worker"
    );
    let long = spawn_get(&c, hub.url("/sleep?ms=600000"));
    doomed.log.wait_for("request started path=/sleep", 1);
    doomed.kill9();
    let a = long.await.unwrap();
    assert_eq!(a.status, 502, "{a:?}");
    let start = Instant::now();
    while shm_mappings(pid) > 0 {
        assert!(
            start.elapsed() < HANG_GUARD,
            "arenas of a dead worker stay mapped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _next = hub.worker("demo", TOKEN, 1, "next");
    wait_ready(&c, &hub.url("/hello")).await;
    assert_eq!(shm_mappings(pid), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_shm_worker_misses_its_pings_and_its_request_fails() {
    let hub = HubProc::start_exact(
        Transport::Shm,
        "ping_interval = \"100ms\"",
        &one_pool("timeout = \"120s\""),
    );
    let frozen = hub.worker("demo", TOKEN, 1, "frozen");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let pending = spawn_get(&c, hub.url("/sleep?ms=600000"));
    frozen.log.wait_for("request started path=/sleep", 1);
    // Alive (its socket open, its arenas mapped) but stopped: only the pings can tell.
    unsafe { libc::kill(frozen.child.id() as i32, libc::SIGSTOP) };
    let a = pending.await.unwrap();
    assert_eq!(a.status, 502, "{a:?}");
    hub.log.wait_for("missed", 1);
    let start = Instant::now();
    while shm_mappings(hub.child.id()) > 0 {
        assert!(
            start.elapsed() < HANG_GUARD,
            "arenas of a dropped worker stay mapped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Told by [`held_handler`] when a `/held` request reaches it.
static HELD: Notify = Notify::const_new();
/// Lets [`held_handler`] answer a `/held` request.
static RELEASE: Notify = Notify::const_new();

/// A handler run in this process: `/huge-header` answers with a header value larger than
/// any frame the hub takes (2 MiB), `/held` waits for [`RELEASE`], anything else is 200.
async fn held_handler(req: http::Request<RequestBody>) -> http::Response<ResponseBody> {
    let mut resp = http::Response::new(ResponseBody::from("ok\n"));
    match req.uri().path() {
        "/huge-header" => {
            let value = http::HeaderValue::from_bytes(&vec![b'v'; 2 << 20]).unwrap();
            resp.headers_mut().insert("x-huge", value);
        }
        "/held" => {
            HELD.notify_one();
            RELEASE.notified().await;
        }
        _ => {}
    }
    resp
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_too_large_to_send_fails_its_request_and_the_worker_serves_on() {
    let hub = HubProc::start(Transport::Tcp, &one_pool("timeout = \"60s\""));
    let worker = Worker::builder()
        .hub(hub.worker_addr.parse().unwrap())
        .pool("demo")
        .token(TOKEN)
        .concurrency(4)
        .shm(hub.transport == Transport::Shm)
        .build();
    let worker = tokio::spawn(worker.run(held_handler, std::future::pending()));
    let c = client();
    wait_ready(&c, &hub.url("/ready")).await;

    // A request the handler holds on the same link while the other one fails.
    let held = spawn_get(&c, hub.url("/held"));
    tokio::time::timeout(HANG_GUARD, HELD.notified())
        .await
        .expect("the handler never got /held");
    let failed = get(&c, &hub.url("/huge-header")).await;
    assert_eq!(failed.status, 502, "{failed:?}");
    assert!(failed.header("x-huge").is_none());

    // The link lived through it (before, the hub refused the oversized frame as a protocol
    // error, or the shared-memory channel did, and every request on the link failed): the
    // held request is answered, later ones too, and the worker never had to reconnect.
    RELEASE.notify_one();
    let held = held.await.unwrap();
    assert_eq!(held.status, 200, "{held:?}");
    assert_eq!(get(&c, &hub.url("/after")).await.status, 200);
    assert_eq!(hub.log.count("worker connected"), 1, "{}", hub.log.text());
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_before_the_request_body_ended_closes_the_http1_connection() {
    // No worker: the request waits out queue_timeout and gets 503 while most of its body is
    // unsent. The rest would stand where the next request's head should, so the answer must
    // say the connection closes rather than leave a client to find it closed.
    let hub = HubProc::start(Transport::Tcp, &one_pool("queue_timeout = \"100ms\""));
    let mut sock = std::net::TcpStream::connect(hub.front).unwrap();
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    sock.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\npart")
        .unwrap();
    let answer = read_one_response(&mut sock).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // A body read to its end leaves the connection open for the next request.
    let _w = hub.worker("demo", TOKEN, 1, "w");
    wait_ready(&client(), &hub.url("/hello")).await;
    let mut sock = std::net::TcpStream::connect(hub.front).unwrap();
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    for _ in 0..2 {
        sock.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbody")
            .unwrap();
        let answer = read_one_response(&mut sock).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
    }
}
