//! The `[hub]` table: where the hub listens for clients and for workers, and its
//! per-connection limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::tls::{TlsListen, WorkerTls};
use super::values::{de_duration, de_positive_duration, de_socket_addr};

/// Default `hub.max_header_bytes`: 64 KiB holds the headers of any ordinary request (large
/// cookies and tokens included) while bounding what one connection can make the hub buffer
/// before it knows where the request goes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Smallest `hub.max_header_bytes` accepted: 8 KiB, the smallest read buffer hyper accepts
/// and the limit most servers have long used, so smaller would refuse ordinary browsers.
pub const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;
/// Largest `hub.max_header_bytes` accepted: 96 KiB keeps a request head, with its span
/// table, inside one REQUEST frame of the smallest size a worker may announce (128 KiB).
pub const MAX_MAX_HEADER_BYTES: usize = 96 * 1024;
/// Default `hub.header_read_timeout`: 10 s is far longer than any honest client needs to send
/// a request head, and short enough that slow-loris connections do not pile up.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `hub.idle_timeout`: 60 s keeps client keep-alive connections worth reusing across a
/// page's requests, and releases the sockets of clients that went away.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `hub.drain_grace`: 30 s lets the requests in flight at a shutdown finish, and
/// matches the default termination grace period of Kubernetes pods.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);
/// Default `hub.ping_interval`: 5 s notices a dead worker link within seconds, at the cost of
/// one small frame per link per interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Default `hub.max_connections`: 10,000 open client connections, far more than a hub in
/// front of a few pools of workers serves at once, and well below what the hub's memory and
/// descriptors can hold.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Default `hub.min_body_rate`: 500 bytes a second, Apache's `mod_reqtimeout` default: a
/// phone on a poor link sends and reads far faster, and a client trickling bytes to hold a
/// connection open is cut off within seconds.
pub const DEFAULT_MIN_BODY_RATE: u64 = 500;

/// The `[hub]` table: where the hub listens and its per-connection limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address for clients. Port 0 picks a free port.
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// A second listener, for clients over TLS (`[hub.tls]`).
    #[serde(default)]
    pub tls: Option<TlsListen>,
    /// Where workers dial in; at least one, no repeats.
    #[serde(deserialize_with = "de_workers_listen")]
    pub workers_listen: Vec<WorkerListen>,
    /// What the `tls://` worker listeners serve (`[hub.worker_tls]`).
    #[serde(default)]
    pub worker_tls: Option<WorkerTls>,
    /// Largest request head (request line and headers) accepted; beyond it the client gets
    /// 431.
    #[serde(
        default = "default_max_header_bytes",
        deserialize_with = "de_max_header_bytes"
    )]
    pub max_header_bytes: usize,
    /// Time a client has to send a complete HTTP/1.1 request head, from its first byte.
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive client connection is kept open.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub idle_timeout: Duration,
    /// Time requests in flight get to finish after a drain starts; zero stops at once.
    #[serde(default = "default_drain_grace", deserialize_with = "de_duration")]
    pub drain_grace: Duration,
    /// Most client connections open at once; past it, a new one is answered 503 and closed.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "de_max_connections"
    )]
    pub max_connections: usize,
    /// Most client connections open at once from one IP address, the same way; 0 (the
    /// default) sets none, since behind a proxy every client has the proxy's address.
    #[serde(default)]
    pub max_connections_per_ip: usize,
    /// Bytes a second a client must keep, over each 10 s the hub waits on it, while the hub
    /// reads its request body or writes its response; below it the request fails (a body)
    /// or the connection is closed (a response). 0 sets none.
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: u64,
    /// Interval between the hub's pings on each worker link.
    #[serde(
        default = "default_ping_interval",
        deserialize_with = "de_positive_duration"
    )]
    pub ping_interval: Duration,
}

/// An address workers dial in to. Written `tcp://IP:PORT` or `unix://PATH` (so
/// `unix:///run/pullman/workers.sock` for an absolute path) for pullman's workers, and
/// `ptth://IP:PORT?pool=NAME` for POTHEAD's; displays the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkerListen {
    /// A TCP socket address. Port 0 picks a free port.
    Tcp(SocketAddr),
    /// A TCP socket address whose workers speak TLS first (`[hub.worker_tls]`). Port 0
    /// picks a free port.
    Tls(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP socket address for reverse-HTTP (PTTH) workers, such as POTHEAD's, of one
    /// pool: each connection is one free slot of that pool, and takes one request written
    /// to it as HTTP/1.1. Port 0 picks a free port.
    Ptth {
        /// Where to listen.
        addr: SocketAddr,
        /// The pool its workers serve (a PTTH worker names none).
        pool: String,
    },
}

impl WorkerListen {
    /// The socket address, for the TCP kinds.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            WorkerListen::Tcp(addr) | WorkerListen::Tls(addr) | WorkerListen::Ptth { addr, .. } => {
                Some(*addr)
            }
            WorkerListen::Unix(_) => None,
        }
    }
}

impl FromStr for WorkerListen {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkerListen, String> {
        if let Some(addr) = text.strip_prefix("tcp://") {
            return addr.parse().map(WorkerListen::Tcp).map_err(|_| {
                format!("invalid address {text:?}: expected tcp://IP:PORT, as in \"tcp://127.0.0.1:7070\"")
            });
        }
        if let Some(addr) = text.strip_prefix("tls://") {
            return addr.parse().map(WorkerListen::Tls).map_err(|_| {
                format!("invalid address {text:?}: expected tls://IP:PORT, as in \"tls://0.0.0.0:7443\"")
            });
        }
        if let Some(rest) = text.strip_prefix("ptth://") {
            let usage =
                "expected ptth://IP:PORT?pool=NAME, as in \"ptth://127.0.0.1:4040?pool=legacy\"";
            let Some((addr, query)) = rest.split_once('?') else {
                return Err(format!("invalid address {text:?}: no pool; {usage}"));
            };
            let addr = addr
                .parse()
                .map_err(|_| format!("invalid address {text:?}: {usage}"))?;
            let pool = match query.strip_prefix("pool=") {
                Some(pool) if !pool.is_empty() && !pool.contains(['&', '=']) => pool,
                _ => return Err(format!("invalid address {text:?}: {usage}")),
            };
            return Ok(WorkerListen::Ptth {
                addr,
                pool: pool.to_string(),
            });
        }
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!(
                    "invalid address {text:?}: the socket path is empty"
                ));
            }
            return Ok(WorkerListen::Unix(PathBuf::from(path)));
        }
        Err(format!(
            "invalid address {text:?}: expected tcp://IP:PORT, tls://IP:PORT, unix:///PATH or \
             ptth://IP:PORT?pool=NAME, as in \"tcp://127.0.0.1:7070\" or \
             \"unix:///run/pullman/workers.sock\""
        ))
    }
}

impl fmt::Display for WorkerListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerListen::Tcp(addr) => write!(f, "tcp://{addr}"),
            WorkerListen::Tls(addr) => write!(f, "tls://{addr}"),
            WorkerListen::Unix(path) => write!(f, "unix://{}", path.display()),
            WorkerListen::Ptth { addr, pool } => write!(f, "ptth://{addr}?pool={pool}"),
        }
    }
}

fn de_workers_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<WorkerListen>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    if texts.is_empty() {
        return Err(D::Error::custom(
            "no address: workers need at least one address to dial in to",
        ));
    }
    let mut addrs: Vec<WorkerListen> = Vec::with_capacity(texts.len());
    for text in &texts {
        let addr: WorkerListen = text.parse().map_err(D::Error::custom)?;
        // Port 0 means "any free port", so two of them do not collide.
        let is_any_port = addr.tcp_addr().is_some_and(|a| a.port() == 0);
        if !is_any_port && addrs.contains(&addr) {
            return Err(D::Error::custom(format!("{addr} is listed twice")));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

fn de_max_header_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let bytes = usize::deserialize(deserializer)?;
    if !(MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES).contains(&bytes) {
        return Err(D::Error::custom(format!(
            "max_header_bytes must be between {MIN_MAX_HEADER_BYTES} and {MAX_MAX_HEADER_BYTES}"
        )));
    }
    Ok(bytes)
}

fn de_max_connections<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let limit = usize::deserialize(deserializer)?;
    if limit == 0 {
        return Err(D::Error::custom("max_connections must be at least 1"));
    }
    Ok(limit)
}

fn default_min_body_rate() -> u64 {
    DEFAULT_MIN_BODY_RATE
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_header_read_timeout() -> Duration {
    DEFAULT_HEADER_READ_TIMEOUT
}
fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
fn default_drain_grace() -> Duration {
    DEFAULT_DRAIN_GRACE
}
fn default_ping_interval() -> Duration {
    DEFAULT_PING_INTERVAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{refuse, POOL};

    #[test]
    fn worker_listen_round_trips() {
        for text in [
            "tcp://127.0.0.1:7070",
            "tcp://[::1]:0",
            "unix:///run/pullman/workers.sock",
            "unix://relative.sock",
            "ptth://127.0.0.1:4040?pool=legacy",
            "ptth://[::1]:0?pool=a-b",
            "tls://0.0.0.0:7443",
        ] {
            let addr: WorkerListen = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        for bad in [
            "127.0.0.1:7070",
            "tcp://localhost:7070",
            "tcp://1.2.3.4",
            "unix://",
            "tls://localhost:1",
            "ptth://127.0.0.1:4040",
            "ptth://127.0.0.1:4040?pool=",
            "ptth://127.0.0.1:4040?name=a",
            "ptth://127.0.0.1:4040?pool=a&x=1",
            "ptth://localhost:4040?pool=a",
        ] {
            assert!(bad.parse::<WorkerListen>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hub_value_checks() {
        let pool_and = |hub: &str| format!("[hub]\n{hub}\n{POOL}");
        for (hub, key, why) in [
            (
                "listen = \"localhost:80\"\nworkers_listen = [\"tcp://127.0.0.1:1\"]",
                "hub.listen",
                "expected IP:PORT",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = []",
                "hub.workers_listen",
                "at least one address",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = [\"127.0.0.1:1\"]",
                "hub.workers_listen",
                "expected tcp://IP:PORT, tls://IP:PORT, unix:///PATH or ptth://IP:PORT?pool=NAME",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = [\"tcp://127.0.0.1:1\", \"tcp://127.0.0.1:1\"]",
                "hub.workers_listen",
                "tcp://127.0.0.1:1 is listed twice",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = [\"tcp://127.0.0.1:1\"]\nmax_header_bytes = 8191",
                "hub.max_header_bytes",
                "between 8192 and 98304",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = [\"tcp://127.0.0.1:1\"]\nmax_header_bytes = 1048576",
                "hub.max_header_bytes",
                "between 8192 and 98304",
            ),
            (
                "listen = \"127.0.0.1:80\"\nworkers_listen = [\"tcp://127.0.0.1:1\"]\nping_interval = \"0s\"",
                "hub.ping_interval",
                "more than zero",
            ),
        ] {
            let (location, message) = refuse(&pool_and(hub));
            assert_eq!(location.key.as_deref(), Some(key), "{hub}: {message}");
            assert!(message.contains(why), "{hub}: {message}");
        }
    }
}
