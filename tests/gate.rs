//! Gates end to end: a worker whose gate is closed takes no request, and takes them again
//! once it opens, with a real hub and a real second worker.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use pullman_worker::{RequestBody, ResponseBody, Worker};
use support::*;

const TOKEN: &str = "t0ken";

/// The `/workers` entry of the worker named `name`.
fn worker_named<'a>(workers: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    workers["workers"]
        .as_array()?
        .iter()
        .find(|w| w["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_gate_takes_no_request_and_an_opened_one_does() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}",
            admin_table(),
            pool("demo", TOKEN, "queue_timeout = \"60s\"\ntimeout = \"60s\""),
            route_all("demo")
        ),
    );
    let admin = AdminClient::new(&hub);

    // Worker A, in this process: its gate is a flag the test sets.
    let open = Arc::new(AtomicBool::new(false));
    let served_by_a = Arc::new(AtomicUsize::new(0));
    let gate = {
        let open = open.clone();
        move || {
            let is = open.load(Ordering::SeqCst);
            async move { is }
        }
    };
    let handler = {
        let served = served_by_a.clone();
        move |_req: http::Request<RequestBody>| {
            served.fetch_add(1, Ordering::SeqCst);
            async { http::Response::new(ResponseBody::from("gated")) }
        }
    };
    let worker_a = Worker::builder()
        .hub(hub.worker_addr.parse().unwrap())
        .pool("demo")
        .token(TOKEN)
        .name("gated")
        .concurrency(1)
        .shm(hub.transport == Transport::Shm)
        .gate(gate)
        .build();
    let worker_a = tokio::spawn(worker_a.run(handler, std::future::pending()));
    // Worker B, the demo app in a process of its own, one request at a time.
    let _b = hub.worker("demo", TOKEN, 1, "wb");
    admin
        .wait_until("/workers", |w| {
            worker_named(w, "gated").is_some()
                && worker_named(w, "wb").is_some_and(|b| b["credits"] == 1)
        })
        .await;
    assert_eq!(
        worker_named(&admin.get("/workers").await.json(), "gated").unwrap()["credits"],
        0,
        "the gated worker granted credits"
    );

    // While B serves, everything goes to B.
    let c = client();
    for _ in 0..10 {
        let a = get(&c, &hub.url("/stats")).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["worker"], "wb");
    }

    // B busy with a request the test holds open: the next one waits in the queue rather
    // than go to A, which has room but a closed gate.
    let (held, writer) = spawn_held_post(hub.url("/inspect"));
    admin
        .wait_until("/workers", |w| {
            worker_named(w, "wb").is_some_and(|b| b["in_flight"] == 1)
        })
        .await;
    let queued = spawn_get(&c, hub.url("/stats"));
    admin.wait_until("/pools/demo", |p| p["queued"] == 1).await;
    assert_eq!(served_by_a.load(Ordering::SeqCst), 0);

    // The gate opens: A grants its credit and takes the waiting request, B still busy.
    open.store(true, Ordering::SeqCst);
    let queued = queued.await.unwrap();
    assert_eq!(queued.status, 200, "{queued:?}");
    assert_eq!(&queued.body[..], b"gated");
    assert_eq!(served_by_a.load(Ordering::SeqCst), 1);

    drop(writer);
    assert_eq!(held.await.unwrap().status, 200);
    worker_a.abort();
}
