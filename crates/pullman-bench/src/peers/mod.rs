//! The systems under test: how each is started (generated config in a temp dir, loopback
//! only), which process is "the middle" whose CPU and memory are measured, and when it is
//! ready.
//!
//! Every system serves the same routes from workers of the same count and concurrency:
//! - `direct`: the `server` itself, no hop (no middle process);
//! - `nginx`, `haproxy`: reverse proxies in front of `pullman-bench server` listeners, one per
//!   worker, each with the worker's concurrency limit;
//! - `pullman-tcp`, `pullman-unix`, `pullman-shm`: the hub and `pullman worker --app demo`
//!   processes, over TCP, a Unix socket, or shared memory;
//! - `pullman-filter`: a filter pool passing every request (`--app demo-filter`) to a
//!   `pullman-bench server` upstream;
//! - `pullman-tcp-baseline`, `pullman-filter-baseline`: the same two run from the `pullman`
//!   binary given by `run --baseline` (hub and workers), to compare a build with an older one
//!   in the same rounds;
//! - `pothead`: POTHEAD's hub (bound to 127.0.0.1 by `bench/pothead_hub.py`) and its WSGI
//!   worker runner on `bench/pothead_app.py`;
//! - `pullman-ptth`: pullman's hub with a `ptth://` worker port and the same POTHEAD worker
//!   processes, each of their connections one slot of the pool;
//! - `pullman-c`: pullman's hub, as for `pullman-tcp`, and `examples/c/hello.c` processes on
//!   pullman's C API (compiled by `bench/run.sh` into `target/release/c-examples/hello`);
//! - `pullman-wsgi`, `pullman-asgi`: pullman's hub, as for `pullman-tcp`, and the Python
//!   package's runners (`python -m pullman.wsgi`, `python -m pullman.asgi`) on
//!   `bench/python_app.py`;
//! - `granian`, `gunicorn`, `uvicorn`: the same Python app served directly by those servers
//!   (no middle process);
//! - `nginx-tls`, `pullman-tls`: `nginx` and `pullman-tcp` with their client listener over
//!   TLS, both serving the one certificate of the layout (`tls.rs`).

mod capi;
mod haproxy;
mod nginx;
mod pothead;
pub(crate) mod process;
mod pullman;
pub(crate) mod python;
mod tls;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use process::Proc;
pub use tls::TlsFiles;

use crate::error::Error;
use crate::load::{Conn, Proto, RequestSpec, Target, TrustedCa};
use crate::procstat::ProcessTree;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    Direct,
    /// nginx, round robin.
    Nginx,
    /// nginx `least_conn`.
    NginxLeastConn,
    /// HAProxy, round robin, no per-server limit.
    Haproxy,
    /// HAProxy `balance leastconn`, `maxconn` = the worker's concurrency per server: HAProxy
    /// queues on its side.
    HaproxyMaxconn,
    PullmanTcp,
    PullmanUnix,
    PullmanShm,
    /// A filter pool: every request goes to a pass-through filter, then to an upstream.
    PullmanFilter,
    /// `PullmanTcp` from the baseline binary (`run --baseline`).
    PullmanTcpBaseline,
    /// `PullmanFilter` from the baseline binary (`run --baseline`).
    PullmanFilterBaseline,
    Pothead,
    /// pullman's hub in front of POTHEAD's worker processes, on its PTTH port.
    PullmanPtth,
    /// pullman's hub (as `PullmanTcp`) with workers in C: `examples/c/hello.c` on the C API.
    PullmanC,
    /// pullman's hub (as `PullmanTcp`) with `python -m pullman.wsgi` workers on
    /// `bench/python_app.py`.
    PullmanWsgi,
    /// pullman's hub (as `PullmanTcp`) with `python -m pullman.asgi` workers on
    /// `bench/python_app.py`.
    PullmanAsgi,
    /// granian serving `bench/python_app.py`'s WSGI app directly.
    Granian,
    /// gunicorn's sync workers serving `bench/python_app.py`'s WSGI app directly.
    Gunicorn,
    /// uvicorn (`--http httptools`) serving `bench/python_app.py`'s ASGI app directly.
    Uvicorn,
    /// `Nginx` serving its clients over TLS (HTTP/1.1 and h2 by ALPN).
    NginxTls,
    /// `PullmanTcp` serving its clients over TLS (`[hub.tls]`).
    PullmanTls,
}

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Direct => "direct",
            System::Nginx => "nginx",
            System::NginxLeastConn => "nginx least_conn",
            System::Haproxy => "HAProxy",
            System::HaproxyMaxconn => "HAProxy leastconn maxconn",
            System::PullmanTcp => "pullman (TCP)",
            System::PullmanUnix => "pullman (Unix)",
            System::PullmanShm => "pullman (shm)",
            System::PullmanFilter => "pullman filter",
            System::PullmanTcpBaseline => "pullman (TCP, baseline)",
            System::PullmanFilterBaseline => "pullman filter (baseline)",
            System::Pothead => "POTHEAD",
            System::PullmanPtth => "pullman (PTTH)",
            System::PullmanC => "pullman (C worker)",
            System::PullmanWsgi => "pullman + pullman.wsgi",
            System::PullmanAsgi => "pullman + pullman.asgi",
            System::Granian => "granian WSGI",
            System::Gunicorn => "gunicorn sync",
            System::Uvicorn => "uvicorn httptools",
            System::NginxTls => "nginx (TLS)",
            System::PullmanTls => "pullman (TLS)",
        }
    }

    /// Whether the system is pullman in respond mode, whose workers answer `/sleep` with
    /// their names.
    pub fn is_pullman(self) -> bool {
        matches!(
            self,
            System::PullmanTcp
                | System::PullmanUnix
                | System::PullmanShm
                | System::PullmanTcpBaseline
                | System::PullmanTls
        )
    }

    /// Whether clients reach the system over TLS, with the layout's certificate.
    pub fn is_tls(self) -> bool {
        matches!(self, System::NginxTls | System::PullmanTls)
    }

    /// Whether the workers pull their requests and name themselves in `/sleep` answers, so
    /// that readiness means every worker has taken one: pullman in respond mode, POTHEAD's
    /// hub, pullman's PTTH port with POTHEAD's workers, and pullman's Python runners (the
    /// Python app names its worker too).
    pub fn is_pull(self) -> bool {
        self.is_pullman()
            || matches!(
                self,
                System::Pothead | System::PullmanPtth | System::PullmanWsgi | System::PullmanAsgi
            )
    }

    /// Whether the workers pull their requests but do not name themselves (hello.c answers
    /// `/sleep` with "slept"), so that readiness means every slot answers at once.
    pub fn counts_slots(self) -> bool {
        self == System::PullmanC
    }

    /// Whether the system runs the baseline `pullman` binary rather than this build's.
    pub fn is_baseline(self) -> bool {
        matches!(
            self,
            System::PullmanTcpBaseline | System::PullmanFilterBaseline
        )
    }

    /// The same system run from the baseline binary, for those that have one.
    pub fn baseline_twin(self) -> Option<System> {
        match self {
            System::PullmanTcp => Some(System::PullmanTcpBaseline),
            System::PullmanFilter => Some(System::PullmanFilterBaseline),
            _ => None,
        }
    }

    /// Starts the system with `layout`'s workers and waits until every worker serves.
    pub fn start(self, env: &Env, layout: &Layout) -> Result<Running, Error> {
        let dir = tempfile::Builder::new()
            .prefix("pullman-bench-")
            .tempdir()?;
        let mut running = match self {
            System::Direct => {
                let (server, urls) = env.backends(dir.path(), 1, None)?;
                Running::new(self, urls[0].clone(), None, vec![server], dir)
            }
            System::Nginx | System::NginxLeastConn | System::NginxTls => {
                nginx::start(self, env, layout, dir, self == System::NginxLeastConn)?
            }
            System::Haproxy | System::HaproxyMaxconn => {
                haproxy::start(self, env, layout, dir, self == System::HaproxyMaxconn)?
            }
            System::PullmanTcp | System::PullmanTcpBaseline | System::PullmanTls => {
                pullman::start(self, env, layout, dir, pullman::Transport::Tcp)?
            }
            System::PullmanUnix => {
                pullman::start(self, env, layout, dir, pullman::Transport::Unix)?
            }
            System::PullmanShm => pullman::start(self, env, layout, dir, pullman::Transport::Shm)?,
            System::PullmanFilter | System::PullmanFilterBaseline => {
                pullman::start_filter(self, env, layout, dir)?
            }
            System::Pothead => pothead::start(self, env, layout, dir)?,
            System::PullmanPtth => {
                pullman::start(self, env, layout, dir, pullman::Transport::Ptth)?
            }
            System::PullmanC | System::PullmanWsgi | System::PullmanAsgi => {
                pullman::start(self, env, layout, dir, pullman::Transport::Tcp)?
            }
            System::Granian | System::Gunicorn | System::Uvicorn => {
                python::start_server(self, env, layout, dir)?
            }
        };
        running.wait_ready(layout)?;
        Ok(running)
    }
}

/// How many workers a system gets and how many requests each runs at once.
#[derive(Debug, Clone)]
pub struct Layout {
    pub workers: usize,
    pub concurrency: usize,
    /// pullman pool `queue_limit` (the scale scenario queues 100,000).
    pub queue_limit: usize,
    /// Longest a request may wait or run, for every system's timeouts.
    pub timeout: Duration,
    /// The certificate TLS systems serve (they refuse to start without one).
    pub tls: Option<Arc<TlsFiles>>,
}

impl Layout {
    pub fn new(workers: usize, concurrency: usize) -> Layout {
        Layout {
            workers,
            concurrency,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            timeout: Duration::from_secs(120),
            tls: None,
        }
    }

    /// The certificate `system` serves: `None` for a clear-text system, an error for a TLS
    /// one given a layout without a certificate.
    pub(crate) fn tls_of(&self, system: System) -> Result<Option<&TlsFiles>, Error> {
        if !system.is_tls() {
            return Ok(None);
        }
        match &self.tls {
            Some(files) => Ok(Some(files)),
            None => Err(Error::peer(system.label(), "no certificate in the layout")),
        }
    }
}

/// pullman queue limit in the benchmarks: far above what any scenario but `scale` queues,
/// so no system answers 503 for want of room.
const DEFAULT_QUEUE_LIMIT: usize = 100_000;

/// Where the binaries and POTHEAD's venv are.
#[derive(Debug, Clone)]
pub struct Env {
    /// `target/release` with `pullman` and `pullman-bench`.
    pub bin_dir: PathBuf,
    /// The repository's `bench/` (POTHEAD launcher and WSGI app, `.venv`).
    pub bench_dir: PathBuf,
    /// A `pullman` binary built from an older commit (`run --baseline`): the baseline systems
    /// run it, hub and workers.
    pub baseline: Option<PathBuf>,
    /// `pullman hub --threads N` for every hub (`run --hub-threads`); `None`: the hub's
    /// default.
    pub hub_threads: Option<u32>,
}

impl Env {
    /// Finds the repository from the running binary (`target/release/pullman-bench`) or
    /// the current directory.
    pub fn discover() -> Result<Env, Error> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| Error::peer("env", "no binary directory"))?;
        let root = bin_dir
            .ancestors()
            .find(|p| p.join("bench").is_dir() && p.join("Cargo.toml").is_file())
            .map(PathBuf::from)
            .unwrap_or(std::env::current_dir()?);
        Ok(Env {
            bin_dir,
            bench_dir: root.join("bench"),
            baseline: None,
            hub_threads: None,
        })
    }

    pub(crate) fn pullman_bin(&self) -> PathBuf {
        self.bin_dir.join("pullman")
    }

    /// The `pullman` binary `system` runs: the baseline for a baseline system (an error
    /// without one), this build's otherwise.
    pub(crate) fn pullman_bin_of(&self, system: System) -> Result<PathBuf, Error> {
        if !system.is_baseline() {
            return Ok(self.pullman_bin());
        }
        self.baseline
            .clone()
            .ok_or_else(|| Error::peer(system.label(), "no baseline binary (run --baseline PATH)"))
    }

    /// `examples/c/hello.c` as `bench/run.sh` compiles it, next to `pullman`.
    pub(crate) fn c_hello_bin(&self) -> PathBuf {
        self.bin_dir.join("c-examples").join("hello")
    }

    pub(crate) fn python(&self) -> PathBuf {
        self.bench_dir.join(".venv/bin/python")
    }

    /// Starts `pullman-bench server` with `count` workers of `concurrency`; their URLs.
    pub(crate) fn backends(
        &self,
        dir: &std::path::Path,
        count: usize,
        concurrency: Option<usize>,
    ) -> Result<(Proc, Vec<String>), Error> {
        let mut cmd = Command::new(self.bin_dir.join("pullman-bench"));
        cmd.args(["server", "--count", &count.to_string(), "--threads", "1"]);
        if let Some(c) = concurrency {
            cmd.args(["--concurrency", &c.to_string()]);
        }
        let mut proc = Proc::spawn("server", cmd, &dir.join("server.log"))?;
        let line = proc.wait_line("server listening")?;
        let urls = line
            .trim_start_matches("server listening")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok((proc, urls))
    }
}

/// A started system; stops every process on drop.
#[derive(Debug)]
pub struct Running {
    pub system: System,
    /// Where clients send requests.
    pub url: String,
    /// The hub or proxy whose CPU and memory are measured.
    pub middle: Option<ProcessTree>,
    /// For an `https://` URL: the authority its certificate is checked against.
    trust: Option<TrustedCa>,
    procs: Vec<Proc>,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub(crate) fn new(
        system: System,
        url: String,
        middle: Option<u32>,
        procs: Vec<Proc>,
        dir: tempfile::TempDir,
    ) -> Running {
        Running {
            system,
            url,
            middle: middle.map(ProcessTree::new),
            trust: None,
            procs,
            dir,
        }
    }

    /// Serves clients at `url` over TLS, checked against `trust`.
    pub(crate) fn serve_tls(&mut self, url: String, trust: TrustedCa) {
        self.url = url;
        self.trust = Some(trust);
    }

    /// Where load goes, speaking `proto`.
    pub fn target(&self, proto: Proto) -> Result<Target, Error> {
        Target::parse_with(&self.url, proto, self.trust.as_ref())
    }

    pub(crate) fn add(&mut self, proc: Proc) {
        self.procs.push(proc);
    }

    /// The system's processes, the middle first; dropping one stops it (the scale scenario
    /// stops the workers this way to queue with none connected).
    pub fn procs_mut(&mut self) -> &mut Vec<Proc> {
        &mut self.procs
    }

    /// The system's processes other than the middle one (its workers; a filter's upstream),
    /// whose CPU a scenario may measure apart from the middle's.
    pub fn others(&self) -> Vec<ProcessTree> {
        let middle = self.middle.map(|m| m.pid);
        self.procs
            .iter()
            .map(Proc::pid)
            .filter(|&p| Some(p) != middle)
            .map(ProcessTree::new)
            .collect()
    }

    /// Waits until `/hello` answers and, for pull systems, until every worker has taken a
    /// request: `workers * concurrency` concurrent `/sleep?ms=` requests must come back from
    /// `workers` distinct names, or, for workers that do not name themselves, all before
    /// any could have waited for another (`every_slot_serves`).
    fn wait_ready(&mut self, layout: &Layout) -> Result<(), Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let target = self.target(Proto::H1)?;
        let pull = self.system.is_pull();
        let slots = self.system.counts_slots();
        let system = self.system;
        let procs = &mut self.procs;
        rt.block_on(async {
            let deadline = Instant::now() + process::START_GUARD;
            loop {
                for p in procs.iter_mut() {
                    if p.has_exited() {
                        return Err(Error::peer(system.label(), format!("{} exited", p.name)));
                    }
                }
                let ok = match Conn::open(&target).await {
                    Ok(mut c) => c
                        .send(&target, &RequestSpec::get("/hello"))
                        .await
                        .is_ok_and(|a| a.status.is_success()),
                    Err(_) => false,
                };
                let ready = ok
                    && (!pull || distinct_workers(&target, layout).await >= layout.workers)
                    && (!slots || every_slot_serves(&target, layout).await);
                if ready {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(Error::peer(system.label(), "not ready in time"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// How many distinct workers answer a burst of `workers * concurrency` slow requests
/// (each answer names its worker).
async fn distinct_workers(target: &Target, layout: &Layout) -> usize {
    let n = (layout.workers * layout.concurrency).min(PROBE_MAX);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let target = target.clone();
        tasks.spawn(async move {
            let mut conn = Conn::open(&target).await.ok()?;
            let (status, body) = conn
                .fetch(&target, &RequestSpec::get("/sleep?ms=300"))
                .await
                .ok()?;
            if !status.is_success() {
                return None;
            }
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            v.get("worker")?.as_str().map(str::to_string)
        });
    }
    let mut names = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(name)) = r {
            names.insert(name);
        }
    }
    names.len()
}

/// Whether `workers * concurrency` concurrent `/sleep` requests of [`SLOT_PROBE`] all
/// come back in less than twice that: had a slot been missing, one of them would have waited
/// for another's to end. A slow machine only makes it try again.
async fn every_slot_serves(target: &Target, layout: &Layout) -> bool {
    let n = (layout.workers * layout.concurrency).min(PROBE_MAX);
    let path = format!("/sleep?ms={}", SLOT_PROBE.as_millis());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let target = target.clone();
        let spec = RequestSpec::get(path.clone());
        tasks.spawn(async move {
            let mut conn = Conn::open(&target).await.ok()?;
            let answer = conn.send(&target, &spec).await.ok()?;
            answer.status.is_success().then_some(())
        });
    }
    let mut answered = 0;
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(())) = r {
            answered += 1;
        }
    }
    answered == n && start.elapsed() < 2 * SLOT_PROBE
}

/// How long each request of `every_slot_serves` holds its slot.
const SLOT_PROBE: Duration = Duration::from_millis(300);

/// Most probe requests sent at once (512 workers of concurrency 1 in the scale scenario).
const PROBE_MAX: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(baseline: Option<&str>) -> Env {
        Env {
            bin_dir: PathBuf::from("/build/target/release"),
            bench_dir: PathBuf::from("/build/bench"),
            baseline: baseline.map(PathBuf::from),
            hub_threads: None,
        }
    }

    #[test]
    fn baseline_systems_run_the_baseline_binary_and_the_others_this_build() {
        let env = env(Some("/tmp/pullman-old"));
        for s in [System::PullmanTcpBaseline, System::PullmanFilterBaseline] {
            assert_eq!(
                env.pullman_bin_of(s).unwrap(),
                PathBuf::from("/tmp/pullman-old")
            );
        }
        for s in [
            System::PullmanTcp,
            System::PullmanFilter,
            System::PullmanShm,
        ] {
            assert_eq!(
                env.pullman_bin_of(s).unwrap(),
                PathBuf::from("/build/target/release/pullman")
            );
        }
    }

    #[test]
    fn a_baseline_system_without_a_baseline_binary_is_an_error() {
        let env = env(None);
        assert!(env.pullman_bin_of(System::PullmanTcpBaseline).is_err());
        assert!(env.pullman_bin_of(System::PullmanTcp).is_ok());
    }

    #[test]
    fn each_twin_is_a_baseline_system_of_the_same_kind() {
        assert_eq!(
            System::PullmanTcp.baseline_twin(),
            Some(System::PullmanTcpBaseline)
        );
        assert_eq!(
            System::PullmanFilter.baseline_twin(),
            Some(System::PullmanFilterBaseline)
        );
        assert_eq!(System::PullmanUnix.baseline_twin(), None);
        assert_eq!(System::Nginx.baseline_twin(), None);
        // The twin is awaited like its original: the TCP twin until its workers serve.
        assert!(System::PullmanTcpBaseline.is_pullman());
        assert!(!System::PullmanFilterBaseline.is_pullman());
    }

    #[test]
    fn systems_whose_workers_pull_are_ready_only_when_every_worker_has_answered() {
        for s in [
            System::PullmanTcp,
            System::Pothead,
            System::PullmanPtth,
            System::PullmanWsgi,
            System::PullmanAsgi,
        ] {
            assert!(s.is_pull(), "{s:?}");
        }
        for s in [
            System::Direct,
            System::Nginx,
            System::PullmanFilter,
            System::PullmanC,
            System::Granian,
            System::Gunicorn,
            System::Uvicorn,
        ] {
            assert!(!s.is_pull(), "{s:?}");
        }
    }

    #[test]
    fn the_c_worker_is_awaited_slot_by_slot_and_found_next_to_pullman() {
        // hello.c pulls but answers `/sleep` without its name.
        assert!(System::PullmanC.counts_slots());
        for s in [System::PullmanTcp, System::Pothead, System::Nginx] {
            assert!(!s.counts_slots(), "{s:?}");
        }
        assert_eq!(
            env(None).c_hello_bin(),
            PathBuf::from("/build/target/release/c-examples/hello")
        );
        // The C worker's hub is this build's, never a baseline's.
        assert!(!System::PullmanC.is_baseline());
        assert_eq!(System::PullmanC.baseline_twin(), None);
    }
}
