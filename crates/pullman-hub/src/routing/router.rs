//! The router: the routes of the config in file order, and what they read of a request.

use http::{HeaderMap, Method};

use super::route::RouteConfig;

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
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        let host = parts.uri.host().or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|value| value.to_str().ok())
        });
        RouteInput {
            host,
            path: parts.uri.path(),
            method: &parts.method,
            headers: &parts.headers,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;
    use http::HeaderValue;

    use crate::routing::{HostMatch, RouteToml};

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
        assert_eq!(
            r.route(&RouteInput::from_parts(&request.into_parts().0)),
            Some("a")
        );
        let request = http::Request::get("/1")
            .header("host", "Example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(
            r.route(&RouteInput::from_parts(&request.into_parts().0)),
            Some("a")
        );
        let request = http::Request::get("/2").body(()).unwrap();
        assert_eq!(
            r.route(&RouteInput::from_parts(&request.into_parts().0)),
            Some("b")
        );
    }

    #[test]
    fn the_uri_authority_wins_over_host() {
        let request = http::Request::get("http://a.example:81/p?q=1")
            .header("host", "b.example")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let input = RouteInput::from_parts(&parts);
        assert_eq!(input.host, Some("a.example"));
        assert_eq!(input.path, "/p");

        let request = http::Request::get("/p")
            .header("host", "b.example:8080")
            .body(())
            .unwrap();
        assert_eq!(
            RouteInput::from_parts(&request.into_parts().0).host,
            Some("b.example:8080")
        );

        let request = http::Request::get("/p").body(()).unwrap();
        assert_eq!(RouteInput::from_parts(&request.into_parts().0).host, None);
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
}
