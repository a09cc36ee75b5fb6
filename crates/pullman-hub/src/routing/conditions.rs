//! The conditions a route tests: host, path, header.

use std::net::Ipv6Addr;

use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;

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
    use super::*;

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }
}
