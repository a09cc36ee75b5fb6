//! The server side of a TLS listener.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{provider, read_chain, Identity};
use crate::config::CertFiles;

/// A TLS listener's settings, shared by its connections. Its certificates can be replaced
/// while it runs: a handshake uses those in place when it starts, so connections already
/// open keep theirs.
pub(crate) struct ServerTls {
    acceptor: TlsAcceptor,
    certificates: Arc<ByName>,
}

impl ServerTls {
    /// For clients: the certificates, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
    pub(crate) fn for_clients(files: &[CertFiles]) -> Result<ServerTls, String> {
        ServerTls::new(files, &[b"h2", b"http/1.1"], None)
    }

    /// For the admin API: the certificates, TLS 1.2 and 1.3, ALPN `http/1.1`.
    pub(crate) fn for_admin(files: &[CertFiles]) -> Result<ServerTls, String> {
        ServerTls::new(files, &[b"http/1.1"], None)
    }

    /// For workers: the certificates, TLS 1.2 and 1.3, and, with `client_ca`, client
    /// certificates checked against it (a worker may present none; its pool decides).
    pub(crate) fn for_workers(
        files: &[CertFiles],
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, String> {
        ServerTls::new(files, &[], client_ca)
    }

    fn new(
        files: &[CertFiles],
        alpn: &[&[u8]],
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, String> {
        let certificates = Arc::new(ByName {
            identities: ArcSwap::from_pointee(load(files)?),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS settings: {e}"))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_chain(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("the client CA file {}: {e}", path.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("the client CA file {}: {e}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certificates.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificates,
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Serves `identities` to the handshakes that start from now on.
    pub(crate) fn replace(&self, identities: Vec<Identity>) {
        self.certificates.identities.store(Arc::new(identities));
    }
}

/// Reads every certificate of a listener, in order: all or none.
pub(crate) fn load(files: &[CertFiles]) -> Result<Vec<Identity>, String> {
    files.iter().map(Identity::load).collect()
}

/// Picks the certificate by the name the client asks for.
#[derive(Debug)]
struct ByName {
    /// Never empty (the config asks for one at least).
    identities: ArcSwap<Vec<Identity>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let identities = self.identities.load();
        let named = hello
            .server_name()
            .and_then(|host| identities.iter().find(|id| id.covers(host)));
        named.or(identities.first()).map(|id| id.key.clone())
    }
}
