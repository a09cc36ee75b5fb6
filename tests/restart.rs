//! A hub that stops under load or dies: SIGTERM lets every request in flight finish, and
//! workers whose hub was killed serve it again once it is back.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;

const TOKEN: &str = "t";

/// A config with the admin API and pool `p`, which every path goes to.
fn pool_and_admin() -> String {
    format!(
        "{}{}{}",
        admin_table(),
        pool("p", TOKEN, ""),
        route_all("p")
    )
}

/// How a GET of `url` ended: its status, or how it failed. The body is read to its end, so
/// a response cut short counts as a failure.
async fn outcome(client: &HttpClient, url: &str) -> String {
    let req = http::Request::get(url)
        .body(Full::<Bytes>::default())
        .unwrap();
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("body failed: {e}"))?;
        Ok::<_, String>(status.to_string())
    };
    match tokio::time::timeout(HANG_GUARD, answer).await {
        Ok(Ok(status)) | Ok(Err(status)) => status,
        Err(_) => "hung".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_every_one_of_1000_requests_in_flight_finish() {
    const WORKERS: u32 = 4;
    const CREDITS: u32 = 250;
    const REQUESTS: u32 = WORKERS * CREDITS;
    // Long enough for all of them to reach a worker before the first ends: the test waits
    // for that (the pool's `in_flight`), and only then sends SIGTERM.
    const SLEEP_MS: u32 = 10_000;

    let mut hub = HubProc::start(Transport::Tcp, &pool_and_admin());
    let workers: Vec<WorkerProc> = (0..WORKERS)
        .map(|i| hub.worker("p", TOKEN, CREDITS, &format!("w{i}")))
        .collect();
    let admin = AdminClient::new(&hub);
    admin
        .wait_until("/pools/p", |p| {
            p["workers"] == WORKERS && p["credits_free"] == REQUESTS
        })
        .await;

    let client = client();
    let url = hub.url(&format!("/sleep?ms={SLEEP_MS}"));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
            tokio::spawn(async move {
                let outcome = outcome(&client, &url).await;
                answered.fetch_add(1, Ordering::SeqCst);
                outcome
            })
        })
        .collect();
    admin
        .wait_until("/pools/p", |p| p["in_flight"] == REQUESTS)
        .await;
    let all_in_flight = started.elapsed();
    hub.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let answered_before = answered.load(Ordering::SeqCst);

    let mut statuses = BTreeMap::<String, u32>::new();
    for request in requests {
        *statuses.entry(request.await.unwrap()).or_default() += 1;
    }
    let last_answer = signalled.elapsed();
    let exited_well = tokio::task::spawn_blocking(move || hub.wait_exit())
        .await
        .unwrap();
    eprintln!(
        "{REQUESTS} requests all in flight {all_in_flight:?} after the first was sent; \
         {answered_before} answered when SIGTERM was sent; answers by status {statuses:?}, \
         the last {last_answer:?} after SIGTERM"
    );
    assert_eq!(statuses, BTreeMap::from([("200".to_string(), REQUESTS)]));
    assert!(exited_well, "the hub did not exit cleanly after draining");
    drop(workers);
}

/// Sends `/sleep` requests, as many at a time as `names` have credits, until each worker of
/// `names` has answered one; returns how long after `since` each first answered.
async fn served_by_each(
    client: &HttpClient,
    hub: &HubProc,
    names: &BTreeSet<String>,
    at_once: usize,
    since: Instant,
) -> BTreeMap<String, Duration> {
    let url = hub.url("/sleep?ms=50");
    let mut first_served = BTreeMap::new();
    while first_served.len() < names.len() {
        assert!(
            since.elapsed() < HANG_GUARD,
            "only {first_served:?} of {names:?} served"
        );
        let batch: Vec<_> = (0..at_once)
            .map(|_| spawn_get(client, url.clone()))
            .collect();
        for answer in batch {
            let answer = answer.await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            let name = answer.json()["worker"].as_str().unwrap().to_string();
            assert!(names.contains(&name), "{name} answered");
            first_served.entry(name).or_insert_with(|| since.elapsed());
        }
    }
    first_served
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_serve_a_hub_restarted_after_sigkill_on_the_same_socket() {
    const WORKERS: usize = 3;
    const CREDITS: u32 = 2;
    // Steps of 100, 200, 400, 800 ms, then 1 s: by its sixth failed dial, a worker pauses
    // for its longest.
    const DIALS_BEFORE_RESTART: usize = 6;
    // The same path each time: a Unix socket, which the new hub takes over from the dead
    // one (a TCP port could be taken by anyone in between).
    let transport = match env_transport() {
        Some(Transport::Shm) => Transport::Shm,
        _ => Transport::Unix,
    };
    let mut first = HubProc::start_exact(transport, "", &pool_and_admin());
    let mut workers: Vec<WorkerProc> = (0..WORKERS)
        .map(|i| first.worker("p", TOKEN, CREDITS, &format!("w{i}")))
        .collect();
    let pids: Vec<u32> = workers.iter().map(|w| w.child.id()).collect();
    let names: BTreeSet<String> = (0..WORKERS).map(|i| format!("w{i}")).collect();
    let at_once = WORKERS * CREDITS as usize;
    AdminClient::new(&first)
        .wait_until("/pools/p", |p| p["workers"] == WORKERS)
        .await;
    let client = client();
    served_by_each(&client, &first, &names, at_once, Instant::now()).await;

    let _ = first.child.kill();
    let _ = first.child.wait();
    let killed = Instant::now();
    // The hub stays away until each worker has failed DIALS_BEFORE_RESTART dials, so that
    // its pauses between dials have grown to their longest.
    for worker in &workers {
        while worker.log.count("cannot reach hub") < DIALS_BEFORE_RESTART {
            assert!(killed.elapsed() < HANG_GUARD, "{}", worker.log.text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let config = first.dir.path().join("hub.toml");
    let second = HubProc::from_config_file(&config);
    let listening = Instant::now();
    assert_eq!(second.worker_addr, first.worker_addr);

    let admin = AdminClient::new(&second);
    let mut connected = BTreeMap::new();
    while connected.len() < WORKERS {
        assert!(
            listening.elapsed() < HANG_GUARD,
            "only {connected:?} reconnected"
        );
        let listed = admin.get("/workers").await.json();
        for worker in listed["workers"].as_array().unwrap() {
            let name = worker["name"].as_str().unwrap().to_string();
            connected.entry(name).or_insert_with(|| listening.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let served = served_by_each(&client, &second, &names, at_once, listening).await;
    eprintln!(
        "new hub listening {:?} after the SIGKILL, once each worker had failed \
         {DIALS_BEFORE_RESTART} dials; after it listened, workers connected at {connected:?} \
         and first served at {served:?}",
        listening - killed
    );
    for (worker, pid) in workers.iter_mut().zip(pids) {
        assert_eq!(worker.child.id(), pid);
        assert!(
            worker.child.try_wait().unwrap().is_none(),
            "worker {pid} exited:\n{}",
            worker.log.text()
        );
    }
}
