//! End to end: POTHEAD's own worker (`python -m pothead.worker`, pothead 0.10.6 with
//! werkzeug 2.2.3) serving `bench/pothead_app.py` behind pullman's PTTH port, unchanged.
//!
//! The worker runs from a Python venv: `$PULLMAN_POTHEAD_PYTHON`, else `bench/.venv`
//! (which `bench/setup.sh` and `.ci/run` make). Without one these tests say so and pass,
//! unless `PULLMAN_REQUIRE_POTHEAD=1` (as `.ci/run` sets), where a missing venv fails them.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

/// The Python with POTHEAD installed, or `None` (after saying why) when there is none and
/// none is required.
fn pothead_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PULLMAN_POTHEAD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/.venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import pothead.worker"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(python);
    }
    let required = std::env::var("PULLMAN_REQUIRE_POTHEAD").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{} cannot import pothead.worker: run bench/setup.sh or set PULLMAN_POTHEAD_PYTHON",
        python.display()
    );
    eprintln!(
        "skipped: no POTHEAD venv at {} (bench/setup.sh makes one)",
        python.display()
    );
    None
}

/// One `python -m pothead.worker` process with one slot, killed when dropped.
struct Pothead(Child);

impl Pothead {
    fn start(python: &PathBuf, ptth: &str, name: &str, extra: &[&str]) -> Pothead {
        let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench");
        let child = Command::new(python)
            .args(["-m", "pothead.worker", "--connect", ptth, "--workers", "1"])
            .args(extra)
            .arg("pothead_app:app")
            .current_dir(bench)
            // Else each worker waits about a second before every connection to a hub it
            // already holds one to.
            .env("LOAD_BALANCER_CONNECTION_DELAY_BASE", "0")
            .env("POTHEAD_APP_NAME", name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Pothead(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Pothead {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `n` PTTH connections wait in the pool.
async fn wait_free_slots(admin: &AdminClient, n: u64) {
    admin
        .wait_until("/pools/legacy", |p| p["credits_free"] == n)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_statuses_and_fields_cross_unchanged() {
    let Some(python) = pothead_python() else {
        return;
    };
    let (hub, ptth) = ptth_hub("queue_timeout = \"60s\"");
    let admin = AdminClient::new(&hub);
    let _workers: Vec<Pothead> = (0..2)
        .map(|i| Pothead::start(&python, &ptth, &format!("w{i}"), &[]))
        .collect();
    wait_free_slots(&admin, 2).await;
    let c = client();

    let a = get(&c, &hub.url("/hello")).await;
    assert_eq!((a.status, &a.body[..]), (200, &b"hello from pullman\n"[..]));

    let upload: Vec<u8> = (0..1 << 20).map(|i| (i * 13 % 251) as u8).collect();
    let req = http::Request::post(hub.url("/echo"))
        .header("content-type", "application/x-test")
        .body(Full::new(Bytes::from(upload.clone())))
        .unwrap();
    let a = send(&c, req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/x-test"));
    assert!(
        a.body == upload,
        "the 1 MiB body came back different ({} bytes)",
        a.body.len()
    );

    let a = get(&c, &hub.url("/status?code=201")).await;
    assert_eq!((a.status, a.header("x-app")), (201, Some("pothead")));
    assert_eq!(&a.body[..], b"status 201\n");
    let a = get(&c, &hub.url("/no-such-route")).await;
    assert_eq!(a.status, 404);
    assert_eq!(&a.body[..], b"no such demo route\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_slot_workers_never_run_two_requests_at_once() {
    let Some(python) = pothead_python() else {
        return;
    };
    let (hub, ptth) = ptth_hub("queue_timeout = \"60s\"");
    let admin = AdminClient::new(&hub);
    let _workers: Vec<Pothead> = (0..4)
        .map(|i| Pothead::start(&python, &ptth, &format!("w{i}"), &[]))
        .collect();
    wait_free_slots(&admin, 4).await;
    let c = client();
    let pending: Vec<_> = (0..20)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=50")))
        .collect();
    let mut served_by = std::collections::BTreeMap::<String, u32>::new();
    for p in pending {
        let a = p.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        let answer = a.json();
        assert_eq!(answer["inflight"], 1, "a worker ran two at once: {answer}");
        *served_by
            .entry(answer["worker"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(served_by.values().sum::<u32>(), 20);
    assert!(served_by.len() > 1, "one worker served all: {served_by:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_gets_its_client_a_502_and_the_others_are_served() {
    let Some(python) = pothead_python() else {
        return;
    };
    let (hub, ptth) = ptth_hub("queue_timeout = \"60s\"");
    let admin = AdminClient::new(&hub);
    let mut doomed = Pothead::start(&python, &ptth, "doomed", &[]);
    wait_free_slots(&admin, 1).await;
    let c = client();
    // Long enough that only the kill can end it.
    let started = Instant::now();
    let stuck = spawn_get(&c, hub.url("/sleep?ms=120000"));
    admin
        .wait_until("/pools/legacy", |p| p["in_flight"] == 1)
        .await;
    let _other = Pothead::start(&python, &ptth, "other", &[]);
    doomed.kill9();
    let a = stuck.await.unwrap();
    assert_eq!(a.status, 502, "{a:?}");
    assert!(started.elapsed() < HANG_GUARD);

    let a = get(&c, &hub.url("/sleep?ms=1")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["worker"], "other");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_mode_303_reaches_the_client_and_its_location_serves_the_body() {
    let Some(python) = pothead_python() else {
        return;
    };
    let (hub, ptth) = ptth_hub("queue_timeout = \"60s\"");
    let admin = AdminClient::new(&hub);
    // POTHEAD takes a port number for its redirect server, not 0: a port free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let _worker = Pothead::start(&python, &ptth, "w", &["--redirect-response", &port]);
    wait_free_slots(&admin, 1).await;
    let c = client();
    let a = get(&c, &hub.url("/bytes?n=100000")).await;
    assert_eq!(a.status, 303, "{a:?}");
    let location = a
        .header("location")
        .expect("a 303 with its Location")
        .to_string();
    assert!(location.contains(&format!(":{port}/")), "{location}");

    let parked = get(&c, &location).await;
    assert_eq!(parked.status, 200);
    assert_eq!(parked.body.len(), 100_000);
    let expected: Vec<u8> = (0..100_000).map(|i| (i % 65536 % 251) as u8).collect();
    assert!(parked.body == expected, "the parked body differs");
}
