//! End to end: a request body the hub keeps (`retry_body_bytes`, 64 KiB by default) goes to
//! another worker with its request when the retry rules move it: its worker's link died
//! before the request reached it, the worker rejected it as retryable, or (under
//! `retry_idempotent`, for an idempotent method) the worker died holding it. A longer body,
//! or a POST a worker died holding, ends in 502 as before. The first worker is spoken by
//! hand, so the test decides when it fails; the second is the demo app, whose `/echo`
//! sends the body back.

mod support;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use pullman_proto::Frame;
use support::*;

const TOKEN: &str = "t0ken";

fn hub(transport: Transport, pool_extra: &str) -> HubProc {
    let config = format!(
        "{}{}{}",
        admin_table(),
        pool("demo", TOKEN, pool_extra),
        route_all("demo")
    );
    HubProc::start_exact(transport, "", &config)
}

/// Sends `method /echo` with `body` in the background.
fn spawn_echo(hub: &HubProc, method: &str, body: Bytes) -> tokio::task::JoinHandle<Answer> {
    let req = http::Request::builder()
        .method(method)
        .uri(hub.url("/echo"))
        .body(Full::new(body))
        .unwrap();
    let c = client();
    tokio::spawn(async move { send(&c, req).await })
}

/// Reads the REQUEST's body frames until `n` bytes came or the body ended; returns how many.
fn read_body(sock: &mut RawSocket, buf: &mut BytesMut, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        match read_frame(sock, buf) {
            Some(Frame::Body { data, end, .. }) => {
                got += data.len();
                if end {
                    break;
                }
            }
            Some(_) => continue,
            None => panic!("the hub closed the link during the body"),
        }
    }
    got
}

/// A raw worker takes `method /echo` with a body of `size` bytes, reads the body (as much
/// as its window lets it), and dies without answering; then a demo worker joins the pool.
/// Returns what the client got and the body it sent.
async fn worker_dies_holding(method: &str, size: usize, pool_extra: &str) -> (Answer, Bytes) {
    let hub = hub(Transport::Tcp, pool_extra);
    let (mut sock, mut buf) = raw_worker(&hub, "demo", TOKEN);
    write_frames(&mut sock, &[Frame::Credit { n: 1 }]);
    let sent = random_bytes(size);
    let pending = spawn_echo(&hub, method, sent.clone());
    next_request(&mut sock, &mut buf);
    let got = read_body(&mut sock, &mut buf, size.min(1 << 16));
    assert!(got > 0, "the worker got none of the body");
    drop(sock);
    let _next = hub.worker("demo", TOKEN, 1, "next");
    (pending.await.unwrap(), sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_whose_worker_died_before_it_was_sent_goes_to_another_worker_with_its_body() {
    // Over a Unix socket a write to a peer that shut its reading side fails at once: the
    // REQUEST never leaves the hub, as when a worker dies between granting a credit and
    // getting the request.
    let hub = hub(Transport::Unix, "");
    let admin = AdminClient::new(&hub);
    let (mut sock, _buf) = raw_worker(&hub, "demo", TOKEN);
    write_frames(&mut sock, &[Frame::Credit { n: 1 }]);
    admin
        .wait_until("/workers", |w| w["workers"][0]["credits"] == 1)
        .await;
    sock.shutdown(std::net::Shutdown::Read);
    let sent = random_bytes(10 * 1024);
    let pending = spawn_echo(&hub, "POST", sent.clone());
    // The request went to the only worker with a credit; the write failed and ended that
    // link. Only then does another worker join.
    admin
        .wait_until("/workers", |w| w["workers"].as_array().unwrap().is_empty())
        .await;
    let _next = hub.worker("demo", TOKEN, 1, "next");
    let a = pending.await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, sent, "the body came back changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_rejected_as_retryable_goes_to_another_worker_with_its_body() {
    let hub = hub(Transport::Tcp, "");
    let (mut sock, mut buf) = raw_worker(&hub, "demo", TOKEN);
    write_frames(&mut sock, &[Frame::Credit { n: 1 }]);
    let sent = random_bytes(10 * 1024);
    let pending = spawn_echo(&hub, "POST", sent.clone());
    let stream = next_request(&mut sock, &mut buf);
    assert_eq!(read_body(&mut sock, &mut buf, sent.len()), sent.len());
    write_frames(
        &mut sock,
        &[Frame::Reject {
            stream,
            retryable: true,
            reason: "busy".into(),
        }],
    );
    let _next = hub.worker("demo", TOKEN, 1, "next");
    let a = pending.await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, sent, "the body came back changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_whose_worker_died_holding_it_goes_to_another_worker_under_retry_idempotent() {
    let (a, sent) = worker_dies_holding("PUT", 10 * 1024, "retry_idempotent = true").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, sent, "the body came back changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_retry_body_bytes_is_not_replayed() {
    let (a, _) = worker_dies_holding("PUT", 1024 * 1024, "retry_idempotent = true").await;
    assert_eq!(a.status, 502, "{a:?}");
    // With the bound raised past it, the same body is kept and replayed.
    let raised = "retry_idempotent = true\nretry_body_bytes = 2097152";
    let (a, sent) = worker_dies_holding("PUT", 1024 * 1024, raised).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, sent, "the body came back changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_whose_worker_died_holding_it_is_not_replayed() {
    // The worker may have acted on it: only a REJECT or an undelivered REQUEST moves a POST.
    let (a, _) = worker_dies_holding("POST", 10 * 1024, "retry_idempotent = true").await;
    assert_eq!(a.status, 502, "{a:?}");
    let (a, _) = worker_dies_holding(
        "PUT",
        10 * 1024,
        "retry_body_bytes = 0\nretry_idempotent = true",
    )
    .await;
    assert_eq!(a.status, 502, "{a:?}");
}
