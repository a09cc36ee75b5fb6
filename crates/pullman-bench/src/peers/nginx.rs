//! nginx as a reverse proxy in front of one `server` listener per worker.
//!
//! Settings beyond the defaults: keep-alive connections to the workers (without them nginx
//! opens a connection per request), no access log, and streaming both ways
//! (`proxy_buffering off`, `proxy_request_buffering off`) so that bodies pass through as
//! they do through pullman instead of being spooled to temp files. `worker_processes auto`
//! (one per core), as packaged. `NginxTls` listens with `ssl http2` on the layout's
//! certificate (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`), as pullman's TLS listener does.

use std::process::Command;

use super::process::{free_port, Proc};
use super::{Env, Layout, Running, System};
use crate::error::Error;

/// Idle keep-alive connections nginx keeps per worker process to the upstream group: above
/// any scenario's concurrency, so no request waits for a new upstream connection.
const UPSTREAM_KEEPALIVE: usize = 1024;

pub(super) fn start(
    system: System,
    env: &Env,
    layout: &Layout,
    dir: tempfile::TempDir,
    least_conn: bool,
) -> Result<Running, Error> {
    let tls = layout.tls_of(system)?;
    let (server, urls) = env.backends(dir.path(), layout.workers, Some(layout.concurrency))?;
    let port = free_port()?;
    let d = dir.path().display();
    let servers: String = urls
        .iter()
        .map(|u| {
            format!(
                "    server {} max_fails=0;\n",
                u.trim_start_matches("http://")
            )
        })
        .collect();
    let timeout = layout.timeout.as_secs().max(1);
    let listen = match tls {
        None => format!("listen 127.0.0.1:{port} reuseport;"),
        Some(files) => format!(
            "listen 127.0.0.1:{port} ssl http2 reuseport;\n    \
ssl_certificate {};\n    ssl_certificate_key {};\n    \
ssl_protocols TLSv1.2 TLSv1.3;",
            files.cert.display(),
            files.key.display()
        ),
    };
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  upstream workers {{
{balance}{servers}    keepalive {UPSTREAM_KEEPALIVE};
    keepalive_requests 1000000;
  }}
  server {{
    {listen}
    client_max_body_size 0;
    location / {{
      proxy_pass http://workers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout {timeout}s;
      proxy_send_timeout {timeout}s;
    }}
  }}
}}
"#,
        balance = if least_conn { "    least_conn;\n" } else { "" },
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path);
    let proxy = Proc::spawn(system.label(), cmd, &dir.path().join("nginx.out"))?;
    let pid = proxy.pid();
    let mut running = Running::new(
        system,
        format!("http://127.0.0.1:{port}"),
        Some(pid),
        vec![proxy],
        dir,
    );
    if let Some(files) = tls {
        running.serve_tls(format!("https://127.0.0.1:{port}"), files.trust.clone());
    }
    running.add(server);
    Ok(running)
}
