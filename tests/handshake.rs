//! End to end: what happens when a worker and a hub are not what the other expects: an HTTP
//! client on the worker port, a worker on the HTTP port, a worker of an older protocol
//! version, a worker that does not serve its pool's mode.

mod support;

use std::io::Write;

use pullman_proto::{CloseCode, Frame, Mode, Modes};
use support::*;

const TOKEN: &str = "t0ken";

fn one_pool(extra: &str) -> String {
    format!("{}{}", pool("demo", TOKEN, extra), route_all("demo"))
}

/// A filter pool `waf` behind every path. Its upstream is never reached: no request is sent.
fn filter_pool(extra: &str) -> String {
    let settings = format!("mode = \"filter\"\nupstream = \"http://127.0.0.1:9\"\n{extra}");
    format!("{}{}", pool("waf", TOKEN, &settings), route_all("waf"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_client_on_the_worker_port_gets_a_400_that_says_so() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &one_pool(""));
    let addr = hub.worker_addr.trim_start_matches("tcp://");
    let a = get(&client(), &format!("http://{addr}/hello")).await;
    assert_eq!(a.status, 400, "{a:?}");
    let body = String::from_utf8_lossy(&a.body);
    assert!(
        body.contains("this is a pullman worker port, not an HTTP server"),
        "{body}"
    );
    hub.log.wait_for("an HTTP client on the worker port", 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_dialing_the_http_port_stops_with_one_clear_line() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let mut w = WorkerProc::start(&format!("tcp://{}", hub.front), "demo", TOKEN, 1, "lost");
    assert!(
        !w.wait_exit(),
        "a worker pointed at an HTTP server must exit with an error"
    );
    let log = w.log.text();
    assert!(
        log.contains(&format!(
            "tcp://{} is an HTTP server, not a pullman worker port",
            hub.front
        )),
        "{log}"
    );
    assert_eq!(w.log.count("cannot reach hub"), 0, "it retried:\n{log}");
}

/// HELLO as a worker of protocol version 1 sent it: no connection preface, and the version 1
/// payload (versions 1..=1, limits, features 0, pool, token, name).
fn hello_v1() -> Vec<u8> {
    let mut payload = vec![0, 1, 0, 1, 0, 0x10, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0];
    for s in ["demo", TOKEN, "old"] {
        payload.extend_from_slice(&(s.len() as u16).to_be_bytes());
        payload.extend_from_slice(s.as_bytes());
    }
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&payload);
    frame
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_of_protocol_version_1_is_told_its_version_is_too_old() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &one_pool(""));
    let addr = hub.worker_addr.trim_start_matches("tcp://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    sock.write_all(&hello_v1()).unwrap();
    let mut buf = bytes::BytesMut::new();
    match read_frame(&mut sock, &mut buf) {
        Some(Frame::Close {
            code: CloseCode::UnsupportedVersion,
            reason,
        }) => assert!(reason.contains("too old"), "{reason}"),
        other => panic!("expected CLOSE unsupported_version, got {other:?}"),
    }
    assert_eq!(read_frame(&mut sock, &mut buf), None);
    hub.log.wait_for("too old", 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_worker_port_is_logged_and_closed() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &one_pool(""));
    let _w = hub.worker("demo", TOKEN, 1, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let addr = hub.worker_addr.trim_start_matches("tcp://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.write_all(b"\x16\x03\x01\x02\x00 neither pullman nor HTTP")
        .unwrap();
    assert_eq!(read_to_close(sock), b"");
    hub.log.wait_for("no connection preface", 1);
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_respond_worker_is_refused_by_a_filter_pool_and_stops() {
    let hub = HubProc::start(Transport::Tcp, &filter_pool(""));
    let mut w = hub.worker("waf", TOKEN, 1, "responder");
    assert!(
        !w.wait_exit(),
        "a worker refused for its mode must exit with an error"
    );
    let log = w.log.text();
    assert!(log.contains("UnsupportedMode"), "{log}");
    assert!(log.contains("filter"), "{log}");
    assert_eq!(w.log.count("cannot reach hub"), 0, "it retried:\n{log}");
    hub.log.wait_for("needs a worker serving", 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_worker_is_refused_by_a_respond_pool_and_stops() {
    let hub = HubProc::start(Transport::Tcp, &one_pool(""));
    let mut w = hub.filter_worker("demo", TOKEN, 1, "filter");
    assert!(!w.wait_exit(), "{}", w.log.text());
    assert!(w.log.text().contains("UnsupportedMode"), "{}", w.log.text());
    hub.log.wait_for("needs a worker serving", 1);
}

/// What the hub answers a hand-written HELLO for pool `waf` that names `modes`.
fn answer_to_hello(hub: &HubProc, modes: Modes) -> Option<Frame> {
    let addr = hub.worker_addr.trim_start_matches("tcp://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(HANG_GUARD)).unwrap();
    sock.write_all(&opening("waf", TOKEN, modes, "raw"))
        .unwrap();
    read_frame(&mut sock, &mut bytes::BytesMut::new())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_that_filters_responses_needs_workers_that_serve_the_response_phase() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &filter_pool("filter_response = true"));
    let request_only = Modes::of(Mode::Filter);
    match answer_to_hello(&hub, request_only) {
        Some(Frame::Close {
            code: CloseCode::UnsupportedMode,
            reason,
        }) => assert!(reason.contains("filter response (mode 2)"), "{reason}"),
        other => panic!("expected CLOSE unsupported_mode, got {other:?}"),
    }
    let both = request_only.with(Mode::FilterResponse);
    let answer = answer_to_hello(&hub, both);
    assert!(matches!(answer, Some(Frame::Welcome(_))), "{answer:?}");
}
