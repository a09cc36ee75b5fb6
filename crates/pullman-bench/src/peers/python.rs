//! Python servers on `bench/python_app.py`, all run by the venv's Python (`bench/.venv`,
//! installed by `bench/setup.sh`) in `bench/`, so that they import the same app module:
//! - pullman's runners, one process per worker dialling the hub over TCP (`PullmanWsgi`:
//!   `python -m pullman.wsgi --threads C --prefetch 8 python_app:wsgi`; `PullmanAsgi`: `python -m
//!   pullman.asgi --limit C python_app:asgi`), started from `pullman.rs` where `PullmanTcp`
//!   starts `pullman worker --app demo`;
//! - servers that the clients reach directly, with no hub: granian (`Granian`: `--interface
//!   wsgi --workers P --blocking-threads C`), gunicorn (`Gunicorn`: sync workers, which run one
//!   request at a time and close each connection after its answer) and uvicorn (`Uvicorn`:
//!   `--http httptools`, one process; an event loop has no per-worker limit, so C is not
//!   used). Their processes are the system's "others", whose CPU the python scenario measures
//!   as it measures the runners'.
//!
//! A module missing from the venv (the `pullman` package is built from `python/` by
//! `pip install ./python`) is an error naming `bench/setup.sh`, checked before anything
//! starts, so the scenario reports the system as skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{free_port, Proc};
use super::{pothead, Env, Layout, Running, System};
use crate::error::Error;

/// The app module, in `bench/`.
const APP_MODULE: &str = "python_app";

/// Which of pullman's runners serves the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runner {
    Wsgi,
    Asgi,
}

impl Runner {
    /// The runner of a pullman system on the Python app, if it is one.
    pub(super) fn of(system: System) -> Option<Runner> {
        match system {
            System::PullmanWsgi => Some(Runner::Wsgi),
            System::PullmanAsgi => Some(Runner::Asgi),
            _ => None,
        }
    }
}

/// A runner and the Python that has been seen to import it.
#[derive(Debug, Clone)]
pub(super) struct RunnerCmd {
    pub(super) runner: Runner,
    pub(super) python: PathBuf,
}

impl RunnerCmd {
    /// The runner `system` runs, once the venv is known to have it; `None` for a system
    /// that runs none.
    pub(super) fn of(system: System, env: &Env) -> Result<Option<RunnerCmd>, Error> {
        let Some(runner) = Runner::of(system) else {
            return Ok(None);
        };
        let python = python(system, env)?;
        Ok(Some(RunnerCmd { runner, python }))
    }
}

/// The modules a system needs in the venv (whose import fails when they are not
/// installed), and the packages that bring them.
fn needs(system: System) -> (&'static str, &'static str) {
    match system {
        System::PullmanWsgi | System::PullmanAsgi => ("pullman._native", "pullman (./python)"),
        System::Granian => ("granian", "granian"),
        System::Gunicorn => ("gunicorn", "gunicorn"),
        System::Uvicorn => ("uvicorn, httptools", "uvicorn and httptools"),
        _ => ("sys", "python"),
    }
}

/// The venv's Python, once it is known to import what `system` runs.
pub(super) fn python(system: System, env: &Env) -> Result<PathBuf, Error> {
    let python = pothead::python(system, env)?;
    let (module, package) = needs(system);
    let imported = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !imported {
        return Err(Error::peer(
            system.label(),
            format!(
                "{} cannot import {module}: install {package} with bench/setup.sh",
                python.display()
            ),
        ));
    }
    Ok(python)
}

/// Requests the WSGI runner reads ahead of its threads (`--prefetch`): a thread that frees
/// finds the next request in the process, as granian's finds it in granian's own queue,
/// instead of waiting a round trip to the hub for it.
pub(crate) const WSGI_PREFETCH: usize = 8;

/// A runner's command line: one worker of `layout.concurrency` on `pool` at `hub`.
pub(super) fn runner_command(
    cmd: &RunnerCmd,
    env: &Env,
    hub: &str,
    pool: &str,
    token: &str,
    layout: &Layout,
) -> Command {
    let (module, app, credits) = match cmd.runner {
        Runner::Wsgi => ("pullman.wsgi", "wsgi", "--threads"),
        Runner::Asgi => ("pullman.asgi", "asgi", "--limit"),
    };
    let mut command = Command::new(&cmd.python);
    command
        .current_dir(&env.bench_dir)
        .args(["-m", module, "--hub", hub, "--pool", pool, "--token", token])
        .args([credits, &layout.concurrency.to_string()]);
    if cmd.runner == Runner::Wsgi {
        command.args(["--prefetch", &WSGI_PREFETCH.to_string()]);
    }
    command
        .args(["--log-level", "warning"])
        .arg(format!("{APP_MODULE}:{app}"));
    command
}

/// Starts `layout.workers` runner processes dialling `hub`, named `w0`, `w1`, ... in their
/// `/sleep` answers; they belong to `running` and stop with it (SIGTERM drains them).
pub(super) fn add_runners(
    running: &mut Running,
    runner: &RunnerCmd,
    env: &Env,
    hub: &str,
    pool: &str,
    token: &str,
    layout: &Layout,
) -> Result<(), Error> {
    for i in 0..layout.workers {
        let mut cmd = runner_command(runner, env, hub, pool, token, layout);
        cmd.env("PYTHON_APP_NAME", format!("w{i}"));
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn(running.system.label(), cmd, &log)?);
    }
    Ok(())
}

/// A direct server's command line, listening on 127.0.0.1:`port`.
pub(super) fn server_command(
    system: System,
    python: &Path,
    env: &Env,
    layout: &Layout,
    port: u16,
) -> Result<Command, Error> {
    let (workers, port) = (layout.workers.to_string(), port.to_string());
    let mut cmd = Command::new(python);
    cmd.current_dir(&env.bench_dir);
    match system {
        System::Granian => {
            cmd.args([
                "-m",
                "granian",
                "--interface",
                "wsgi",
                "--workers",
                &workers,
            ])
            .args(["--blocking-threads", &layout.concurrency.to_string()])
            .args(["--host", "127.0.0.1", "--port", &port])
            .args(["--log-level", "warning"])
            .arg(format!("{APP_MODULE}:wsgi"));
        }
        System::Gunicorn => {
            if layout.concurrency != 1 {
                return Err(Error::peer(
                    system.label(),
                    format!(
                        "concurrency {}: a sync worker runs one request at a time",
                        layout.concurrency
                    ),
                ));
            }
            cmd.args(["-m", "gunicorn", "--workers", &workers])
                .args(["--worker-class", "sync"])
                .args(["--bind", &format!("127.0.0.1:{port}")])
                .args(["--log-level", "warning"])
                .arg(format!("{APP_MODULE}:wsgi"));
        }
        System::Uvicorn => {
            cmd.args(["-m", "uvicorn", "--http", "httptools"])
                .args(["--host", "127.0.0.1", "--port", &port])
                .args(["--no-access-log", "--log-level", "warning"]);
            // One worker is the server process itself; more need its supervisor.
            if layout.workers > 1 {
                cmd.args(["--workers", &workers]);
            }
            cmd.arg(format!("{APP_MODULE}:asgi"));
        }
        _ => {
            return Err(Error::peer(
                system.label(),
                "not a Python server of its own",
            ))
        }
    }
    Ok(cmd)
}

/// Starts a direct server on a free loopback port; its process is the system's only one,
/// and there is no middle.
pub(super) fn start_server(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
) -> Result<Running, Error> {
    let python = python(system, env)?;
    let port = free_port()?;
    let cmd = server_command(system, &python, env, layout, port)?;
    let server = Proc::spawn(system.label(), cmd, &dir.path().join("server.log"))?;
    Ok(Running::new(
        system,
        format!("http://127.0.0.1:{port}"),
        None,
        vec![server],
        dir,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            bin_dir: PathBuf::from("/build/target/release"),
            bench_dir: PathBuf::from("/build/bench"),
            baseline: None,
            hub_threads: None,
        }
    }

    /// The arguments as one line, with a space at each end so that a flag and its value
    /// can be looked for as ` --flag value `.
    fn line(cmd: &Command) -> String {
        let args: Vec<&str> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        format!(" {} ", args.join(" "))
    }

    const PYTHON: &str = "/build/bench/.venv/bin/python";

    #[test]
    fn direct_servers_run_the_app_with_the_flags_the_comparison_names() {
        let layout = Layout::new(1, 1);
        let cmd = |s| server_command(s, Path::new(PYTHON), &env(), &layout, 40123).unwrap();
        let granian = cmd(System::Granian);
        assert_eq!(granian.get_program(), PYTHON);
        assert_eq!(granian.get_current_dir(), Some(Path::new("/build/bench")));
        let a = line(&granian);
        for flags in [
            " -m granian ",
            " --interface wsgi ",
            " --workers 1 ",
            " --blocking-threads 1 ",
            " --host 127.0.0.1 --port 40123 ",
        ] {
            assert!(a.contains(flags), "{flags:?} in {a:?}");
        }
        assert!(a.ends_with(" python_app:wsgi "), "{a:?}");

        let a = line(&cmd(System::Gunicorn));
        for flags in [
            " -m gunicorn ",
            " --workers 1 ",
            " --worker-class sync ",
            " --bind 127.0.0.1:40123 ",
        ] {
            assert!(a.contains(flags), "{flags:?} in {a:?}");
        }
        assert!(a.ends_with(" python_app:wsgi "), "{a:?}");

        let a = line(&cmd(System::Uvicorn));
        assert!(a.contains(" -m uvicorn --http httptools "), "{a:?}");
        assert!(a.contains(" --port 40123 "), "{a:?}");
        // One process: no supervisor in front of the server.
        assert!(!a.contains(" --workers "), "{a:?}");
        assert!(a.ends_with(" python_app:asgi "), "{a:?}");
    }

    #[test]
    fn a_gunicorn_sync_worker_of_more_than_one_request_is_refused() {
        let cmd = |system, c| {
            let layout = Layout::new(1, c);
            server_command(system, Path::new(PYTHON), &env(), &layout, 1)
        };
        assert!(cmd(System::Gunicorn, 1).is_ok());
        assert!(cmd(System::Gunicorn, 2).is_err());
        // Not a direct server: pullman's runners start behind a hub.
        assert!(cmd(System::PullmanWsgi, 1).is_err());
    }

    #[test]
    fn runners_dial_the_hub_with_the_layouts_concurrency_as_their_credits() {
        let layout = Layout::new(1, 4);
        let cmd = |runner| {
            let python = PathBuf::from(PYTHON);
            let runner = RunnerCmd { runner, python };
            runner_command(&runner, &env(), "tcp://127.0.0.1:4", "bench", "t", &layout)
        };
        let wsgi = cmd(Runner::Wsgi);
        assert_eq!(wsgi.get_program(), PYTHON);
        assert_eq!(wsgi.get_current_dir(), Some(Path::new("/build/bench")));
        let a = line(&wsgi);
        assert!(a.starts_with(" -m pullman.wsgi "), "{a:?}");
        assert!(a.contains(" --hub tcp://127.0.0.1:4 --pool bench --token t "));
        assert!(a.contains(" --threads 4 --prefetch 8 "), "{a:?}");
        assert!(a.ends_with(" python_app:wsgi "), "{a:?}");
        let a = line(&cmd(Runner::Asgi));
        assert!(a.starts_with(" -m pullman.asgi "), "{a:?}");
        assert!(a.contains(" --limit 4 "), "{a:?}");
        assert!(a.ends_with(" python_app:asgi "), "{a:?}");
        assert_eq!(Runner::of(System::PullmanWsgi), Some(Runner::Wsgi));
        assert_eq!(Runner::of(System::PullmanAsgi), Some(Runner::Asgi));
        assert_eq!(Runner::of(System::PullmanTcp), None);
    }

    #[test]
    fn a_missing_venv_is_an_error_naming_the_setup_script() {
        let env = Env {
            bin_dir: PathBuf::from("/nonexistent/target/release"),
            bench_dir: PathBuf::from("/nonexistent/bench"),
            baseline: None,
            hub_threads: None,
        };
        for s in [System::Granian, System::PullmanWsgi] {
            let e = python(s, &env).unwrap_err().to_string();
            assert!(e.contains("bench/setup.sh"), "{e}");
        }
        assert!(RunnerCmd::of(System::PullmanAsgi, &env).is_err());
        assert!(RunnerCmd::of(System::PullmanTcp, &env).unwrap().is_none());
    }
}
