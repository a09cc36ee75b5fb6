//! The supervisor, end to end: a real hub starts, restarts and stops real programs.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// A `[[program]]` table.
fn program(name: &str, pool: &str, command: &str, extra: &str) -> String {
    format!("[[program]]\nname = \"{name}\"\npool = \"{pool}\"\ncommand = {command}\n{extra}\n")
}

/// The value of `key=` in each log line that contains `needle`, in order.
fn logged(log: &Log, needle: &str, key: &str) -> Vec<String> {
    log.text()
        .lines()
        .filter(|line| line.contains(needle))
        .filter_map(|line| {
            let value = line.split(&format!(" {key}=")).nth(1)?;
            Some(value.split(' ').next()?.trim_matches('"').to_string())
        })
        .collect()
}

fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses; Z is a zombie.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_dead(pid: u32) {
    let start = Instant::now();
    while is_alive(pid) {
        assert!(start.elapsed() < HANG_GUARD, "process {pid} never exited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_crash_looping_program_backs_off_and_is_marked_failed() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}",
            pool("p", "t", "queue_timeout = \"200ms\""),
            route_all("p"),
            program(
                "crasher",
                "p",
                r#"["sh", "-c", "exit 3"]"#,
                "max_restarts = 4\nwithin = \"1m\"\nbackoff = \"20ms..100ms\""
            )
        ),
    );
    hub.log.wait_for("program failed", 1);
    // Five starts: the first and four restarts; then the fifth crash is over the intensity.
    assert_eq!(
        hub.log.count("program instance started"),
        5,
        "{}",
        hub.log.text()
    );
    assert_eq!(hub.log.count("program instance crashed"), 5);
    let delays = logged(&hub.log, "restarting program instance", "delay");
    assert_eq!(
        delays,
        ["20ms", "40ms", "80ms", "100ms"],
        "{}",
        hub.log.text()
    );
    assert!(hub.log.text().contains("exit status: 3"));
    // The hub carries on: it still answers (no worker, so the queue times out or 503s).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(get(&client(), &hub.url("/x")));
    assert_eq!(answer.status, 503);
}

#[test]
fn a_killed_instance_is_replaced_while_the_others_serve() {
    let mut hub = HubProc::start(
        Transport::Unix,
        &format!(
            "{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program(
                "demo",
                "p",
                r#"["pullman", "worker", "--app", "demo", "--concurrency", "4"]"#,
                "instances = 2\nbackoff = \"10ms..1s\""
            )
        ),
    );
    hub.log.wait_for("worker connected", 2);
    let pids: Vec<u32> = logged(&hub.log, "program instance started", "pid")
        .iter()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = client();
    rt.block_on(wait_ready(&client, &hub.url("/hello")));

    let killed_at = Instant::now();
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    // Once the hub has reaped it, every thread of it is gone and its socket closed (a
    // zombie leader in /proc can still have threads holding it).
    hub.log.wait_for("program instance crashed", 1);
    // The other instance keeps serving while the first is replaced. A request the hub
    // sends to the dead instance before it has read the end of its link fails to write on
    // the Unix socket, counts as undelivered and goes to the other instance.
    for _ in 0..20 {
        let answer = rt.block_on(get(&client, &hub.url("/hello")));
        assert_eq!(answer.status, 200, "{answer:?}\n{}", hub.log.text());
    }
    hub.log.wait_for("worker connected", 3);
    let replaced_in = killed_at.elapsed();
    let new_pid: u32 = logged(&hub.log, "program instance started", "pid")[2]
        .parse()
        .unwrap();
    assert!(!pids.contains(&new_pid));
    // The new instance serves: concurrent requests reach both instances.
    let seen = rt.block_on(async {
        let mut seen = std::collections::HashSet::new();
        let start = Instant::now();
        while !seen.contains(&format!("worker-{new_pid}")) {
            assert!(
                start.elapsed() < HANG_GUARD,
                "the new instance never served: {seen:?}"
            );
            let tasks: Vec<_> = (0..8)
                .map(|_| spawn_get(&client, hub.url("/sleep?ms=50")))
                .collect();
            for task in tasks {
                let answer = task.await.unwrap();
                assert_eq!(answer.status, 200);
                seen.insert(answer.json()["worker"].as_str().unwrap().to_string());
            }
        }
        seen
    });
    assert!(seen.contains(&format!("worker-{}", pids[1])), "{seen:?}");
    eprintln!("replacement instance connected {replaced_in:?} after the kill");

    // A drain stops the programs with SIGTERM; they exit and so does the hub.
    hub.signal(libc::SIGTERM);
    assert!(hub.wait_exit());
    wait_dead(pids[1]);
    wait_dead(new_pid);
    assert_eq!(
        hub.log.count("program instance stopped"),
        2,
        "{}",
        hub.log.text()
    );
}

#[test]
fn restart_policies_and_output_and_environment() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program(
                "once",
                "p",
                r#"["sh", "-c", "echo \"env $PULLMAN_POOL $PULLMAN_TOKEN $EXTRA\"; echo to-stderr >&2"]"#,
                "restart = \"transient\"\nenv = { EXTRA = \"x1\" }"
            ),
            program(
                "temp",
                "p",
                r#"["sh", "-c", "exit 1"]"#,
                "restart = \"temporary\""
            ),
            program(
                "missing",
                "p",
                r#"["/nonexistent/program"]"#,
                "max_restarts = 1\nbackoff = \"10ms..10ms\""
            ),
        ),
    );
    for needle in [
        "program=\"once\" instance=0 stream=\"stdout\"",
        "program=\"once\" instance=0 stream=\"stderr\"",
    ] {
        hub.log.wait_for(needle, 1);
    }
    hub.log
        .wait_for("not restarted, as its restart policy says", 2);
    hub.log.wait_for("program failed", 1);
    let text = hub.log.text();
    assert!(text.contains("env p t x1"), "{text}");
    assert!(text.contains("to-stderr"), "{text}");
    // A clean exit under `transient` and a crash under `temporary` are not restarted.
    let mut started = logged(&hub.log, "program instance started", "program");
    started.sort();
    assert_eq!(started, ["once", "temp"], "{text}");
    // A program that cannot start counts as a crash: one restart allowed, then failed.
    assert_eq!(hub.log.count("cannot start program"), 2, "{text}");
}

/// The pids of the live processes (zombies are dead) whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command name: state, parent pid, process group.
            let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            let state = fields.next();
            let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            state != Some("Z") && group == Some(pgid)
        })
        .collect()
}

/// Waits until no live process is left in group `pgid`; returns how long that took.
fn wait_group_gone(pgid: u32) -> Duration {
    let start = Instant::now();
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "group {pgid} still has live processes: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn programs_die_with_a_hub_that_is_killed() {
    // A plain program; a wrapper whose child PR_SET_PDEATHSIG never reaches; a wrapper that
    // ignores SIGTERM, as its children then do.
    let mut hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program("sleeper", "p", r#"["sleep", "600"]"#, "instances = 2"),
            program("wrapper", "p", r#"["sh", "-c", "sleep 611; true"]"#, ""),
            program(
                "deaf",
                "p",
                r#"["sh", "-c", "trap '' TERM; sleep 622; sleep 622"]"#,
                ""
            ),
        ),
    );
    hub.log.wait_for("program instance started", 4);
    let programs = logged(&hub.log, "program instance started", "program");
    let pgids: Vec<u32> = logged(&hub.log, "program instance started", "pgid")
        .iter()
        .map(|pgid| pgid.parse().unwrap())
        .collect();
    assert_eq!(pgids.len(), 4, "{}", hub.log.text());
    // Each group holds the hub's watcher and the program, and a wrapper's group its sleep.
    let mut groups = Vec::new();
    for (program, &pgid) in programs.iter().zip(&pgids) {
        let processes = if program == "sleeper" { 2 } else { 3 };
        let start = Instant::now();
        while group_members(pgid).len() < processes {
            assert!(
                start.elapsed() < HANG_GUARD,
                "group {pgid} of {program} never filled"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        groups.push((program, pgid, group_members(pgid)));
    }
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    for (program, pgid, members) in groups {
        let gone_in = wait_group_gone(pgid);
        eprintln!(
            "{program}: group {pgid}, processes {members:?}, none left {gone_in:?} after the hub's SIGKILL"
        );
    }
}

#[test]
fn the_demo_serves_through_supervised_workers_and_stops_them() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// Stops the demo if the test fails half way; its drain stops its workers.
    struct Demo(std::process::Child);
    impl Drop for Demo {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
                let _ = self.0.wait();
            }
        }
    }

    let mut demo = Demo(
        Command::new(BIN)
            .args(["demo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let demo = &mut demo.0;
    let log = Log::default();
    log.follow(demo.stderr.take().unwrap());
    // Read in a thread, to the end: a closed pipe would fail the demo's next print.
    let stdout = BufReader::new(demo.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = String::new();
    while !printed.contains("curl -H") {
        let line = lines
            .recv_timeout(HANG_GUARD)
            .unwrap_or_else(|_| panic!("no admin curl line in {printed:?}"));
        printed.push_str(&line);
        printed.push('\n');
    }
    let url = printed
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {printed:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = client();
    rt.block_on(wait_ready(&client, &url));
    assert_eq!(rt.block_on(get(&client, &url)).body, "hello from pullman\n");

    // The admin line is ready to paste: its token opens the admin API, and without it the
    // API stays shut.
    let curl = printed.lines().last().unwrap();
    let token = curl
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no token in {curl:?}"));
    let pools = curl.split_whitespace().last().unwrap();
    assert!(
        pools.starts_with("http://127.0.0.1:") && pools.ends_with("/pools"),
        "{curl:?}"
    );
    let admin_get = |token: Option<&str>| {
        let mut req = http::Request::get(pools);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        rt.block_on(send(&client, req.body(Default::default()).unwrap()))
    };
    let a = admin_get(Some(token));
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.json().to_string().contains("\"demo\""), "{a:?}");
    assert_eq!(admin_get(None).status, 401);
    log.wait_for("worker connected", 4);
    let pids: Vec<u32> = logged(&log, "program instance started", "pid")
        .iter()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 4);

    unsafe { libc::kill(demo.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < HANG_GUARD, "the demo did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", log.text());
    for pid in pids {
        wait_dead(pid);
    }
}

/// A hub with the admin API, pool `a` behind every path, and no programs.
fn hub_with_admin() -> HubProc {
    HubProc::start(
        Transport::Unix,
        &format!(
            "{}{}{}",
            admin_table(),
            pool("a", "t", "queue_timeout = \"300ms\""),
            route_all("a")
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_added_through_the_admin_api_serves_and_its_removal_lets_requests_finish() {
    let hub = hub_with_admin();
    let admin = AdminClient::new(&hub);
    let c = client();
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 503);

    let a = admin
        .put(
            "/programs/w",
            serde_json::json!({
                "pool": "a",
                "command": ["pullman", "worker", "--app", "demo", "--concurrency", "2"],
                "instances": 2,
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    wait_ready(&c, &hub.url("/hello")).await;
    admin
        .wait_until("/programs/w", |p| {
            p["state"] == "running" && p["running"] == 2
        })
        .await;
    let program = admin.get("/programs/w").await.json();
    assert_eq!(program["config"]["instances"], 2);
    assert_eq!(program["pids"].as_array().unwrap().len(), 2);
    let m = admin.metrics().await;
    assert_eq!(m.get("pullman_program_up", "program=\"w\""), 2.0);
    assert_eq!(m.get("pullman_program_failed", "program=\"w\""), 0.0);
    assert_eq!(m.types["pullman_program_restarts_total"], "counter");

    // A request in flight when the program is removed still gets its answer: the instances
    // get SIGTERM and drain.
    let (held, writer) = spawn_held_post(hub.url("/inspect"));
    admin
        .wait_until("/workers", |w| {
            w["workers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["in_flight"] == 1)
        })
        .await;
    let a = admin.delete("/programs/w").await;
    assert_eq!(a.status, 200, "{a:?}");
    hub.log.wait_for("draining in_flight=1", 1);
    drop(writer);
    assert_eq!(held.await.unwrap().status, 200);
    hub.log.wait_for("program instance stopped", 2);
    assert_eq!(
        admin.get("/programs").await.json()["programs"],
        serde_json::json!([])
    );
    assert_eq!(admin.get("/programs/w").await.status, 404);
    // No worker is left for the pool.
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_program_shows_in_the_admin_api_and_the_metrics() {
    let hub = hub_with_admin();
    let admin = AdminClient::new(&hub);
    let a = admin
        .put(
            "/programs/crasher",
            serde_json::json!({
                "pool": "a",
                "command": ["sh", "-c", "exit 7"],
                "max_restarts": 2,
                "backoff": "10ms..40ms",
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    admin
        .wait_until("/programs/crasher", |p| p["state"] == "failed")
        .await;
    let p = admin.get("/programs/crasher").await.json();
    assert_eq!(p["restarts"], 2);
    assert_eq!(p["running"], 0);
    let m = admin.metrics().await;
    assert_eq!(m.get("pullman_program_failed", "program=\"crasher\""), 1.0);
    assert_eq!(
        m.get("pullman_program_restarts_total", "program=\"crasher\""),
        2.0
    );
    assert_eq!(m.get("pullman_program_up", "program=\"crasher\""), 0.0);

    // A bad program is refused with the validator's message, and the old state stays.
    let a = admin
        .put(
            "/programs/bad",
            serde_json::json!({ "pool": "nope", "command": ["x"] }),
        )
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{a:?}"
    );
    assert_eq!(
        admin.get("/programs").await.json()["programs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Applying it again (a fixed command) starts it afresh.
    let a = admin
        .put(
            "/programs/crasher",
            serde_json::json!({ "pool": "a", "command": ["sleep", "600"] }),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    admin
        .wait_until("/programs/crasher", |p| {
            p["state"] == "running" && p["restarts"] == 0
        })
        .await;
}

#[test]
fn a_program_that_ignores_sigterm_is_killed_after_its_grace() {
    let mut hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program(
                "stubborn",
                "p",
                r#"["sh", "-c", "trap '' TERM; exec sleep 600"]"#,
                "stop_grace = \"200ms\""
            )
        ),
    );
    hub.log.wait_for("program instance started", 1);
    let pid: u32 = logged(&hub.log, "program instance started", "pid")[0]
        .parse()
        .unwrap();
    hub.signal(libc::SIGTERM);
    assert!(hub.wait_exit());
    wait_dead(pid);
    assert_eq!(
        hub.log.count("ignored SIGTERM; killing it"),
        1,
        "{}",
        hub.log.text()
    );
}

#[test]
fn an_instance_that_exits_takes_what_it_left_in_its_group() {
    let hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program(
                "leaver",
                "p",
                r#"["sh", "-c", "sleep 644 & exit 0"]"#,
                "restart = \"temporary\""
            )
        ),
    );
    hub.log
        .wait_for("not restarted, as its restart policy says", 1);
    let pgid: u32 = logged(&hub.log, "program instance started", "pgid")[0]
        .parse()
        .unwrap();
    let gone_in = wait_group_gone(pgid);
    eprintln!("the background sleep of group {pgid} gone {gone_in:?} after the instance ended");
}

#[test]
fn a_stop_gives_every_process_of_the_group_its_grace() {
    // A wrapper whose child drains on SIGTERM: the wrapper dies at once, its child takes a
    // while and then leaves a file. The hub must wait for the child, not only the wrapper.
    let dir = tempfile::tempdir().unwrap();
    let (ready, drained) = (dir.path().join("ready"), dir.path().join("drained"));
    let child = format!(
        "trap 'sleep 0.3; touch {}; exit 0' TERM; touch {}; while :; do sleep 0.05; done",
        drained.display(),
        ready.display()
    );
    let mut hub = HubProc::start(
        Transport::Tcp,
        &format!(
            "{}{}{}",
            pool("p", "t", ""),
            route_all("p"),
            program(
                "wrapper",
                "p",
                r#"["sh", "-c", "sh -c \"$CHILD\" & wait"]"#,
                &format!("stop_grace = \"30s\"\nenv = {{ CHILD = {child:?} }}")
            )
        ),
    );
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < HANG_GUARD, "{}", hub.log.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    hub.signal(libc::SIGTERM);
    assert!(hub.wait_exit());
    assert!(drained.exists(), "{}", hub.log.text());
    assert_eq!(hub.log.count("ignored SIGTERM; killing it"), 0);
}
