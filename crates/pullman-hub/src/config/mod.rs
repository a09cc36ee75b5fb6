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
//!   conditions taken together) runs in `validate`, on fields kept as
//!   [`Spanned`](toml::Spanned) for their position.
//!
//! Either way the error is rendered as `FILE:LINE:COLUMN: KEY: message`, the key being the
//! dotted path to the value, e.g. `route[2].pool`.
//!
//! # Layout
//! - `mod.rs`: [`Config`], the pipeline, and the TOML document kept for the admin API's
//!   edits.
//! - `hub.rs`, `pool.rs`, `program.rs`, `admin.rs`, `metrics.rs`: one file per table: its
//!   type, its defaults, and the values only it takes (such as [`WorkerListen`],
//!   [`Upstream`], [`Backoff`]).
//! - `values.rs`: the values several tables take: durations, socket addresses, names,
//!   [`Secret`].
//! - `validate.rs`: the document as written, table by table, and the checks that need more
//!   than one value.
//! - `error.rs`: [`ConfigError`], and how a failed check finds its line, column and key.
//!
//! A `[[route]]` table is the router's to read: [`RouteConfig`] and its conditions live in
//! [`crate::routing`], which this module uses, never the other way round.

mod admin;
mod error;
mod hub;
mod metrics;
mod pool;
mod program;
mod tls;
mod validate;
mod values;

use std::fmt;
use std::io::Read;
use std::path::Path;

pub use self::admin::{AdminConfig, AdminTls, DEFAULT_ADMIN_LISTEN};
pub use self::error::{ConfigError, Location};
pub use self::hub::{
    HubConfig, WorkerListen, DEFAULT_DRAIN_GRACE, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_HEADER_BYTES, DEFAULT_PING_INTERVAL, MAX_MAX_HEADER_BYTES,
    MIN_MAX_HEADER_BYTES,
};
pub use self::metrics::MetricsConfig;
pub use self::pool::{
    FailureMode, FilterBody, PoolConfig, PoolMode, Upstream, UpstreamScheme,
    DEFAULT_FILTER_BODY_LIMIT, DEFAULT_FILTER_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_LIMIT,
    DEFAULT_QUEUE_TIMEOUT, DEFAULT_TIMEOUT, DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
    DEFAULT_UPSTREAM_TIMEOUT, MAX_FILTER_BODY_LIMIT,
};
pub use self::program::{
    Backoff, ProgramConfig, RestartPolicy, DEFAULT_BACKOFF, DEFAULT_INSTANCES,
    DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW, DEFAULT_STOP_GRACE, MAX_INSTANCES,
};
pub use self::tls::{CertFiles, TlsListen, UpstreamTls, WorkerTls};
pub use self::values::{format_duration, Secret, MAX_DURATION, MAX_NAME_LEN};
pub use crate::routing::RouteConfig;

use self::error::Problem;
use self::validate::ConfigToml;

/// Largest config text accepted: configs are written by hand, so 1 MiB is a wrong file, and
/// refusing it early bounds the memory a config reload can take.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

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

impl Config {
    /// What is valid but likely a mistake, one sentence each: a pool no route names, whose
    /// workers would never get a request; a PTTH listener others can reach, whose workers
    /// give no token. `check-config` prints these; the hub logs them.
    pub fn warnings(&self) -> Vec<String> {
        let unrouted = self
            .pools
            .iter()
            .filter(|pool| !self.routes.iter().any(|route| route.pool == pool.name))
            .map(|pool| {
                format!(
                    "pool {:?} is named by no route: its workers will get no requests",
                    pool.name
                )
            });
        let open_ptth = self
            .hub
            .workers_listen
            .iter()
            .filter_map(|listen| match listen {
                WorkerListen::Ptth { addr, pool } if !addr.ip().is_loopback() => Some(format!(
                    "{listen} is not a loopback address: PTTH workers give no token, so anyone \
                 who can connect to it answers requests of pool {pool:?}"
                )),
                _ => None,
            });
        unrouted.chain(open_ptth).collect()
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let read_error = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;

    use super::*;
    use crate::routing::{HostMatch, PathMatch};

    // Fixtures for the tests of every file of the config module.
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
    fn a_pool_no_route_names_is_warned_of() {
        let routed = parse(&format!("{HUB}{POOL}[[route]]\npool = \"demo\"\n")).unwrap();
        assert!(routed.warnings().is_empty());
        let unrouted = parse(&format!("{HUB}{POOL}")).unwrap();
        let warnings = unrouted.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("pool \"demo\" is named by no route"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_ptth_listener_must_serve_a_respond_pool_and_is_warned_of_off_loopback() {
        let hub = |listen: &str| {
            format!(
                "[hub]\nlisten = \"127.0.0.1:8080\"\nworkers_listen = [\"{listen}\"]\n\
                 {POOL}[[route]]\npool = \"demo\"\n"
            )
        };
        let local = parse(&hub("ptth://127.0.0.1:4040?pool=demo")).unwrap();
        assert!(local.warnings().is_empty(), "{:?}", local.warnings());
        let open = parse(&hub("ptth://0.0.0.0:4040?pool=demo")).unwrap();
        let warnings = open.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("not a loopback address"),
            "{warnings:?}"
        );

        let (location, message) = refuse(&hub("ptth://127.0.0.1:4040?pool=nope"));
        assert_eq!(location.key.as_deref(), Some("hub"));
        assert!(
            message.contains("serves pool \"nope\", which does not exist"),
            "{message}"
        );
        let filter = "[hub]\nlisten = \"127.0.0.1:8080\"\nworkers_listen = [\"ptth://127.0.0.1:1?pool=f\"]\n\
             [[pool]]\nname = \"f\"\ntoken = \"t\"\nmode = \"filter\"\nupstream = \"http://127.0.0.1:9\"\n";
        let (_, message) = refuse(filter);
        assert!(message.contains("a filter pool"), "{message}");
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
        assert_eq!(pool.token.as_ref().unwrap().expose(), "s3cret");
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
    fn the_document_keeps_what_was_written_and_hides_it() {
        let config = parse(&format!("{HUB}{POOL}")).unwrap();
        let pools = config.document.0["pool"].as_array().unwrap();
        assert_eq!(pools[0]["name"].as_str(), Some("demo"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
