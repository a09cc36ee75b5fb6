//! POTHEAD 0.10.6: its aiohttp hub, started by `bench/pothead_hub.py` on 127.0.0.1 only,
//! and its WSGI worker runner (`python -m pothead.worker --workers C`) on
//! `bench/pothead_app.py`, one process per worker. `LOAD_BALANCER_CONNECTION_DELAY_BASE=0`,
//! or each worker thread sleeps a second between jobs when all are busy. The same worker
//! processes serve pullman's PTTH port (`PullmanPtth`, started from `pullman.rs`).

use std::path::PathBuf;
use std::process::Command;

use super::process::{free_port, Proc};
use super::{Env, Layout, Running, System};
use crate::error::Error;

pub(super) fn start(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
) -> Result<Running, Error> {
    let python = python(system, env)?;
    let (main_port, worker_port) = (free_port()?, free_port()?);
    let mut cmd = Command::new(&python);
    cmd.arg(env.bench_dir.join("pothead_hub.py"))
        .args(["--main-port", &main_port.to_string()])
        .args(["--worker-port", &worker_port.to_string()]);
    let mut hub = Proc::spawn(system.label(), cmd, &dir.path().join("hub.log"))?;
    hub.wait_line("pothead hub listening")?;
    let hub_pid = hub.pid();
    let mut running = Running::new(
        system,
        format!("http://127.0.0.1:{main_port}"),
        Some(hub_pid),
        vec![hub],
        dir,
    );
    add_workers(
        &mut running,
        env,
        layout,
        &format!("127.0.0.1:{worker_port}"),
    )?;
    Ok(running)
}

/// The venv's Python, or an error naming the setup script when it is missing.
pub(super) fn python(system: System, env: &Env) -> Result<PathBuf, Error> {
    let python = env.python();
    if !python.exists() {
        return Err(Error::peer(
            system.label(),
            format!("{} missing: run bench/setup.sh", python.display()),
        ));
    }
    Ok(python)
}

/// Starts `layout.workers` POTHEAD worker processes of `layout.concurrency` threads each,
/// dialling the reverse-HTTP hub at `connect` (`IP:PORT`), named `w0`, `w1`, ... in their
/// `/sleep` answers; they belong to `running` and stop with it.
pub(super) fn add_workers(
    running: &mut Running,
    env: &Env,
    layout: &Layout,
    connect: &str,
) -> Result<(), Error> {
    let python = python(running.system, env)?;
    for i in 0..layout.workers {
        let mut cmd = Command::new(&python);
        cmd.current_dir(&env.bench_dir)
            .args(["-m", "pothead.worker", "--connect", connect])
            .args(["--workers", &layout.concurrency.to_string()])
            .arg("pothead_app:app")
            .env("LOAD_BALANCER_CONNECTION_DELAY_BASE", "0")
            .env("POTHEAD_APP_NAME", format!("w{i}"));
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn("pothead worker", cmd, &log)?);
    }
    Ok(())
}
