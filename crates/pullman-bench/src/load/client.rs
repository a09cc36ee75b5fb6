//! One client connection, and what a request to send looks like: HTTP/1.1 (the generator's
//! own, `h1.rs`) or HTTP/2 (hyper's; prior knowledge in clear text, ALPN `h2` over TLS).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::h1::H1Conn;
use crate::error::Error;

/// Which HTTP version the load generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Proto {
    H1,
    H2,
}

/// Where load goes: `http://IP:PORT` on loopback, or `https://IP:PORT` with [`ClientTls`].
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
    pub tls: Option<ClientTls>,
}

impl Target {
    /// A clear-text target, `http://IP:PORT`.
    pub fn parse(url: &str, proto: Proto) -> Result<Target, Error> {
        Target::parse_with(url, proto, None)
    }

    /// `http://IP:PORT` without `trust`, `https://IP:PORT` with it: a connection then opens
    /// TLS, trusting `trust`'s authority and offering `proto`'s ALPN name alone.
    pub fn parse_with(url: &str, proto: Proto, trust: Option<&TrustedCa>) -> Result<Target, Error> {
        let bad = || Error::BadUrl(url.to_string());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        let addr = uri
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .ok_or_else(bad)?;
        let tls = match (uri.scheme_str(), trust) {
            (Some("http"), None) => None,
            (Some("https"), Some(ca)) => Some(ca.client(proto)?),
            _ => return Err(bad()),
        };
        Ok(Target { addr, proto, tls })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The authority a TLS target's certificate is checked against, and the name the client
/// asks for (SNI) and expects the certificate to carry.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    pub der: CertificateDer<'static>,
    pub server_name: String,
}

impl TrustedCa {
    fn client(&self, proto: Proto) -> Result<ClientTls, Error> {
        let bad = |why: String| Error::peer("load client TLS", why);
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.der.clone())
            .map_err(|e| bad(e.to_string()))?;
        // ring's provider, as the hub's: deprecated only for lacking post-quantum key
        // exchange, which neither nginx's build nor this benchmark needs.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![match proto {
            Proto::H1 => b"http/1.1".to_vec(),
            Proto::H2 => b"h2".to_vec(),
        }];
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|_| bad(format!("{:?} is not a server name", self.server_name)))?;
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// What a connection to a TLS target opens TLS with.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One request to send: method, path with query, optional body.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: http::Method,
    pub path: String,
    pub body: Bytes,
}

impl RequestSpec {
    pub fn get(path: impl Into<String>) -> RequestSpec {
        RequestSpec {
            method: http::Method::GET,
            path: path.into(),
            body: Bytes::new(),
        }
    }

    pub fn post(path: impl Into<String>, body: Bytes) -> RequestSpec {
        RequestSpec {
            method: http::Method::POST,
            path: path.into(),
            body,
        }
    }

    /// The HTTP/2 request. It names the host in `:authority`, from the URI; a `Host`
    /// header beside it is one too many for nginx (400).
    fn build_h2(&self, target: &Target) -> Result<http::Request<Full<Bytes>>, Error> {
        let uri = format!("{}://{}{}", target.scheme(), target.addr, self.path);
        let mut b = http::Request::builder()
            .method(self.method.clone())
            .uri(uri);
        if !self.body.is_empty() {
            b = b.header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        b.body(Full::new(self.body.clone()))
            .map_err(|_| Error::BadUrl(self.path.clone()))
    }

    /// The HTTP/1.1 request head, through its blank line.
    pub(super) fn h1_head(&self, target: &Target) -> Vec<u8> {
        use std::io::Write;
        let mut head = Vec::with_capacity(96 + self.path.len());
        let _ = write!(
            head,
            "{} {} HTTP/1.1\r\nhost: {}\r\n",
            self.method, self.path, target.addr
        );
        let says_length = !self.body.is_empty()
            || matches!(
                self.method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            );
        if !self.body.is_empty() {
            head.extend_from_slice(b"content-type: application/octet-stream\r\n");
        }
        if says_length {
            let _ = write!(head, "content-length: {}\r\n", self.body.len());
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}

/// What came back: status and body length (the body itself is dropped as it arrives).
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: http::StatusCode,
    pub body_bytes: u64,
}

/// The I/O of one connection: runs until the connection closes.
pub type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A connection ready to send requests. HTTP/2 ones (hyper's) can be shared between tasks;
/// HTTP/1.1 ones are the generator's own ([`H1Conn`]), whose I/O happens in `send`.
#[derive(Debug)]
pub enum Conn {
    H1(Box<H1Conn>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// Opens a connection whose I/O runs in a task of its own.
    pub async fn open(target: &Target) -> Result<Conn, Error> {
        let (conn, driver) = Conn::open_inline(target).await?;
        tokio::spawn(driver);
        Ok(conn)
    }

    /// Opens a connection and returns the future that does its I/O, for the caller to poll
    /// in the same task as its requests: no hand-off between tasks per request, which
    /// keeps the load generator's own cost per request low.
    pub async fn open_inline(target: &Target) -> Result<(Conn, Driver), Error> {
        let sock = TcpStream::connect(target.addr).await?;
        let _ = sock.set_nodelay(true);
        match &target.tls {
            None => Conn::handshake(sock, target.proto).await,
            Some(tls) => {
                let stream = tls.connector.connect(tls.name.clone(), sock).await?;
                Conn::handshake(stream, target.proto).await
            }
        }
    }

    /// HTTP's handshake on an open stream.
    async fn handshake<S>(stream: S, proto: Proto) -> Result<(Conn, Driver), Error>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        Ok(match proto {
            // Its I/O happens as each request is sent: the driver has nothing to do.
            Proto::H1 => (
                Conn::H1(Box::new(H1Conn::new(stream))),
                Box::pin(std::future::pending()),
            ),
            Proto::H2 => {
                let io = TokioIo::new(stream);
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(LOAD_H2_WINDOW)
                    .initial_connection_window_size(LOAD_H2_WINDOW)
                    .handshake(io)
                    .await?;
                (
                    Conn::H2(send),
                    Box::pin(async move {
                        let _ = conn.await;
                    }),
                )
            }
        })
    }

    /// Another handle on the same HTTP/2 connection (`None` for HTTP/1.1, which carries one
    /// request at a time).
    pub fn share(&self) -> Option<Conn> {
        match self {
            Conn::H1(_) => None,
            Conn::H2(s) => Some(Conn::H2(s.clone())),
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, target: &Target, spec: &RequestSpec) -> Result<Answer, Error> {
        let s = match self {
            Conn::H1(c) => {
                let reply = c.exchange(target, spec, false).await?;
                return Ok(Answer {
                    status: reply.status,
                    body_bytes: reply.body_bytes,
                });
            }
            Conn::H2(s) => s,
        };
        s.ready().await?;
        let resp = s.send_request(spec.build_h2(target)?).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                body_bytes += data.len() as u64;
            }
        }
        Ok(Answer { status, body_bytes })
    }

    /// Sends one request and returns the status and the whole body (for probes).
    pub async fn fetch(
        &mut self,
        target: &Target,
        spec: &RequestSpec,
    ) -> Result<(http::StatusCode, Bytes), Error> {
        let s = match self {
            Conn::H1(c) => {
                let reply = c.exchange(target, spec, true).await?;
                return Ok((reply.status, reply.body));
            }
            Conn::H2(s) => s,
        };
        s.ready().await?;
        let resp = s.send_request(spec.build_h2(target)?).await?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Whether the connection can take another request (HTTP/1.1 closes after errors).
    pub fn is_closed(&self) -> bool {
        match self {
            Conn::H1(c) => c.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }
    }
}

/// HTTP/2 flow-control window of the load generator: large, so it never throttles the
/// body scenario (which measures the system, not the client's window).
const LOAD_H2_WINDOW: u32 = 16 * 1024 * 1024;
