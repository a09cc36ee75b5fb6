//! A `[[route]]` table: as the config file writes it ([`RouteToml`]), and parsed and checked
//! ([`RouteConfig`]).
//!
//! The router owns what a route's conditions mean, so it reads them too. What belongs to the
//! whole file stays with the config: the rule for names (the same for pools and programs),
//! the checks across routes (a name used twice, a route after a catch-all), and turning a
//! [`RouteError`] into an error that names the file, the line and the key.

use std::collections::HashMap;
use std::ops::Range;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::conditions::{HeaderMatch, HostMatch, PathMatch};

/// A `[[route]]` table, validated: its patterns are parsed and its pool exists. Every
/// condition that is set must hold; a route with none matches every request.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Optional unique name, for logs and metrics.
    pub name: Option<String>,
    /// Host condition (`host`).
    pub host: Option<HostMatch>,
    /// Path condition (`path`, `path_prefix` or `path_regex`).
    pub path: Option<PathMatch>,
    /// Method condition (`method`); empty matches any method.
    pub methods: Vec<Method>,
    /// Header condition (`header`).
    pub header: Option<HeaderMatch>,
    /// Name of the pool that gets the matching requests; always one of the config's pools.
    pub pool: String,
}

/// A `[[route]]` table as written. Its conditions are parsed in [`RouteToml::build`],
/// together, since the path keys exclude each other.
///
/// `Name` is the type of the route's `name`, chosen by the config: one rule holds for the
/// names of pools, routes and programs, and the config checks it as the name is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteToml<Name> {
    pub(crate) name: Option<Spanned<Name>>,
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    path_regex: Option<Spanned<String>>,
    method: Option<Spanned<MethodToml>>,
    header: Option<HeaderToml>,
    pool: Spanned<String>,
}

/// `method = "GET"` or `method = ["GET", "HEAD"]`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a method name or a list of method names"
)]
enum MethodToml {
    One(String),
    Many(Vec<String>),
}

/// `header = { name = "x-tenant", value = "a" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderToml {
    name: Spanned<String>,
    value: Option<Spanned<String>>,
}

/// Why a `[[route]]` table was refused: the byte range of the config text at fault and what is
/// wrong there. The config locates it (line, column, key) like its own problems.
#[derive(Debug)]
pub(crate) struct RouteError {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
}

impl RouteError {
    fn at(span: Range<usize>, message: impl Into<String>) -> RouteError {
        RouteError {
            span,
            message: message.into(),
        }
    }
}

impl<Name: AsRef<str>> RouteToml<Name> {
    /// Parses the route's conditions and checks its pool is one of `pools`.
    pub(crate) fn build(
        &self,
        pools: &HashMap<&str, Range<usize>>,
    ) -> Result<RouteConfig, RouteError> {
        let pool = self.pool.get_ref();
        if !pools.contains_key(pool.as_str()) {
            let mut known: Vec<&str> = pools.keys().copied().collect();
            known.sort_unstable();
            return Err(RouteError::at(
                self.pool.span(),
                format!(
                    "no pool named {pool:?}; the pools are: {}",
                    known.join(", ")
                ),
            ));
        }

        let host = match &self.host {
            Some(host) => Some(
                HostMatch::parse(host.get_ref()).map_err(|why| RouteError::at(host.span(), why))?,
            ),
            None => None,
        };

        let mut path = None;
        let path_keys = [
            ("path", &self.path),
            ("path_prefix", &self.path_prefix),
            ("path_regex", &self.path_regex),
        ];
        for (key, value) in path_keys {
            let Some(value) = value else { continue };
            if path.is_some() {
                return Err(RouteError::at(
                    value.span(),
                    format!(
                        "`{key}` given with another path condition: use at most one of \
                         `path`, `path_prefix` and `path_regex`"
                    ),
                ));
            }
            let text = value.get_ref();
            let condition = match key {
                "path_regex" => PathMatch::Regex(
                    Regex::new(text)
                        .map_err(|error| RouteError::at(value.span(), error.to_string()))?,
                ),
                _ if !text.starts_with('/') => {
                    return Err(RouteError::at(
                        value.span(),
                        format!("{key} {text:?} must start with '/'"),
                    ));
                }
                "path" => PathMatch::Exact(text.clone()),
                _ => PathMatch::Prefix(text.clone()),
            };
            path = Some(condition);
        }

        let methods = match &self.method {
            None => Vec::new(),
            Some(method) => {
                let names = match method.get_ref() {
                    MethodToml::One(name) => std::slice::from_ref(name),
                    MethodToml::Many(names) => names.as_slice(),
                };
                if names.is_empty() {
                    return Err(RouteError::at(
                        method.span(),
                        "the method list is empty; leave `method` out to match any method",
                    ));
                }
                names
                    .iter()
                    .map(|name| parse_method(name))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|why| RouteError::at(method.span(), why))?
            }
        };

        let header = match &self.header {
            None => None,
            Some(header) => {
                let name =
                    HeaderName::from_bytes(header.name.get_ref().as_bytes()).map_err(|_| {
                        RouteError::at(
                            header.name.span(),
                            format!("invalid header name {:?}", header.name.get_ref()),
                        )
                    })?;
                let value = match &header.value {
                    None => None,
                    Some(value) => Some(HeaderValue::from_str(value.get_ref()).map_err(|_| {
                        RouteError::at(
                            value.span(),
                            format!(
                                "invalid header value {:?}: only visible ASCII, spaces and tabs",
                                value.get_ref()
                            ),
                        )
                    })?),
                };
                Some(HeaderMatch { name, value })
            }
        };

        Ok(RouteConfig {
            name: self
                .name
                .as_ref()
                .map(|name| name.get_ref().as_ref().to_owned()),
            host,
            path,
            methods,
            header,
            pool: pool.clone(),
        })
    }
}

/// Parses a method name. Methods are case-sensitive, so `get` is refused with a hint rather
/// than taken as an extension method that no client sends.
fn parse_method(name: &str) -> Result<Method, String> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let upper = name.to_ascii_uppercase();
    if upper != name && STANDARD.contains(&upper.as_str()) {
        return Err(format!(
            "method {name:?}: methods are case-sensitive; did you mean {upper:?}?"
        ));
    }
    Method::from_bytes(name.as_bytes()).map_err(|_| format!("invalid method {name:?}"))
}
