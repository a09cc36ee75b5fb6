//! Ordered routing rules: which pool gets a request.
//!
//! A [`Router`] holds the routes of the config in file order; the first route whose every
//! condition holds wins. A route with no condition matches every request. Matching reads the
//! request in place ([`RouteInput`] borrows) and allocates nothing: patterns are normalised
//! (lowercased, regexes compiled) when the config is validated, not per request.
//!
//! # Layout
//! - `mod.rs`: [`RouteInput`], the [`Router`], and the conditions a route tests
//!   ([`HostMatch`], [`PathMatch`], [`HeaderMatch`]).
//! - `route.rs`: a `[[route]]` table, as written and as validated ([`RouteConfig`]). The
//!   config module uses it to read the file's routes; the router uses nothing of the config.

mod route;

use std::net::Ipv6Addr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::Regex;

pub use self::route::RouteConfig;
pub(crate) use self::route::{RouteError, RouteToml};

/// What the router looks at in a request. Built by the front for each request.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// The request's host: the URI authority (absolute-form target, HTTP/2 `:authority`) or
    /// else the `Host` header. A port, if any, is ignored.
    pub host: Option<&'a str>,
    /// The path of the request target, without the query.
    pub path: &'a str,
    /// The request method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RouteInput<'a> {
    /// Reads the routing inputs of `request`.
    ///
    /// The host comes from the URI authority when there is one, as RFC 9112 section 3.2.2
    /// asks for absolute-form targets and as HTTP/2 carries it; otherwise from the `Host`
    /// header. A `Host` header that is not visible ASCII counts as no host.
    pub fn from_request<B>(request: &'a http::Request<B>) -> Self {
        let host = request.uri().host().or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|value| value.to_str().ok())
        });
        RouteInput {
            host,
            path: request.uri().path(),
            method: request.method(),
            headers: request.headers(),
        }
    }
}

/// The routes of a config, in order.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl Router {
    /// A router over `routes`, tried in the order given. The routes come from a validated
    /// config, so every pattern is already compiled.
    pub fn new(routes: &[RouteConfig]) -> Router {
        Router {
            routes: routes.to_vec(),
        }
    }

    /// The pool of the first route that matches `input`, or `None` when no route does.
    pub fn route(&self, input: &RouteInput<'_>) -> Option<&str> {
        self.routes
            .iter()
            .find(|route| is_match(route, input))
            .map(|route| route.pool.as_str())
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[RouteConfig] {
        &self.routes
    }
}

/// Whether every condition of `route` holds for `input`.
fn is_match(route: &RouteConfig, input: &RouteInput<'_>) -> bool {
    // Cheapest conditions first: the method is a small comparison, the regex is the dearest.
    (route.methods.is_empty() || route.methods.contains(input.method))
        && route
            .host
            .as_ref()
            .is_none_or(|host| input.host.is_some_and(|h| host.is_match(h)))
        && route
            .header
            .as_ref()
            .is_none_or(|header| header.is_match(input.headers))
        && route
            .path
            .as_ref()
            .is_none_or(|path| path.is_match(input.path))
}

/// A host condition. Both forms compare ASCII case-insensitively and ignore the request's
/// port and a trailing dot (`example.com.` is `example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `example.com`: this host only. Holds the lowercased name.
    Exact(String),
    /// `*.example.com`: any subdomain of `example.com`, at any depth, but not `example.com`
    /// itself. Holds the lowercased suffix with its leading dot: `.example.com`.
    Subdomain(String),
}

impl HostMatch {
    /// Parses a host pattern: a host name, an IPv4 address, a bracketed IPv6 address, or
    /// `*.` followed by a host name. No port: the port of a request is ignored.
    pub fn parse(pattern: &str) -> Result<HostMatch, String> {
        if let Some(suffix) = pattern.strip_prefix("*.") {
            check_host_name(suffix)?;
            return Ok(HostMatch::Subdomain(format!(
                ".{}",
                suffix.to_ascii_lowercase()
            )));
        }
        if pattern.contains('*') {
            return Err(format!(
                "invalid host pattern {pattern:?}: a wildcard may only be the whole first \
                 label, as in \"*.example.com\""
            ));
        }
        if let Some(inner) = pattern.strip_prefix('[') {
            let is_ipv6 = inner
                .strip_suffix(']')
                .is_some_and(|addr| addr.parse::<Ipv6Addr>().is_ok());
            if !is_ipv6 {
                return Err(format!(
                    "invalid host pattern {pattern:?}: expected a bracketed IPv6 address \
                     without a port, as in \"[::1]\""
                ));
            }
            return Ok(HostMatch::Exact(pattern.to_ascii_lowercase()));
        }
        check_host_name(pattern)?;
        Ok(HostMatch::Exact(pattern.to_ascii_lowercase()))
    }

    /// Whether `host` (as the request gave it, maybe with a port) matches.
    pub fn is_match(&self, host: &str) -> bool {
        let host = strip_port(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
            HostMatch::Subdomain(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// Checks that `name` is a plausible DNS name or IPv4 address: dot-separated non-empty labels
/// of letters, digits, `-` and `_`.
fn check_host_name(name: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err(format!(
            "invalid host pattern {name:?}: leave the port out; the port of a request is \
             ignored when matching"
        ));
    }
    let is_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.split('.').all(is_label) {
        Ok(())
    } else {
        Err(format!(
            "invalid host pattern {name:?}: expected a host name such as \"example.com\" \
             (letters, digits, '-' and '_' in non-empty labels separated by dots)"
        ))
    }
}

/// `host` without its `:port`, if it has one. `[::1]:80` gives `[::1]`; an unbracketed
/// string with several colons is left alone (it is not a valid authority anyway).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// A path condition, on the path of the request target (no query).
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path is exactly this.
    Exact(String),
    /// The path starts with this string. A plain string prefix: `/api` matches `/apix` too;
    /// write `/api/` to match only below `/api`.
    Prefix(String),
    /// The regex matches somewhere in the path; anchor it with `^` and `$` to match all of it.
    Regex(Regex),
}

impl PathMatch {
    /// Whether `path` matches.
    pub fn is_match(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Regex(regex) => regex.is_match(path),
        }
    }
}

/// A header condition. The name compares case-insensitively (header names are lowercase
/// once parsed); the value, when given, compares as exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header that must be present.
    pub name: HeaderName,
    /// When set, one of the header's values must be exactly this; when unset, presence is
    /// enough.
    pub value: Option<HeaderValue>,
}

impl HeaderMatch {
    /// Whether `headers` satisfy the condition.
    pub fn is_match(&self, headers: &HeaderMap) -> bool {
        match &self.value {
            None => headers.contains_key(&self.name),
            Some(wanted) => headers
                .get_all(&self.name)
                .iter()
                .any(|value| value.as_bytes() == wanted.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    /// Builds a router from `[[route]]` tables, with pools `a`, `b` and `c` defined.
    fn router(routes: &str) -> Router {
        #[derive(Deserialize)]
        struct Tables {
            #[serde(default)]
            route: Vec<RouteToml<String>>,
        }
        let tables: Tables = toml::from_str(routes).unwrap();
        let pools = HashMap::from([("a", 0..0), ("b", 0..0), ("c", 0..0)]);
        let routes: Vec<RouteConfig> = tables
            .route
            .iter()
            .map(|route| route.build(&pools).unwrap())
            .collect();
        Router::new(&routes)
    }

    /// A request to route; `headers` are name/value pairs.
    struct Req {
        host: Option<&'static str>,
        path: &'static str,
        method: Method,
        headers: HeaderMap,
    }

    fn req(method: &str, host: Option<&'static str>, path: &'static str) -> Req {
        Req {
            host,
            path,
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            headers: HeaderMap::new(),
        }
    }

    impl Req {
        fn header(mut self, name: &'static str, value: &'static str) -> Req {
            self.headers.append(name, HeaderValue::from_static(value));
            self
        }
    }

    fn pool<'r>(router: &'r Router, req: &Req) -> Option<&'r str> {
        let input = RouteInput {
            host: req.host,
            path: req.path,
            method: &req.method,
            headers: &req.headers,
        };
        router.route(&input)
    }

    #[test]
    fn no_routes_match_nothing() {
        let r = router("");
        assert_eq!(pool(&r, &req("GET", Some("x"), "/")), None);
    }

    #[test]
    fn route_without_conditions_matches_everything() {
        let r = router("[[route]]\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/")), Some("a"));
        assert_eq!(pool(&r, &req("DELETE", Some("h"), "/x/y")), Some("a"));
    }

    #[test]
    fn first_matching_route_wins() {
        let r = router(
            "[[route]]\npath_prefix = \"/img/\"\npool = \"a\"\n\
             [[route]]\npath_prefix = \"/img/big/\"\npool = \"b\"\n\
             [[route]]\npool = \"c\"\n",
        );
        assert_eq!(pool(&r, &req("GET", None, "/img/big/1.png")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/img/1.png")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/other")), Some("c"));
    }

    #[test]
    fn no_match_without_catch_all() {
        let r = router("[[route]]\npath = \"/a\"\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/b")), None);
    }

    #[test]
    fn exact_host_ignores_case_port_and_trailing_dot() {
        let r = router("[[route]]\nhost = \"Example.COM\"\npool = \"a\"\n");
        for host in [
            "example.com",
            "EXAMPLE.com",
            "example.com:8080",
            "example.com.",
            "example.com.:443",
        ] {
            assert_eq!(pool(&r, &req("GET", Some(host), "/")), Some("a"), "{host}");
        }
        for host in [
            "www.example.com",
            "example.org",
            "example.comx",
            "xexample.com",
        ] {
            assert_eq!(pool(&r, &req("GET", Some(host), "/")), None, "{host}");
        }
        // No host at all (HTTP/1.0 without Host) fails a host condition.
        assert_eq!(pool(&r, &req("GET", None, "/")), None);
    }

    #[test]
    fn wildcard_host_matches_subdomains_only() {
        let r = router("[[route]]\nhost = \"*.example.com\"\npool = \"a\"\n");
        for host in ["a.example.com", "A.B.Example.Com:80", "x.example.com."] {
            assert_eq!(pool(&r, &req("GET", Some(host), "/")), Some("a"), "{host}");
        }
        for host in [
            "example.com",
            ".example.com",
            "aexample.com",
            "a.example.org",
        ] {
            assert_eq!(pool(&r, &req("GET", Some(host), "/")), None, "{host}");
        }
    }

    #[test]
    fn ip_hosts_match_with_and_without_port() {
        let r = router(
            "[[route]]\nhost = \"[::1]\"\npool = \"a\"\n\
             [[route]]\nhost = \"127.0.0.1\"\npool = \"b\"\n",
        );
        assert_eq!(pool(&r, &req("GET", Some("[::1]:8080"), "/")), Some("a"));
        assert_eq!(pool(&r, &req("GET", Some("[::1]"), "/")), Some("a"));
        assert_eq!(pool(&r, &req("GET", Some("127.0.0.1:80"), "/")), Some("b"));
        assert_eq!(pool(&r, &req("GET", Some("127.0.0.2"), "/")), None);
    }

    #[test]
    fn exact_path() {
        let r = router("[[route]]\npath = \"/exact\"\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/exact")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/exact/")), None);
        assert_eq!(pool(&r, &req("GET", None, "/Exact")), None);
    }

    #[test]
    fn path_prefix_is_a_string_prefix() {
        let r = router("[[route]]\npath_prefix = \"/api\"\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/api")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/api/v1")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/apix")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/ap")), None);
    }

    #[test]
    fn path_regex() {
        let r = router("[[route]]\npath_regex = '^/img/.*\\.png$'\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/img/a/b.png")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/img/b.jpg")), None);
        assert_eq!(pool(&r, &req("GET", None, "/x/img/b.png")), None);
    }

    #[test]
    fn unanchored_regex_matches_anywhere() {
        let r = router("[[route]]\npath_regex = 'thumb'\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("GET", None, "/x/thumbs/1")), Some("a"));
    }

    #[test]
    fn one_method_and_a_list() {
        let r = router(
            "[[route]]\nmethod = \"POST\"\npool = \"a\"\n\
             [[route]]\nmethod = [\"GET\", \"HEAD\"]\npool = \"b\"\n",
        );
        assert_eq!(pool(&r, &req("POST", None, "/")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/")), Some("b"));
        assert_eq!(pool(&r, &req("HEAD", None, "/")), Some("b"));
        assert_eq!(pool(&r, &req("PUT", None, "/")), None);
    }

    #[test]
    fn extension_method() {
        let r = router("[[route]]\nmethod = \"PURGE\"\npool = \"a\"\n");
        assert_eq!(pool(&r, &req("PURGE", None, "/")), Some("a"));
        assert_eq!(pool(&r, &req("GET", None, "/")), None);
    }

    #[test]
    fn header_present() {
        let r = router("[[route]]\nheader = { name = \"X-Tenant\" }\npool = \"a\"\n");
        assert_eq!(
            pool(&r, &req("GET", None, "/").header("x-tenant", "")),
            Some("a")
        );
        assert_eq!(
            pool(&r, &req("GET", None, "/").header("x-other", "a")),
            None
        );
        assert_eq!(pool(&r, &req("GET", None, "/")), None);
    }

    #[test]
    fn header_value_is_exact_bytes_and_any_value_counts() {
        let r =
            router("[[route]]\nheader = { name = \"x-tenant\", value = \"a\" }\npool = \"a\"\n");
        assert_eq!(
            pool(&r, &req("GET", None, "/").header("X-TENANT", "a")),
            Some("a")
        );
        assert_eq!(
            pool(&r, &req("GET", None, "/").header("x-tenant", "A")),
            None
        );
        assert_eq!(
            pool(&r, &req("GET", None, "/").header("x-tenant", "ab")),
            None
        );
        let twice = req("GET", None, "/")
            .header("x-tenant", "b")
            .header("x-tenant", "a");
        assert_eq!(pool(&r, &twice), Some("a"));
    }

    #[test]
    fn all_conditions_must_hold() {
        let r = router(
            "[[route]]\nhost = \"h\"\npath_prefix = \"/p\"\nmethod = \"GET\"\n\
             header = { name = \"x\", value = \"1\" }\npool = \"a\"\n",
        );
        let full = || req("GET", Some("h"), "/p/q").header("x", "1");
        assert_eq!(pool(&r, &full()), Some("a"));
        assert_eq!(pool(&r, &req("GET", Some("h"), "/p/q")), None);
        assert_eq!(
            pool(&r, &req("POST", Some("h"), "/p/q").header("x", "1")),
            None
        );
        assert_eq!(
            pool(&r, &req("GET", Some("g"), "/p/q").header("x", "1")),
            None
        );
        assert_eq!(
            pool(&r, &req("GET", Some("h"), "/q").header("x", "1")),
            None
        );
    }

    #[test]
    fn routes_a_request_built_from_http_request() {
        let r = router(
            "[[route]]\nhost = \"example.com\"\npath = \"/1\"\npool = \"a\"\n\
             [[route]]\npool = \"b\"\n",
        );
        let request = http::Request::get("http://example.com/1?x=2")
            .body(())
            .unwrap();
        assert_eq!(r.route(&RouteInput::from_request(&request)), Some("a"));
        let request = http::Request::get("/1")
            .header("host", "Example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(r.route(&RouteInput::from_request(&request)), Some("a"));
        let request = http::Request::get("/2").body(()).unwrap();
        assert_eq!(r.route(&RouteInput::from_request(&request)), Some("b"));
    }

    #[test]
    fn from_request_prefers_the_uri_authority_over_host() {
        let request = http::Request::get("http://a.example:81/p?q=1")
            .header("host", "b.example")
            .body(())
            .unwrap();
        let input = RouteInput::from_request(&request);
        assert_eq!(input.host, Some("a.example"));
        assert_eq!(input.path, "/p");

        let request = http::Request::get("/p")
            .header("host", "b.example:8080")
            .body(())
            .unwrap();
        assert_eq!(
            RouteInput::from_request(&request).host,
            Some("b.example:8080")
        );

        let request = http::Request::get("/p").body(()).unwrap();
        assert_eq!(RouteInput::from_request(&request).host, None);
    }

    #[test]
    fn host_patterns_parse_or_explain() {
        assert_eq!(
            HostMatch::parse("*.Example.com"),
            Ok(HostMatch::Subdomain(".example.com".into()))
        );
        assert_eq!(
            HostMatch::parse("[::1]"),
            Ok(HostMatch::Exact("[::1]".into()))
        );
        for (bad, why) in [
            ("", "expected a host name"),
            ("example.com:80", "leave the port out"),
            ("a.*.com", "wildcard"),
            ("*example.com", "wildcard"),
            ("*.", "expected a host name"),
            ("exa mple.com", "expected a host name"),
            ("example.com.", "expected a host name"),
            ("[::1]:80", "bracketed IPv6"),
            ("[nope]", "bracketed IPv6"),
        ] {
            let err = HostMatch::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }
}
