//! Abusive clients cost themselves, not others: HTTP/2 rapid reset (CVE-2023-44487), slow
//! request heads (slowloris), workers that never say HELLO.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "t0ken";

fn demo_pools() -> String {
    format!("{}{}", pool("demo", TOKEN, ""), route_all("demo"))
}

/// What happened to a client that opens streams and resets each at once.
#[derive(Debug)]
enum RapidReset {
    /// The hub ended the connection after this many streams.
    CutOff(usize),
    /// It never did.
    Survived,
}

/// Opens up to `streams` streams, resetting each at once, or after `pause` (so that the hub
/// has taken the request).
async fn rapid_reset(hub: &HubProc, streams: usize, pause: Option<Duration>) -> RapidReset {
    let sock = TcpStream::connect(hub.front).await.unwrap();
    let (mut client, conn) = h2::client::handshake(sock).await.unwrap();
    let conn = tokio::spawn(conn);
    for n in 0..streams {
        let ready = match client.ready().await {
            Ok(ready) => ready,
            Err(_) => return RapidReset::CutOff(n),
        };
        client = ready;
        let req = http::Request::get(hub.url("/sleep?ms=1000"))
            .body(())
            .unwrap();
        match client.send_request(req, true) {
            Ok((_, mut stream)) => {
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
                stream.send_reset(h2::Reason::CANCEL)
            }
            Err(_) => return RapidReset::CutOff(n),
        }
    }
    // A last request, answered: the connection is still open.
    let asked = async {
        let mut ready = client.ready().await.ok()?;
        let req = http::Request::get(hub.url("/hello")).body(()).unwrap();
        let (resp, _) = ready.send_request(req, true).ok()?;
        resp.await.ok()
    };
    let answered = tokio::time::timeout(HANG_GUARD, asked).await.expect("hung");
    conn.abort();
    match answered {
        Some(resp) if resp.status() == 200 => RapidReset::Survived,
        _ => RapidReset::CutOff(streams),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_rapid_reset_client_is_cut_off_and_others_are_served() {
    let hub = HubProc::start(Transport::Tcp, &demo_pools());
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;

    // Resets as fast as the client can: h2 closes the connection itself (streams reset
    // before the hub takes them).
    let outcome = rapid_reset(&hub, 10_000, None).await;
    assert!(
        matches!(outcome, RapidReset::CutOff(n) if n < 10_000),
        "{outcome:?}"
    );
    // Resets each stream once the hub has taken its request: the hub's bound.
    let outcome = rapid_reset(&hub, 10_000, Some(Duration::from_millis(2))).await;
    assert!(
        matches!(outcome, RapidReset::CutOff(n) if n < 1_000),
        "{outcome:?}"
    );
    hub.log.wait_for("(HTTP/2 rapid reset)", 1);

    // Others are served, over HTTP/1.1 and HTTP/2, and a client that cancels now and then
    // keeps its connection.
    for c in [client(), h2_client()] {
        let answer = get(&c, &hub.url("/hello")).await;
        assert_eq!(answer.status, 200);
    }
    let outcome = rapid_reset(&hub, 50, Some(Duration::from_millis(2))).await;
    assert!(matches!(outcome, RapidReset::Survived), "{outcome:?}");
}

/// Lets this process (and the hub it starts) open `n` descriptors and more.
fn allow_descriptors(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct given, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n && limit.rlim_max >= n {
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_connections_are_closed_and_do_not_stop_others() {
    allow_descriptors(4096);
    let hub = HubProc::start_with(
        Transport::Tcp,
        "header_read_timeout = \"2s\"",
        &demo_pools(),
    );
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;

    // 200 clients that send a request head a byte a second.
    let head = b"GET /hello HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slow: Vec<_> = (0..200)
        .map(|_| {
            let front = hub.front;
            tokio::spawn(async move {
                let mut sock = TcpStream::connect(front).await.unwrap();
                for byte in head {
                    if sock.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    let mut buf = [0u8; 64];
                    match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return true,
                        Ok(Ok(_)) => return false,
                        Err(_) => {}
                    }
                }
                false
            })
        })
        .collect();

    // Meanwhile a normal client is served, on new connections and on one kept alive.
    for _ in 0..20 {
        assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
        let fresh = client();
        assert_eq!(get(&fresh, &hub.url("/hello")).await.status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every slow client was closed before its head was whole, unanswered.
    for task in slow {
        assert!(task.await.unwrap(), "a slow head was answered or kept open");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_past_an_addresss_limit_of_100_is_refused() {
    let hub = HubProc::start_with(
        Transport::Tcp,
        "max_connections_per_ip = 100",
        &demo_pools(),
    );
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    wait_ready(&client(), &hub.url("/hello")).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(hub.front).await.unwrap());
    }
    let mut refused = TcpStream::connect(hub.front).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, refused.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("max_connections_per_ip"), "{answer}");
    // One of the hundred leaves: the address may connect again.
    drop(held.pop());
    let again = loop {
        let mut sock = TcpStream::connect(hub.front).await.unwrap();
        sock.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = sock.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out).into_owned();
        // The hub may not have seen the first leave yet.
        if !out.starts_with("HTTP/1.1 503") {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_connections_that_never_say_hello_are_closed_and_workers_still_serve() {
    allow_descriptors(4096);
    let hub = HubProc::start(Transport::Tcp, &demo_pools());
    let addr = hub.worker_addr.trim_start_matches("tcp://").to_string();
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    // A real worker connects among them and serves.
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
    // Each silent one is closed once the handshake's time is up.
    for mut sock in silent {
        let mut out = Vec::new();
        tokio::time::timeout(HANG_GUARD, sock.read_to_end(&mut out))
            .await
            .expect("a connection without HELLO was kept open")
            .ok();
    }
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_sent_a_byte_a_second_is_cut_off() {
    let hub = HubProc::start(Transport::Tcp, &demo_pools());
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let mut sock = TcpStream::connect(hub.front).await.unwrap();
    sock.write_all(b"POST /sink HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    // A byte a second until the hub gives up (500 bytes a second is the default least).
    let mut answer = Vec::new();
    let mut ended = false;
    for _ in 0..HANG_GUARD.as_secs() {
        if sock.write_all(b"x").await.is_err() {
            ended = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                ended = true;
                break;
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        ended,
        "the hub kept reading a body a byte a second: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request body too slow"), "{answer}");
    hub.log
        .wait_for_line(&["request body slower than hub.min_body_rate", "request_id="]);
    // Others are served meanwhile and after.
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_read_its_response_is_cut_off() {
    let hub = HubProc::start(Transport::Tcp, &demo_pools());
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let c = client();
    wait_ready(&c, &hub.url("/hello")).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut sock = socket.connect(hub.front).await.unwrap();
    let size = 256 * 1024 * 1024;
    sock.write_all(format!("GET /bytes?n={size} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // It reads nothing until the hub has given up on it: the connection ends with the body
    // far from whole.
    hub.log.wait_for("fewer than 500 bytes a second", 1);
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(HANG_GUARD, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the hub kept writing to a client that did not read"),
        }
    }
    assert!(got < size, "{got}");
    assert_eq!(get(&c, &hub.url("/hello")).await.status, 200);
}
