//! POTHEAD 0.10.6: its aiohttp hub, started by `bench/pothead_hub.py` on 127.0.0.1 only,
//! and its WSGI worker runner (`python -m pothead.worker --workers C`) on
//! `bench/pothead_app.py`, one process per worker. `LOAD_BALANCER_CONNECTION_DELAY_BASE=0`,
//! or each worker thread sleeps a second between jobs when all are busy.

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
    let python = env.python();
    if !python.exists() {
        return Err(Error::peer(
            system.label(),
            format!("{} missing: run bench/setup.sh", python.display()),
        ));
    }
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
    for i in 0..layout.workers {
        let mut cmd = Command::new(&python);
        cmd.current_dir(&env.bench_dir)
            .args(["-m", "pothead.worker", "--connect"])
            .arg(format!("127.0.0.1:{worker_port}"))
            .args(["--workers", &layout.concurrency.to_string()])
            .arg("pothead_app:app")
            .env("LOAD_BALANCER_CONNECTION_DELAY_BASE", "0")
            .env("POTHEAD_APP_NAME", format!("w{i}"));
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn("pothead worker", cmd, &log)?);
    }
    Ok(running)
}
