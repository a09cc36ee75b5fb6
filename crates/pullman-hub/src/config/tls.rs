//! TLS settings: `[hub.tls]`, the listener for clients over TLS, and the certificate files
//! it serves.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use super::values::de_socket_addr;

/// `[hub.tls]`: a listener for clients over TLS (1.2 and 1.3, ALPN `h2` and `http/1.1`),
/// beside the plain `hub.listen`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListen {
    /// Address for clients over TLS. Port 0 picks a free port.
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// The certificates served, at least one. A client that names a host (SNI) gets the
    /// first whose DNS names cover it; any other client gets the first. The files are read
    /// again at every reload, so a certificate renewed on disk is served from then on.
    #[serde(deserialize_with = "de_certificates")]
    pub certificates: Vec<CertFiles>,
}

/// `[hub.worker_tls]`: what the hub's `tls://` worker listeners serve, and the authority
/// whose client certificates they accept (mTLS).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerTls {
    /// The hub's certificates, as for `[hub.tls]`; read again at every reload.
    #[serde(deserialize_with = "de_certificates")]
    pub certificates: Vec<CertFiles>,
    /// A PEM file of the certificate authorities whose client certificates the hub checks
    /// (absolute path). With it, a worker may present a certificate, which must be valid
    /// under them; a pool's `allowed_workers` then names the certificates it takes. Without
    /// it, workers present none.
    #[serde(default, deserialize_with = "de_optional_absolute_path")]
    pub client_ca: Option<PathBuf>,
}

/// `upstream_tls`: how a filter pool checks its `https://` upstream, and the client
/// certificate it may present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// A PEM file of the authorities the upstream's certificate must be valid under
    /// (absolute path). Default: the system's roots.
    #[serde(default, deserialize_with = "de_optional_absolute_path")]
    pub ca: Option<PathBuf>,
    /// A client certificate to present (PEM chain, absolute path), with `key`.
    #[serde(default, deserialize_with = "de_optional_absolute_path")]
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM, absolute path).
    #[serde(default, deserialize_with = "de_optional_absolute_path")]
    pub key: Option<PathBuf>,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    /// The chain, leaf first, as PEM (absolute path).
    #[serde(deserialize_with = "de_absolute_path")]
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1) as PEM (absolute path).
    #[serde(deserialize_with = "de_absolute_path")]
    pub key: PathBuf,
}

pub(super) fn de_certificates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<CertFiles>, D::Error> {
    let certificates = Vec::<CertFiles>::deserialize(deserializer)?;
    if certificates.is_empty() {
        return Err(D::Error::custom(
            "no certificate: a TLS listener needs at least one { cert = \"/path\", key = \"/path\" }",
        ));
    }
    Ok(certificates)
}

fn de_absolute_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    let path = PathBuf::from(String::deserialize(deserializer)?);
    if !path.is_absolute() {
        return Err(D::Error::custom(format!(
            "{:?} must be an absolute path",
            path.display()
        )));
    }
    Ok(path)
}

fn de_optional_absolute_path<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    de_absolute_path(deserializer).map(Some)
}
