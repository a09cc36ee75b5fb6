//! TLS: certificate chains and keys read from PEM files, and the server side of the hub's
//! TLS listeners.
//!
//! # Layout
//! - this file: reading a certificate chain and its key, and the DNS names it is for.
//! - `server`: a TLS listener's settings (TLS 1.2 and 1.3, ALPN, the client CA) and its
//!   certificates, chosen by the name a client asks for (SNI), replaced whole at a reload.

mod server;

pub(crate) use server::ServerTls;
use server::{ADMIN_ALPN, CLIENT_ALPN, WORKER_ALPN};

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use x509_parser::extensions::GeneralName;

use crate::config::{CertFiles, Config};

/// The hub's TLS listeners' settings: the client listener's, the worker listeners' and the
/// admin listener's. Every change of config reads their certificate files again.
#[derive(Default)]
pub(crate) struct HubTls {
    pub(crate) clients: Option<Arc<ServerTls>>,
    pub(crate) workers: Option<Arc<ServerTls>>,
    pub(crate) admin: Option<Arc<ServerTls>>,
}

impl HubTls {
    /// Builds the settings `config` asks for, reading every file they name.
    pub(crate) fn new(config: &Config) -> Result<HubTls, String> {
        let [clients, workers, admin] = sources(config);
        let build = |source: Option<Source<'_>>, alpn| {
            source
                .map(|(files, ca)| ServerTls::new(files, alpn, ca).map(Arc::new))
                .transpose()
        };
        Ok(HubTls {
            clients: build(clients, CLIENT_ALPN)?,
            workers: build(workers, WORKER_ALPN)?,
            admin: build(admin, ADMIN_ALPN)?,
        })
    }

    /// Reads the certificates (and the client CA) `config` names now, all or none;
    /// [`Renewal::serve`] then serves them. (Which listeners there are is fixed at start.)
    pub(crate) fn renew(&self, config: &Config) -> Result<Renewal, String> {
        let mut renewal = Vec::new();
        let servers = [&self.clients, &self.workers, &self.admin];
        for (server, source) in servers.into_iter().zip(sources(config)) {
            if let (Some(server), Some((files, ca))) = (server, source) {
                renewal.push((server.clone(), server.read(files, ca)?));
            }
        }
        Ok(Renewal(renewal))
    }
}

/// What a TLS listener serves: its certificates, and the authority of its clients'.
type Source<'a> = (&'a [CertFiles], Option<&'a Path>);

/// The client listener's, the worker listeners' and the admin listener's, as `config` says.
fn sources(config: &Config) -> [Option<Source<'_>>; 3] {
    let hub = &config.hub;
    [
        hub.tls.as_ref().map(|t| (&t.certificates[..], None)),
        (hub.worker_tls.as_ref()).map(|t| (&t.certificates[..], t.client_ca.as_deref())),
        (config.admin.as_ref().and_then(|a| a.tls.as_ref())).map(|t| (&t.certificates[..], None)),
    ]
}

/// Settings read, to be served.
pub(crate) struct Renewal(Vec<(Arc<ServerTls>, TlsAcceptor)>);

impl Renewal {
    pub(crate) fn serve(self) {
        for (server, settings) in self.0 {
            server.replace(settings);
        }
    }
}

/// The one cryptography provider: *ring*, which builds in seconds where aws-lc-rs takes
/// about a minute. rustls deprecates it for having no post-quantum key exchange; the
/// classical suites it offers are the ones nginx and HAProxy serve by default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    #[allow(deprecated)]
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A certificate chain with its private key, and the DNS names its leaf is for.
pub(crate) struct Identity {
    pub(crate) key: Arc<CertifiedKey>,
    /// Lower case; a wildcard name keeps its `*.`.
    names: Vec<String>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads `files`: the chain (leaf first) and a key that matches the leaf.
    pub(crate) fn load(files: &CertFiles) -> Result<Identity, String> {
        let chain = read_chain(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
            format!(
                "reading the private key {}: {}",
                files.key.display(),
                pem_error(e)
            )
        })?;
        let names = alt_names(&chain[0])
            .map_err(|why| format!("reading the certificate {}: {why}", files.cert.display()))?
            .dns;
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
            format!(
                "the private key {} does not go with the certificate {}: {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
        Ok(Identity {
            key: Arc::new(key),
            names,
        })
    }

    /// Whether `host` (a name a client asked for) is one of the names, directly or under a
    /// wildcard (`*.example.com` covers `a.example.com`, not `example.com` nor
    /// `a.b.example.com`).
    pub(crate) fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => host.split_once('.').is_some_and(|(label, rest)| {
                !label.is_empty() && rest.eq_ignore_ascii_case(parent)
            }),
            None => name.eq_ignore_ascii_case(host),
        })
    }
}

/// Reads a PEM file of certificates, at least one.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("reading the certificate {}: {e}", path.display()))?;
    parse_chain(path, &pem)
}

/// The certificates of `pem`, the contents of the file at `path` (named in errors); at
/// least one.
pub(crate) fn parse_chain(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |why: String| format!("reading the certificate {}: {why}", path.display());
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(pem_error(e)))?;
    if chain.is_empty() {
        return Err(what("no CERTIFICATE in it".into()));
    }
    Ok(chain)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no PEM item of the right kind in it".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// The names a certificate is for: its subject alternative names of two kinds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AltNames {
    /// DNS names, lower case.
    pub(crate) dns: Vec<String>,
    /// URIs, such as SPIFFE ids, as written.
    pub(crate) uris: Vec<String>,
}

impl AltNames {
    /// Whether `allowed` (a URI, or a DNS name in any case) is one of them.
    pub(crate) fn contains(&self, allowed: &str) -> bool {
        self.uris.iter().any(|u| u == allowed)
            || self.dns.iter().any(|d| d.eq_ignore_ascii_case(allowed))
    }

    /// All of them, for a message.
    pub(crate) fn all(&self) -> Vec<&str> {
        self.uris
            .iter()
            .chain(&self.dns)
            .map(String::as_str)
            .collect()
    }
}

/// The DNS and URI names of a certificate.
pub(crate) fn alt_names(cert: &CertificateDer<'_>) -> Result<AltNames, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| format!("not a certificate: {e}"))?;
    let mut names = AltNames::default();
    let extension = parsed
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subject alternative names: {e}"))?;
    for name in extension.iter().flat_map(|ext| &ext.value.general_names) {
        match name {
            GeneralName::DNSName(dns) => names.dns.push(dns.to_ascii_lowercase()),
            GeneralName::URI(uri) => names.uris.push(uri.to_string()),
            _ => {}
        }
    }
    Ok(names)
}
