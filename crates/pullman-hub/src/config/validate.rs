//! The document as written ([`ConfigToml`]), and the checks that need more than one value:
//! a pool's mode against its keys, names used twice, every route's and program's pool, a route
//! that can never match, the admin listener against `allow_remote`. What a value can be
//! checked for alone is checked as it is read, in its table's file.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::error::Problem;
use super::values::RouteName;
use super::{
    AdminConfig, Config, Document, HubConfig, MetricsConfig, PoolConfig, PoolMode, ProgramConfig,
    UpstreamScheme, WorkerListen,
};
use crate::routing::RouteToml;

/// The document as written, before the checks that need more than one value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigToml {
    hub: Spanned<HubConfig>,
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
    pub(super) fn validate(self) -> Result<Config, Problem> {
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
            if let Some(tls) = &settings.upstream_tls {
                let https = settings
                    .upstream
                    .as_ref()
                    .is_some_and(|u| u.scheme == UpstreamScheme::Https);
                let why = if !https {
                    Some("sets upstream_tls, which only an https:// upstream uses")
                } else if tls.cert.is_some() != tls.key.is_some() {
                    Some("sets one of upstream_tls.cert and upstream_tls.key: a client certificate needs both")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(Problem::at(
                        pool.span(),
                        format!("pool {:?} {why}", settings.name),
                    ));
                }
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

        let hub = self.hub.get_ref();
        let tls_listener = hub
            .workers_listen
            .iter()
            .find(|l| matches!(l, WorkerListen::Tls(_)));
        match (tls_listener, &hub.worker_tls) {
            (Some(listen), None) => {
                return Err(Problem::at(
                    self.hub.span(),
                    format!(
                        "workers_listen {listen} needs [hub.worker_tls] with the hub's \
                         certificates"
                    ),
                ))
            }
            (None, Some(_)) => {
                return Err(Problem::at(
                    self.hub.span(),
                    "[hub.worker_tls] is set but no workers_listen address is tls://IP:PORT",
                ))
            }
            _ => {}
        }
        if let Some(pool) = self.pool.iter().find(|p| {
            let p = p.get_ref();
            p.token.is_none() && p.allowed_workers.is_empty()
        }) {
            return Err(Problem::at(
                pool.span(),
                format!(
                    "pool {:?} has neither a token nor allowed_workers, so any program that \
                     reaches the worker port could serve it: give it a token, or \
                     allowed_workers (client certificates), or both",
                    pool.get_ref().name
                ),
            ));
        }
        let client_ca = hub.worker_tls.as_ref().and_then(|t| t.client_ca.as_ref());
        if let Some(pool) = self
            .pool
            .iter()
            .find(|p| !p.get_ref().allowed_workers.is_empty())
        {
            if client_ca.is_none() {
                return Err(Problem::at(
                    pool.span(),
                    format!(
                        "pool {:?} sets allowed_workers, which workers prove with a client \
                         certificate: set hub.worker_tls.client_ca to the authority that \
                         issues them",
                        pool.get_ref().name
                    ),
                ));
            }
        }

        for listen in &hub.workers_listen {
            let WorkerListen::Ptth { pool, .. } = listen else {
                continue;
            };
            let mode = self
                .pool
                .iter()
                .map(Spanned::get_ref)
                .find(|p| &p.name == pool);
            let why = match mode.map(|p| p.mode) {
                None => "which does not exist",
                Some(PoolMode::Filter) => {
                    "a filter pool: PTTH workers answer requests, they cannot filter them"
                }
                Some(PoolMode::Respond) => continue,
            };
            return Err(Problem::at(
                self.hub.span(),
                format!("workers_listen {listen} serves pool {pool:?}, {why}"),
            ));
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
            hub: self.hub.into_inner(),
            pools: self.pool.into_iter().map(Spanned::into_inner).collect(),
            routes,
            programs: self.program.into_iter().map(Spanned::into_inner).collect(),
            admin: self.admin.map(Spanned::into_inner),
            metrics: self.metrics,
            document: Document::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{refuse, HUB, POOL};

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
    fn a_route_after_a_catch_all_is_refused() {
        let (location, message) = refuse(&format!(
            "{HUB}{POOL}[[route]]\npool = \"demo\"\n[[route]]\npath = \"/x\"\npool = \"demo\"\n"
        ));
        assert_eq!(location.key.as_deref(), Some("route[1]"));
        assert_eq!(location.position, Some((9, 1)));
        assert!(message.contains("can never match"), "{message}");
    }
}
