//! pullman: `pullman hub` on a generated config and `pullman worker --app demo` processes
//! (one thread each) dialling it over TCP or a Unix socket.

use std::process::Command;

use super::process::Proc;
use super::{Env, Layout, Running, System};
use crate::error::Error;

pub(super) fn start(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
    unix: bool,
) -> Result<Running, Error> {
    let workers_listen = if unix {
        format!("unix://{}", dir.path().join("workers.sock").display())
    } else {
        "tcp://127.0.0.1:0".to_string()
    };
    let timeout = layout.timeout.as_secs().max(1);
    let conf = format!(
        r#"[hub]
listen = "127.0.0.1:0"
workers_listen = ["{workers_listen}"]
drain_grace = "0s"
[[pool]]
name = "bench"
token = "bench"
queue_limit = {queue_limit}
queue_timeout = "{timeout}s"
timeout = "{timeout}s"
max_body_bytes = 1073741824
[[route]]
pool = "bench"
"#,
        queue_limit = layout.queue_limit,
    );
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new(env.pullman_bin());
    cmd.arg("hub")
        .arg("--config")
        .arg(&path)
        .env("PULLMAN_LOG", "warn");
    let mut hub = Proc::spawn(system.label(), cmd, &dir.path().join("hub.log"))?;
    let line = hub.wait_line("pullman listening")?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_end_matches(',').to_string())
            .ok_or_else(|| Error::peer(system.label(), format!("no {key} in {line:?}")))
    };
    let front = field("front=")?;
    let workers_url = field("workers=")?;
    let hub_pid = hub.pid();
    let mut running = Running::new(system, front, Some(hub_pid), vec![hub], dir);
    for i in 0..layout.workers {
        let mut cmd = Command::new(env.pullman_bin());
        cmd.args([
            "worker",
            "--hub",
            &workers_url,
            "--pool",
            "bench",
            "--token",
        ])
        .arg("bench")
        .args(["--concurrency", &layout.concurrency.to_string()])
        .args([
            "--threads",
            "1",
            "--app",
            "demo",
            "--name",
            &format!("w{i}"),
        ])
        .env("PULLMAN_LOG", "warn");
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn("pullman worker", cmd, &log)?);
    }
    Ok(running)
}
