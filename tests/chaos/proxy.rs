//! A TCP proxy between the hub's worker port and the test's own TCP workers, so that the
//! fault injector can cut a worker's link (both sockets closed at once) or stall it (no byte
//! forwarded either way for a while, long enough at times for the hub's pings to give up).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes moved per read: the frames of a 1 MiB body pass in a few dozen reads.
const CHUNK: usize = 64 * 1024;

/// One worker connection through the proxy.
struct Pair {
    /// Forwards both ways; aborting it closes both sockets.
    task: JoinHandle<()>,
    /// While true, nothing is forwarded.
    stalled: watch::Sender<bool>,
}

/// The proxy: a listener on 127.0.0.1:0 that forwards every connection to `upstream`.
pub struct Proxy {
    pub addr: SocketAddr,
    pairs: Arc<Mutex<Vec<Pair>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pairs: Arc<Mutex<Vec<Pair>>> = Arc::default();
        let registry = pairs.clone();
        let accept = tokio::spawn(async move {
            while let Ok((worker, _)) = listener.accept().await {
                let Ok(hub) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (stalled, watch) = watch::channel(false);
                let task = tokio::spawn(forward(worker, hub, watch));
                let mut pairs = registry.lock().unwrap();
                pairs.retain(|p| !p.task.is_finished());
                pairs.push(Pair { task, stalled });
            }
        });
        Proxy {
            addr,
            pairs,
            accept,
        }
    }

    /// Closes connection `pick % live` at once, both sides; false if there is none.
    pub fn cut(&self, pick: u64) -> bool {
        let mut pairs = self.pairs.lock().unwrap();
        pairs.retain(|p| !p.task.is_finished());
        if pairs.is_empty() {
            return false;
        }
        let i = (pick % pairs.len() as u64) as usize;
        pairs.remove(i).task.abort();
        true
    }

    /// Stops forwarding on connection `pick % live` for `pause`; false if there is none.
    pub fn stall(&self, pick: u64, pause: Duration) -> bool {
        let pairs = self.pairs.lock().unwrap();
        let live: Vec<&Pair> = pairs.iter().filter(|p| !p.task.is_finished()).collect();
        if live.is_empty() {
            return false;
        }
        let stalled = live[(pick % live.len() as u64) as usize].stalled.clone();
        stalled.send_replace(true);
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            stalled.send_replace(false);
        });
        true
    }

    /// Ends every stall at once (the run is over).
    pub fn resume_all(&self) {
        for p in self.pairs.lock().unwrap().iter() {
            p.stalled.send_replace(false);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for p in self.pairs.lock().unwrap().drain(..) {
            p.task.abort();
        }
    }
}

/// Copies both ways until either side closes; waits while `stalled` says so.
async fn forward(worker: TcpStream, hub: TcpStream, stalled: watch::Receiver<bool>) {
    let (wr, ww) = worker.into_split();
    let (hr, hw) = hub.into_split();
    tokio::select! {
        _ = copy(wr, hw, stalled.clone()) => {}
        _ = copy(hr, ww, stalled) => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
