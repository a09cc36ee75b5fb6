//! Limits on client connections: `hub.max_connections` and `hub.max_connections_per_ip`. A
//! connection past either is answered 503 with the reason and closed; the others are served.

mod support;

use std::net::SocketAddr;
use std::time::Instant;

use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "t0ken";

/// A connection to `to` from the loopback address `from` (127.x.y.z: every one of them
/// reaches the hub, and the hub tells them apart).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the hub sends on `sock` before it closes it.
async fn read_to_close(mut sock: TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, sock.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the hub neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

/// A `GET /hello` on a connection of its own from `from`, closed after the answer: the
/// status line.
async fn hello_from(from: &str, hub: &HubProc) -> String {
    use tokio::io::AsyncWriteExt;
    let mut sock = connect_from(from, hub.front).await;
    sock.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(sock).await;
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_past_an_addresss_limit_is_refused_and_others_are_served() {
    let pools = format!("{}{}", pool("demo", TOKEN, ""), route_all("demo"));
    let hub = HubProc::start_with(Transport::Tcp, "max_connections_per_ip = 3", &pools);
    let _worker = hub.worker("demo", TOKEN, 4, "w1");
    let client = client();
    wait_ready(&client, &hub.url("/hello")).await;

    // Three idle connections from 127.0.0.2 take its whole allowance; its fourth is refused.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", hub.front).await);
    }
    let refused = read_to_close(connect_from("127.0.0.2", hub.front).await).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("max_connections_per_ip"), "{refused}");

    // Other addresses are served meanwhile.
    assert_eq!(get(&client, &hub.url("/hello")).await.status, 200);
    assert!(hello_from("127.0.0.3", &hub)
        .await
        .starts_with("HTTP/1.1 200"));

    // One of the three closes: once the hub has seen it go, 127.0.0.2 is served again.
    drop(held.pop());
    let start = Instant::now();
    loop {
        let status = hello_from("127.0.0.2", &hub).await;
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(status.starts_with("HTTP/1.1 503"), "{status}");
        assert!(start.elapsed() < HANG_GUARD, "never served again");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_past_the_hubs_limit_is_refused() {
    let pools = format!("{}{}", pool("demo", TOKEN, ""), route_all("demo"));
    let hub = HubProc::start_with(Transport::Tcp, "max_connections = 2", &pools);
    let _held = [
        connect_from("127.0.0.1", hub.front).await,
        connect_from("127.0.0.4", hub.front).await,
    ];
    let refused = read_to_close(connect_from("127.0.0.5", hub.front).await).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("(max_connections)"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
}

#[test]
fn a_limit_of_no_connections_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let config = format!(
        "[hub]\nlisten = \"127.0.0.1:0\"\nworkers_listen = [\"tcp://127.0.0.1:0\"]\n\
         max_connections = 0\n{}",
        pool("demo", TOKEN, "")
    );
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pullman"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_connections must be at least 1"), "{err}");
}
