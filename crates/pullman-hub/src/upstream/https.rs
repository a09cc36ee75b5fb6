//! TLS to an `https://` upstream: whom the hub trusts for it, and the client certificate it
//! may present. ALPN then picks HTTP/2 or HTTP/1.1.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::{PoolConfig, UpstreamScheme, UpstreamTls};
use crate::tls::{parse_chain, provider};

/// The files an upstream's `upstream_tls` names, as read at one moment: what its client
/// is built from, and what a reload compares with the files then on disk, so that a
/// certificate or authority renewed in place is taken up at the next reload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The authorities' PEM file; `None`: the system's roots.
    ca: Option<File>,
    /// The client certificate's chain and key, PEM.
    identity: Option<(File, File)>,
}

/// One file's path and contents.
#[derive(Debug, PartialEq, Eq)]
struct File {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl File {
    fn read(path: &Path) -> Result<File, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Ok(File {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        parse_chain(&self.path, &self.bytes)
    }
}

impl TlsFiles {
    /// Reads the files `tls` names (none: the system's roots, no client certificate).
    pub(crate) fn read(tls: Option<&UpstreamTls>) -> Result<TlsFiles, String> {
        let tls = tls.cloned().unwrap_or_default();
        let ca = tls.ca.as_deref().map(File::read).transpose()?;
        let identity = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some((File::read(cert)?, File::read(key)?)),
            _ => None,
        };
        Ok(TlsFiles { ca, identity })
    }

    /// The TLS settings these files make.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(file) => {
                for cert in file.certificates()? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("the CA file {}: {e}", file.path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(
                        "no upstream_tls.ca given and no system root certificates found".into(),
                    );
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match &self.identity {
            Some((cert, key)) => {
                let chain = cert.certificates()?;
                let key = PrivateKeyDer::from_pem_slice(&key.bytes).map_err(|e| {
                    format!("reading the private key {}: {e:?}", key.path.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("the client certificate {}: {e}", cert.path.display()))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// Reads the TLS files of every `https://` upstream: what a config change checks before it
/// applies.
pub(crate) fn check(pools: &[PoolConfig]) -> Result<(), String> {
    for pool in pools {
        let https = pool
            .upstream
            .as_ref()
            .is_some_and(|u| u.scheme == UpstreamScheme::Https);
        if https {
            TlsFiles::read(pool.upstream_tls.as_ref())
                .and_then(|files| files.client_config())
                .map_err(|why| format!("pool {:?}: upstream_tls: {why}", pool.name))?;
        }
    }
    Ok(())
}
