//! A `[[pool]]` table: a queue of requests and the workers that serve it, and for a filter
//! pool, the upstream that passed requests go to.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::tls::UpstreamTls;
use super::values::{de_name, de_positive_duration, Secret};

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
/// Default `pool.retry_body_bytes`: 64 KiB covers the forms and JSON documents most
/// requests carry, so a worker's death costs them a retry rather than a 502, while the hub
/// holds at most that much per request in flight.
pub const DEFAULT_RETRY_BODY_BYTES: u64 = 64 * 1024;
/// Largest `pool.retry_body_bytes`: the same bound as a buffered filter body.
pub const MAX_RETRY_BODY_BYTES: u64 = MAX_FILTER_BODY_LIMIT;

/// A `[[pool]]` table: a queue of requests and the workers that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name: 1 to [`MAX_NAME_LEN`](super::MAX_NAME_LEN) characters of `A-Z a-z 0-9 _ . -`.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    /// The token a worker presents to serve this pool. A pool needs a token, or
    /// `allowed_workers`, or both.
    #[serde(default)]
    pub token: Option<Secret>,
    /// When set, a worker serves this pool only over a `tls://` link with a client
    /// certificate (checked against `hub.worker_tls.client_ca`) that names one of these: a
    /// URI (`spiffe://...`) or DNS name among its subject alternative names. A pool with a
    /// token checks it as well; one without takes the certificate alone.
    #[serde(default)]
    pub allowed_workers: Vec<String>,
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
    /// Respond mode: a request body whose announced length is at most this is read whole
    /// before the request goes to a worker, and kept until the worker answers, so that a
    /// request the retry rules send to another worker (its worker died before the request
    /// reached it, rejected it as retryable, or died with it under `retry_idempotent`) goes
    /// with its body. Any other body (longer, or of unknown length) streams to the worker
    /// as it arrives, and such a request cannot be retried once it began. 0 keeps none. At
    /// most [`MAX_RETRY_BODY_BYTES`].
    #[serde(
        default = "default_retry_body_bytes",
        deserialize_with = "de_retry_body_bytes"
    )]
    pub retry_body_bytes: u64,
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
    /// Filter mode, an `https://` upstream: the authorities its certificate is checked
    /// against (default: the system's roots) and a client certificate to present.
    #[serde(default)]
    pub upstream_tls: Option<UpstreamTls>,
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
    pub(super) fn has_filter_settings(&self) -> bool {
        self.upstream.is_some()
            || self.upstream_tls.is_some()
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

/// A filter pool's upstream: `http://HOST:PORT` (HTTP/1.1, kept-alive connections),
/// `h2c://HOST:PORT` (HTTP/2 over cleartext, prior knowledge), both with port 80 by default,
/// or `https://HOST:PORT` (TLS, HTTP/2 or HTTP/1.1 as ALPN settles, the certificate checked
/// for HOST; port 443 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// How to speak to it.
    pub scheme: UpstreamScheme,
    /// Host and port.
    pub authority: http::uri::Authority,
}

/// How a filter pool speaks to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// HTTP/1.1 over TCP (`http://`).
    Http,
    /// HTTP/2 over TCP, prior knowledge (`h2c://`).
    H2c,
    /// TLS, then HTTP/2 or HTTP/1.1 by ALPN (`https://`).
    Https,
}

impl FromStr for Upstream {
    type Err = String;

    fn from_str(text: &str) -> Result<Upstream, String> {
        let bad = |why: &str| {
            format!(
                "invalid upstream {text:?}: {why}; expected http://HOST:PORT, h2c://HOST:PORT \
                 or https://HOST:PORT"
            )
        };
        let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => UpstreamScheme::Http,
            Some("h2c") => UpstreamScheme::H2c,
            Some("https") => UpstreamScheme::Https,
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
        Ok(Upstream { scheme, authority })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::H2c => "h2c",
            UpstreamScheme::Https => "https",
        };
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

fn de_retry_body_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let bytes = u64::deserialize(deserializer)?;
    if bytes > MAX_RETRY_BODY_BYTES {
        return Err(D::Error::custom(format!(
            "retry_body_bytes must be at most {MAX_RETRY_BODY_BYTES}"
        )));
    }
    Ok(bytes)
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
fn default_retry_body_bytes() -> u64 {
    DEFAULT_RETRY_BODY_BYTES
}
fn default_filter_timeout() -> Duration {
    DEFAULT_FILTER_TIMEOUT
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::{parse, refuse, HUB, POOL};

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
            (
                "retry_body_bytes = 16777217",
                "pool[0].retry_body_bytes",
                "at most 16777216",
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
    fn a_pool_needs_a_token_or_allowed_workers() {
        let (_, message) = refuse(&format!("{HUB}[[pool]]\nname = \"demo\"\n"));
        assert!(
            message.contains("neither a token nor allowed_workers"),
            "{message}"
        );
        let tls_hub = "[hub]\nlisten = \"127.0.0.1:8080\"\n\
                       workers_listen = [\"tls://127.0.0.1:7070\"]\n\
                       [hub.worker_tls]\n\
                       certificates = [{ cert = \"/c.pem\", key = \"/k.pem\" }]\n\
                       client_ca = \"/ca.pem\"\n";
        let config = parse(&format!(
            "{tls_hub}[[pool]]\nname = \"demo\"\nallowed_workers = [\"spiffe://x/w\"]\n"
        ))
        .unwrap();
        assert!(config.pools[0].token.is_none());
        assert_eq!(config.pools[0].allowed_workers, ["spiffe://x/w"]);
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
        assert_eq!(upstream.scheme, UpstreamScheme::H2c);
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
        assert_eq!(pool.upstream.as_ref().unwrap().scheme, UpstreamScheme::Http);
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
}
