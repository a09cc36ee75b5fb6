//! TLS to the hub (`tls://` addresses): whom the worker trusts, and the client certificate
//! it may present.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::WorkerError;

/// How a worker sets up TLS to its hub. Build with [`TlsSettings::default`] and the
/// setters; the files are read when the worker is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// Trust the certificate authorities in this PEM file for the hub's certificate.
    /// Default: the system's roots.
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(path.into());
        self
    }

    /// Present this client certificate (a PEM chain, leaf first) and its PEM private key,
    /// for a pool that names its workers (`allowed_workers`). Default: none.
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Whether a client certificate is set.
    pub(crate) fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// Reads the files and builds the connector for `host`, the hub's name (or address) in
    /// its `tls://HOST:PORT`.
    pub(crate) fn connector(&self, host: &str) -> Result<HubTls, WorkerError> {
        let fail = |why: String| WorkerError::Tls(why);
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| fail(format!("the CA file {}: {e}", path.display())))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(fail(
                        "no CA file given and no system root certificates found".into(),
                    ));
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    fail(format!("reading the private key {}: {e:?}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| fail(format!("the client certificate {}: {e}", cert.display())))?
            }
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| fail(format!("{host:?} is neither a DNS name nor an IP address")))?;
        Ok(HubTls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// What a worker needs to open TLS to its hub.
#[derive(Clone)]
pub(crate) struct HubTls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for HubTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HubTls {
    /// The handshake on `sock`. An error the hub's certificate or its refusal of this
    /// worker's caused is fatal (retrying does not change certificates); others may pass.
    pub(crate) async fn connect(
        &self,
        sock: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Result<WorkerError, String>> {
        self.connector
            .connect(self.name.clone(), sock)
            .await
            .map_err(|e| fatal(&e).ok_or_else(|| e.to_string()))
    }
}

/// The error a failed TLS read or write stands for, if TLS itself failed (a certificate
/// refused, by the worker or, with an alert, by the hub): retrying will not fix it. Under
/// TLS 1.3 the hub checks the worker's certificate after the worker's side of the
/// handshake is done, so its refusal comes as the first read.
pub(crate) fn fatal(e: &std::io::Error) -> Option<WorkerError> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(WorkerError::Tls(format!("handshake with the hub: {tls}")))
}

/// The one cryptography provider, as the hub's: *ring* (see `pullman_hub::tls`).
fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WorkerError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| WorkerError::Tls(format!("reading {}: {e:?}", path.display())))?;
    if certs.is_empty() {
        return Err(WorkerError::Tls(format!(
            "reading {}: no CERTIFICATE in it",
            path.display()
        )));
    }
    Ok(certs)
}
