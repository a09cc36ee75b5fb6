//! The `[admin]` table: where the admin API (and `/metrics`) listens, and its token.

use std::net::SocketAddr;

use serde::Deserialize;

use super::tls::CertFiles;
use super::values::{de_socket_addr, Secret};

/// Default `admin.listen`: loopback, so that the admin API, which can change where requests
/// go, is reachable only from the hub's own host unless `allow_remote` says otherwise.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

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
    /// Serve the admin API over TLS (HTTP/1.1) with these certificates; the token is still
    /// required. Default: plain HTTP.
    #[serde(default)]
    pub tls: Option<AdminTls>,
}

/// `admin.tls`: the admin listener's certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// As for `[hub.tls]`; read again at every reload.
    #[serde(deserialize_with = "super::tls::de_certificates")]
    pub certificates: Vec<CertFiles>,
}

fn default_admin_listen() -> SocketAddr {
    DEFAULT_ADMIN_LISTEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse, refuse, HUB, POOL};

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
}
