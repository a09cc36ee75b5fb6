//! One instance of a program, from start to its last exit: start it, wait for it to exit,
//! decide with `restart` whether and when to start it again, and stop it when told.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::output::{self, Stream};
use super::restart::Exit;
use super::tether::Tether;
use super::{Launch, ProgramState, Slot};

/// What an instance's task needs.
pub(crate) struct Instance {
    pub(crate) launch: Arc<Launch>,
    pub(crate) own_exe: Option<PathBuf>,
    pub(crate) index: u32,
    pub(crate) state: Arc<ProgramState>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Runs the instance until its restart policy or intensity ends it, or `stop` flips.
pub(crate) async fn run(mut instance: Instance) {
    let config = &instance.launch.config;
    let (program, index) = (config.name.as_str(), instance.index);
    // Restarts in a row without a healthy run in between, for the backoff.
    let mut in_a_row = 0u32;
    loop {
        if *instance.stop.borrow() {
            break;
        }
        let started = Instant::now();
        let exit = match instance.spawn().await {
            Err(error) => {
                tracing::error!(program, instance = index, command = ?config.command, %error, "cannot start program");
                Exit::Crash
            }
            Ok((mut child, tether)) => {
                let pid = child.id().unwrap_or(0);
                instance.state.set(index, Slot::Running(pid));
                tracing::info!(
                    program,
                    instance = index,
                    pid,
                    pgid = tether.pgid(),
                    "program instance started"
                );
                let status = tokio::select! {
                    status = child.wait() => status,
                    _ = stopped(&mut instance.stop) => {
                        terminate(&mut child, &tether, config.stop_grace, program, index).await;
                        tether.release().await;
                        break;
                    }
                };
                // What the instance started and left behind goes with it: no one would
                // stop it later.
                tether.release().await;
                judge(status, program, index, pid)
            }
        };
        instance.state.set(index, Slot::Starting);
        if !config.restart.restarts(exit) {
            tracing::info!(program, instance = index, policy = ?config.restart, "program instance not restarted, as its restart policy says");
            break;
        }
        if started.elapsed() >= config.within {
            in_a_row = 0;
        }
        match instance.state.admit_restart() {
            Ok(()) => {}
            Err(marked_now) => {
                if marked_now {
                    tracing::error!(
                        program,
                        max_restarts = config.max_restarts,
                        within = ?config.within,
                        "program failed: it exited more often than its restart intensity allows; not restarting it"
                    );
                }
                break;
            }
        }
        let delay = config.backoff.delay(in_a_row);
        in_a_row = in_a_row.saturating_add(1);
        tracing::info!(
            program,
            instance = index,
            ?delay,
            "restarting program instance"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut instance.stop) => break,
        }
    }
    instance.state.set(index, Slot::Ended);
}

impl Instance {
    /// Starts the program in the process group of a new [`Tether`].
    async fn spawn(&self) -> io::Result<(Child, Tether)> {
        let tether = Tether::start()?;
        match self.spawn_in(tether.pgid()) {
            Ok(child) => Ok((child, tether)),
            Err(error) => {
                tether.release().await;
                Err(error)
            }
        }
    }

    fn spawn_in(&self, pgid: u32) -> io::Result<Child> {
        let launch = &*self.launch;
        let config = &launch.config;
        let program = match (config.command[0].as_str(), &self.own_exe) {
            ("pullman", Some(own)) => own.clone(),
            (name, _) => PathBuf::from(name),
        };
        let mut command = Command::new(program);
        command
            .args(&config.command[1..])
            .envs(&config.env)
            .env("PULLMAN_HUB", &launch.hub)
            .env("PULLMAN_POOL", &config.pool)
            .envs(launch.token.as_ref().map(|t| ("PULLMAN_TOKEN", t.expose())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group apart from the hub's: a terminal's Ctrl-C goes to the hub alone, which
            // then stops its programs in order. kill_on_drop is the last resort if the hub's
            // task goes away (the tether, dropped with it, takes the rest of the group).
            .process_group(pgid as i32)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn()?;
        let name = config.name.clone();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(output::forward(
                stdout,
                name.clone(),
                self.index,
                Stream::Stdout,
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(output::forward(stderr, name, self.index, Stream::Stderr));
        }
        Ok(child)
    }
}

/// Resolves once the instance is told to stop (or its supervisor is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Has the kernel send the child SIGTERM when the hub dies, even by SIGKILL: the tether's
/// watcher kills the whole group then anyway, this is in case someone killed the watcher.
#[allow(unsafe_code)] // pre_exec and prctl have no safe wrapper; the SAFETY notes say why
fn die_with_parent(command: &mut Command) {
    // SAFETY: getpid is async-signal-safe and runs before the fork.
    let hub = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl and
    // getppid, both async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The hub died before prctl took effect: do not start an orphan.
            if libc::getppid() != hub {
                return Err(io::Error::other(
                    "the hub exited while starting this program",
                ));
            }
            Ok(())
        });
    }
}

/// Classifies how an instance ended, and logs it.
fn judge(status: io::Result<ExitStatus>, program: &str, index: u32, pid: u32) -> Exit {
    match status {
        Ok(status) if status.success() => {
            tracing::info!(program, instance = index, pid, "program instance exited");
            Exit::Clean
        }
        Ok(status) => {
            tracing::warn!(program, instance = index, pid, %status, "program instance crashed");
            Exit::Crash
        }
        Err(error) => {
            tracing::warn!(program, instance = index, pid, %error, "lost track of program instance");
            Exit::Crash
        }
    }
}

/// SIGTERM, then SIGKILL if the instance, or anything else in its process group, is still
/// running after `grace`. Both go to the whole group, so whatever a wrapper script started
/// stops with it, and has the same grace to finish (a worker draining its requests, say).
async fn terminate(child: &mut Child, tether: &Tether, grace: Duration, program: &str, index: u32) {
    let pid = child.id().unwrap_or(0);
    tether.signal(libc::SIGTERM);
    let group_ended = async {
        let _ = child.wait().await;
        tether.emptied().await;
    };
    if tokio::time::timeout(grace, group_ended).await.is_err() {
        tracing::warn!(
            program,
            instance = index,
            pid,
            ?grace,
            "program instance ignored SIGTERM; killing it"
        );
        tether.signal(libc::SIGKILL);
        let _ = child.start_kill();
        let _ = child.wait().await;
    } else {
        tracing::info!(program, instance = index, pid, "program instance stopped");
    }
}
