//! End to end: the admin API on a real hub process, with real workers and clients.

mod support;

use serde_json::json;
use support::*;

const TOKEN: &str = "t0ken";

/// A hub with the admin API on and one pool `a` that `/hello` goes to.
fn hub_with_admin(extra: &str) -> HubProc {
    let config = format!(
        "{}{}[[route]]\nname = \"hello\"\npath = \"/hello\"\npool = \"a\"\n{extra}",
        admin_table(),
        pool("a", TOKEN, ""),
    );
    HubProc::start(Transport::Tcp, &config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_token_is_refused() {
    let hub = hub_with_admin("");
    let admin = AdminClient::new(&hub);
    for path in ["/pools", "/metrics", "/nowhere"] {
        let a = admin.call("GET", path, None, None).await;
        assert_eq!(a.status, 401, "{path}: {a:?}");
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        assert!(a.json()["error"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"));
        let a = admin.call("GET", path, Some("wrong"), None).await;
        assert_eq!(a.status, 401, "{path}: {a:?}");
        assert_eq!(a.json()["error"], "wrong token");
    }
    // A change without the token changes nothing.
    let a = admin
        .call("DELETE", "/routes/hello", Some("adm1n-t0ke"), None)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        admin.get("/routes").await.json()["routes"][0]["name"],
        "hello"
    );
    hub.log.wait_for("admin request refused", 7);

    assert_eq!(admin.get("/pools").await.status, 200);
    let a = admin.get("/nowhere").await;
    assert_eq!(a.status, 404, "{a:?}");
    let a = admin.call("POST", "/pools", Some(ADMIN_TOKEN), None).await;
    assert_eq!(a.status, 405, "{a:?}");
    assert_eq!(a.header("allow"), Some("GET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_and_route_added_at_run_time_serve_and_their_removal_lets_requests_finish() {
    let hub = hub_with_admin("");
    let admin = AdminClient::new(&hub);
    let c = client();
    assert_eq!(get(&c, &hub.url("/sleep?ms=1")).await.status, 404);

    let a = admin
        .put(
            "/pools/b",
            json!({ "token": "tb", "timeout": "30s", "queue_limit": 100 }),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json()["created"], true);
    let a = admin
        .put("/routes/sleepy", json!({ "path_prefix": "/", "pool": "b" }))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.json()["position"], 1);

    let pools = admin.get("/pools").await.json();
    let b = &pools["pools"][1];
    assert_eq!(b["name"], "b");
    assert_eq!(b["config"]["timeout"], "30s");
    assert!(
        b["config"].get("token").is_none(),
        "tokens are never shown: {b}"
    );

    let _wb = hub.worker("b", "tb", 1, "wb");
    wait_ready(&c, &hub.url("/sleep?ms=1")).await;
    let answer = get(&c, &hub.url("/sleep?ms=1")).await;
    assert_eq!(answer.json()["worker"], "wb");
    let workers = admin.get("/workers").await.json();
    let w = &workers["workers"][0];
    assert_eq!(
        (w["pool"].as_str(), w["name"].as_str()),
        (Some("b"), Some("wb"))
    );
    assert_eq!(w["draining"], false);

    // When the pool and its route go, one request is in flight (its body held open) and
    // one waits in the queue behind it.
    let (slow, body) = spawn_held_post(hub.url("/inspect"));
    admin
        .wait_until("/workers", |w| w["workers"][0]["in_flight"] == 1)
        .await;
    let queued = spawn_get(&c, hub.url("/sleep?ms=1"));
    admin.wait_until("/pools/b", |p| p["queued"] == 1).await;
    let a = admin.delete("/pools/b").await;
    assert_eq!(a.status, 409, "a route still names the pool: {a:?}");
    assert!(
        a.json()["error"].as_str().unwrap().contains("sleepy"),
        "{a:?}"
    );
    let a = admin.delete("/pools/b?with_routes=true").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["deleted_routes"], json!(["sleepy"]));

    assert_eq!(get(&c, &hub.url("/sleep?ms=1")).await.status, 404);
    let pools = admin.get("/pools").await.json();
    assert_eq!(pools["pools"][1]["name"], "b");
    assert_eq!(pools["pools"][1]["state"], "removing", "{pools}");
    assert_eq!(pools["pools"][1]["in_flight"], 1, "{pools}");
    assert_eq!(pools["pools"][1]["queued"], 1, "{pools}");
    assert_eq!(hub.log.count("removed pool is empty"), 0);
    drop(body);
    let answer = slow.await.unwrap();
    assert_eq!(
        answer.status, 200,
        "the request in flight finished: {answer:?}"
    );
    assert_eq!(answer.json()["worker"], "wb");
    let answer = queued.await.unwrap();
    assert_eq!(
        answer.status, 200,
        "the queued request was served: {answer:?}"
    );
    assert_eq!(answer.json()["worker"], "wb");
    // Once empty, the removed pool's workers are told DRAIN and let go.
    hub.log.wait_for("removed pool is empty", 1);
    admin
        .wait_until("/workers", |w| w["workers"].as_array().unwrap().is_empty())
        .await;
    assert_eq!(
        admin.get("/pools").await.json()["pools"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(admin.delete("/pools/b").await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_changes_are_refused_with_the_reason_and_change_nothing() {
    let hub = hub_with_admin("");
    let admin = AdminClient::new(&hub);
    let before = (
        admin.get("/pools").await.body,
        admin.get("/routes").await.body,
    );

    let cases = [
        (
            "/pools/x",
            json!({ "token": "t", "timeout": "30" }),
            400,
            "pool \"x\".timeout: invalid duration \"30\"",
        ),
        (
            "/pools/x",
            json!({ "token": "t", "queue_limt": 3 }),
            400,
            "unknown field `queue_limt`",
        ),
        (
            "/pools/x",
            json!({ "timeout": "1s" }),
            400,
            "neither a token nor allowed_workers",
        ),
        (
            "/pools/x",
            json!({ "name": "y", "token": "t" }),
            400,
            "differs from the path",
        ),
        (
            "/pools/bad%20name",
            json!({ "token": "t" }),
            400,
            "names use only",
        ),
        (
            "/routes/r",
            json!({ "pool": "nope" }),
            400,
            "no pool named \"nope\"",
        ),
        (
            "/routes/r",
            json!({ "path": "x", "pool": "a" }),
            400,
            "route \"r\".path: path \"x\" must start with '/'",
        ),
        (
            "/routes/r",
            json!({ "pool": "a", "position": 5 }),
            400,
            "position 5 is past the end",
        ),
        (
            "/routes/r",
            json!({ "pool": "a", "position": 0 }),
            400,
            "can never match",
        ),
        (
            "/routes/r",
            json!({ "pool": "a", "method": null }),
            400,
            "TOML cannot hold",
        ),
    ];
    for (path, body, status, why) in cases {
        let a = admin.put(path, body.clone()).await;
        assert_eq!(a.status, status, "{path} {body}: {a:?}");
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{path} {body}: {error}");
    }
    for (raw, why) in [("{", "invalid JSON"), ("[1]", "expected a JSON object")] {
        let req = http::Request::put(format!("{}/pools/x", admin.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(raw)))
            .unwrap();
        let a = send(&admin.client, req).await;
        assert_eq!(a.status, 400, "{a:?}");
        assert!(a.json()["error"].as_str().unwrap().contains(why), "{a:?}");
    }
    let a = admin.delete("/pools/a").await;
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a.json()["error"].as_str().unwrap().contains("only pool"));
    assert_eq!(admin.delete("/routes/nope").await.status, 404);
    assert_eq!(admin.post("/workers/123456/drain").await.status, 404);
    assert_eq!(admin.post("/workers/x/drain").await.status, 404);

    let after = (
        admin.get("/pools").await.body,
        admin.get("/routes").await.body,
    );
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_are_replaced_in_place_or_placed_where_asked() {
    let hub = hub_with_admin(&format!(
        "{}[[route]]\nname = \"rest\"\npool = \"b\"\n",
        pool("b", "tb", "")
    ));
    let admin = AdminClient::new(&hub);
    let _wa = hub.worker("a", TOKEN, 1, "wa");
    let _wb = hub.worker("b", "tb", 1, "wb");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    wait_ready(&c, &hub.url("/stats")).await;
    assert_eq!(get(&c, &hub.url("/stats")).await.json()["worker"], "wb");

    // Appending after the catch-all would never match: the position puts it first.
    let a = admin
        .put(
            "/routes/stats",
            json!({ "path": "/stats", "pool": "a", "position": 0 }),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(get(&c, &hub.url("/stats")).await.json()["worker"], "wa");
    // Replaced in place: same position, new pool.
    let a = admin
        .put("/routes/stats", json!({ "path": "/stats", "pool": "b" }))
        .await;
    assert_eq!(
        (a.status, a.json()["position"].as_u64()),
        (200, Some(0)),
        "{a:?}"
    );
    assert_eq!(get(&c, &hub.url("/stats")).await.json()["worker"], "wb");
    let names: Vec<String> = admin.get("/routes").await.json()["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["stats", "hello", "rest"]);

    // Replacing a pool's settings keeps its workers; the token may be left out.
    let a = admin.put("/pools/b", json!({ "queue_limit": 7 })).await;
    assert_eq!(a.status, 200, "{a:?}");
    let pools = admin.get("/pools/b").await.json();
    assert_eq!(pools["config"]["queue_limit"], 7);
    assert_eq!(pools["workers"], 1);
    assert_eq!(get(&c, &hub.url("/stats")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_reload_is_refused_and_service_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let head = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n{}",
        admin_table()
    );
    let good = format!("{head}{}{}", pool("a", TOKEN, ""), route_all("a"));
    std::fs::write(&path, &good).unwrap();
    let hub = HubProc::from_config_file(&path);
    let admin = AdminClient::new(&hub);
    let _w = hub.worker("a", TOKEN, 2, "wa");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let before = admin.get("/pools").await.json();

    std::fs::write(
        &path,
        format!("{head}{}", pool("a", TOKEN, "timeout = \"30\"")),
    )
    .unwrap();
    let a = admin.post("/reload").await;
    assert_eq!(a.status, 400, "{a:?}");
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("hub.toml:") && error.contains("pool[0].timeout: invalid duration"),
        "{error}"
    );
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
    // SIGHUP reads the same broken file: logged, and nothing changes.
    hub.signal(libc::SIGHUP);
    hub.log.wait_for("the running configuration stays", 1);
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
    let config_of = |v: &serde_json::Value| v["pools"][0]["config"].clone();
    assert_eq!(
        config_of(&admin.get("/pools").await.json()),
        config_of(&before)
    );

    // What cannot change live is refused as a whole.
    let moved = good.replace(
        "listen = \"127.0.0.1:0\"\nworkers",
        "listen = \"127.0.0.1:1\"\nworkers",
    );
    std::fs::write(&path, &moved).unwrap();
    let a = admin.post("/reload").await;
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("hub.listen cannot change"));

    // A good file applies, over the admin API's edits.
    admin
        .put(
            "/routes/extra",
            json!({ "path": "/x", "pool": "a", "position": 0 }),
        )
        .await;
    std::fs::write(&path, good.replace("[[pool]]", "[[pool]]\nqueue_limit = 5")).unwrap();
    let a = admin.post("/reload").await;
    assert_eq!(a.status, 200, "{a:?}");
    let pools = admin.get("/pools").await.json();
    assert_eq!(pools["pools"][0]["config"]["queue_limit"], 5);
    assert_eq!(pools["pools"][0]["workers"], 1, "the pool kept its worker");
    assert_eq!(
        admin.get("/routes").await.json()["routes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
    // And SIGHUP applies a good file too.
    std::fs::write(&path, good.replace("[[pool]]", "[[pool]]\nqueue_limit = 6")).unwrap();
    hub.signal(libc::SIGHUP);
    admin
        .wait_until("/pools", |p| p["pools"][0]["config"]["queue_limit"] == 6)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_one_worker_finishes_its_requests_and_sends_it_nothing_new() {
    let hub = hub_with_admin("[[route]]\nname = \"rest\"\npath_prefix = \"/\"\npool = \"a\"\n");
    let admin = AdminClient::new(&hub);
    let c = client();
    let w1 = hub.worker("a", TOKEN, 4, "w1");
    wait_ready(&c, &hub.url("/hello")).await;
    let (slow, body) = spawn_held_post(hub.url("/inspect"));
    admin
        .wait_until("/workers", |w| w["workers"][0]["in_flight"] == 1)
        .await;
    let _w2 = hub.worker("a", TOKEN, 4, "w2");
    admin
        .wait_until("/workers", |w| w["workers"].as_array().unwrap().len() == 2)
        .await;
    let workers = admin.get("/workers").await.json();
    let id = workers["workers"][0]["id"].as_u64().unwrap();
    assert_eq!(workers["workers"][0]["name"], "w1");

    let a = admin.post(&format!("/workers/{id}/drain")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["in_flight"], 1);
    w1.log.wait_for("hub is draining", 1);
    for _ in 0..8 {
        let a = get(&c, &hub.url("/sleep?ms=1")).await;
        assert_eq!(a.json()["worker"], "w2", "{a:?}");
    }
    assert_eq!(
        admin.get("/workers").await.json()["workers"][0]["in_flight"],
        1
    );
    drop(body);
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["worker"], "w1");
    admin
        .wait_until("/workers", |w| {
            let w1 = &w["workers"][0];
            w1["draining"] == true && w1["in_flight"] == 0 && w1["credits"] == 0
        })
        .await;
}
