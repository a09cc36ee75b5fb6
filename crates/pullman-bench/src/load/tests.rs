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
