//! TLS to an `https://` upstream: whom the hub trusts for it, and the client certificate it
//! may present. ALPN then picks HTTP/2 or HTTP/1.1.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::{PoolConfig, UpstreamScheme, UpstreamTls};
use crate::tls::{provider, read_chain};

/// The TLS settings of an `https://` upstream, reading the files `tls` names (the system's
/// roots without a CA file).
pub(crate) fn client_config(tls: Option<&UpstreamTls>) -> Result<ClientConfig, String> {
    let tls = tls.cloned().unwrap_or_default();
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(path) => {
            for cert in read_chain(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA file {}: {e}", path.display()))?;
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
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_chain(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("reading the private key {}: {e:?}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate {}: {e}", cert.display()))
        }
        _ => Ok(builder.with_no_client_auth()),
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
            client_config(pool.upstream_tls.as_ref())
                .map_err(|why| format!("pool {:?}: upstream_tls: {why}", pool.name))?;
        }
    }
    Ok(())
}
