//! pullman: `pullman hub` on a generated config and `pullman worker` processes (one thread
//! each) dialling it over TCP, a Unix socket, or a Unix socket then shared memory. In respond
//! mode the workers run `--app demo`; as a filter (`PullmanFilter`) the pool forwards to a
//! `pullman-bench server` upstream and one `--app demo-filter` worker passes every request.
//! A baseline system (`PullmanTcpBaseline`, `PullmanFilterBaseline`) runs the same from the
//! baseline binary, hub and workers alike. Over PTTH (`PullmanPtth`) the hub's worker port is
//! `ptth://` and the workers are POTHEAD's (`pothead.rs`), each connection one slot of the pool.
//! With the C worker (`PullmanC`) the hub is the same as `PullmanTcp`'s and the workers are
//! `examples/c/hello.c` processes on pullman's C API (`capi.rs`). With the Python runners
//! (`PullmanWsgi`, `PullmanAsgi`) the workers are `python -m pullman.wsgi` or `pullman.asgi`
//! processes on `bench/python_app.py` (`python.rs`). `PullmanTls` is `PullmanTcp` whose
//! clients come to a `[hub.tls]` listener serving the layout's certificate.

use std::process::Command;

use super::process::Proc;
use super::{capi, pothead, python, Env, Layout, Running, System};
use crate::error::Error;

/// How the workers reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Tcp,
    Unix,
    /// A Unix socket for the handshake, then shared-memory rings (`--shm`).
    Shm,
    /// POTHEAD's reverse HTTP on a `ptth://` port: its worker processes, not pullman's.
    Ptth,
}

pub(super) fn start(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
    transport: Transport,
) -> Result<Running, Error> {
    start_pool(system, env, layout, dir, transport, None)
}

/// A filter pool in front of a `pullman-bench server` upstream, with one pass-through
/// filter worker of `layout.concurrency`.
pub(super) fn start_filter(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
) -> Result<Running, Error> {
    let (upstream, urls) = env.backends(dir.path(), 1, None)?;
    let mut running = start_pool(system, env, layout, dir, Transport::Tcp, Some(&urls[0]))?;
    running.add(upstream);
    Ok(running)
}

fn start_pool(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
    transport: Transport,
    upstream: Option<&str>,
) -> Result<Running, Error> {
    let bin = env.pullman_bin_of(system)?;
    // Checked before the hub starts: a missing C worker or Python package skips the system
    // at once.
    let c_hello = match system {
        System::PullmanC => Some(capi::hello_bin(system, env)?),
        _ => None,
    };
    let python_runner = python::RunnerCmd::of(system, env)?;
    let workers_listen = match transport {
        Transport::Unix | Transport::Shm => {
            format!("unix://{}", dir.path().join("workers.sock").display())
        }
        Transport::Tcp => "tcp://127.0.0.1:0".to_string(),
        Transport::Ptth => format!("ptth://127.0.0.1:0?pool={POOL}"),
    };
    let filter = match upstream {
        Some(url) => format!("mode = \"filter\"\nupstream = \"{url}\"\n"),
        None => String::new(),
    };
    let timeout = layout.timeout.as_secs().max(1);
    let tls = layout.tls_of(system)?;
    let client_tls = match tls {
        None => String::new(),
        Some(files) => format!(
            "[hub.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            files.cert.display().to_string(),
            files.key.display().to_string()
        ),
    };
    let conf = format!(
        r#"[hub]
listen = "127.0.0.1:0"
workers_listen = ["{workers_listen}"]
drain_grace = "0s"
{client_tls}[[pool]]
name = "{POOL}"
token = "{TOKEN}"
queue_limit = {queue_limit}
queue_timeout = "{timeout}s"
timeout = "{timeout}s"
max_body_bytes = 1073741824
{filter}[[route]]
pool = "{POOL}"
"#,
        queue_limit = layout.queue_limit,
    );
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("hub")
        .arg("--config")
        .arg(&path)
        .env("PULLMAN_LOG", "warn");
    if let Some(n) = env.hub_threads {
        cmd.args(["--threads", &n.to_string()]);
    }
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
    if let Some(files) = tls {
        running.serve_tls(field("tls=")?, files.trust.clone());
    }
    if transport == Transport::Ptth {
        let connect = ptth_connect(&workers_url).ok_or_else(|| {
            Error::peer(
                system.label(),
                format!("no ptth:// in workers={workers_url}"),
            )
        })?;
        pothead::add_workers(&mut running, env, layout, connect)?;
        return Ok(running);
    }
    if let Some(c_hello) = c_hello {
        capi::add_workers(&mut running, &c_hello, &workers_url, POOL, TOKEN, layout)?;
        return Ok(running);
    }
    if let Some(runner) = python_runner {
        python::add_runners(
            &mut running,
            &runner,
            env,
            &workers_url,
            POOL,
            TOKEN,
            layout,
        )?;
        return Ok(running);
    }
    let app = if upstream.is_some() {
        "demo-filter"
    } else {
        "demo"
    };
    for i in 0..layout.workers {
        let mut cmd = Command::new(&bin);
        cmd.args(["worker", "--hub", &workers_url, "--pool", POOL, "--token"])
            .arg(TOKEN)
            .args(["--concurrency", &layout.concurrency.to_string()])
            .args(["--threads", "1", "--app", app, "--name", &format!("w{i}")])
            .args((transport == Transport::Shm).then_some("--shm"))
            .env("PULLMAN_LOG", "warn");
        let log = running.dir.path().join(format!("worker{i}.log"));
        running.add(Proc::spawn("pullman worker", cmd, &log)?);
    }
    Ok(running)
}

/// The pool every generated config has, and the one route's.
const POOL: &str = "bench";
/// The pool's token.
const TOKEN: &str = "bench";

/// The `IP:PORT` a POTHEAD worker dials, from the hub's `workers=` list
/// (`tcp://...,ptth://IP:PORT?pool=NAME`).
fn ptth_connect(workers: &str) -> Option<&str> {
    workers
        .split(',')
        .find_map(|a| a.strip_prefix("ptth://"))
        .and_then(|a| a.split('?').next())
        .filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::ptth_connect;

    #[test]
    fn pothead_workers_dial_the_ptth_listener_the_hub_printed() {
        assert_eq!(
            ptth_connect("ptth://127.0.0.1:40123?pool=bench"),
            Some("127.0.0.1:40123")
        );
        assert_eq!(
            ptth_connect("tcp://127.0.0.1:1,ptth://127.0.0.1:2?pool=bench"),
            Some("127.0.0.1:2")
        );
        assert_eq!(ptth_connect("tcp://127.0.0.1:1"), None);
        assert_eq!(ptth_connect("ptth://?pool=bench"), None);
    }
}
