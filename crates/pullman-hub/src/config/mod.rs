//! The hub's configuration file: TOML in, a checked [`Config`] out.
//!
//! The pipeline is [`Config::from_file`] (read) -> [`Config::from_str`] (parse) -> `validate`
//! (cross-checks), each testable on its own. Every table denies unknown keys, so a typo is an
//! error rather than a silently ignored setting.
//!
//! Where a check happens decides how its error finds its line:
//! - a value that can be judged alone (a duration, an address, a size, a pool name) is parsed
//!   while it is deserialized, and toml puts the value's position on the error;
//! - a check that needs more than one value (names used twice, a route's pool, a route's
//!   conditions taken together) runs in `validate`, on fields kept as [`Spanned`] for their
//!   position.
//!
//! Either way the error is rendered as `FILE:LINE:COLUMN: KEY: message`, the key being the
//! dotted path to the value, e.g. `route[2].pool`.

mod error;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use toml::Spanned;

use self::error::Problem;
pub use self::error::{ConfigError, Location};
use self::values::{
    de_duration, de_name, de_positive_duration, de_socket_addr, parse_duration, RouteName,
};
pub use self::values::{format_duration, Secret, MAX_DURATION, MAX_NAME_LEN};
pub use crate::router::RouteConfig;
use crate::router::RouteToml;

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
/// Default `pool.queue_limit`: 10 000 waiting requests absorbs bursts of ordinary size while
/// keeping the queue's memory bounded (a waiting request holds its head, not its body).
pub const DEFAULT_QUEUE_LIMIT: usize = 10_000;
/// Default `pool.queue_timeout`: a request that waited 10 s for a free worker is better
/// answered 503 than left waiting; its client has likely given up or retried.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `pool.timeout`: 30 s from arrival to response, the usual proxy read timeout; pools
/// of long jobs raise it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `pool.max_body_bytes`: 100 MiB admits typical uploads (images, documents, audio)
/// while stopping a client from streaming without end into a worker.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 100 * 1024 * 1024;
/// Default `pool.upstream_connect_timeout`: a loopback or LAN upstream connects in
/// milliseconds; 5 s tolerates a busy one and still answers 502 before the client gives up.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `pool.upstream_timeout`: 30 s for the upstream's response head, and for any pause
/// within its body; the usual proxy read timeout (nginx's `proxy_read_timeout` is 60 s
/// between reads).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `pool.filter_timeout`: a filter decides on a head in microseconds; 5 s covers a
/// queue of busy filters, and a request stuck longer is better failed (or passed, when
/// `failure_mode = "open"`) than held.
pub const DEFAULT_FILTER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `pool.filter_body_limit`: 1 MiB covers form posts and JSON bodies a filter
/// inspects whole; larger bodies belong to `filter_body = "streamed"`.
pub const DEFAULT_FILTER_BODY_LIMIT: u64 = 1024 * 1024;
/// Largest `pool.filter_body_limit`: a buffered body is held in the hub's memory for the
/// whole exchange, so 16 MiB times the requests in flight stays within reason.
pub const MAX_FILTER_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// Default `program.instances`.
pub const DEFAULT_INSTANCES: u32 = 1;
/// Most instances of one program: each is a process the hub watches, and a few hundred is
/// already more than one machine's cores can keep busy.
pub const MAX_INSTANCES: u32 = 256;
/// Default `program.max_restarts`: five restarts ...
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// ... within a minute (`program.within`), Erlang/OTP's spirit: a program that crashes more
/// often than that is broken, not unlucky, and restarting it only adds noise.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Default `program.backoff`: the first restart after 100 ms (a crash from a passing cause is
/// over quickly), doubling up to 5 s (a crash loop costs little CPU).
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// Default `program.stop_grace`: time between SIGTERM and SIGKILL when the hub stops a
/// program. A worker drains its requests in flight on SIGTERM; by the time the hub stops its
/// programs its own drain has already waited for them, so 10 s is plenty.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// Largest config text accepted: configs are written by hand, so 1 MiB is a wrong file, and
/// refusing it early bounds the memory a config reload can take.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Default `admin.listen`: loopback, so that the admin API, which can change where requests
/// go, is reachable only from the hub's own host unless `allow_remote` says otherwise.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// The whole configuration, validated: every pool name is unique, every route names a pool,
/// every pattern is compiled.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `[hub]` table.
    pub hub: HubConfig,
    /// The `[[pool]]` tables, in file order; at least one.
    pub pools: Vec<PoolConfig>,
    /// The `[[route]]` tables, in file order, which is the order they are tried in.
    pub routes: Vec<RouteConfig>,
    /// The `[[program]]` tables: worker programs the hub starts and supervises.
    pub programs: Vec<ProgramConfig>,
    /// The `[admin]` table; `None` leaves the admin API off.
    pub admin: Option<AdminConfig>,
    /// The `[metrics]` table.
    pub metrics: MetricsConfig,
    /// The document as parsed, which admin API edits start from (see `reload.rs`).
    pub(crate) document: Document,
}

/// The config document as TOML values. Its `Debug` hides it: it holds the tokens.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Document(pub(crate) toml::Table);

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Document(MASKED)")
    }
}

/// The `[admin]` table: the admin API's listener and token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin API and `/metrics`. Default `127.0.0.1:9090`. A non-loopback
    /// address is refused unless `allow_remote` is set.
    #[serde(default = "default_admin_listen", deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// The bearer token every admin request must present. Required.
    pub token: Secret,
    /// Accept a `listen` address other hosts can reach. Default false.
    #[serde(default)]
    pub allow_remote: bool,
}

/// The `[metrics]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether requests are counted and timed. Default true; off only to measure what
    /// recording costs (the gauges at `/metrics` still work).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig { enabled: true }
    }
}

/// The `[hub]` table: where the hub listens and its per-connection limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address for clients. Port 0 picks a free port.
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Where workers dial in; at least one, no repeats.
    #[serde(deserialize_with = "de_workers_listen")]
    pub workers_listen: Vec<WorkerListen>,
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
    /// Interval between the hub's pings on each worker link.
    #[serde(
        default = "default_ping_interval",
        deserialize_with = "de_positive_duration"
    )]
    pub ping_interval: Duration,
}

/// An address workers dial in to. Written `tcp://IP:PORT` or `unix://PATH` (so
/// `unix:///run/pullman/workers.sock` for an absolute path); displays the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkerListen {
    /// A TCP socket address. Port 0 picks a free port.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl FromStr for WorkerListen {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkerListen, String> {
        if let Some(addr) = text.strip_prefix("tcp://") {
            return addr.parse().map(WorkerListen::Tcp).map_err(|_| {
                format!("invalid address {text:?}: expected tcp://IP:PORT, as in \"tcp://127.0.0.1:7070\"")
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
            "invalid address {text:?}: expected tcp://IP:PORT or unix:///PATH, as in \
             \"tcp://127.0.0.1:7070\" or \"unix:///run/pullman/workers.sock\""
        ))
    }
}

impl fmt::Display for WorkerListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerListen::Tcp(addr) => write!(f, "tcp://{addr}"),
            WorkerListen::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// A `[[pool]]` table: a queue of requests and the workers that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name: 1 to [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 _ . -`.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    /// The token a worker presents to serve this pool.
    pub token: Secret,
    /// Most requests waiting in the queue; when full, new requests get 503 with
    /// `Retry-After`.
    #[serde(default = "default_queue_limit", deserialize_with = "de_queue_limit")]
    pub queue_limit: usize,
    /// Longest a request waits in the queue before it gets 503.
    #[serde(
        default = "default_queue_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub queue_timeout: Duration,
    /// Deadline from arrival to response; past it the client gets 504 and the worker a
    /// cancel.
    #[serde(default = "default_timeout", deserialize_with = "de_positive_duration")]
    pub timeout: Duration,
    /// Largest request body; beyond it the client gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Whether a request with an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS) that was
    /// delivered to a worker that then died may be retried on another worker. Off by default:
    /// a handler may not be as idempotent as its method claims.
    #[serde(default)]
    pub retry_idempotent: bool,
    /// What the workers do with a request.
    #[serde(default)]
    pub mode: PoolMode,
    /// Filter mode: where passed requests go; required for, and only for, a filter pool.
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// Filter mode: time to open a connection to the upstream; past it the client gets 502.
    #[serde(
        default = "default_upstream_connect_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub upstream_connect_timeout: Duration,
    /// Filter mode: time from sending a request upstream to its response head (past it the
    /// client gets 504), and the longest the upstream may pause within its response body
    /// (past it the client's response is cut off, as the body can no longer be complete).
    #[serde(
        default = "default_upstream_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub upstream_timeout: Duration,
    /// Filter mode: what of the request body the filter sees.
    #[serde(default)]
    pub filter_body: FilterBody,
    /// Filter mode, `filter_body = "buffered"`: the largest body the hub buffers for the
    /// filter; beyond it the client gets 413. At most [`MAX_FILTER_BODY_LIMIT`].
    #[serde(
        default = "default_filter_body_limit",
        deserialize_with = "de_filter_body_limit"
    )]
    pub filter_body_limit: u64,
    /// Filter mode: whether the upstream's response goes through a filter too.
    #[serde(default)]
    pub filter_response: bool,
    /// Filter mode: how long a phase waits for a filter's verdict, queueing included.
    #[serde(
        default = "default_filter_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub filter_timeout: Duration,
    /// Filter mode: what happens when no filter answers in time or none is connected.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Filter mode: whether filters may edit hop-by-hop headers and `host`. Off by default:
    /// those fields describe this hop, and a filter changing them is more likely a bug than
    /// a plan.
    #[serde(default)]
    pub filter_edit_protected: bool,
}

impl PoolConfig {
    /// Whether any filter-mode key differs from its default (they are refused on a
    /// respond pool, where they would do nothing).
    fn has_filter_settings(&self) -> bool {
        self.upstream.is_some()
            || self.upstream_connect_timeout != DEFAULT_UPSTREAM_CONNECT_TIMEOUT
            || self.upstream_timeout != DEFAULT_UPSTREAM_TIMEOUT
            || self.filter_body != FilterBody::None
            || self.filter_body_limit != DEFAULT_FILTER_BODY_LIMIT
            || self.filter_response
            || self.filter_timeout != DEFAULT_FILTER_TIMEOUT
            || self.failure_mode != FailureMode::Closed
            || self.filter_edit_protected
    }
}

/// A filter pool's upstream: `http://HOST:PORT` (HTTP/1.1, kept-alive connections) or
/// `h2c://HOST:PORT` (HTTP/2 over cleartext, prior knowledge). The port defaults to 80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Whether to speak HTTP/2 (h2c) rather than HTTP/1.1.
    pub h2c: bool,
    /// Host and port.
    pub authority: http::uri::Authority,
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(text: &str) -> Result<Upstream, String> {
        let bad = |why: &str| {
            format!(
                "invalid upstream {text:?}: {why}; expected http://HOST:PORT or h2c://HOST:PORT"
            )
        };
        let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
        let h2c = match uri.scheme_str() {
            Some("http") => false,
            Some("h2c") => true,
            Some("https") => return Err(bad("TLS to the upstream is not supported yet")),
            _ => return Err(bad("unknown scheme")),
        };
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return Err(bad(
                "a path or query is not allowed (filters rewrite paths)",
            ));
        }
        Ok(Upstream { h2c, authority })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.h2c { "h2c" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Upstream, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(D::Error::custom)
    }
}

/// What of the request body a filter sees (`filter_body`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterBody {
    /// The head only; the body streams straight to the upstream.
    #[default]
    None,
    /// The whole body, read by the hub first (up to `filter_body_limit`); the same bytes
    /// then go upstream.
    Buffered,
    /// The body streams through the filter, and what the filter streams back goes upstream.
    Streamed,
}

impl<'de> Deserialize<'de> for FilterBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FilterBody, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "none" => Ok(FilterBody::None),
            "buffered" => Ok(FilterBody::Buffered),
            "streamed" => Ok(FilterBody::Streamed),
            _ => Err(D::Error::custom(format!(
                "unknown filter_body {text:?}, expected \"none\", \"buffered\" or \"streamed\""
            ))),
        }
    }
}

/// What a filter pool does when no filter answers (`failure_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Answer 503: nothing unfiltered reaches the upstream.
    #[default]
    Closed,
    /// Forward unfiltered: availability over filtering.
    Open,
}

impl<'de> Deserialize<'de> for FailureMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FailureMode, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "closed" => Ok(FailureMode::Closed),
            "open" => Ok(FailureMode::Open),
            _ => Err(D::Error::custom(format!(
                "unknown failure_mode {text:?}, expected \"closed\" or \"open\""
            ))),
        }
    }
}

/// What a pool's workers do with a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PoolMode {
    /// The worker produces the response.
    #[default]
    Respond,
    /// The worker returns a verdict; passed requests go to the pool's upstream.
    Filter,
}

impl<'de> Deserialize<'de> for PoolMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PoolMode, D::Error> {
        let mode = String::deserialize(deserializer)?;
        match mode.as_str() {
            "respond" => Ok(PoolMode::Respond),
            "filter" => Ok(PoolMode::Filter),
            "respond_filter" => Err(D::Error::custom(
                "pool mode \"respond_filter\" is not supported; use mode = \"filter\" with \
                 filter_response = true",
            )),
            _ => Err(D::Error::custom(format!(
                "unknown pool mode {mode:?}, expected \"respond\" or \"filter\""
            ))),
        }
    }
}

/// A `[[program]]` table: a worker program the hub starts, restarts when it exits, and stops
/// on drain. Each instance gets `PULLMAN_HUB`, `PULLMAN_POOL` and `PULLMAN_TOKEN` in its
/// environment, so `pullman worker` needs no flags.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// Unique name, as for pools.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    /// The pool its instances serve; one of the config's pools.
    #[serde(deserialize_with = "de_name")]
    pub pool: String,
    /// Program and arguments, run without a shell. A first word of exactly `pullman` runs
    /// the hub's own executable, so the demo and tests need no install.
    #[serde(deserialize_with = "de_command")]
    pub command: Vec<String>,
    /// How many copies run at once, 1 to [`MAX_INSTANCES`].
    #[serde(default = "default_instances", deserialize_with = "de_instances")]
    pub instances: u32,
    /// When an instance that exited is started again.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restart intensity: at most this many restarts (over all instances) ...
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// ... within this window; one more and the program is marked failed.
    #[serde(
        default = "default_restart_window",
        deserialize_with = "de_positive_duration"
    )]
    pub within: Duration,
    /// Wait before a restart: starts at the low end and doubles per crash in a row, up to
    /// the high end. Written `"100ms..5s"`.
    #[serde(default = "default_backoff", deserialize_with = "de_backoff")]
    pub backoff: Backoff,
    /// Time between SIGTERM and SIGKILL when the hub stops an instance.
    #[serde(default = "default_stop_grace", deserialize_with = "de_duration")]
    pub stop_grace: Duration,
    /// Extra environment variables for the instances.
    #[serde(default, deserialize_with = "de_env")]
    pub env: BTreeMap<String, String>,
}

/// When an instance that exited is started again (Erlang/OTP's child restart types).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Always, whatever the exit status.
    #[default]
    Permanent,
    /// Only after a crash: a non-zero exit status or a signal.
    Transient,
    /// Never.
    Temporary,
}

/// Exponential backoff between restarts: `min`, doubling per crash in a row, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl FromStr for Backoff {
    type Err = String;

    fn from_str(text: &str) -> Result<Backoff, String> {
        let Some((min, max)) = text.split_once("..") else {
            return Err(format!(
                "invalid backoff {text:?}: expected MIN..MAX, as in \"100ms..5s\""
            ));
        };
        let (min, max) = (parse_duration(min)?, parse_duration(max)?);
        if min.is_zero() {
            return Err(format!(
                "invalid backoff {text:?}: the first wait must be longer than zero"
            ));
        }
        if min > max {
            return Err(format!(
                "invalid backoff {text:?}: the first wait is longer than the longest"
            ));
        }
        Ok(Backoff { min, max })
    }
}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| {
                // One byte past the limit is enough for from_str to refuse the file.
                file.take(MAX_CONFIG_BYTES as u64 + 1)
                    .read_to_string(&mut text)
            })
            .map_err(read_error)?;
        Config::from_str(&text, &path.display().to_string())
    }

    /// Parses and validates config `text`; `origin` names it in errors (usually the file
    /// name).
    pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let invalid = |problem: Problem| problem.locate(text, origin);
        if text.len() > MAX_CONFIG_BYTES {
            return Err(invalid(Problem::new(
                None,
                format!("the config is larger than {MAX_CONFIG_BYTES} bytes"),
            )));
        }
        let raw: ConfigToml = toml::from_str(text)
            .map_err(|error| invalid(Problem::new(error.span(), error.message().to_owned())))?;
        let mut config = raw.validate().map_err(invalid)?;
        // The text parsed as a `ConfigToml`, so it parses as a table too.
        config.document =
            Document(toml::from_str(text).map_err(|error| {
                invalid(Problem::new(error.span(), error.message().to_owned()))
            })?);
        Ok(config)
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|pool| pool.name == name)
    }
}

/// The document as written, before the checks that need more than one value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    hub: HubConfig,
    #[serde(default)]
    pool: Vec<Spanned<PoolConfig>>,
    #[serde(default)]
    route: Vec<Spanned<RouteToml<RouteName>>>,
    #[serde(default)]
    program: Vec<Spanned<ProgramConfig>>,
    admin: Option<Spanned<AdminConfig>>,
    #[serde(default)]
    metrics: MetricsConfig,
}

impl ConfigToml {
    /// The checks that need more than one value, and the conversion to [`Config`].
    fn validate(self) -> Result<Config, Problem> {
        if self.pool.is_empty() {
            return Err(Problem::new(
                None,
                "no [[pool]] table: a config needs at least one pool",
            ));
        }
        let mut pool_spans: HashMap<&str, Range<usize>> = HashMap::new();
        for pool in &self.pool {
            let settings = pool.get_ref();
            match settings.mode {
                PoolMode::Filter if settings.upstream.is_none() => {
                    return Err(Problem::at(
                        pool.span(),
                        format!(
                            "pool {:?} has mode = \"filter\" but no `upstream`: name where \
                             passed requests go, as in upstream = \"http://127.0.0.1:8000\"",
                            settings.name
                        ),
                    ));
                }
                PoolMode::Respond if settings.has_filter_settings() => {
                    return Err(Problem::at(
                        pool.span(),
                        format!(
                            "pool {:?} sets filter keys (upstream, filter_*, failure_mode) but \
                             its mode is \"respond\"; add mode = \"filter\" or remove them",
                            settings.name
                        ),
                    ));
                }
                _ => {}
            }
            if let Some(first) = pool_spans.insert(&pool.get_ref().name, pool.span()) {
                return Err(Problem::at(
                    pool.span(),
                    format!("pool name {:?} is used twice", pool.get_ref().name),
                )
                .see(first));
            }
        }

        let mut routes = Vec::with_capacity(self.route.len());
        let mut route_names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut catch_all: Option<Range<usize>> = None;
        for route in &self.route {
            if let Some(name) = &route.get_ref().name {
                if let Some(first) = route_names.insert(name.get_ref().as_ref(), name.span()) {
                    return Err(Problem::at(
                        name.span(),
                        format!("route name {:?} is used twice", name.get_ref().as_ref()),
                    )
                    .see(first));
                }
            }
            if let Some(earlier) = &catch_all {
                return Err(Problem::at(
                    route.span(),
                    "this route can never match: an earlier route has no conditions and \
                     takes every request",
                )
                .see(earlier.clone()));
            }
            let built = route.get_ref().build(&pool_spans)?;
            if built.host.is_none()
                && built.path.is_none()
                && built.methods.is_empty()
                && built.header.is_none()
            {
                catch_all = Some(route.span());
            }
            routes.push(built);
        }

        let mut program_names: HashMap<&str, Range<usize>> = HashMap::new();
        for program in &self.program {
            let config = program.get_ref();
            if let Some(first) = program_names.insert(&config.name, program.span()) {
                return Err(Problem::at(
                    program.span(),
                    format!("program name {:?} is used twice", config.name),
                )
                .see(first));
            }
            if !pool_spans.contains_key(config.pool.as_str()) {
                return Err(Problem::at(
                    program.span(),
                    format!(
                        "program {:?} serves pool {:?}, which does not exist",
                        config.name, config.pool
                    ),
                ));
            }
        }

        if let Some(admin) = &self.admin {
            let listen = admin.get_ref().listen;
            if !listen.ip().is_loopback() && !admin.get_ref().allow_remote {
                return Err(Problem::at(
                    admin.span(),
                    format!(
                        "admin listen address {listen} is not a loopback address: the admin \
                         API can change where requests go; set `allow_remote = true` to \
                         accept it"
                    ),
                ));
            }
        }

        Ok(Config {
            hub: self.hub,
            pools: self.pool.into_iter().map(Spanned::into_inner).collect(),
            routes,
            programs: self.program.into_iter().map(Spanned::into_inner).collect(),
            admin: self.admin.map(Spanned::into_inner),
            metrics: self.metrics,
            document: Document::default(),
        })
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
        let is_any_port = matches!(&addr, WorkerListen::Tcp(a) if a.port() == 0);
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

fn de_queue_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let limit = usize::deserialize(deserializer)?;
    if limit == 0 {
        return Err(D::Error::custom("queue_limit must be at least 1"));
    }
    Ok(limit)
}

fn de_filter_body_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let limit = u64::deserialize(deserializer)?;
    if !(1..=MAX_FILTER_BODY_LIMIT).contains(&limit) {
        return Err(D::Error::custom(format!(
            "filter_body_limit must be between 1 and {MAX_FILTER_BODY_LIMIT}"
        )));
    }
    Ok(limit)
}

fn de_command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let command = Vec::<String>::deserialize(deserializer)?;
    match command.first() {
        None => Err(D::Error::custom(
            "the command is empty; give the program and its arguments, as in [\"pullman\", \"worker\"]",
        )),
        Some(program) if program.is_empty() => {
            Err(D::Error::custom("the command's program name is empty"))
        }
        Some(_) => Ok(command),
    }
}

fn de_instances<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let instances = u32::deserialize(deserializer)?;
    if !(1..=MAX_INSTANCES).contains(&instances) {
        return Err(D::Error::custom(format!(
            "instances must be 1 to {MAX_INSTANCES}, not {instances}"
        )));
    }
    Ok(instances)
}

fn de_backoff<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Backoff, D::Error> {
    String::deserialize(deserializer)?
        .parse()
        .map_err(D::Error::custom)
}

/// Environment names the supervisor sets itself, so a program cannot be pointed elsewhere by
/// mistake.
const RESERVED_ENV: [&str; 3] = ["PULLMAN_HUB", "PULLMAN_POOL", "PULLMAN_TOKEN"];

fn de_env<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let env = BTreeMap::<String, String>::deserialize(deserializer)?;
    for (name, value) in &env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(D::Error::custom(format!(
                "invalid environment variable name {name:?}"
            )));
        }
        if value.contains('\0') {
            return Err(D::Error::custom(format!(
                "the value of {name} contains a NUL byte"
            )));
        }
        if RESERVED_ENV.contains(&name.as_str()) {
            return Err(D::Error::custom(format!(
                "{name} is set by the hub for each instance; leave it out"
            )));
        }
    }
    Ok(env)
}

fn default_instances() -> u32 {
    DEFAULT_INSTANCES
}
fn default_max_restarts() -> u32 {
    DEFAULT_MAX_RESTARTS
}
fn default_restart_window() -> Duration {
    DEFAULT_RESTART_WINDOW
}
fn default_backoff() -> Backoff {
    DEFAULT_BACKOFF
}
fn default_stop_grace() -> Duration {
    DEFAULT_STOP_GRACE
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
fn default_queue_limit() -> usize {
    DEFAULT_QUEUE_LIMIT
}
fn default_queue_timeout() -> Duration {
    DEFAULT_QUEUE_TIMEOUT
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_upstream_connect_timeout() -> Duration {
    DEFAULT_UPSTREAM_CONNECT_TIMEOUT
}
fn default_upstream_timeout() -> Duration {
    DEFAULT_UPSTREAM_TIMEOUT
}
fn default_filter_body_limit() -> u64 {
    DEFAULT_FILTER_BODY_LIMIT
}
fn default_filter_timeout() -> Duration {
    DEFAULT_FILTER_TIMEOUT
}
fn default_admin_listen() -> SocketAddr {
    DEFAULT_ADMIN_LISTEN
}
fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::router::{HostMatch, PathMatch};

    pub(super) const HUB: &str =
        "[hub]\nlisten = \"127.0.0.1:8080\"\nworkers_listen = [\"tcp://127.0.0.1:7070\"]\n";
    pub(super) const POOL: &str = "[[pool]]\nname = \"demo\"\ntoken = \"s3cret\"\n";

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, "t.toml")
    }

    /// The error for `text`, which must be refused.
    pub(super) fn refuse(text: &str) -> (Location, String) {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(ConfigError::Invalid { location, message }) => (location, message),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let config = parse(&format!("{HUB}{POOL}")).unwrap();
        let hub = &config.hub;
        assert_eq!(hub.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            hub.workers_listen,
            [WorkerListen::Tcp("127.0.0.1:7070".parse().unwrap())]
        );
        assert_eq!(hub.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
        assert_eq!(hub.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
        assert_eq!(hub.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(hub.drain_grace, DEFAULT_DRAIN_GRACE);
        assert_eq!(hub.ping_interval, DEFAULT_PING_INTERVAL);
        let pool = &config.pools[0];
        assert_eq!(pool.name, "demo");
        assert_eq!(pool.token.expose(), "s3cret");
        assert_eq!(pool.queue_limit, DEFAULT_QUEUE_LIMIT);
        assert_eq!(pool.queue_timeout, DEFAULT_QUEUE_TIMEOUT);
        assert_eq!(pool.timeout, DEFAULT_TIMEOUT);
        assert_eq!(pool.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(!pool.retry_idempotent);
        assert_eq!(pool.mode, PoolMode::Respond);
        assert!(config.routes.is_empty());
        assert!(config.pool("demo").is_some());
        assert!(config.pool("other").is_none());
    }

    #[test]
    fn programs_get_defaults_and_read_every_key() {
        let text = format!(
            "{HUB}{POOL}\n[[program]]\nname = \"a\"\npool = \"demo\"\ncommand = [\"w\"]\n\
             [[program]]\nname = \"b\"\npool = \"demo\"\ncommand = [\"w\", \"-v\"]\n\
             instances = 3\nrestart = \"temporary\"\nmax_restarts = 0\nwithin = \"2s\"\n\
             backoff = \"1s..1s\"\nstop_grace = \"0s\"\nenv = {{ A = \"1\" }}\n"
        );
        let config = parse(&text).unwrap();
        let a = &config.programs[0];
        assert_eq!(a.command, ["w"]);
        assert_eq!(a.instances, DEFAULT_INSTANCES);
        assert_eq!(a.restart, RestartPolicy::Permanent);
        assert_eq!(a.max_restarts, DEFAULT_MAX_RESTARTS);
        assert_eq!(a.within, DEFAULT_RESTART_WINDOW);
        assert_eq!(a.backoff, DEFAULT_BACKOFF);
        assert_eq!(a.stop_grace, DEFAULT_STOP_GRACE);
        assert!(a.env.is_empty());
        let b = &config.programs[1];
        assert_eq!((b.name.as_str(), b.pool.as_str()), ("b", "demo"));
        assert_eq!(b.command, ["w", "-v"]);
        assert_eq!(b.instances, 3);
        assert_eq!(b.restart, RestartPolicy::Temporary);
        assert_eq!(b.max_restarts, 0);
        assert_eq!(b.within, Duration::from_secs(2));
        assert_eq!(b.backoff.min, Duration::from_secs(1));
        assert_eq!(b.stop_grace, Duration::ZERO);
        assert_eq!(b.env["A"], "1");
        assert!(parse(&format!("{HUB}{POOL}")).unwrap().programs.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
            [hub]
            listen = "[::]:0"
            workers_listen = ["tcp://0.0.0.0:0", "unix:///run/w.sock", "tcp://0.0.0.0:0"]
            max_header_bytes = 8192
            header_read_timeout = "250ms"
            idle_timeout = "2m"
            drain_grace = "0s"
            ping_interval = "1h"

            [[pool]]
            name = "a-b.c_D9"
            token = "t"
            queue_limit = 1
            queue_timeout = "1ms"
            timeout = "5m"
            max_body_bytes = 0
            retry_idempotent = true
            mode = "respond"

            [[route]]
            name = "r1"
            host = "*.Example.com"
            path_regex = '^/img/.*\.png$'
            method = ["GET", "HEAD"]
            header = { name = "X-Tenant", value = "a" }
            pool = "a-b.c_D9"
        "#;
        let config = parse(text).unwrap();
        let hub = &config.hub;
        assert_eq!(hub.listen.port(), 0);
        assert_eq!(hub.workers_listen.len(), 3);
        assert_eq!(
            hub.workers_listen[1],
            WorkerListen::Unix("/run/w.sock".into())
        );
        assert_eq!(hub.max_header_bytes, 8192);
        assert_eq!(hub.header_read_timeout, Duration::from_millis(250));
        assert_eq!(hub.idle_timeout, Duration::from_secs(120));
        assert_eq!(hub.drain_grace, Duration::ZERO);
        assert_eq!(hub.ping_interval, Duration::from_secs(3600));
        let pool = &config.pools[0];
        assert_eq!(pool.queue_limit, 1);
        assert_eq!(pool.queue_timeout, Duration::from_millis(1));
        assert_eq!(pool.timeout, Duration::from_secs(300));
        assert_eq!(pool.max_body_bytes, 0);
        assert!(pool.retry_idempotent);
        let route = &config.routes[0];
        assert_eq!(route.name.as_deref(), Some("r1"));
        assert_eq!(
            route.host,
            Some(HostMatch::Subdomain(".example.com".into()))
        );
        assert!(
            matches!(&route.path, Some(PathMatch::Regex(r)) if r.as_str() == r"^/img/.*\.png$")
        );
        assert_eq!(route.methods, [Method::GET, Method::HEAD]);
        let header = route.header.as_ref().unwrap();
        assert_eq!(header.name, "x-tenant");
        assert_eq!(header.value.as_ref().unwrap(), "a");
        assert_eq!(route.pool, "a-b.c_D9");
    }

    #[test]
    fn worker_listen_round_trips() {
        for text in [
            "tcp://127.0.0.1:7070",
            "tcp://[::1]:0",
            "unix:///run/pullman/workers.sock",
            "unix://relative.sock",
        ] {
            let addr: WorkerListen = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        for bad in [
            "127.0.0.1:7070",
            "tcp://localhost:7070",
            "tcp://1.2.3.4",
            "unix://",
            "tls://1.2.3.4:1",
        ] {
            assert!(bad.parse::<WorkerListen>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_route_to_a_missing_pool_names_the_route_and_line() {
        let text = format!(
            "{HUB}{POOL}[[route]]\npool = \"demo\"\npath = \"/a\"\n\n[[route]]\nname = \"r\"\npool = \"nope\"\n"
        );
        let (location, message) = refuse(&text);
        assert_eq!(location.position, Some((13, 8)));
        assert_eq!(location.key.as_deref(), Some("route[1].pool"));
        assert_eq!(message, "no pool named \"nope\"; the pools are: demo");
    }

    #[test]
    fn a_pool_name_used_twice_points_at_both() {
        let (location, message) = refuse(&format!("{HUB}{POOL}{POOL}"));
        assert_eq!(location.position, Some((7, 1)));
        assert_eq!(location.key.as_deref(), Some("pool[1]"));
        assert_eq!(message, "pool name \"demo\" is used twice (see line 4)");
    }

    #[test]
    fn route_names_are_checked_and_unique() {
        let route = "[[route]]\nname = \"r\"\npath = \"/\"\npool = \"demo\"\n";
        let (location, message) = refuse(&format!("{HUB}{POOL}{route}{route}"));
        assert_eq!(location.key.as_deref(), Some("route[1].name"));
        assert_eq!(location.position, Some((12, 8)));
        assert!(message.contains("used twice (see line 8)"), "{message}");

        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[[route]]\nname = \"a b\"\npool = \"demo\"\n"
        ));
        assert_eq!(location.key.as_deref(), Some("route[0].name"));
        assert!(message.contains("names use only"), "{message}");
    }

    #[test]
    fn bad_regex_has_a_line() {
        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[[route]]\npath_regex = \"(\"\npool = \"demo\"\n"
        ));
        assert_eq!(location.position, Some((8, 14)));
        assert_eq!(location.key.as_deref(), Some("route[0].path_regex"));
        assert!(message.contains("regex parse error"), "{message}");
    }

    #[test]
    fn one_path_condition_at_most() {
        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[[route]]\npath = \"/a\"\npath_prefix = \"/b\"\npool = \"demo\"\n"
        ));
        assert_eq!(location.key.as_deref(), Some("route[0].path_prefix"));
        assert!(message.contains("at most one of"), "{message}");
    }

    #[test]
    fn route_value_checks() {
        for (route, key, why) in [
            ("path = \"a\"", "route[0].path", "must start with '/'"),
            (
                "path_prefix = \"\"",
                "route[0].path_prefix",
                "must start with '/'",
            ),
            ("host = \"a.com:80\"", "route[0].host", "leave the port out"),
            (
                "method = \"get\"",
                "route[0].method",
                "did you mean \"GET\"",
            ),
            ("method = []", "route[0].method", "the method list is empty"),
            (
                "method = [\"GET\", \"G T\"]",
                "route[0].method",
                "invalid method \"G T\"",
            ),
            (
                "method = 1",
                "route[0].method",
                "expected a method name or a list",
            ),
            (
                "header = { name = \"a b\" }",
                "route[0].header.name",
                "invalid header name",
            ),
            (
                "header = { name = \"a\", value = \"\\n\" }",
                "route[0].header.value",
                "invalid header value",
            ),
            (
                "header = { value = \"a\" }",
                "route[0].header",
                "missing field `name`",
            ),
        ] {
            let (location, message) =
                refuse(&format!("{HUB}{POOL}[[route]]\n{route}\npool = \"demo\"\n"));
            assert_eq!(location.key.as_deref(), Some(key), "{route}: {message}");
            assert_eq!(location.position.map(|(line, _)| line), Some(8), "{route}");
            assert!(message.contains(why), "{route}: {message}");
        }
    }

    #[test]
    fn pool_value_checks() {
        for (line, key, why) in [
            (
                "mode = \"respond_filter\"",
                "pool[0].mode",
                "filter_response = true",
            ),
            (
                "upstream = \"ftp://a:1\"",
                "pool[0].upstream",
                "unknown scheme",
            ),
            (
                "upstream = \"http://a:1/x\"",
                "pool[0].upstream",
                "a path or query is not allowed",
            ),
            (
                "filter_body = \"all\"",
                "pool[0].filter_body",
                "unknown filter_body",
            ),
            (
                "failure_mode = \"maybe\"",
                "pool[0].failure_mode",
                "unknown failure_mode",
            ),
            (
                "filter_body_limit = 0",
                "pool[0].filter_body_limit",
                "between 1 and",
            ),
            (
                "filter_timeout = \"0s\"",
                "pool[0].filter_timeout",
                "more than zero",
            ),
            ("mode = \"push\"", "pool[0].mode", "unknown pool mode"),
            ("queue_limit = 0", "pool[0].queue_limit", "at least 1"),
            (
                "queue_timeout = \"0s\"",
                "pool[0].queue_timeout",
                "more than zero",
            ),
            ("timeout = \"0ms\"", "pool[0].timeout", "more than zero"),
            (
                "max_body_bytes = -1",
                "pool[0].max_body_bytes",
                "expected u64",
            ),
        ] {
            let (location, message) = refuse(&format!("{HUB}{POOL}{line}\n"));
            assert_eq!(location.key.as_deref(), Some(key), "{line}: {message}");
            assert_eq!(location.position.map(|(line, _)| line), Some(7), "{line}");
            assert!(message.contains(why), "{line}: {message}");
        }
        let (location, message) =
            refuse(&format!("{HUB}[[pool]]\nname = \"demo\"\ntoken = \"\"\n"));
        assert_eq!(location.key.as_deref(), Some("pool[0].token"));
        assert!(message.contains("must not be empty"), "{message}");
        let (location, message) = refuse(&format!(
            "{HUB}[[pool]]\nname = \"{}\"\ntoken = \"t\"\n",
            "a".repeat(65)
        ));
        assert_eq!(location.key.as_deref(), Some("pool[0].name"));
        assert!(message.contains("1 to 64 characters"), "{message}");
    }

    #[test]
    fn filter_pools() {
        let config = parse(&format!(
            "{HUB}{POOL}mode = \"filter\"\nupstream = \"h2c://[::1]:9000\"\nfilter_body = \"streamed\"\n\
             filter_body_limit = 10\nfilter_response = true\nfilter_timeout = \"2s\"\n\
             failure_mode = \"open\"\nfilter_edit_protected = true\n\
             upstream_connect_timeout = \"1s\"\nupstream_timeout = \"3s\"\n"
        ))
        .unwrap();
        let pool = &config.pools[0];
        assert_eq!(pool.mode, PoolMode::Filter);
        let upstream = pool.upstream.as_ref().unwrap();
        assert!(upstream.h2c);
        assert_eq!(upstream.to_string(), "h2c://[::1]:9000");
        assert_eq!(pool.filter_body, FilterBody::Streamed);
        assert_eq!(pool.filter_body_limit, 10);
        assert!(pool.filter_response);
        assert_eq!(pool.filter_timeout, Duration::from_secs(2));
        assert_eq!(pool.failure_mode, FailureMode::Open);
        assert!(pool.filter_edit_protected);
        assert_eq!(pool.upstream_connect_timeout, Duration::from_secs(1));
        assert_eq!(pool.upstream_timeout, Duration::from_secs(3));

        let defaults = parse(&format!(
            "{HUB}{POOL}mode = \"filter\"\nupstream = \"http://upstream.internal\"\n"
        ))
        .unwrap();
        let pool = &defaults.pools[0];
        assert!(!pool.upstream.as_ref().unwrap().h2c);
        assert_eq!(pool.filter_body, FilterBody::None);
        assert_eq!(pool.failure_mode, FailureMode::Closed);
        assert_eq!(pool.filter_timeout, DEFAULT_FILTER_TIMEOUT);

        let (location, message) = refuse(&format!("{HUB}{POOL}mode = \"filter\"\n"));
        assert_eq!(location.key.as_deref(), Some("pool[0]"));
        assert!(message.contains("no `upstream`"), "{message}");
        let (location, message) = refuse(&format!("{HUB}{POOL}filter_response = true\n"));
        assert_eq!(location.key.as_deref(), Some("pool[0]"));
        assert!(message.contains("its mode is \"respond\""), "{message}");
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
                "expected tcp://IP:PORT or unix:///PATH",
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

    #[test]
    fn a_route_after_a_catch_all_is_refused() {
        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[[route]]\npool = \"demo\"\n[[route]]\npath = \"/x\"\npool = \"demo\"\n"
        ));
        assert_eq!(location.key.as_deref(), Some("route[1]"));
        assert_eq!(location.position, Some((9, 1)));
        assert!(message.contains("can never match"), "{message}");
    }

    #[test]
    fn oversized_text_is_refused() {
        let text = format!("{HUB}{POOL}#{}\n", "x".repeat(MAX_CONFIG_BYTES));
        let (_, message) = refuse(&text);
        assert!(message.contains("larger than"), "{message}");
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = Config::from_file("/nonexistent/pullman.toml").unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with("/nonexistent/pullman.toml: cannot read config"),
            "{err}"
        );
    }

    #[test]
    fn admin_and_metrics_tables() {
        let config = parse(&format!("{HUB}{POOL}")).unwrap();
        assert!(config.admin.is_none());
        assert!(config.metrics.enabled);

        let config = parse(&format!(
            "{HUB}{POOL}[admin]\ntoken = \"adm\"\n[metrics]\nenabled = false\n"
        ))
        .unwrap();
        let admin = config.admin.unwrap();
        assert_eq!(admin.listen, DEFAULT_ADMIN_LISTEN);
        assert_eq!(admin.token.expose(), "adm");
        assert!(!config.metrics.enabled);

        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = \"adm\"\n"
        ));
        assert_eq!(location.key.as_deref(), Some("admin"));
        assert!(message.contains("not a loopback address"), "{message}");
        let config = parse(&format!(
            "{HUB}{POOL}[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = \"adm\"\nallow_remote = true\n"
        ))
        .unwrap();
        assert!(config.admin.unwrap().allow_remote);

        let (location, message) = refuse(&format!("{HUB}{POOL}[admin]\nlisten = \"[::1]:0\"\n"));
        assert_eq!(location.key.as_deref(), Some("admin"));
        assert!(message.contains("missing field `token`"), "{message}");
    }

    #[test]
    fn the_document_keeps_what_was_written_and_hides_it() {
        let config = parse(&format!("{HUB}{POOL}")).unwrap();
        let pools = config.document.0["pool"].as_array().unwrap();
        assert_eq!(pools[0]["name"].as_str(), Some("demo"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
