//! End to end: `/metrics` on a real hub, parsed, while requests succeed, time out and
//! overflow.

mod support;

use support::*;

const FAMILIES: [(&str, &str); 8] = [
    ("pullman_requests_total", "counter"),
    ("pullman_worker_faults_total", "counter"),
    ("pullman_queue_wait_seconds", "histogram"),
    ("pullman_service_seconds", "histogram"),
    ("pullman_queue_depth", "gauge"),
    ("pullman_workers", "gauge"),
    ("pullman_credits_free", "gauge"),
    ("pullman_in_flight", "gauge"),
];

/// Pool `tight` (one worker slot, one queue place) serves `/sleep` and `/inspect`; pool `slow` (a 300 ms
/// deadline) serves requests with an `x-slow` header.
fn config(metrics: &str) -> String {
    format!(
        "{}{metrics}{}{}{}",
        admin_table(),
        pool("tight", "tt", "queue_limit = 1"),
        pool("slow", "ts", "timeout = \"300ms\""),
        "[[route]]\nheader = { name = \"x-slow\" }\npool = \"slow\"\n[[route]]\npath_regex = \"^/(sleep|inspect)$\"\npool = \"tight\"\n",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_as_requests_succeed_time_out_and_overflow() {
    let hub = HubProc::start(Transport::Tcp, &config(""));
    let admin = AdminClient::new(&hub);
    let _wt = hub.worker("tight", "tt", 1, "wt");
    let _ws = hub.worker("slow", "ts", 1, "ws");
    let c = client();
    wait_ready(&c, &hub.url("/sleep?ms=1")).await;
    wait_metric(&admin, "pullman_credits_free", "pool=\"slow\"", 1.0).await;
    let m0 = admin.metrics().await;
    for (family, kind) in FAMILIES {
        assert_eq!(
            m0.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    assert_eq!(m0.get("pullman_workers", "pool=\"tight\""), 1.0);
    assert_eq!(m0.get("pullman_credits_free", "pool=\"tight\""), 1.0);

    // Two successes.
    for _ in 0..2 {
        assert_eq!(get(&c, &hub.url("/sleep?ms=1")).await.status, 200);
    }
    // Overflow: one request runs, one waits, the third finds the queue full.
    let (running, body) = spawn_held_post(hub.url("/inspect"));
    let m = wait_metric(&admin, "pullman_in_flight", "pool=\"tight\"", 1.0).await;
    assert_eq!(m.get("pullman_credits_free", "pool=\"tight\""), 0.0);
    let queued = spawn_get(&c, hub.url("/sleep?ms=1"));
    wait_metric(&admin, "pullman_queue_depth", "pool=\"tight\"", 1.0).await;
    let full = get(&c, &hub.url("/sleep?ms=1")).await;
    assert_eq!(full.status, 503, "{full:?}");
    drop(body);
    assert_eq!(running.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    // A deadline: the worker takes longer than the pool's 300 ms.
    let req = http::Request::get(hub.url("/sleep?ms=5000"))
        .header("x-slow", "1")
        .body(http_body_util::Full::default())
        .unwrap();
    let late = send(&c, req).await;
    assert_eq!(late.status, 504, "{late:?}");
    // No route.
    assert_eq!(get(&c, &hub.url("/nowhere")).await.status, 404);

    let m = admin.metrics().await;
    let delta = |pool: &str, outcome: &str| m.requests(pool, outcome) - m0.requests(pool, outcome);
    assert_eq!(delta("tight", "ok"), 4.0);
    assert_eq!(delta("tight", "queue_full"), 1.0);
    assert_eq!(delta("tight", "deadline"), 0.0);
    assert_eq!(delta("slow", "deadline"), 1.0);
    assert_eq!(delta("slow", "ok"), 0.0);
    assert_eq!(delta("", "no_route"), 1.0);
    assert_eq!(m.get("pullman_queue_depth", "pool=\"tight\""), 0.0);

    // Histograms: one observation per request that reached a worker, buckets cumulative.
    let count = |m: &Metrics, name: &str, pool: &str| {
        m.get(&format!("{name}_count"), &format!("pool=\"{pool}\""))
    };
    assert_eq!(
        count(&m, "pullman_service_seconds", "tight")
            - count(&m0, "pullman_service_seconds", "tight"),
        4.0
    );
    assert_eq!(
        count(&m, "pullman_queue_wait_seconds", "tight")
            - count(&m0, "pullman_queue_wait_seconds", "tight"),
        4.0
    );
    assert_eq!(
        count(&m, "pullman_service_seconds", "slow")
            - count(&m0, "pullman_service_seconds", "slow"),
        1.0
    );
    for name in ["pullman_service_seconds", "pullman_queue_wait_seconds"] {
        let buckets: Vec<f64> = m
            .samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}_bucket{{pool=\"tight\"")))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(buckets.len(), 15, "{name}");
        let inf = m.get(&format!("{name}_bucket"), "pool=\"tight\",le=\"+Inf\"");
        assert_eq!(inf, count(&m, name, "tight"));
        assert!(buckets.iter().all(|&b| b <= inf), "{name}: {buckets:?}");
    }
    // The queued request waited for the running one: not every wait is under 1 ms.
    let bucket = "pullman_queue_wait_seconds_bucket";
    let quick = m.get(bucket, "pool=\"tight\",le=\"0.001\"")
        - m0.get(bucket, "pool=\"tight\",le=\"0.001\"");
    assert!(quick <= 3.0, "{quick} of 4 waits under 1 ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_recording_off_counters_stay_still_and_gauges_still_work() {
    let hub = HubProc::start(Transport::Tcp, &config("[metrics]\nenabled = false\n"));
    let admin = AdminClient::new(&hub);
    let _wt = hub.worker("tight", "tt", 3, "wt");
    let c = client();
    wait_ready(&c, &hub.url("/sleep?ms=1")).await;
    for _ in 0..3 {
        assert_eq!(get(&c, &hub.url("/sleep?ms=1")).await.status, 200);
    }
    assert_eq!(get(&c, &hub.url("/nowhere")).await.status, 404);
    let m = admin.metrics().await;
    assert_eq!(m.requests("tight", "ok"), 0.0);
    assert_eq!(m.requests("", "no_route"), 0.0);
    assert_eq!(
        m.get("pullman_service_seconds_count", "pool=\"tight\""),
        0.0
    );
    assert_eq!(m.get("pullman_workers", "pool=\"tight\""), 1.0);
    assert_eq!(m.get("pullman_credits_free", "pool=\"tight\""), 3.0);

    // Turned on by a reload, recording starts; the pool's series carry on.
    let path = hub.dir.path().join("hub.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("enabled = false", "enabled = true")).unwrap();
    let a = admin.post("/reload").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(get(&c, &hub.url("/sleep?ms=1")).await.status, 200);
    let m = admin.metrics().await;
    assert_eq!(m.requests("tight", "ok"), 1.0);
    assert_eq!(
        m.get("pullman_service_seconds_count", "pool=\"tight\""),
        1.0
    );
}

/// Waits until a gauge reads `value`; returns the metrics that showed it.
async fn wait_metric(admin: &AdminClient, name: &str, labels: &str, value: f64) -> Metrics {
    let start = std::time::Instant::now();
    loop {
        let m = admin.metrics().await;
        if m.get(name, labels) == value {
            return m;
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "{name}{{{labels}}} never {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
