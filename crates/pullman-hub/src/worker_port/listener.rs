//! The listeners workers dial, their accept loop, and the socket files they own.
//!
//! A Unix listener's path is the hub's only where it finds nothing there, or a socket left
//! by a hub that died (nothing answers on it). Anything else (a regular file, a directory,
//! a socket another process listens on) is a start-up error naming the path: the hub never
//! deletes what is not its own. A socket file the hub made is removed when its listener
//! goes, so a hub that fails to start after binding it leaves nothing behind.

use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use super::{Handshaking, WorkerPort, MAX_HANDSHAKING};
use crate::config::WorkerListen;
use crate::error::HubError;
use crate::tls::ServerTls;

/// A listener for workers, bound.
pub(crate) enum BoundWorkerListener {
    Tcp(TcpListener, SocketAddr),
    /// Workers that speak TLS first.
    Tls(TcpListener, SocketAddr, Arc<ServerTls>),
    Unix(UnixListener, SocketFile),
    /// PTTH workers of the pool named.
    Ptth(TcpListener, SocketAddr, String),
}

/// A socket file this hub created; removed on drop.
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl SocketFile {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl BoundWorkerListener {
    /// Binds `addr`; for a Unix socket, after checking its path is the hub's to take; a
    /// `tls://` address serves with `tls` (the config makes sure there is one).
    pub(crate) async fn bind(
        addr: &WorkerListen,
        tls: Option<&Arc<ServerTls>>,
    ) -> Result<BoundWorkerListener, HubError> {
        let listen_err = |error| HubError::Listen {
            addr: addr.to_string(),
            error,
        };
        match addr {
            WorkerListen::Tcp(a) => {
                let l = TcpListener::bind(a).await.map_err(listen_err)?;
                let local = l.local_addr().map_err(listen_err)?;
                Ok(BoundWorkerListener::Tcp(l, local))
            }
            WorkerListen::Tls(a) => {
                let tls =
                    tls.ok_or_else(|| HubError::Tls(format!("{addr} needs [hub.worker_tls]")))?;
                let l = TcpListener::bind(a).await.map_err(listen_err)?;
                let local = l.local_addr().map_err(listen_err)?;
                Ok(BoundWorkerListener::Tls(l, local, tls.clone()))
            }
            WorkerListen::Ptth { addr: a, pool } => {
                let l = TcpListener::bind(a).await.map_err(listen_err)?;
                let local = l.local_addr().map_err(listen_err)?;
                Ok(BoundWorkerListener::Ptth(l, local, pool.clone()))
            }
            WorkerListen::Unix(path) => {
                if let SocketPath::Stale = check_socket_path(path)? {
                    tracing::info!(path = %path.display(), "removing the stale socket of a hub that is gone");
                    std::fs::remove_file(path).map_err(listen_err)?;
                }
                let l = UnixListener::bind(path).map_err(listen_err)?;
                Ok(BoundWorkerListener::Unix(l, SocketFile(path.clone())))
            }
        }
    }

    /// The address as workers dial it, with any port 0 resolved.
    pub(crate) fn addr(&self) -> WorkerListen {
        match self {
            BoundWorkerListener::Tcp(_, a) => WorkerListen::Tcp(*a),
            BoundWorkerListener::Tls(_, a, _) => WorkerListen::Tls(*a),
            BoundWorkerListener::Unix(_, file) => WorkerListen::Unix(file.path().to_owned()),
            BoundWorkerListener::Ptth(_, a, pool) => WorkerListen::Ptth {
                addr: *a,
                pool: pool.clone(),
            },
        }
    }

    async fn accept(&self) -> std::io::Result<WorkerConn> {
        match self {
            BoundWorkerListener::Tcp(l, _) | BoundWorkerListener::Ptth(l, ..) => {
                l.accept().await.map(|(s, peer)| WorkerConn::Tcp(s, peer))
            }
            BoundWorkerListener::Tls(l, _, tls) => l
                .accept()
                .await
                .map(|(s, peer)| WorkerConn::Tls(s, peer, tls.clone())),
            BoundWorkerListener::Unix(l, _) => l.accept().await.map(|(s, _)| WorkerConn::Unix(s)),
        }
    }
}

/// What is at a Unix listener's path that the hub may bind.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SocketPath {
    /// Nothing.
    Free,
    /// A socket nothing answers on: left by a hub that died.
    Stale,
}

/// Whether the hub may bind a Unix socket at `path`, and why not. `check-config` asks too.
pub(crate) fn check_socket_path(path: &Path) -> Result<SocketPath, HubError> {
    let refuse = |why: String| HubError::SocketPath {
        path: path.to_owned(),
        why,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(refuse(format!(
                    "its directory {} does not exist",
                    dir.display()
                ))),
                _ => Ok(SocketPath::Free),
            };
        }
        Err(e) => return Err(refuse(format!("cannot look at it: {e}"))),
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Err(refuse(format!(
            "it is {what}, which the hub will not replace; remove it or choose another path"
        )));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(refuse(
            "another process listens on this socket (another hub?)".into(),
        ));
    }
    Ok(SocketPath::Stale)
}

/// The address the hub's own programs dial: a Unix socket when there is one (no TCP stack in
/// the way), else the first TCP listener, on loopback if it listens on every address.
pub(crate) fn program_hub_url(listeners: &[BoundWorkerListener]) -> String {
    let unix = listeners.iter().find_map(|l| match l {
        BoundWorkerListener::Unix(..) => Some(l.addr()),
        BoundWorkerListener::Tcp(..)
        | BoundWorkerListener::Tls(..)
        | BoundWorkerListener::Ptth(..) => None,
    });
    let tcp = || {
        listeners.iter().find_map(|l| match l {
            BoundWorkerListener::Tcp(_, addr) => {
                let mut addr = *addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Some(WorkerListen::Tcp(addr))
            }
            BoundWorkerListener::Unix(..)
            | BoundWorkerListener::Tls(..)
            | BoundWorkerListener::Ptth(..) => None,
        })
    };
    unix.or_else(tcp).map(|l| l.to_string()).unwrap_or_default()
}

/// Accepts worker connections until `stop` flips; each goes through the handshake on its
/// own (PTTH workers have none: see `ptth`). The listener (and its socket file) goes when
/// this returns.
pub(crate) async fn accept_workers(
    listener: BoundWorkerListener,
    port: Arc<WorkerPort>,
    mut stop: watch::Receiver<bool>,
) {
    if let BoundWorkerListener::Ptth(listener, _, pool) = listener {
        return super::ptth::accept_ptth_workers(listener, pool, port, stop).await;
    }
    let handshaking = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let conn = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                crate::accept::pause_after(e, "worker").await;
                continue;
            }
        };
        let Some(slot) = Handshaking::take(&handshaking) else {
            tracing::debug!(
                "{MAX_HANDSHAKING} worker connections are in their handshake: closing a new one"
            );
            continue;
        };
        match conn {
            WorkerConn::Tcp(sock, peer) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(port.clone().accept(sock, peer.to_string(), None, slot));
            }
            WorkerConn::Tls(sock, peer, tls) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(port.clone().accept_tls(sock, peer.to_string(), tls, slot));
            }
            WorkerConn::Unix(sock) => {
                tokio::spawn(port.clone().accept_unix(sock, slot));
            }
        }
    }
}

/// A new worker connection, before its handshake.
enum WorkerConn {
    Tcp(TcpStream, SocketAddr),
    Tls(TcpStream, SocketAddr, Arc<ServerTls>),
    Unix(UnixStream),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_at_the_socket_path_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workers.sock");
        std::fs::write(&path, "precious").unwrap();
        let err = check_socket_path(&path).unwrap_err().to_string();
        assert!(err.contains("workers.sock"), "{err}");
        assert!(err.contains("a regular file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_stale_socket_may_be_replaced_and_a_live_one_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sock");
        assert_eq!(check_socket_path(&path).unwrap(), SocketPath::Free);
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = check_socket_path(&path).unwrap_err().to_string();
        assert!(err.contains("another process listens"), "{err}");
        drop(live);
        assert_eq!(check_socket_path(&path).unwrap(), SocketPath::Stale);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = check_socket_path(Path::new("/nonexistent-pullman-dir/w.sock"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent-pullman-dir does not exist"),
            "{err}"
        );
    }
}
