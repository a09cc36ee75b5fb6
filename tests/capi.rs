//! End to end, the C API: the C examples (examples/c) compiled with the system C and C++
//! compilers against pullman-capi's static library, run against a real hub over TCP, a
//! Unix socket and shared memory, and under valgrind.

mod support;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const TOKEN: &str = "c-t0ken";

/// The C examples, built once per test run.
struct Programs {
    hello: PathBuf,
    filter: PathBuf,
    hello_cpp: PathBuf,
    /// hello.c linked with the shared library (found by its rpath).
    hello_shared: PathBuf,
    /// hello.c and filter.c linked with a library that allocates with the system
    /// allocator (no `mimalloc` feature), whose blocks valgrind's memcheck tracks.
    memcheck_hello: PathBuf,
    memcheck_filter: PathBuf,
}

/// Builds pullman-capi's libraries in both flavours (cargo runs of their own: the test
/// binaries do not depend on them) and compiles the examples against them, with every
/// warning an error.
fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-examples");
        std::fs::create_dir_all(&out).unwrap();
        // Each build leaves its libraries at the same paths: copied away before the next.
        let built = build_libraries(root, &[]);
        let lib = out.join("libpullman_capi.a");
        std::fs::copy(&built.archive, &lib).unwrap();
        let shared_dir = out.join("shared");
        std::fs::create_dir_all(&shared_dir).unwrap();
        std::fs::copy(&built.shared, shared_dir.join("libpullman_capi.so")).unwrap();
        let sysalloc = out.join("libpullman_capi-sysalloc.a");
        let built = build_libraries(root, &["--no-default-features"]);
        std::fs::copy(built.archive, &sysalloc).unwrap();
        let compile = |compiler: &str, std: &str, source: &str, link: &[&OsStr], name: &str| {
            let exe = out.join(name);
            let status = Command::new(compiler)
                .arg(std)
                .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(root.join("crates/pullman-capi/include"))
                .arg(root.join("examples/c").join(source))
                .args(link)
                .arg("-o")
                .arg(&exe)
                .status()
                .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
            assert!(status.success(), "{compiler} failed on {source}");
            exe
        };
        let archive = |lib: &Path| -> Vec<OsString> {
            let mut args = vec![lib.as_os_str().to_owned()];
            args.extend(LINK_LIBS.iter().map(OsString::from));
            args
        };
        let (lib, sysalloc) = (archive(&lib), archive(&sysalloc));
        let lib: Vec<&OsStr> = lib.iter().map(OsString::as_os_str).collect();
        let sysalloc: Vec<&OsStr> = sysalloc.iter().map(OsString::as_os_str).collect();
        let shared = [
            OsString::from(format!("-L{}", shared_dir.display())),
            OsString::from(format!("-Wl,-rpath,{}", shared_dir.display())),
            OsString::from("-lpullman_capi"),
        ];
        let shared: Vec<&OsStr> = shared.iter().map(OsString::as_os_str).collect();
        Programs {
            hello: compile("cc", "-std=c11", "hello.c", &lib, "hello"),
            filter: compile("cc", "-std=c11", "filter.c", &lib, "filter"),
            hello_cpp: compile("c++", "-std=c++17", "hello.cpp", &lib, "hello_cpp"),
            hello_shared: compile("cc", "-std=c11", "hello.c", &shared, "hello-shared"),
            memcheck_hello: compile("cc", "-std=c11", "hello.c", &sysalloc, "hello-sysalloc"),
            memcheck_filter: compile("cc", "-std=c11", "filter.c", &sysalloc, "filter-sysalloc"),
        }
    })
}

/// The system libraries a program linking the static library needs (as `cargo rustc -p
/// pullman-capi --crate-type staticlib -- --print native-static-libs` lists them), in the
/// order docs/c-api.md gives them.
const LINK_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// Where a cargo build left the two libraries.
struct Libraries {
    archive: PathBuf,
    shared: PathBuf,
}

/// Builds the libraries with `flags`.
fn build_libraries(root: &Path, flags: &[&str]) -> Libraries {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", "pullman-capi", "--message-format=json"])
        .args(flags)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build -p pullman-capi");
    assert!(out.status.success(), "cargo build -p pullman-capi failed");
    let files: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["target"]["name"] == "pullman_capi")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .collect();
    let with = |ext: &str| {
        (files.iter())
            .find(|f| f.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("cargo built no libpullman_capi.{ext}"))
            .clone()
    };
    Libraries {
        archive: with("a"),
        shared: with("so"),
    }
}

/// A C worker process; killed if the test ends with it running.
struct CWorker {
    child: Child,
    log: Log,
}

impl CWorker {
    fn start(program: &Path, hub: &HubProc, pool: &str, flags: &[&str]) -> CWorker {
        Self::start_under(&[], program, hub, pool, flags)
    }

    /// Runs `program` under `wrapper` (valgrind, say), on `hub`'s worker port, over shared
    /// memory when the hub's transport is.
    fn start_under(
        wrapper: &[&str],
        program: &Path,
        hub: &HubProc,
        pool: &str,
        flags: &[&str],
    ) -> CWorker {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        let mut child = cmd
            .args(["--hub", &hub.worker_addr, "--pool", pool, "--token", TOKEN])
            .args((hub.transport == Transport::Shm).then_some("--shm"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Log::default();
        log.follow(child.stderr.take().unwrap());
        CWorker { child, log }
    }

    fn terminate(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for it to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for CWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn respond_pool() -> String {
    format!("{}{}", pool("c", TOKEN, ""), route_all("c"))
}

fn post(url: &str, body: Bytes) -> http::Request<Full<Bytes>> {
    http::Request::post(url).body(Full::new(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_c_serves_heads_and_10_mib_bodies_byte_exact_over_every_transport() {
    let upload = random_bytes(10 << 20);
    for transport in TRANSPORTS {
        let hub = HubProc::start_exact(transport, "", &respond_pool());
        let _worker = CWorker::start(&programs().hello, &hub, "c", &[]);
        let c = client();
        wait_ready(&c, &hub.url("/hello")).await;

        let a = get(&c, &hub.url("/hello")).await;
        assert_eq!(a.status, 200, "{transport:?}: {a:?}");
        assert_eq!(a.body, "hello from C\n");
        assert_eq!(a.header("content-type"), Some("text/plain"));
        assert!(a.header("x-request-id").is_some());

        let a = send(&c, post(&hub.url("/echo"), upload.clone())).await;
        assert_eq!(a.status, 200, "{transport:?}: {a:?}");
        let shm = if transport == Transport::Shm {
            "1"
        } else {
            "0"
        };
        assert_eq!(
            a.header("x-shm"),
            Some(shm),
            "{transport:?}: read in place?"
        );
        assert_eq!(a.header("content-length"), Some("10485760"));
        assert!(a.body == upload, "{transport:?}: the echo differs");

        let a = get(&c, &hub.url("/elsewhere")).await;
        assert_eq!(a.status, 404, "{transport:?}: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_c_never_holds_more_requests_than_its_concurrency() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &respond_pool());
    // Four pulling threads, two credits.
    let _worker = CWorker::start(&programs().hello, &hub, "c", &["--concurrency", "2"]);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let sleeps: Vec<_> = (0..8)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=200")))
        .collect();
    for sleep in sleeps {
        let a = sleep.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        let held: u32 = a.header("x-in-flight").unwrap().parse().unwrap();
        assert!(
            (1..=2).contains(&held),
            "held {held} at once with 2 credits"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_c_filter_blocks_admin_and_passes_the_rest_with_its_header() {
    let upstream = Upstream::start().await;
    for transport in TRANSPORTS {
        let config = format!(
            "{}{}",
            pool(
                "f",
                TOKEN,
                &format!("mode = \"filter\"\nupstream = \"{}\"", upstream.url())
            ),
            route_all("f")
        );
        let hub = HubProc::start_exact(transport, "", &config);
        let _filter = CWorker::start(&programs().filter, &hub, "f", &[]);
        let c = client();
        wait_ready(&c, &hub.url("/pass/ready")).await;

        let a = get(&c, &hub.url("/admin/users")).await;
        assert_eq!(a.status, 403, "{transport:?}: {a:?}");
        assert_eq!(a.body, "blocked by the C filter\n");
        assert!(
            upstream.seen("/admin").is_empty(),
            "a blocked request went upstream"
        );

        let a = send(&c, post(&hub.url("/pass/upload"), Bytes::from("the body"))).await;
        assert_eq!(a.status, 200, "{transport:?}: {a:?}");
        let seen = upstream.seen("/pass/upload");
        let seen = seen.last().expect("the upstream saw the passed request");
        assert_eq!(seen.headers["x-filtered-by"], "pullman-c", "{seen:?}");
        assert_eq!(seen.body_len, 8, "{seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_the_c_worker_and_loses_nothing_in_flight() {
    let hub = HubProc::start_exact(
        Transport::Tcp,
        "",
        &format!("{}{}", admin_table(), respond_pool()),
    );
    let admin = AdminClient::new(&hub);
    let mut worker = CWorker::start(&programs().hello, &hub, "c", &[]);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let in_flight: Vec<_> = (0..4)
        .map(|_| spawn_get(&c, hub.url("/sleep?ms=1000")))
        .collect();
    admin
        .wait_until("/workers", |w| w["workers"][0]["in_flight"] == 4)
        .await;
    worker.terminate();
    // Draining, or (on a slow machine, once its requests are done) gone already.
    admin
        .wait_until("/workers", |w| {
            w["workers"][0]["draining"] == true
                || w["workers"].as_array().is_some_and(|a| a.is_empty())
        })
        .await;
    // Sent after the drain began: it waits for the next worker.
    let later = spawn_get(&c, hub.url("/hello"));
    // The next worker. A request the draining worker had received but not yet handed to
    // one of its threads (the machine is slow, say under valgrind) goes back to the hub,
    // which gives it to this one: either way every request in flight is answered.
    let _next = CWorker::start(&programs().hello, &hub, "c", &[]);
    for a in in_flight {
        let a = a.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body, "slept\n");
    }
    assert_eq!(worker.wait(), Some(0), "{}", worker.log.text());
    worker.log.wait_for("hello: drained", 1);
    let a = later.await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_header_serves_a_cpp_worker_built_with_every_warning_an_error() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &respond_pool());
    let mut worker = CWorker::start(&programs().hello_cpp, &hub, "c", &[]);
    let c = client();
    wait_ready(&c, &hub.url("/")).await;
    let a = get(&c, &hub.url("/anything")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "hello from C++\n");
    worker.terminate();
    assert_eq!(worker.wait(), Some(0), "{}", worker.log.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_c_linked_with_the_shared_library_serves() {
    let hub = HubProc::start_exact(Transport::Unix, "", &respond_pool());
    let mut worker = CWorker::start(&programs().hello_shared, &hub, "c", &[]);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let a = get(&c, &hub.url("/hello")).await;
    assert_eq!(a.body, "hello from C\n", "{a:?}");
    worker.terminate();
    assert_eq!(worker.wait(), Some(0), "{}", worker.log.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_the_hub_refuses_says_why_and_exits() {
    let hub = HubProc::start_exact(Transport::Tcp, "", &respond_pool());
    let mut worker = CWorker::start(&programs().hello, &hub, "nosuchpool", &[]);
    assert_eq!(worker.wait(), Some(1));
    worker.log.wait_for("PM_CODE_REFUSED", 1);
    let log = worker.log.text();
    assert!(log.contains("nosuchpool"), "{log}");
}

/// Whether valgrind runs here; tests/capi.rs's valgrind runs are required when
/// `PULLMAN_REQUIRE_VALGRIND` is set (as `.ci/run` does), skipped with a note otherwise.
fn have_valgrind() -> bool {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("PULLMAN_REQUIRE_VALGRIND").is_none(),
            "valgrind is required (PULLMAN_REQUIRE_VALGRIND) but not installed"
        );
        eprintln!("skipped: valgrind is not installed");
    }
    found
}

/// valgrind memcheck: any invalid access, and any memory definitely or indirectly lost at
/// exit, makes the program exit 99.
const MEMCHECK: &[&str] = &[
    "valgrind",
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--show-leak-kinds=definite,indirect",
];

/// Sends 1,000 requests from four connections at once: `make(i)` is request `i`, and
/// `check(i, answer)` judges its answer.
async fn thousand_requests(
    make: impl Fn(usize) -> http::Request<Full<Bytes>> + Send + Sync + 'static,
    check: impl Fn(usize, &Answer) + Send + Sync + 'static,
) {
    let make = std::sync::Arc::new(make);
    let check = std::sync::Arc::new(check);
    let tasks: Vec<_> = (0..4)
        .map(|lane| {
            let (make, check) = (make.clone(), check.clone());
            let c = client();
            tokio::spawn(async move {
                for i in (lane..1000).step_by(4) {
                    let a = send(&c, make(i)).await;
                    check(i, &a);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_c_runs_1000_requests_clean_under_valgrind() {
    if !have_valgrind() {
        return;
    }
    let hub = HubProc::start_exact(Transport::Tcp, "", &respond_pool());
    let mut worker = CWorker::start_under(MEMCHECK, &programs().memcheck_hello, &hub, "c", &[]);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let front = hub.url("");
    let body = random_bytes(4096);
    let sent = body.clone();
    thousand_requests(
        move |i| match i % 10 {
            0..=5 => http::Request::get(format!("{front}/hello"))
                .body(Full::default())
                .unwrap(),
            6..=8 => post(&format!("{front}/echo"), sent.clone()),
            _ => http::Request::get(format!("{front}/nothing"))
                .body(Full::default())
                .unwrap(),
        },
        move |i, a| match i % 10 {
            0..=5 => assert_eq!(a.body, "hello from C\n", "{a:?}"),
            6..=8 => assert!(a.status == 200 && a.body == body, "echo {i}: {a:?}"),
            _ => assert_eq!(a.status, 404, "{a:?}"),
        },
    )
    .await;
    worker.terminate();
    let code = worker.wait();
    assert_eq!(code, Some(0), "valgrind:\n{}", worker.log.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_c_filter_runs_1000_requests_clean_under_valgrind() {
    if !have_valgrind() {
        return;
    }
    let upstream = Upstream::start().await;
    let config = format!(
        "{}{}",
        pool(
            "f",
            TOKEN,
            &format!("mode = \"filter\"\nupstream = \"{}\"", upstream.url())
        ),
        route_all("f")
    );
    let hub = HubProc::start_exact(Transport::Tcp, "", &config);
    let mut filter = CWorker::start_under(MEMCHECK, &programs().memcheck_filter, &hub, "f", &[]);
    let c = client();
    wait_ready(&c, &hub.url("/ready")).await;
    let front = hub.url("");
    thousand_requests(
        move |i| {
            let path = if i % 2 == 0 { "/admin/x" } else { "/pass" };
            http::Request::get(format!("{front}{path}"))
                .body(Full::default())
                .unwrap()
        },
        |i, a| {
            let status = if i % 2 == 0 { 403 } else { 200 };
            assert_eq!(a.status, status, "{i}: {a:?}");
        },
    )
    .await;
    filter.terminate();
    let code = filter.wait();
    assert_eq!(code, Some(0), "valgrind:\n{}", filter.log.text());
}
