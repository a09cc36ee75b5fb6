//! The certificate the TLS systems serve (`NginxTls`, `PullmanTls`): one authority and one
//! leaf for `localhost` and `127.0.0.1`, made with rcgen for the run and written to a temp
//! dir, so that every TLS system serves the very same certificate and key.

use std::path::PathBuf;

use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::error::Error;
use crate::load::TrustedCa;

/// The name the load client asks for (SNI) and checks the certificate against.
const SERVER_NAME: &str = "localhost";

/// A leaf certificate and its key on disk, and the authority that signed it.
#[derive(Debug)]
pub struct TlsFiles {
    /// PEM certificate chain (the leaf).
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// What a client trusts to check the leaf.
    pub trust: TrustedCa,
    _dir: tempfile::TempDir,
}

impl TlsFiles {
    /// Makes an authority and a leaf for `localhost` and `127.0.0.1` (ECDSA P-256, rcgen's
    /// default) and writes the leaf's files.
    pub fn generate() -> Result<TlsFiles, Error> {
        let fail = |e: rcgen::Error| Error::peer("certificates", e.to_string());
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.distinguished_name
            .push(DnType::CommonName, "pullman-bench CA");
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().map_err(fail)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(vec![SERVER_NAME.to_string(), "127.0.0.1".to_string()])
            .map_err(fail)?;
        let leaf_key = KeyPair::generate().map_err(fail)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;
        let dir = tempfile::Builder::new()
            .prefix("pullman-bench-tls-")
            .tempdir()?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, leaf_cert.pem())?;
        std::fs::write(&key, leaf_key.serialize_pem())?;
        Ok(TlsFiles {
            cert,
            key,
            trust: TrustedCa {
                der: ca_cert.der().clone(),
                server_name: SERVER_NAME.to_string(),
            },
            _dir: dir,
        })
    }
}
