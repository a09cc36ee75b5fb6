//! The load generator against an in-test server with a known delay, and one that stalls.

use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::*;
use crate::trace::ServiceDist;

const DELAY: Duration = Duration::from_millis(10);
const STALL: Duration = Duration::from_millis(200);
/// The request (by arrival order at the server) that starts the stall.
const STALL_AT: usize = 20;

/// A server that answers every request after `DELAY`; with `stall`, the `STALL_AT`-th
/// request starts a `STALL` during which nothing is answered (a GC pause, say). Returns the
/// URL and when the stall began and ended.
async fn server(stall: bool) -> (String, Arc<std::sync::Mutex<Option<(Instant, Instant)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(std::sync::Mutex::new(None::<(Instant, Instant)>));
    let w = window.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let (seen, w) = (seen.clone(), w.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let (seen, w) = (seen.clone(), w.clone());
                    async move {
                        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                        let now = Instant::now();
                        let until = {
                            let mut g = w.lock().unwrap();
                            if stall && n == STALL_AT {
                                *g = Some((now, now + STALL));
                            }
                            g.and_then(|(_, end)| (now < end).then_some(end))
                        };
                        if let Some(end) = until {
                            tokio::time::sleep_until(end.into()).await;
                        }
                        tokio::time::sleep(DELAY).await;
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    (url, window)
}

fn trace(rate: f64, secs: f64) -> Trace {
    Trace::poisson(rate, secs, ServiceDist::Fixed { ms: 0.0 }, 3, true)
}

#[tokio::test]
async fn open_loop_latency_is_the_servers_delay() {
    let (url, _) = server(false).await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let t = trace(100.0, 1.0);
    let r = open_loop(&target, &t, 32, Arc::new(|_| RequestSpec::get("/")), "t")
        .await
        .unwrap();
    assert_eq!(r.ok as usize, t.jobs.len());
    assert_eq!(r.errors, 0);
    let min = r
        .samples
        .iter()
        .map(|s| s.latency_ms)
        .fold(f64::MAX, f64::min);
    assert!(min >= DELAY.as_secs_f64() * 1000.0, "min {min} ms");
    assert!(r.quantile_ms(0.5) >= 10.0);
}

#[tokio::test]
async fn open_loop_shows_a_stall_that_closed_loop_hides() {
    // Open loop: every request planned during the stall waits at least until it ends.
    let (url, window) = server(true).await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let t = trace(200.0, 1.0);
    let r = open_loop(&target, &t, 64, Arc::new(|_| RequestSpec::get("/")), "t")
        .await
        .unwrap();
    assert_eq!(r.errors, 0);
    let (start, end) = window.lock().unwrap().expect("the server stalled");
    let from_epoch = |i: Instant| i.saturating_duration_since(r.epoch).as_secs_f64() * 1000.0;
    let (s_ms, e_ms) = (from_epoch(start), from_epoch(end));
    let during: Vec<&Sample> = r
        .samples
        .iter()
        .filter(|s| s.at_ms > s_ms && s.at_ms < e_ms)
        .collect();
    assert!(
        during.len() >= 10,
        "only {} requests fell in the stall",
        during.len()
    );
    for s in &during {
        assert!(
            s.latency_ms >= e_ms - s.at_ms,
            "request planned at {:.1} ms answered after {:.1} ms, before the stall's end at {e_ms:.1}",
            s.at_ms,
            s.latency_ms
        );
    }
    // A quarter of the trace or so waited on the stall: it shows in p90.
    assert!(
        r.quantile_ms(0.9) >= 50.0,
        "open-loop p90 {}",
        r.quantile_ms(0.9)
    );

    // Closed loop, one connection: only the request in flight sees the stall, and the
    // requests that would have been sent meanwhile are never sent, so the stall vanishes
    // from every percentile but the top one.
    let (url, window) = server(true).await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let r = closed_loop(
        &target,
        1,
        1,
        Duration::from_secs(1),
        Arc::new(|_| RequestSpec::get("/")),
        "t",
    )
    .await
    .unwrap();
    assert!(window.lock().unwrap().is_some(), "the server stalled");
    assert!(r.hist.max() >= STALL.as_micros() as u64 / 2);
    assert!(
        r.quantile_ms(0.9) < STALL.as_secs_f64() * 1000.0 / 2.0,
        "closed-loop p90 {}",
        r.quantile_ms(0.9)
    );
}

/// A server that answers one request per connection and closes it, as gunicorn's sync
/// workers do (`Connection: close`).
async fn closing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn closed_loop_counts_the_answers_of_a_server_that_closes_after_each() {
    let target = Target::parse(&closing_server().await, Proto::H1).unwrap();
    let r = closed_loop(
        &target,
        4,
        1,
        Duration::from_millis(300),
        Arc::new(|_| RequestSpec::get("/")),
        "test",
    )
    .await
    .unwrap();
    // Every connection carries one answer, which counts; none is an error.
    assert!(r.ok > 20, "ok {} errors {}", r.ok, r.errors);
    assert_eq!(r.errors, 0, "ok {}", r.ok);
}

/// A TLS server on the run's certificate, answering every request with the ALPN protocol
/// it negotiated; its URL.
async fn tls_server(files: &crate::peers::TlsFiles) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_file(&files.cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
                let service = service_fn(move |_req| {
                    let alpn = Bytes::from(alpn.clone());
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(alpn))) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_tls_target_checks_the_certificate_and_speaks_the_protocol_asked() {
    let files = crate::peers::TlsFiles::generate().unwrap();
    let url = tls_server(&files).await;
    for (proto, alpn) in [(Proto::H1, "http/1.1"), (Proto::H2, "h2")] {
        let target = Target::parse_with(&url, proto, Some(&files.trust)).unwrap();
        let mut conn = Conn::open(&target).await.unwrap();
        let (status, body) = conn.fetch(&target, &RequestSpec::get("/")).await.unwrap();
        assert_eq!(status, http::StatusCode::OK);
        assert_eq!(body, alpn, "{proto:?}");
    }
    // An authority that did not sign the server's certificate: the handshake fails.
    let other = crate::peers::TlsFiles::generate().unwrap();
    let target = Target::parse_with(&url, Proto::H1, Some(&other.trust)).unwrap();
    assert!(Conn::open(&target).await.is_err());
}

#[test]
fn a_url_is_tls_exactly_when_an_authority_is_given() {
    let files = crate::peers::TlsFiles::generate().unwrap();
    let trust = Some(&files.trust);
    assert!(Target::parse_with("http://127.0.0.1:1", Proto::H1, None).is_ok());
    assert!(Target::parse_with("https://127.0.0.1:1", Proto::H1, trust).is_ok());
    assert!(Target::parse_with("https://127.0.0.1:1", Proto::H1, None).is_err());
    assert!(Target::parse_with("http://127.0.0.1:1", Proto::H1, trust).is_err());
}

/// A server that answers the requests of each connection with `answers`, in turn, as raw
/// bytes (each after reading one request head), then closes.
async fn scripted_server(answers: Vec<&'static [u8]>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for answer in answers {
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut buf = [0u8; 1024];
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    seen.drain(..end + 4);
                    // Written in two parts, so the client reads an answer across reads.
                    let (a, b) = answer.split_at(answer.len() / 2);
                    sock.write_all(a).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    sock.write_all(b).await.unwrap();
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn the_http1_client_reads_every_kind_of_body_framing() {
    let url = scripted_server(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n\
          A\r\n0123456789\r\n0\r\nx-trailer: t\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nconnection: close\r\n\r\nno\n",
    ])
    .await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let mut conn = Conn::open(&target).await.unwrap();
    let get = RequestSpec::get("/");
    let (status, body) = conn.fetch(&target, &get).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
    let (status, body) = conn.fetch(&target, &get).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"abc0123456789"[..]));
    let answer = conn.send(&target, &get).await.unwrap();
    assert_eq!((answer.status.as_u16(), answer.body_bytes), (204, 0));
    let answer = conn.send(&target, &get).await.unwrap();
    assert_eq!((answer.status.as_u16(), answer.body_bytes), (404, 3));
    assert!(conn.is_closed(), "the server said it would close");
    assert!(conn.send(&target, &get).await.is_err());

    // A body that runs to the close, and a head that is not HTTP.
    let url = scripted_server(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"]).await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let mut conn = Conn::open(&target).await.unwrap();
    let (status, body) = conn.fetch(&target, &get).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"until the end"[..]));
    assert!(conn.is_closed());
    let url = scripted_server(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
    let target = Target::parse(&url, Proto::H1).unwrap();
    let mut conn = Conn::open(&target).await.unwrap();
    assert!(conn.send(&target, &get).await.is_err());
}

#[tokio::test]
async fn the_http1_client_sends_bodies_with_their_length() {
    // The in-test server echoes nothing but counts: a hyper server reads the body by its
    // content-length, so a wrong one would hang or fail the next request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
            use http_body_util::BodyExt;
            let n = req.into_body().collect().await.unwrap().to_bytes().len();
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(n.to_string()))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(sock), service)
            .await;
    });
    let target = Target::parse(&url, Proto::H1).unwrap();
    let mut conn = Conn::open(&target).await.unwrap();
    for n in [0usize, 10, 100_000] {
        let spec = RequestSpec::post("/", Bytes::from(vec![7u8; n]));
        let (status, body) = conn.fetch(&target, &spec).await.unwrap();
        assert_eq!((status.as_u16(), body), (200, Bytes::from(n.to_string())));
    }
}
