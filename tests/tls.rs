//! Clients over TLS: `[hub.tls]` beside the plain listener, HTTP/1.1 and h2 by ALPN, the
//! certificate chosen by SNI, certificates rotated by a reload, bad handshakes.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const TOKEN: &str = "t0ken";
/// What the demo worker answers to `/hello`.
const HELLO: &str = "hello from pullman\n";

/// A certificate authority made for the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names`, written as `DIR/STEM.pem` and `DIR/STEM.key`; its DER.
    fn leaf(&self, names: &[&str], dir: &Path, stem: &str) -> CertificateDer<'static> {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A worker's client certificate naming `uri`, written as `DIR/STEM.pem` and `.key`.
    fn worker(&self, uri: &str, dir: &Path, stem: &str) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

/// `[hub.tls]` serving the certificates `DIR/STEM.pem` and `.key`, in order.
fn tls_table(dir: &Path, stems: &[&str]) -> String {
    let certificates: Vec<String> = stems
        .iter()
        .map(|stem| {
            format!(
                "{{ cert = \"{0}/{stem}.pem\", key = \"{0}/{stem}.key\" }}",
                dir.display()
            )
        })
        .collect();
    format!(
        "[hub.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{}]\n",
        certificates.join(", ")
    )
}

/// Writes `config` as a file and runs `pullman COMMAND --config FILE`, which must fail
/// saying `why`.
fn refused(command: &str, dir: &Path, config: &str, why: &str) {
    let path = dir.join("hub.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(BIN)
        .args([command, "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{command}: {why}");
    assert!(stderr.contains(why), "{command}: {why}: {stderr}");
}

fn demo_pools() -> String {
    format!("{}{}", pool("demo", TOKEN, ""), route_all("demo"))
}

/// The hub's own cryptography provider (see `pullman_hub::tls`).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting `roots`, offering `alpn`.
fn client_config(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS session with the hub, offering `alpn`, naming `sni`.
async fn handshake(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    sni: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let sock = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(
        HANG_GUARD,
        TlsConnector::from(client_config(roots, alpn)).connect(name, sock),
    )
    .await
    .expect("handshake hung")
    .expect("handshake failed")
}

/// The certificate the hub presented on `tls`.
fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// An HTTP/1.1 connection over `tls`: its sender.
async fn h1(tls: TlsStream<TcpStream>) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// GETs `path` on an HTTP/1.1 connection: status and body.
async fn get_h1(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(HANG_GUARD, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_http1_and_h2_chosen_by_alpn_beside_plain_http() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    std::fs::write(certs.path().join("ca.pem"), &ca.pem).unwrap();
    ca.leaf(&["localhost"], certs.path(), "leaf");
    let hub = HubProc::start_with(
        Transport::Tcp,
        &tls_table(certs.path(), &["leaf"]),
        &demo_pools(),
    );
    let tls_addr = hub.tls.expect("the hub names its TLS listener");
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;

    // A client offering both protocols gets h2.
    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/hello")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), HELLO);

    // One offering HTTP/1.1 alone gets it, and keeps its connection for several requests.
    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = h1(tls).await;
    for _ in 0..3 {
        assert_eq!(
            get_h1(&mut sender, "/hello").await,
            (200, Bytes::from(HELLO))
        );
    }
    // The worker hears that the client came over TLS (the REQUEST's TLS flag); one from the
    // plain listener did not.
    let seen_tls = |body: &Bytes| {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["tls"].as_bool().unwrap()
    };
    let (status, body) = get_h1(&mut sender, "/inspect").await;
    assert_eq!(status, 200);
    assert!(seen_tls(&body), "{body:?}");
    let plain = get(&client(), &hub.url("/inspect")).await;
    assert!(!seen_tls(&plain.body), "{:?}", plain.body);

    // curl, with the test's CA, over both protocols.
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", flag, "--cacert"])
            .arg(certs.path().join("ca.pem").display().to_string())
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", tls_addr.port()),
            ])
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(format!("https://localhost:{}/hello", tls_addr.port()))
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => panic!("curl: {e}"),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!("{HELLO}\n200 {version}"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The plain listener serves as before.
    assert_eq!(get(&client(), &hub.url("/hello")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_is_chosen_by_the_name_the_client_asks_for() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let first = ca.leaf(&["a.test"], certs.path(), "a");
    let wildcard = ca.leaf(&["*.b.test", "b.test"], certs.path(), "b");
    let hub = HubProc::start_with(
        Transport::Tcp,
        &tls_table(certs.path(), &["a", "b"]),
        &demo_pools(),
    );
    let tls_addr = hub.tls.unwrap();
    for (sni, expected) in [
        ("a.test", &first),
        ("x.b.test", &wildcard),
        ("B.TEST", &wildcard),
        // No certificate is for it: the first one, which the client then refuses.
        ("other.test", &first),
    ] {
        let sock = TcpStream::connect(tls_addr).await.unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let result = TlsConnector::from(client_config(ca.roots(), &[b"http/1.1"]))
            .connect(name, sock)
            .await;
        if sni == "other.test" {
            let e = result.expect_err("a certificate for another name is refused");
            assert!(e.to_string().contains("not valid for name"), "{e}");
            continue;
        }
        let tls = result.unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(&presented(&tls), expected, "{sni}");
    }
    // A client that names no host (an IP address) gets the first.
    let tls = handshake_unverified(tls_addr).await;
    assert_eq!(presented(&tls), first);
}

/// A TLS session that names no host and checks no certificate: to see what is presented.
async fn handshake_unverified(addr: SocketAddr) -> TlsStream<TcpStream> {
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let sock = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, sock)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_renewed_on_disk_is_served_after_a_reload_and_open_connections_stay() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let old = ca.leaf(&["localhost"], certs.path(), "leaf");
    let hub = HubProc::start_with(
        Transport::Tcp,
        &tls_table(certs.path(), &["leaf"]),
        &demo_pools(),
    );
    let tls_addr = hub.tls.unwrap();
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;

    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"http/1.1"]).await;
    assert_eq!(presented(&tls), old);
    let mut open = h1(tls).await;
    assert_eq!(get_h1(&mut open, "/hello").await.0, 200);

    // A key that does not go with its certificate: the reload is refused, and the old
    // certificate is still served.
    let renewed = tempfile::tempdir().unwrap();
    ca.leaf(&["localhost"], renewed.path(), "leaf");
    std::fs::copy(
        renewed.path().join("leaf.pem"),
        certs.path().join("leaf.pem"),
    )
    .unwrap();
    hub.signal(libc::SIGHUP);
    hub.log.wait_for("reload refused", 1);
    assert!(
        hub.log.text().contains("does not go with the certificate"),
        "{}",
        hub.log.text()
    );
    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"http/1.1"]).await;
    assert_eq!(presented(&tls), old);

    // The key too: the next reload serves the new pair.
    let new = ca.leaf(&["localhost"], certs.path(), "leaf");
    hub.signal(libc::SIGHUP);
    hub.log.wait_for("configuration applied", 1);
    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"http/1.1"]).await;
    assert_eq!(presented(&tls), new);
    let mut fresh = h1(tls).await;
    assert_eq!(get_h1(&mut fresh, "/hello").await.0, 200);

    // The connection made before the renewal still serves.
    assert_eq!(get_h1(&mut open, "/hello").await, (200, Bytes::from(HELLO)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_handshake_costs_that_connection_alone() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.leaf(&["localhost"], certs.path(), "leaf");
    let hub = HubProc::start_with(
        Transport::Tcp,
        &tls_table(certs.path(), &["leaf"]),
        &demo_pools(),
    );
    let tls_addr = hub.tls.unwrap();
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;
    let mut open = h1(handshake(tls_addr, ca.roots(), "localhost", &[b"http/1.1"]).await).await;

    // Plain HTTP on the TLS port: closed, with no answer but TLS's own alert.
    let mut plain = TcpStream::connect(tls_addr).await.unwrap();
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, plain.read_to_end(&mut out))
        .await
        .expect("the hub kept a bad handshake open")
        .ok();
    assert!(!out.starts_with(b"HTTP/"), "{out:?}");

    // A client that does not trust the hub's certificate gives up; the hub goes on.
    let stranger = Ca::new("another CA");
    let sock = TcpStream::connect(tls_addr).await.unwrap();
    let refused = TlsConnector::from(client_config(stranger.roots(), &[]))
        .connect(ServerName::try_from("localhost").unwrap(), sock)
        .await;
    assert!(refused.is_err());

    // The connection opened before, and new ones, are served.
    assert_eq!(get_h1(&mut open, "/hello").await, (200, Bytes::from(HELLO)));
    let tls = handshake(tls_addr, ca.roots(), "localhost", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_handshake_is_closed_after_the_header_read_timeout() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.leaf(&["localhost"], certs.path(), "leaf");
    let hub = HubProc::start_with(
        Transport::Tcp,
        &format!(
            "header_read_timeout = \"300ms\"\n{}",
            tls_table(certs.path(), &["leaf"])
        ),
        &demo_pools(),
    );
    let tls_addr = hub.tls.unwrap();
    // The first bytes of a ClientHello, and then nothing.
    let mut stalled = TcpStream::connect(tls_addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, stalled.read_to_end(&mut out))
        .await
        .expect("a stalled handshake was kept open")
        .ok();
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn certificates_that_cannot_be_served_stop_the_hub_before_it_starts() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.leaf(&["localhost"], certs.path(), "one");
    ca.leaf(&["localhost"], certs.path(), "two");
    let dir = certs.path().display().to_string();
    for (table, why) in [
        (
            format!("certificates = [{{ cert = \"{dir}/one.pem\", key = \"{dir}/two.key\" }}]"),
            "does not go with the certificate",
        ),
        (
            format!("certificates = [{{ cert = \"{dir}/missing.pem\", key = \"{dir}/one.key\" }}]"),
            "missing.pem",
        ),
        (
            format!("certificates = [{{ cert = \"{dir}/one.key\", key = \"{dir}/one.key\" }}]"),
            "no CERTIFICATE in it",
        ),
        ("certificates = []".to_string(), "no certificate"),
        (
            "certificates = [{ cert = \"one.pem\", key = \"/k\" }]".to_string(),
            "must be an absolute path",
        ),
    ] {
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n\
             [hub.tls]\nlisten = \"127.0.0.1:0\"\n{table}\n{}",
            demo_pools()
        );
        for command in ["check-config", "hub"] {
            refused(command, certs.path(), &config, why);
        }
    }
}

/// A hub taking workers at `listens` (`tcp://` and `tls://` addresses), serving `DIR/hub.pem`
/// to them and checking their certificates against `DIR/CLIENT_CA`, with the one pool
/// `pool` (a `[[pool]]` table) and a route sending everything to it.
fn hub_for_workers(d: &Path, listens: &[&str], client_ca: &str, pool: &str) -> HubProc {
    let name = pool
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the pool's name");
    let listens: Vec<String> = listens.iter().map(|l| format!("\"{l}\"")).collect();
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [{listens}]\n\
         [hub.worker_tls]\n\
         certificates = [{{ cert = \"{d}/hub.pem\", key = \"{d}/hub.key\" }}]\n\
         client_ca = \"{d}/{client_ca}\"\n{pool}\n{route}",
        listens = listens.join(", "),
        d = d.display(),
        route = route_all(name),
    );
    std::fs::write(d.join("hub.toml"), config).unwrap();
    HubProc::from_config_file(&d.join("hub.toml"))
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_over_tls_prove_who_they_are_with_certificates_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("test CA");
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    ca.leaf(&["localhost"], d, "hub");
    ca.worker("spiffe://test/worker-a", d, "a");
    ca.worker("spiffe://test/intruder", d, "intruder");
    Ca::new("another CA").worker("spiffe://test/worker-a", d, "forged");
    let hub = hub_for_workers(
        d,
        &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"],
        "ca.pem",
        &pool(
            "secure",
            TOKEN,
            "allowed_workers = [\"spiffe://test/worker-a\"]",
        ),
    );
    let tls_url = hub.worker_addrs[1].replace("127.0.0.1", "localhost");
    assert!(tls_url.starts_with("tls://localhost:"), "{tls_url}");
    let file = |name: &str| d.join(name).display().to_string();
    let worker = |name: &str, hub_url: &str, token: &str, flags: &[&str]| {
        WorkerProc::start_with_flags(hub_url, "secure", token, 2, name, flags)
    };

    // The worker whose certificate names it serves.
    let (ca_file, a_cert, a_key) = (file("ca.pem"), file("a.pem"), file("a.key"));
    let _good = worker(
        "good",
        &tls_url,
        TOKEN,
        &[
            "--tls-ca",
            &ca_file,
            "--tls-cert",
            &a_cert,
            "--tls-key",
            &a_key,
        ],
    );
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let answer = get(&c, &hub.url("/hello")).await;
    assert_eq!((answer.status, answer.body), (200, Bytes::from(HELLO)));

    // Each stranger is refused, with the reason in its log and in the hub's; none retries.
    let (i_cert, i_key) = (file("intruder.pem"), file("intruder.key"));
    let (f_cert, f_key) = (file("forged.pem"), file("forged.key"));
    let tcp_url = hub.worker_addrs[0].clone();
    for (name, hub_url, token, flags, worker_says, hub_says) in [
        (
            "forged",
            &tls_url,
            TOKEN,
            vec![
                "--tls-ca",
                &ca_file,
                "--tls-cert",
                &f_cert,
                "--tls-key",
                &f_key,
            ],
            "TLS: handshake with the hub",
            "worker refused: TLS handshake failed",
        ),
        (
            "intruder",
            &tls_url,
            TOKEN,
            vec![
                "--tls-ca",
                &ca_file,
                "--tls-cert",
                &i_cert,
                "--tls-key",
                &i_key,
            ],
            "are not among pool \"secure\"'s allowed_workers",
            "[\"spiffe://test/intruder\"] are not among pool",
        ),
        (
            "no-certificate",
            &tcp_url,
            TOKEN,
            vec![],
            "this worker presented none",
            "this worker presented none",
        ),
        (
            "wrong-token",
            &tls_url,
            "not-the-token",
            vec![
                "--tls-ca",
                &ca_file,
                "--tls-cert",
                &a_cert,
                "--tls-key",
                &a_key,
            ],
            "wrong token",
            "worker refused: wrong token",
        ),
        (
            "unknown-hub",
            &tls_url,
            TOKEN,
            vec![],
            "TLS: handshake with the hub",
            "worker refused: TLS handshake failed",
        ),
    ] {
        let mut stranger = worker(name, hub_url, token, &flags);
        // It stops (the helper panics if it does not) with a failure.
        assert!(!stranger.wait_exit(), "{name}: {}", stranger.log.text());
        // Its last lines may still be on their way through the pipe.
        stranger.log.wait_for(worker_says, 1);
        hub.log.wait_for(hub_says, 1);
    }

    // The good worker served throughout.
    let answer = get(&c, &hub.url("/hello")).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_without_a_token_takes_workers_by_certificate_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("test CA");
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    ca.leaf(&["localhost"], d, "hub");
    ca.worker("spiffe://test/worker-a", d, "a");
    // No token in the pool: the certificate alone.
    let hub = hub_for_workers(
        d,
        &["tcp://127.0.0.1:0", "tls://127.0.0.1:0"],
        "ca.pem",
        "[[pool]]\nname = \"bycert\"\nallowed_workers = [\"spiffe://test/worker-a\"]\n",
    );
    let tls_url = hub.worker_addrs[1].replace("127.0.0.1", "localhost");
    let file = |name: &str| d.join(name).display().to_string();
    let (ca_file, a_cert, a_key) = (file("ca.pem"), file("a.pem"), file("a.key"));
    // No --token: the SDK sends none, as the worker presents a certificate.
    let certified = [
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        &a_cert,
        "--tls-key",
        &a_key,
    ];
    let _good = WorkerProc::start_with_flags(&tls_url, "bycert", "", 2, "good", &certified);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let answer = get(&c, &hub.url("/hello")).await;
    assert_eq!((answer.status, answer.body), (200, Bytes::from(HELLO)));

    // Without a certificate a token does not stand in for one: refused, with the reason.
    let tcp_url = hub.worker_addrs[0].clone();
    let mut guess = WorkerProc::start_with_flags(&tcp_url, "bycert", "guess", 1, "guess", &[]);
    assert!(!guess.wait_exit(), "{}", guess.log.text());
    guess.log.wait_for("this worker presented none", 1);
    hub.log.wait_for("this worker presented none", 1);
    // And without either, the worker does not start: it has nothing to prove itself with.
    let mut bare = WorkerProc::start_with_flags(&tcp_url, "bycert", "", 1, "bare", &[]);
    assert!(!bare.wait_exit(), "{}", bare.log.text());
    bare.log.wait_for("the token is required", 1);

    let answer = get(&c, &hub.url("/hello")).await;
    assert_eq!(answer.status, 200);
}

#[test]
fn worker_tls_settings_that_do_not_fit_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let ca = Ca::new("test CA");
    ca.leaf(&["localhost"], dir.path(), "hub");
    let worker_tls = format!(
        "[hub.worker_tls]\ncertificates = [{{ cert = \"{d}/hub.pem\", key = \"{d}/hub.key\" }}]\n"
    );
    for (listen, tls, pool_extra, why) in [
        (
            "tls://127.0.0.1:0",
            String::new(),
            "",
            "workers_listen tls://127.0.0.1:0 needs [hub.worker_tls]",
        ),
        (
            "tcp://127.0.0.1:0",
            worker_tls.clone(),
            "",
            "[hub.worker_tls] is set but no workers_listen address is tls://",
        ),
        (
            "tls://127.0.0.1:0",
            worker_tls.clone(),
            "allowed_workers = [\"spiffe://x/y\"]\n",
            "set hub.worker_tls.client_ca",
        ),
        (
            "tls://127.0.0.1:0",
            format!("{worker_tls}client_ca = \"{d}/missing.pem\"\n"),
            "",
            "missing.pem",
        ),
    ] {
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"{listen}\"]\n{tls}{}{pool_extra}{}",
            pool("p", TOKEN, ""),
            route_all("p")
        );
        refused("check-config", dir.path(), &config, why);
    }
}

/// An HTTPS server on port 0 with the certificate `DIR/STEM.pem`, offering `alpn`, and,
/// with `clients_of`, requiring a client certificate from that authority; it answers every
/// request with its protocol version and path.
async fn https_upstream(
    dir: &Path,
    stem: &str,
    alpn: &[&[u8]],
    clients_of: Option<&Ca>,
) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(format!("{stem}.pem")))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients_of {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider(),
            )
            .build()
            .unwrap(),
        ),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let text = format!("{:?} {}", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(text)),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_pool_forwards_to_an_https_upstream_it_trusts_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("upstream CA");
    std::fs::write(d.join("ca.pem"), &ca.pem).unwrap();
    ca.leaf(&["localhost"], d, "upstream");
    let another = Ca::new("another CA");
    another.leaf(&["localhost"], d, "impostor");
    // The hub's client certificate, for the upstream that asks for one.
    ca.leaf(&["hub.test"], d, "hub-client");
    let both = https_upstream(d, "upstream", &[b"h2", b"http/1.1"], None).await;
    let h1_only = https_upstream(d, "upstream", &[b"http/1.1"], None).await;
    let impostor = https_upstream(d, "impostor", &[b"h2", b"http/1.1"], None).await;
    let mutual = https_upstream(d, "upstream", &[b"h2", b"http/1.1"], Some(&ca)).await;

    let dir = d.display();
    let with_ca = format!("upstream_tls = {{ ca = \"{dir}/ca.pem\" }}");
    let with_certificate = format!(
        "upstream_tls = {{ ca = \"{dir}/ca.pem\", cert = \"{dir}/hub-client.pem\", \
         key = \"{dir}/hub-client.key\" }}"
    );
    let mut pools = String::new();
    let upstreams = [
        ("both", both, &with_ca),
        ("h1", h1_only, &with_ca),
        ("impostor", impostor, &with_ca),
        ("mutual", mutual, &with_certificate),
        ("anonymous", mutual, &with_ca),
    ];
    for (name, addr, tls) in upstreams {
        pools += &pool(
            name,
            TOKEN,
            &format!(
                "mode = \"filter\"\nupstream = \"https://localhost:{}\"\n{tls}\n",
                addr.port(),
            ),
        );
        pools += &format!("[[route]]\npath_prefix = \"/{name}/\"\npool = \"{name}\"\n");
    }
    let hub = HubProc::start_with(Transport::Tcp, "", &pools);
    let _filters: Vec<_> = upstreams
        .iter()
        .map(|(p, ..)| hub.filter_worker(p, TOKEN, 4, &format!("filter-{p}")))
        .collect();
    let c = client();
    for (path, expected) in [
        ("/both/x", "HTTP/2.0 /both/x"),
        ("/h1/y", "HTTP/1.1 /h1/y"),
        ("/mutual/w", "HTTP/2.0 /mutual/w"),
    ] {
        let answer = loop {
            let answer = get(&c, &hub.url(path)).await;
            // 503 until the filter has connected.
            if answer.status != 503 {
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body, expected);
    }
    // An upstream whose certificate another authority signed, and one that wants a client
    // certificate the pool does not present: 502.
    for path in ["/impostor/z", "/anonymous/v"] {
        let refused = loop {
            let answer = get(&c, &hub.url(path)).await;
            if answer.status != 503 {
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(refused.status, 502, "{path}: {refused:?}");
    }

    // The CA file renewed in place, with the other authority added: the next reload
    // builds the pools' upstream clients anew, and the impostor is trusted from then on.
    std::fs::write(d.join("ca.pem"), format!("{}{}", ca.pem, another.pem)).unwrap();
    hub.signal(libc::SIGHUP);
    hub.log.wait_for("configuration applied", 1);
    let answer = get(&c, &hub.url("/impostor/z")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "HTTP/2.0 /impostor/z");
    // The others still serve.
    assert_eq!(get(&c, &hub.url("/both/x")).await.status, 200);
}

#[test]
fn upstream_tls_settings_are_checked_before_they_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    for (upstream, tls, why) in [
        (
            "http://127.0.0.1:1",
            format!("upstream_tls = {{ ca = \"{d}/ca.pem\" }}"),
            "only an https:// upstream uses",
        ),
        (
            "https://localhost:1",
            format!("upstream_tls = {{ cert = \"{d}/c.pem\" }}"),
            "a client certificate needs both",
        ),
        (
            "https://localhost:1",
            format!("upstream_tls = {{ ca = \"{d}/missing.pem\" }}"),
            "missing.pem",
        ),
        (
            "https://localhost:1",
            "upstream_tls = { ca = \"ca.pem\" }".to_string(),
            "must be an absolute path",
        ),
    ] {
        let config = format!(
            "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n{}{}",
            pool(
                "f",
                TOKEN,
                &format!("mode = \"filter\"\nupstream = \"{upstream}\"\n{tls}\n")
            ),
            route_all("f")
        );
        refused("check-config", dir.path(), &config, why);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_over_tls_still_asks_for_its_token() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    std::fs::write(certs.path().join("ca.pem"), &ca.pem).unwrap();
    ca.leaf(&["localhost"], certs.path(), "admin");
    let admin = format!(
        "{}tls = {{ certificates = [{{ cert = \"{1}/admin.pem\", key = \"{1}/admin.key\" }}] }}\n",
        admin_table(),
        certs.path().display()
    );
    let hub = HubProc::start_with(Transport::Tcp, "", &format!("{}{admin}", demo_pools()));
    let addr = hub.admin.expect("the hub names its admin listener");
    let curl = |token: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(certs.path().join("ca.pem"))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd
            .arg(format!("https://localhost:{}/pools", addr.port()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(Some(ADMIN_TOKEN)), "200");
    assert_eq!(curl(None), "401");
    assert_eq!(curl(Some("wrong")), "401");
    // Plain HTTP on the admin port gets no answer.
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{}/pools", addr.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "000");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_ca_replaced_on_disk_is_used_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old, new) = (Ca::new("old workers' CA"), Ca::new("new workers' CA"));
    std::fs::write(d.join("ca.pem"), &old.pem).unwrap();
    std::fs::write(d.join("clients.pem"), &old.pem).unwrap();
    old.leaf(&["localhost"], d, "hub");
    new.worker("spiffe://test/worker-b", d, "b");
    let hub = hub_for_workers(
        d,
        &["tls://127.0.0.1:0"],
        "clients.pem",
        &pool(
            "secure",
            TOKEN,
            "allowed_workers = [\"spiffe://test/worker-b\"]",
        ),
    );
    let url = hub.worker_addrs[0].replace("127.0.0.1", "localhost");
    let file = |name: &str| d.join(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("b.pem"), file("b.key"));
    let flags = ["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];

    // Signed by an authority the hub does not know yet: refused.
    let mut early = WorkerProc::start_with_flags(&url, "secure", TOKEN, 2, "early", &flags);
    assert!(!early.wait_exit(), "{}", early.log.text());
    early.log.wait_for("UnknownCA", 1);

    // The operator adds it to the CA file and reloads: the same worker is taken.
    std::fs::write(d.join("clients.pem"), format!("{}{}", old.pem, new.pem)).unwrap();
    hub.signal(libc::SIGHUP);
    hub.log.wait_for("configuration applied", 1);
    let _late = WorkerProc::start_with_flags(&url, "secure", TOKEN, 2, "late", &flags);
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}
