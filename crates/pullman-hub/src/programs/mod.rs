//! The supervisor: starts the worker programs that `[[program]]` tables name, starts them
//! again when they exit (restart policy, intensity, backoff, as Erlang/OTP supervisors do),
//! and stops them when the hub drains.
//!
//! The desired set of programs is always a whole [`Config`]: [`Supervisor::apply`] compares it
//! with what runs, starts what is new, restarts what changed, and stops what is gone. The hub
//! calls it at start, and the config reload and the admin API call it with the new config.
//!
//! # Layout
//! - `restart`: the decisions (restart or not, backoff, intensity), apart from processes.
//! - `instance`: one instance's life: start, wait, decide, back off, start again; stop.
//! - `output`: a program's stdout and stderr into the hub's log.
//! - `tether`: an instance's process group, killed whole when the hub lets go of it or
//!   dies.

mod instance;
mod output;
mod restart;
mod tether;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ProgramConfig, Secret};
use restart::Intensity;

/// Starts, watches and stops the hub's worker programs.
#[derive(Debug)]
pub struct Supervisor {
    /// What instances find in `PULLMAN_HUB`.
    hub: String,
    /// This executable, which a command starting with `pullman` runs.
    own_exe: Option<PathBuf>,
    programs: Mutex<HashMap<String, Program>>,
    /// Instances being stopped after their program was replaced or removed; shutdown waits
    /// for them too.
    retiring: Mutex<Vec<JoinHandle<()>>>,
}

/// Everything an instance is started with; a change in any of it restarts the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub(crate) config: ProgramConfig,
    pub(crate) hub: String,
    /// The pool's token, if it has one (a pool with none takes workers by certificate, which
    /// the program's own command line must then give).
    pub(crate) token: Option<Secret>,
}

/// A program the supervisor runs.
#[derive(Debug)]
struct Program {
    launch: Arc<Launch>,
    state: Arc<ProgramState>,
    stop: watch::Sender<bool>,
    instances: Vec<JoinHandle<()>>,
}

/// A program's state, shared by its instances' tasks.
#[derive(Debug)]
pub(crate) struct ProgramState {
    inner: Mutex<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    failed: bool,
    restarts: u64,
    intensity: Intensity,
    instances: Vec<Slot>,
}

/// What one instance of a program is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// About to start, or waiting out its backoff.
    Starting,
    /// Running as this pid.
    Running(u32),
    /// Ended and, by its restart policy or a failure, not started again.
    Ended,
}

/// How a program is doing, for the admin API, metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramHealth {
    /// Every instance runs.
    Running,
    /// Some instances are starting or waiting to restart.
    Starting,
    /// Every instance ended and none will restart, as its restart policy says.
    Exited,
    /// It restarted more often than its intensity allows; it is not restarted any more.
    /// A config reload or an admin change that applies it again starts it afresh.
    Failed,
}

/// One program, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramStatus {
    /// The program's name.
    pub name: String,
    /// The pool it serves.
    pub pool: String,
    /// How it is doing.
    pub state: ProgramHealth,
    /// Instances it should run.
    pub instances: u32,
    /// Instances running now.
    pub running: u32,
    /// Restarts since it was (re)applied.
    pub restarts: u64,
    /// Pids of the running instances.
    pub pids: Vec<u32>,
}

impl Supervisor {
    /// A supervisor whose programs dial the hub at `hub` (a `tcp://` or `unix://` URL).
    pub fn new(hub: String) -> Supervisor {
        let own_exe = std::env::current_exe()
            .inspect_err(|e| tracing::warn!(error = %e, "cannot find the hub's own executable; commands starting with `pullman` will fail"))
            .ok();
        Supervisor {
            hub,
            own_exe,
            programs: Mutex::new(HashMap::new()),
            retiring: Mutex::new(Vec::new()),
        }
    }

    /// Makes the running programs those of `config`: starts new ones, restarts changed
    /// ones (the new instances start before the old ones get SIGTERM) and failed ones, and
    /// stops removed ones. Must run inside the hub's runtime.
    pub fn apply(&self, config: &Config) {
        let mut programs = self.programs.lock();
        let mut wanted = HashMap::new();
        for program in &config.programs {
            let Some(pool) = config.pool(&program.pool) else {
                // validate() guarantees the pool; a program without one cannot authenticate.
                continue;
            };
            let launch = Launch {
                config: program.clone(),
                hub: self.hub.clone(),
                token: pool.token.clone(),
            };
            wanted.insert(program.name.clone(), launch);
        }
        let gone: Vec<String> = programs
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = programs.remove(&name) {
                tracing::info!(program = %name, "stopping program: no longer configured");
                self.retire(old);
            }
        }
        for (name, launch) in wanted {
            if let Some(current) = programs.get(&name) {
                if *current.launch == launch && !current.state.is_failed() {
                    continue;
                }
            }
            let new = self.start(launch);
            if let Some(old) = programs.insert(name.clone(), new) {
                tracing::info!(program = %name, "program changed or failed: starting it afresh");
                self.retire(old);
            }
        }
    }

    /// The programs, by name.
    pub fn status(&self) -> Vec<ProgramStatus> {
        let programs = self.programs.lock();
        let mut list: Vec<ProgramStatus> = programs
            .values()
            .map(|p| p.state.status(&p.launch.config))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Stops every program (SIGTERM, then SIGKILL after its `stop_grace`) and waits for them
    /// to exit. Nothing is restarted after this starts.
    pub async fn shutdown(&self) {
        let programs: Vec<Program> = self.programs.lock().drain().map(|(_, p)| p).collect();
        for program in programs {
            self.retire(program);
        }
        let retiring = std::mem::take(&mut *self.retiring.lock());
        for task in retiring {
            let _ = task.await;
        }
    }

    fn start(&self, launch: Launch) -> Program {
        let launch = Arc::new(launch);
        let config = &launch.config;
        let state = Arc::new(ProgramState::new(config));
        let (stop, stop_rx) = watch::channel(false);
        let instances = (0..config.instances)
            .map(|index| {
                tokio::spawn(instance::run(instance::Instance {
                    launch: launch.clone(),
                    own_exe: self.own_exe.clone(),
                    index,
                    state: state.clone(),
                    stop: stop_rx.clone(),
                }))
            })
            .collect();
        Program {
            launch,
            state,
            stop,
            instances,
        }
    }

    /// Tells `program`'s instances to stop, and keeps their tasks for `shutdown` to wait on.
    fn retire(&self, program: Program) {
        let _ = program.stop.send(true);
        let mut retiring = self.retiring.lock();
        retiring.retain(|task| !task.is_finished());
        retiring.extend(program.instances);
    }
}

impl ProgramState {
    fn new(config: &ProgramConfig) -> ProgramState {
        ProgramState {
            inner: Mutex::new(StateInner {
                failed: false,
                restarts: 0,
                intensity: Intensity::new(config.max_restarts, config.within),
                instances: vec![Slot::Starting; config.instances as usize],
            }),
        }
    }

    pub(crate) fn set(&self, index: u32, slot: Slot) {
        if let Some(entry) = self.inner.lock().instances.get_mut(index as usize) {
            *entry = slot;
        }
    }

    fn is_failed(&self) -> bool {
        self.inner.lock().failed
    }

    /// Counts a restart if the intensity allows it. `Err(true)` means this call marked the
    /// program failed (so its caller says so once); `Err(false)` that it already was.
    pub(crate) fn admit_restart(&self) -> Result<(), bool> {
        let mut inner = self.inner.lock();
        if inner.failed {
            return Err(false);
        }
        if !inner.intensity.admit(std::time::Instant::now()) {
            inner.failed = true;
            return Err(true);
        }
        inner.restarts += 1;
        Ok(())
    }

    fn status(&self, config: &ProgramConfig) -> ProgramStatus {
        let inner = self.inner.lock();
        let pids: Vec<u32> = inner
            .instances
            .iter()
            .filter_map(|slot| match slot {
                Slot::Running(pid) => Some(*pid),
                _ => None,
            })
            .collect();
        let running = pids.len() as u32;
        let state = if inner.failed {
            ProgramHealth::Failed
        } else if running == config.instances {
            ProgramHealth::Running
        } else if inner.instances.iter().all(|slot| *slot == Slot::Ended) {
            ProgramHealth::Exited
        } else {
            ProgramHealth::Starting
        };
        ProgramStatus {
            name: config.name.clone(),
            pool: config.pool.clone(),
            state,
            instances: config.instances,
            running,
            restarts: inner.restarts,
            pids,
        }
    }
}
