//! Redirect mode end to end: client -> hub -> worker answers 303, and the client fetches the
//! body from the worker itself, once.

mod support;

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const TOKEN: &str = "t0ken";

/// A hub with two pools of one redirecting demo worker each: `long` (the default expiry,
/// bodies of 1000 bytes and more redirected) for everything, and `short` (parked responses
/// expire after 200 ms, every 200 redirected) for requests with `x-pool: short`.
fn hub_and_workers() -> (HubProc, WorkerProc, WorkerProc) {
    let config = format!(
        "{}{}[[route]]\nheader = {{ name = \"x-pool\", value = \"short\" }}\npool = \"short\"\n{}",
        pool("long", TOKEN, ""),
        pool("short", TOKEN, ""),
        route_all("long")
    );
    let hub = HubProc::start(Transport::Tcp, &config);
    // Over a Unix socket the worker has no address of its own to give: name it.
    let host: &[&'static str] = match hub.transport {
        Transport::Tcp => &[],
        _ => &["--redirect-host", "127.0.0.1"],
    };
    let flags = |extra: &[&'static str]| -> Vec<&'static str> {
        [["--redirect-response", "0"].as_slice(), extra, host].concat()
    };
    let long = flags(&["--redirect-min-bytes", "1000"]);
    let short = flags(&["--redirect-min-bytes", "0", "--redirect-expiry", "200ms"]);
    let wl = WorkerProc::start_with_flags(&hub.worker_addr, "long", TOKEN, 2, "wl", &long);
    let ws = WorkerProc::start_with_flags(&hub.worker_addr, "short", TOKEN, 2, "ws", &short);
    (hub, wl, ws)
}

/// The key of a `Location` on 127.0.0.1, checked to be 128 bits of hex.
fn key_of(location: &str) -> (&str, &str) {
    let rest = location
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{location}"));
    let (port, key) = rest.split_once('/').unwrap();
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{location}");
    assert_eq!(key.len(), 32, "{location}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{location}");
    (port, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_response_is_fetched_from_the_worker_once() {
    let (hub, _wl, _ws) = hub_and_workers();
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;

    // Below the threshold: answered through the hub.
    let small = get(&c, &hub.url("/bytes?n=999")).await;
    assert_eq!(small.status, 200, "{small:?}");
    assert_eq!(small.body.len(), 999);

    // At or above it: 303 to the worker, with no body.
    let redirected = get(&c, &hub.url("/bytes?n=5000")).await;
    assert_eq!(redirected.status, 303, "{redirected:?}");
    assert!(redirected.body.is_empty());
    let location = redirected.header("location").unwrap().to_string();
    let (port, key) = key_of(&location);

    let fetched = get(&c, &location).await;
    assert_eq!(fetched.status, 200, "{fetched:?}");
    assert_eq!(fetched.header("content-length"), Some("5000"));
    assert_eq!(
        fetched.header("content-type"),
        Some("application/octet-stream")
    );
    let expected: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    assert!(fetched.body == expected, "the body differs");

    // Once only.
    assert_eq!(get(&c, &location).await.status, 404);
    // A key never given.
    let wrong = format!("http://127.0.0.1:{port}/{}", "0".repeat(32));
    assert_eq!(get(&c, &wrong).await.status, 404);
    let shortened = format!("http://127.0.0.1:{port}/{}", &key[..31]);
    assert_eq!(get(&c, &shortened).await.status, 404);

    // Other statuses pass through the hub whatever their size.
    let status = get(&c, &hub.url("/status?code=201")).await;
    assert_eq!(status.status, 201, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfetched_response_expires() {
    let (hub, _wl, ws) = hub_and_workers();
    let c = client();
    let short = |path: &str| {
        http::Request::get(hub.url(path))
            .header("x-pool", "short")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let start = Instant::now();
    let redirected = loop {
        let a = send(&c, short("/bytes?n=10")).await;
        if a.status == 303 {
            break a;
        }
        assert!(start.elapsed() < HANG_GUARD, "never redirected: {a:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let location = redirected.header("location").unwrap().to_string();
    key_of(&location);
    // The worker drops it on its own, without a fetch; then the key is no more.
    ws.log.wait_for("expired", 1);
    assert_eq!(get(&c, &location).await.status, 404);
}
