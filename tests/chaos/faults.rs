//! The fault injector: at random moments, one fault of a random kind.
//!
//! - `kill`: SIGKILL a worker: a program instance (the hub's supervisor restarts it) or one
//!   of the test's TCP workers (the test starts a new one).
//! - `stop`: SIGSTOP a worker, SIGCONT it 50 ms to 3 s later, at times up to 12 s (past
//!   the hub's ping timeout, so the hub gives up on its link, and past the pools' deadline).
//! - `cut`, `stall`: close a TCP worker's link in the proxy, or stop forwarding on it for
//!   up to 4 s.
//! - `junk_*`: a raw "worker" joins the `tcp` pool and answers its request with garbage.
//! - `reload`: rewrite the config (a pool setting, at times a program's environment, which
//!   replaces its instances) and SIGHUP the hub.
//!
//! Signals go only to processes whose parent is the hub or this test, so a pid reused by
//! another process is never hit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::junk::{self, JunkEnd, JUNKS};
use crate::proxy::Proxy;
use crate::rng::Rng;
use crate::support::{AdminClient, WorkerProc};

/// The test's own TCP workers, dialling the hub through the proxy.
pub struct TcpWorkers {
    url: String,
    token: String,
    procs: Mutex<Vec<WorkerProc>>,
    started: Mutex<u64>,
}

impl TcpWorkers {
    pub fn start(url: String, token: &str, n: usize) -> TcpWorkers {
        let w = TcpWorkers {
            url,
            token: token.to_string(),
            procs: Mutex::default(),
            started: Mutex::new(0),
        };
        for _ in 0..n {
            let next = w.spawn();
            w.procs.lock().unwrap().push(next);
        }
        w
    }

    fn spawn(&self) -> WorkerProc {
        let mut started = self.started.lock().unwrap();
        *started += 1;
        let name = format!("tcp-{started}");
        WorkerProc::start_opts(&self.url, false, "tcp", &self.token, 4, &name)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .lock()
            .unwrap()
            .iter()
            .map(|w| w.child.id())
            .collect()
    }

    /// SIGKILLs worker `pid` and starts another in its place.
    fn replace(&self, pid: u32) -> bool {
        let mut procs = self.procs.lock().unwrap();
        let Some(i) = procs.iter().position(|w| w.child.id() == pid) else {
            return false;
        };
        procs[i].kill9();
        procs[i] = self.spawn();
        true
    }
}

/// The config file the hub runs on, rewritten for each reload.
pub trait ConfigFile: Send + Sync {
    /// Writes generation `gen` of the config, whose programs' environment says `epoch`.
    fn write(&self, gen: u64, epoch: u64);
}

/// Everything the injector may hit.
pub struct Faults {
    pub hub_pid: u32,
    pub admin: AdminClient,
    pub proxy: Arc<Proxy>,
    pub tcp_workers: Arc<TcpWorkers>,
    /// The hub's own TCP worker port, `IP:PORT`, for junk workers.
    pub hub_tcp: String,
    pub token: String,
    pub config: Box<dyn ConfigFile>,
    /// Workers stopped now, to be continued.
    stopped: Arc<Mutex<BTreeSet<u32>>>,
    /// Faults injected, by kind.
    pub counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    junk_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The config's generation and its programs' epoch.
    generation: Mutex<(u64, u64)>,
}

impl Faults {
    pub fn new(
        hub_pid: u32,
        admin: AdminClient,
        proxy: Arc<Proxy>,
        tcp_workers: Arc<TcpWorkers>,
        hub_tcp: String,
        token: &str,
        config: Box<dyn ConfigFile>,
    ) -> Faults {
        Faults {
            hub_pid,
            admin,
            proxy,
            tcp_workers,
            hub_tcp,
            token: token.to_string(),
            config,
            stopped: Arc::default(),
            counts: Arc::default(),
            junk_tasks: Mutex::default(),
            generation: Mutex::new((0, 0)),
        }
    }

    fn count(&self, kind: &'static str) {
        *self.counts.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// Injects faults until `stop` is set, one every 100 to 1200 ms.
    pub async fn run(&self, mut rng: Rng, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(rng.range(100, 1200))).await;
            match rng.weighted(&[25, 20, 12, 8, 15, 15]) {
                0 => self.kill(&mut rng).await,
                1 => self.stop(&mut rng).await,
                2 => {
                    if self.proxy.cut(rng.next_u64()) {
                        self.count("cut");
                    }
                }
                3 => {
                    let pause = Duration::from_millis(rng.range(100, 4000));
                    if self.proxy.stall(rng.next_u64(), pause) {
                        self.count("stall");
                    }
                }
                4 => self.junk(&mut rng),
                _ => self.reload(&mut rng),
            }
        }
    }

    /// Every worker process: program instances (children of the hub) and the test's.
    async fn workers(&self) -> Vec<u32> {
        let a = self.admin.get("/programs").await;
        assert_eq!(a.status, 200, "{a:?}");
        let mut pids: Vec<u32> = a.json()["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["pids"].as_array().cloned().unwrap_or_default())
            .filter_map(|pid| pid.as_u64().map(|p| p as u32))
            .filter(|pid| parent_of(*pid) == Some(self.hub_pid))
            .collect();
        pids.extend(self.tcp_workers.pids());
        pids
    }

    async fn kill(&self, rng: &mut Rng) {
        let pids = self.workers().await;
        if pids.is_empty() {
            return;
        }
        let pid = *rng.pick(&pids);
        self.stopped.lock().unwrap().remove(&pid);
        if self.tcp_workers.replace(pid) {
            self.count("kill_test_worker");
        } else if parent_of(pid) == Some(self.hub_pid) {
            signal(pid, libc::SIGKILL);
            self.count("kill_program_worker");
        }
    }

    async fn stop(&self, rng: &mut Rng) {
        let pids = self.workers().await;
        if pids.is_empty() {
            return;
        }
        let pid = *rng.pick(&pids);
        if !self.stopped.lock().unwrap().insert(pid) {
            return;
        }
        signal(pid, libc::SIGSTOP);
        self.count("stop");
        // One stop in ten outlasts the pools' 10 s deadline: its requests get 504.
        let pause = if rng.percent(10) {
            Duration::from_millis(rng.range(3000, 12_000))
        } else {
            Duration::from_millis(rng.range(50, 3000))
        };
        let stopped = self.stopped.clone();
        let parents = [self.hub_pid, std::process::id()];
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            if stopped.lock().unwrap().remove(&pid)
                && parent_of(pid).is_some_and(|p| parents.contains(&p))
            {
                signal(pid, libc::SIGCONT);
            }
        });
    }

    fn junk(&self, rng: &mut Rng) {
        let kind = *rng.pick(&JUNKS);
        self.count(kind.name());
        let (addr, token, counts) = (
            self.hub_tcp.clone(),
            self.token.clone(),
            self.counts.clone(),
        );
        let task = tokio::spawn(async move {
            if junk::run(&addr, "tcp", &token, kind).await == JunkEnd::Idle {
                *counts.lock().unwrap().entry("junk_idle").or_default() += 1;
            }
        });
        self.junk_tasks.lock().unwrap().push(task);
    }

    fn reload(&self, rng: &mut Rng) {
        let (gen, epoch) = {
            let mut g = self.generation.lock().unwrap();
            g.0 += 1;
            // At times the programs' environment changes too: their instances are then
            // replaced (new ones first, then SIGTERM to the old).
            if rng.percent(30) {
                g.1 += 1;
            }
            *g
        };
        self.config.write(gen, epoch);
        signal(self.hub_pid, libc::SIGHUP);
        self.count("reload");
    }

    /// Ends the faults still running: every stopped worker continues, every stall ends,
    /// every junk worker is done.
    pub async fn heal(&self) {
        let stopped: Vec<u32> = std::mem::take(&mut *self.stopped.lock().unwrap())
            .into_iter()
            .collect();
        for pid in stopped {
            if parent_of(pid).is_some_and(|p| p == self.hub_pid || p == std::process::id()) {
                signal(pid, libc::SIGCONT);
            }
        }
        self.proxy.resume_all();
        let tasks = std::mem::take(&mut *self.junk_tasks.lock().unwrap());
        for task in tasks {
            task.await.unwrap();
        }
    }
}

impl Drop for Faults {
    /// A failed run leaves no stopped process behind.
    fn drop(&mut self) {
        for pid in self.stopped.lock().unwrap().iter() {
            if parent_of(*pid).is_some_and(|p| p == self.hub_pid || p == std::process::id()) {
                signal(*pid, libc::SIGCONT);
            }
        }
    }
}

fn signal(pid: u32, sig: i32) {
    unsafe { libc::kill(pid as i32, sig) };
}

/// The parent of `pid`, from `/proc/PID/stat` (the field after the state, past the
/// parenthesised command name, which may hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
