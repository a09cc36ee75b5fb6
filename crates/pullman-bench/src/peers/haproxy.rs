//! HAProxy in front of one `server` listener per worker. Round robin, or `balance
//! leastconn` with `maxconn` = the worker's concurrency on each server line, so excess
//! requests wait in HAProxy's own queue (its answer to the problem pullman solves).
//! Threads: HAProxy's default (one per core). Connections to the workers are reused
//! (`http-reuse always`).

use std::process::Command;

use super::process::{free_port, Proc};
use super::{Env, Layout, Running, System};
use crate::error::Error;

/// HAProxy's global connection limit. It raises its descriptor limit to about twice this
/// at start and refuses to start if it cannot; 8000 fits a default hard limit of 20000 and is
/// far above any scenario's connections.
const HAPROXY_MAXCONN: usize = 8000;

pub(super) fn start(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
    maxconn: bool,
) -> Result<Running, Error> {
    let (server, urls) = env.backends(dir.path(), layout.workers, Some(layout.concurrency))?;
    let port = free_port()?;
    let limit = if maxconn {
        format!(" maxconn {}", layout.concurrency)
    } else {
        String::new()
    };
    let servers: String = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("  server w{i} {}{limit}\n", u.trim_start_matches("http://")))
        .collect();
    let timeout = layout.timeout.as_secs().max(1);
    let conf = format!(
        r#"global
  maxconn {HAPROXY_MAXCONN}
defaults
  mode http
  timeout connect 5s
  timeout client {timeout}s
  timeout server {timeout}s
  timeout queue {timeout}s
  http-reuse always
frontend front
  bind 127.0.0.1:{port}
  default_backend workers
backend workers
  balance {balance}
{servers}"#,
        balance = if maxconn { "leastconn" } else { "roundrobin" },
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    let proxy = Proc::spawn(system.label(), cmd, &dir.path().join("haproxy.out"))?;
    let pid = proxy.pid();
    let mut running = Running::new(
        system,
        format!("http://127.0.0.1:{port}"),
        Some(pid),
        vec![proxy],
        dir,
    );
    running.add(server);
    Ok(running)
}
