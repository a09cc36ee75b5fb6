//! One client connection (HTTP/1.1 or HTTP/2 prior knowledge) on hyper, and what a request
//! to send looks like.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::error::Error;

/// Which HTTP version the load generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Proto {
    H1,
    H2,
}

/// Where load goes: `http://IP:PORT` on loopback.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
}

impl Target {
    pub fn parse(url: &str, proto: Proto) -> Result<Target, Error> {
        let uri: http::Uri = url.parse().map_err(|_| Error::BadUrl(url.to_string()))?;
        let addr = uri
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .ok_or_else(|| Error::BadUrl(url.to_string()))?;
        Ok(Target { addr, proto })
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

    fn build(&self, target: &Target) -> Result<http::Request<Full<Bytes>>, Error> {
        let mut b = http::Request::builder()
            .method(self.method.clone())
            .header(http::header::HOST, target.addr.to_string());
        b = match target.proto {
            Proto::H1 => b.uri(self.path.as_str()),
            Proto::H2 => b.uri(format!("http://{}{}", target.addr, self.path)),
        };
        if !self.body.is_empty() {
            b = b.header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        b.body(Full::new(self.body.clone()))
            .map_err(|_| Error::BadUrl(self.path.clone()))
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

/// A connection ready to send requests. HTTP/2 ones can be shared between tasks.
#[derive(Debug)]
pub enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
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
        let io = TokioIo::new(sock);
        Ok(match target.proto {
            Proto::H1 => {
                let (send, conn) = http1::handshake(io).await?;
                (
                    Conn::H1(send),
                    Box::pin(async move {
                        let _ = conn.await;
                    }),
                )
            }
            Proto::H2 => {
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
        let req = spec.build(target)?;
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Conn::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
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
        let req = spec.build(target)?;
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Conn::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Whether the connection can take another request (HTTP/1.1 closes after errors).
    pub fn is_closed(&self) -> bool {
        match self {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }
    }
}

/// HTTP/2 flow-control window of the load generator: large, so it never throttles the
/// body scenario (which measures the system, not the client's window).
const LOAD_H2_WINDOW: u32 = 16 * 1024 * 1024;
