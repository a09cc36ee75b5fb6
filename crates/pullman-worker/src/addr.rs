//! Where the hub listens for workers.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::WorkerError;

/// A hub's worker address: `tcp://HOST:PORT`, `tls://HOST:PORT` or `unix:///PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAddr {
    /// TCP, `host:port`.
    Tcp(String),
    /// TLS over TCP, `host:port`; the hub's certificate must be valid for `host`.
    Tls(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl FromStr for HubAddr {
    type Err = WorkerError;

    fn from_str(s: &str) -> Result<HubAddr, WorkerError> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            Ok(HubAddr::Tcp(host_port(s, rest, "tcp")?.to_string()))
        } else if let Some(rest) = s.strip_prefix("tls://") {
            Ok(HubAddr::Tls(host_port(s, rest, "tls")?.to_string()))
        } else if let Some(rest) = s.strip_prefix("unix://") {
            if rest.is_empty() {
                return Err(WorkerError::Address(format!(
                    "{s:?}: expected unix:///PATH"
                )));
            }
            Ok(HubAddr::Unix(PathBuf::from(rest)))
        } else {
            Err(WorkerError::Address(format!(
                "{s:?}: expected tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH"
            )))
        }
    }
}

/// `rest` of `text` (after `SCHEME://`) if it is `HOST:PORT`.
fn host_port<'a>(text: &str, rest: &'a str, scheme: &str) -> Result<&'a str, WorkerError> {
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(rest),
        _ => Err(WorkerError::Address(format!(
            "{text:?}: expected {scheme}://HOST:PORT"
        ))),
    }
}

impl HubAddr {
    /// The host of a `tcp://` or `tls://` address.
    pub fn host(&self) -> Option<&str> {
        match self {
            HubAddr::Tcp(a) | HubAddr::Tls(a) => a.rsplit_once(':').map(|(host, _)| host),
            HubAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for HubAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubAddr::Tcp(a) => write!(f, "tcp://{a}"),
            HubAddr::Tls(a) => write!(f, "tls://{a}"),
            HubAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes_and_refuses_others() {
        assert_eq!(
            "tcp://127.0.0.1:7070".parse::<HubAddr>().unwrap(),
            HubAddr::Tcp("127.0.0.1:7070".into())
        );
        assert_eq!(
            "unix:///run/p.sock".parse::<HubAddr>().unwrap(),
            HubAddr::Unix("/run/p.sock".into())
        );
        let tls = "tls://hub.example.com:7443".parse::<HubAddr>().unwrap();
        assert_eq!(tls, HubAddr::Tls("hub.example.com:7443".into()));
        assert_eq!(tls.host(), Some("hub.example.com"));
        assert_eq!(tls.to_string(), "tls://hub.example.com:7443");
        assert_eq!(
            "tls://[::1]:7443".parse::<HubAddr>().unwrap().host(),
            Some("[::1]")
        );
        assert!("http://x:1".parse::<HubAddr>().is_err());
        assert!("tcp://nohost".parse::<HubAddr>().is_err());
        assert!("tls://host:port".parse::<HubAddr>().is_err());
        assert!("tls://:7443".parse::<HubAddr>().is_err());
    }
}
