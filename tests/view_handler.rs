//! The SDK's view handler (`Worker::run_views`), which bindings to other languages build
//! on: it gets the head as the hub sent it and answers with a `RawResponse`, through a
//! real hub on every transport.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pullman_worker::{RawResponse, RequestBody, RequestInfo, ResponseBody, ViewHandler, Worker};
use support::*;

const TOKEN: &str = "t0ken";

/// Answers (201 to a POST, else 200) with the method, path and `x-a` it read from the head
/// view in fields of its own, and the request body back.
struct Mirror;

impl ViewHandler for Mirror {
    async fn call(&self, info: RequestInfo, body: RequestBody) -> RawResponse {
        let head = &info.head;
        let field = |b: &[u8]| Bytes::copy_from_slice(b);
        let headers = vec![
            (Bytes::from("x-method"), field(head.method())),
            (Bytes::from("x-path"), field(head.path())),
            (
                Bytes::from("x-a"),
                field(head.header_value(b"x-a").unwrap_or(b"none")),
            ),
        ];
        let body = body.collect().await.map(|b| b.to_bytes());
        let body = body.unwrap_or_else(|_| Bytes::from("body failed"));
        let status = if head.method() == b"POST" { 201 } else { 200 };
        RawResponse::new(status, headers, ResponseBody::from(body))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_handler_reads_the_head_in_place_and_answers_raw() {
    for transport in [Transport::Tcp, Transport::Unix, Transport::Shm] {
        let hub = HubProc::start_exact(
            transport,
            "",
            &format!("{}{}", pool("v", TOKEN, ""), route_all("v")),
        );
        let worker = Worker::builder()
            .hub(hub.worker_addr.parse().unwrap())
            .pool("v")
            .token(TOKEN)
            .concurrency(2)
            .shm(transport == Transport::Shm)
            .build();
        let worker = tokio::spawn(worker.run_views(Mirror, std::future::pending()));
        let c = client();
        wait_ready(&c, &hub.url("/ready")).await;

        let body = random_bytes(100_000);
        let req = http::Request::post(hub.url("/a/b?q=1"))
            .header("x-a", "from the client")
            .body(Full::new(body.clone()))
            .unwrap();
        let a = send(&c, req).await;
        assert_eq!(a.status, 201, "{transport:?}: {a:?}");
        assert_eq!(a.header("x-method"), Some("POST"));
        assert_eq!(a.header("x-path"), Some("/a/b"));
        assert_eq!(a.header("x-a"), Some("from the client"));
        assert_eq!(
            a.header("content-length"),
            Some("100000"),
            "added from the body"
        );
        assert!(a.body == body, "{transport:?}: the body differs");
        worker.abort();
    }
}
