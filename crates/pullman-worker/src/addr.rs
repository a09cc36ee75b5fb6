//! Where the hub listens for workers.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::WorkerError;

/// A hub's worker address: `tcp://HOST:PORT` or `unix:///PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAddr {
    /// TCP, `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl FromStr for HubAddr {
    type Err = WorkerError;

    fn from_str(s: &str) -> Result<HubAddr, WorkerError> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            if rest.is_empty() || !rest.contains(':') {
                return Err(WorkerError::Address(format!(
                    "{s:?}: expected tcp://HOST:PORT"
                )));
            }
            Ok(HubAddr::Tcp(rest.to_string()))
        } else if let Some(rest) = s.strip_prefix("unix://") {
            if rest.is_empty() {
                return Err(WorkerError::Address(format!(
                    "{s:?}: expected unix:///PATH"
                )));
            }
            Ok(HubAddr::Unix(PathBuf::from(rest)))
        } else {
            Err(WorkerError::Address(format!(
                "{s:?}: expected tcp://HOST:PORT or unix:///PATH"
            )))
        }
    }
}

impl fmt::Display for HubAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubAddr::Tcp(a) => write!(f, "tcp://{a}"),
            HubAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_refuses_others() {
        assert_eq!(
            "tcp://127.0.0.1:7070".parse::<HubAddr>().unwrap(),
            HubAddr::Tcp("127.0.0.1:7070".into())
        );
        assert_eq!(
            "unix:///run/p.sock".parse::<HubAddr>().unwrap(),
            HubAddr::Unix("/run/p.sock".into())
        );
        assert!("http://x:1".parse::<HubAddr>().is_err());
        assert!("tcp://nohost".parse::<HubAddr>().is_err());
    }
}
