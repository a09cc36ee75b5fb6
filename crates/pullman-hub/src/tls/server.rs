//! The server side of a TLS listener.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{provider, read_chain, Identity};
use crate::config::CertFiles;

/// ALPN for clients: HTTP/2 first.
pub(super) const CLIENT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN for workers: none, they speak pullman's protocol only.
pub(super) const WORKER_ALPN: &[&[u8]] = &[];
/// ALPN for the admin API, which speaks HTTP/1.1 only.
pub(super) const ADMIN_ALPN: &[&[u8]] = &[b"http/1.1"];

/// A TLS listener's settings, shared by its connections, and replaced whole at a reload: a
/// handshake uses those in place when it starts, so connections already open keep theirs.
pub(crate) struct ServerTls {
    acceptor: ArcSwap<TlsAcceptor>,
    alpn: &'static [&'static [u8]],
}

impl ServerTls {
    /// Reads the files and builds the settings: TLS 1.2 and 1.3, `alpn`, and, with
    /// `client_ca`, client certificates checked against it (a client may present none).
    pub(crate) fn new(
        files: &[CertFiles],
        alpn: &'static [&'static [u8]],
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, String> {
        Ok(ServerTls {
            acceptor: ArcSwap::from_pointee(settings(files, alpn, client_ca)?),
            alpn,
        })
    }

    /// The TLS handshake on `sock`, with the settings in place now, within `limit`; or why
    /// it did not complete, for a log line.
    pub(crate) async fn handshake(
        &self,
        sock: TcpStream,
        limit: Duration,
    ) -> Result<TlsStream<TcpStream>, String> {
        let acceptor = self.acceptor.load_full();
        match tokio::time::timeout(limit, acceptor.accept(sock)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
            Err(_) => Err(format!("no TLS handshake within {limit:?}")),
        }
    }

    /// Reads the files again into settings of the same kind, for [`ServerTls::replace`].
    pub(crate) fn read(
        &self,
        files: &[CertFiles],
        client_ca: Option<&Path>,
    ) -> Result<TlsAcceptor, String> {
        settings(files, self.alpn, client_ca)
    }

    /// Serves `acceptor` to the handshakes that start from now on.
    pub(crate) fn replace(&self, acceptor: TlsAcceptor) {
        self.acceptor.store(Arc::new(acceptor));
    }
}

/// Reads the certificates (and the client CA) and builds the settings: TLS 1.2 and 1.3,
/// `alpn`, the certificate by SNI, client certificates checked against `client_ca`.
fn settings(
    files: &[CertFiles],
    alpn: &[&[u8]],
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, String> {
    let certificates = Arc::new(ByName {
        identities: load(files)?,
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
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("the client CA file {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certificates);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Reads every certificate of a listener, in order: all or none.
fn load(files: &[CertFiles]) -> Result<Vec<Identity>, String> {
    files.iter().map(Identity::load).collect()
}

/// Picks the certificate by the name the client asks for.
#[derive(Debug)]
struct ByName {
    /// Never empty (the config asks for one at least).
    identities: Vec<Identity>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|host| self.identities.iter().find(|id| id.covers(host)));
        named.or(self.identities.first()).map(|id| id.key.clone())
    }
}
