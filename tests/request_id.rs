//! Request ids end to end: `x-request-id` from the client (or the hub) to the worker, a
//! filter pool's upstream, the response and the hub's log; and the W3C `traceparent` a
//! worker or an upstream gets (the client's when usable, else one the hub made).

mod support;

use std::collections::HashSet;

use bytes::Bytes;
use http_body_util::Full;
use pullman_worker::{RequestBody, ResponseBody, Worker};
use support::*;

const TOKEN: &str = "t0ken";

fn inspect(hub: &HubProc, id: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::get(hub.url("/inspect"));
    if let Some(id) = id {
        b = b.header("x-request-id", id);
    }
    b.body(Full::default()).unwrap()
}

/// The id the response carries and the one the worker saw.
async fn ids(c: &HttpClient, req: http::Request<Full<Bytes>>) -> (String, String) {
    let a = send(c, req).await;
    assert_eq!(a.status, 200, "{a:?}");
    let answered = a
        .header("x-request-id")
        .expect("no x-request-id")
        .to_string();
    let seen = a.json()["headers"]["x-request-id"]
        .as_str()
        .expect("the worker saw no x-request-id")
        .to_string();
    (answered, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_and_clients_see_the_same_id_on_every_transport_and_http2() {
    for transport in TRANSPORTS {
        let hub = HubProc::start(
            transport,
            &format!("{}{}", pool("demo", TOKEN, ""), route_all("demo")),
        );
        let _w = hub.worker("demo", TOKEN, 4, "w1");
        for c in [client(), h2_client()] {
            wait_ready(&c, &hub.url("/hello")).await;
            let mut made = HashSet::new();
            for _ in 0..3 {
                let (answered, seen) = ids(&c, inspect(&hub, None)).await;
                assert_eq!(answered, seen, "{transport:?}");
                assert!(answered.len() > 17 && answered.contains('-'), "{answered}");
                assert!(made.insert(answered), "{transport:?}: an id came twice");
            }

            let (answered, seen) = ids(&c, inspect(&hub, Some("client-id-42"))).await;
            assert_eq!(
                (answered.as_str(), seen.as_str()),
                ("client-id-42", "client-id-42")
            );

            let too_long = "x".repeat(201);
            for unusable in ["has space", too_long.as_str()] {
                let (answered, seen) = ids(&c, inspect(&hub, Some(unusable))).await;
                assert_eq!(answered, seen);
                assert_ne!(answered, unusable, "an unusable id was kept");
                assert!(made.insert(answered));
            }
        }
    }
}

/// Answers with an `x-request-id` of its own.
async fn own_id_handler(_req: http::Request<RequestBody>) -> http::Response<ResponseBody> {
    let mut resp = http::Response::new(ResponseBody::from("ok\n"));
    resp.headers_mut().insert(
        "x-request-id",
        http::HeaderValue::from_static("the-workers"),
    );
    resp
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workers_own_x_request_id_is_replaced_by_the_requests() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!("{}{}", pool("demo", TOKEN, ""), route_all("demo")),
    );
    let worker = Worker::builder()
        .hub(hub.worker_addr.parse().unwrap())
        .pool("demo")
        .token(TOKEN)
        .concurrency(2)
        .shm(hub.transport == Transport::Shm)
        .build();
    let worker = tokio::spawn(worker.run(own_id_handler, std::future::pending()));
    let c = client();
    wait_ready(&c, &hub.url("/ready")).await;
    let req = http::Request::get(hub.url("/x"))
        .header("x-request-id", "mine")
        .body(Full::default())
        .unwrap();
    let a = send(&c, req).await;
    assert_eq!(a.status, 200, "{a:?}");
    let ids: Vec<_> = a.headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids, ["mine"]);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hubs_own_errors_carry_the_id_and_its_log_names_it() {
    let config = format!(
        "{}[[route]]\npath_prefix = \"/in\"\npool = \"empty\"\n",
        pool("empty", TOKEN, "queue_timeout = \"100ms\"")
    );
    let hub = HubProc::start(Transport::Tcp, &config);
    let c = client();

    let no_route = get(&c, &hub.url("/elsewhere")).await;
    assert_eq!(no_route.status, 404);
    assert!(no_route.header("x-request-id").is_some(), "{no_route:?}");

    // No worker ever connects: the request waits out queue_timeout and gets 503.
    let req = http::Request::get(hub.url("/in"))
        .header("x-request-id", "waited-1")
        .body(Full::default())
        .unwrap();
    let unserved = send(&c, req).await;
    assert_eq!(unserved.status, 503);
    assert_eq!(unserved.header("x-request-id"), Some("waited-1"));
    // The answer can reach the client before the hub's log line is written.
    hub.log.wait_for_line(&["waited-1", "queue_timeout"]);

    let h2 = h2_client();
    let fresh = get(&h2, &hub.url("/in")).await;
    assert_eq!(fresh.status, 503);
    let id = fresh.header("x-request-id").expect("no id on the 503");
    hub.log.wait_for(id, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_pools_upstream_sees_the_id_the_client_gets() {
    let upstream = Upstream::start().await;
    let config = format!(
        "{}{}",
        pool(
            "f",
            TOKEN,
            &format!("mode = \"filter\"\nupstream = \"{}\"\n", upstream.url())
        ),
        route_all("f")
    );
    let hub = HubProc::start(Transport::Tcp, &config);
    let _w = hub.filter_worker("f", TOKEN, 2, "df");
    let c = client();
    wait_ready(&c, &hub.url("/ready")).await;

    let a = get(&c, &hub.url("/pass/new")).await;
    assert_eq!(a.status, 200, "{a:?}");
    let id = a.header("x-request-id").expect("no id").to_string();
    let seen = upstream.seen("/pass/new").pop().expect("upstream saw it");
    assert_eq!(seen.headers["x-request-id"], id.as_str());
    let trace = seen.headers["traceparent"].to_str().unwrap();
    assert!(is_new_traceparent(trace), "{trace}");

    let req = http::Request::get(hub.url("/pass/kept"))
        .header("x-request-id", "from-client")
        .body(Full::default())
        .unwrap();
    let a = send(&c, req).await;
    assert_eq!(a.header("x-request-id"), Some("from-client"));
    let seen = upstream.seen("/pass/kept").pop().expect("upstream saw it");
    assert_eq!(
        seen.headers
            .get_all("x-request-id")
            .iter()
            .collect::<Vec<_>>(),
        ["from-client"]
    );
}

/// Whether `value` looks as the hub's traceparents do: version 00, a 32-digit trace id, a
/// 16-digit parent id, sampled.
fn is_new_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && lower_hex(parts[1], 32)
        && lower_hex(parts[2], 16)
        && parts[3] == "01"
}

/// The `traceparent` and `tracestate` a worker saw for a request with `fields`.
async fn trace_seen(c: &HttpClient, hub: &HubProc, fields: &[(&str, &str)]) -> (String, String) {
    let mut b = http::Request::get(hub.url("/inspect"));
    for (name, value) in fields {
        b = b.header(*name, *value);
    }
    let a = send(c, b.body(Full::default()).unwrap()).await;
    assert_eq!(a.status, 200, "{a:?}");
    let headers = &a.json()["headers"];
    let field = |name: &str| headers[name].as_str().unwrap_or("").to_string();
    (field("traceparent"), field("tracestate"))
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_get_the_clients_traceparent_or_one_the_hub_made() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!("{}{}", pool("demo", TOKEN, ""), route_all("demo")),
    );
    let _w = hub.worker("demo", TOKEN, 2, "w");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;

    let (first, state) = trace_seen(&c, &hub, &[]).await;
    assert!(is_new_traceparent(&first), "{first}");
    assert_eq!(state, "");
    let (second, _) = trace_seen(&c, &hub, &[]).await;
    assert!(is_new_traceparent(&second), "{second}");
    assert_ne!(first[3..35], second[3..35], "two requests, one trace id");

    let client_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let kept = [("traceparent", client_trace), ("tracestate", "vendor=x")];
    assert_eq!(
        trace_seen(&c, &hub, &kept).await,
        (client_trace.to_string(), "vendor=x".to_string())
    );

    // An unusable one (here an all-zero trace id) starts a new trace, without the state.
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let broken = [("traceparent", zero), ("tracestate", "vendor=x")];
    let (replaced, state) = trace_seen(&c, &hub, &broken).await;
    assert!(is_new_traceparent(&replaced), "{replaced}");
    assert_eq!(state, "", "a new trace carries no tracestate");
}
