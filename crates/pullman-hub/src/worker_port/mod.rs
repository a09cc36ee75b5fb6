//! The worker port: workers dial in here, say HELLO, and become links of a pool.
//!
//! # Layout
//! - this file: the handshake (HELLO checked, WELCOME or a refusal with its reason), then
//!   the link's start over the socket or over shared memory.
//! - `listener`: the listeners workers dial (TCP, Unix socket), their accept loop, and the
//!   socket files they own.
//! - `control`: the hub's side of a running link: credits, DRAIN, the end.
//! - `ptth`: POTHEAD's reverse-HTTP workers, which have no handshake: each connection to a
//!   PTTH listener is a free slot of the listener's pool.

mod control;
mod listener;
mod ptth;

pub(crate) use listener::{
    accept_workers, check_socket_path, program_hub_url, BoundWorkerListener,
};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pullman_link::handshake::{recv_frame, recv_preface, send_frame};
use pullman_link::{Link, LinkError, Role, Settings, ShmOffer, SHM_MAX_FRAME};
use pullman_proto::handshake::{negotiate_version, token_matches};
use pullman_proto::window::MAX_WINDOW;
use pullman_proto::{
    CloseCode, Frame, Hello, Mode, Modes, Opening, Welcome, DEFAULT_INITIAL_WINDOW,
    DEFAULT_MAX_FRAME, FEATURE_SHM, HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

use crate::config::{FilterBody, PoolConfig, PoolMode};
use crate::dispatch::{Pool, WorkerMeta};
use crate::state::HubState;
use crate::tls::{AltNames, ServerTls};
use control::join;

/// How long a new connection has to complete its HELLO. Long enough for a loaded worker
/// host, short enough that idle strangers do not pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections of one worker listener in their handshake at once; past it, a new one is
/// closed unanswered. With [`HANDSHAKE_TIMEOUT`], this bounds what strangers that connect and
/// never send HELLO can hold: this many sockets, each for a few seconds. Workers already
/// connected are not affected; a new worker that finds the bound reached redials.
pub(crate) const MAX_HANDSHAKING: usize = 1024;

/// A connection's place among those of its listener in their handshake, given up when
/// dropped (once the handshake ends, well or not).
pub(crate) struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    /// A place among the `count` in their handshake, unless [`MAX_HANDSHAKING`] hold one.
    pub(crate) fn take(count: &Arc<AtomicUsize>) -> Option<Handshaking> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_HANDSHAKING).then_some(n + 1)
            })
            .ok()
            .map(|_| Handshaking(count.clone()))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Smallest frame a worker may say it accepts: a REQUEST carries the whole request head in
/// one frame, and the front admits heads up to 64 KiB by default.
const MIN_WORKER_MAX_FRAME: u32 = 128 * 1024;

static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

/// What a worker connection needs to find its pool.
pub(crate) struct WorkerPort {
    /// Pools are looked up in the current routing table, so pools added at run time take
    /// workers and removed ones refuse them.
    pub(crate) state: Arc<HubState>,
    pub(crate) ping_interval: Duration,
}

/// A worker that passed the handshake's checks and waits for its WELCOME.
struct Greeted {
    hello: Hello,
    version: u16,
    pool: Arc<Pool>,
    /// Bytes read past HELLO.
    buf: BytesMut,
}

impl Greeted {
    fn meta(&self, peer: String) -> WorkerMeta {
        WorkerMeta {
            name: self.hello.name.clone(),
            peer,
        }
    }
}

impl WorkerPort {
    /// Runs the handshake on a new TCP connection (or TLS session, whose client
    /// certificate's names are `certificate`) and, if it succeeds, starts its link.
    pub(crate) async fn accept<S>(
        self: Arc<Self>,
        mut io: S,
        peer: String,
        certificate: Option<AltNames>,
        slot: Handshaking,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let greeted = self.greet(&mut io, &peer, certificate.as_ref()).await;
        drop(slot);
        if let Some(greeted) = greeted {
            self.start_stream(io, peer, greeted).await;
        }
    }

    /// The TLS handshake on a new connection, within the handshake's time, then the same.
    pub(crate) async fn accept_tls(
        self: Arc<Self>,
        sock: TcpStream,
        peer: String,
        tls: Arc<ServerTls>,
        slot: Handshaking,
    ) {
        let io = match tls.handshake(sock, HANDSHAKE_TIMEOUT).await {
            Ok(io) => io,
            Err(why) => {
                tracing::warn!(%peer, "worker refused: {why}");
                return;
            }
        };
        let certificate = match io.get_ref().1.peer_certificates() {
            None => None,
            // Verified against hub.worker_tls.client_ca by the handshake.
            Some(chain) => match crate::tls::alt_names(&chain[0]) {
                Ok(names) => Some(names),
                Err(why) => {
                    tracing::warn!(%peer, %why, "worker refused: its client certificate");
                    return;
                }
            },
        };
        self.accept(io, peer, certificate, slot).await;
    }

    /// Same for a Unix-socket connection, where a worker may ask for shared memory.
    pub(crate) async fn accept_unix(self: Arc<Self>, mut io: UnixStream, slot: Handshaking) {
        let peer = "unix".to_string();
        let greeted = self.greet(&mut io, &peer, None).await;
        drop(slot);
        let Some(greeted) = greeted else {
            return;
        };
        if greeted.hello.features & FEATURE_SHM != 0 {
            self.start_shm(io, peer, greeted).await;
        } else {
            self.start_stream(io, peer, greeted).await;
        }
    }

    /// Reads and checks HELLO, and the client certificate's names against the pool's
    /// `allowed_workers`; refuses the worker (and returns `None`) if it fails.
    async fn greet<S>(
        &self,
        io: &mut S,
        peer: &str,
        certificate: Option<&AltNames>,
    ) -> Option<Greeted>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut buf = BytesMut::with_capacity(1024);
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        match timeout_at(deadline, recv_preface(io, &mut buf)).await {
            Ok(Ok(Opening::Preface)) => {}
            Ok(Ok(opening)) => {
                turn_away(io, peer, opening).await;
                return None;
            }
            Ok(Err(_)) | Err(_) => {
                tracing::info!(%peer, "worker connection closed before its connection preface");
                return None;
            }
        }
        let hello = match timeout_at(deadline, recv_frame(io, &mut buf, HANDSHAKE_MAX_FRAME)).await
        {
            Ok(Ok(Frame::Hello(h))) => h,
            Ok(Ok(other)) => {
                let why = format!("expected HELLO, got {:?}", other.frame_type());
                refuse(io, peer, CloseCode::ProtocolError, why).await;
                return None;
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "worker handshake failed");
                if let LinkError::Protocol(why) = e {
                    refuse(io, peer, CloseCode::ProtocolError, why).await;
                }
                return None;
            }
            Err(_) => {
                refuse(io, peer, CloseCode::Timeout, "no HELLO in time".into()).await;
                return None;
            }
        };
        let Some(version) = negotiate_version(
            (PROTOCOL_VERSION, PROTOCOL_VERSION),
            (hello.min_version, hello.max_version),
        ) else {
            let why = format!(
                "no common protocol version: hub speaks {PROTOCOL_VERSION}, worker {}..={}",
                hello.min_version, hello.max_version
            );
            refuse(io, peer, CloseCode::UnsupportedVersion, why).await;
            return None;
        };
        if hello.initial_window as u64 > MAX_WINDOW || hello.max_frame < MIN_WORKER_MAX_FRAME {
            let why = format!(
                "HELLO needs initial_window <= {MAX_WINDOW} and max_frame >= {MIN_WORKER_MAX_FRAME}"
            );
            refuse(io, peer, CloseCode::ProtocolError, why).await;
            return None;
        }
        let Some(pool) = self.state.pool(&hello.pool) else {
            let why = format!("no pool named {:?}", hello.pool);
            refuse(io, peer, CloseCode::UnknownPool, why).await;
            return None;
        };
        let token_ok = match &pool.config().token {
            Some(token) => token_matches(token.expose().as_bytes(), hello.token.as_bytes()),
            // A pool without a token takes its workers by certificate alone (validated:
            // such a pool has allowed_workers, checked next).
            None => true,
        };
        if !token_ok {
            tracing::warn!(%peer, pool = %hello.pool, worker = %hello.name, "worker refused: wrong token");
            let why = format!("wrong token for pool {:?}", hello.pool);
            refuse(io, peer, CloseCode::AuthFailed, why).await;
            return None;
        }
        if let Err(why) = allowed(&pool.config(), certificate) {
            tracing::warn!(%peer, pool = %hello.pool, worker = %hello.name, %why, "worker refused");
            refuse(io, peer, CloseCode::AuthFailed, why).await;
            return None;
        }
        let lacking = hello.modes.lacking(modes_needed(&pool.config()));
        if !lacking.is_empty() {
            let why = format!(
                "pool {:?} needs a worker serving {lacking}; this worker serves {}",
                hello.pool, hello.modes
            );
            refuse(io, peer, CloseCode::UnsupportedMode, why).await;
            return None;
        }
        Some(Greeted {
            hello,
            version,
            pool,
            buf,
        })
    }

    fn welcome(&self, g: &Greeted, worker_id: u64, max_frame: u32, features: u32) -> Frame {
        Frame::Welcome(Welcome {
            version: g.version,
            max_frame,
            initial_window: DEFAULT_INITIAL_WINDOW,
            features,
            worker_id,
            ping_interval_ms: self.ping_interval.as_millis().min(u32::MAX as u128) as u32,
        })
    }

    fn settings(&self, g: &Greeted, recv_max_frame: u32) -> Settings {
        Settings {
            role: Role::Hub,
            recv_max_frame,
            send_max_frame: g.hello.max_frame,
            recv_initial_window: DEFAULT_INITIAL_WINDOW,
            send_initial_window: g.hello.initial_window,
            ping_interval: Some(self.ping_interval),
        }
    }

    /// WELCOME, then the stream protocol on the same socket.
    async fn start_stream<S>(&self, mut io: S, peer: String, mut g: Greeted)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let worker_id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        let welcome = self.welcome(&g, worker_id, DEFAULT_MAX_FRAME, 0);
        if send_frame(&mut io, &welcome).await.is_err() {
            return;
        }
        let settings = self.settings(&g, DEFAULT_MAX_FRAME);
        tracing::info!(%peer, pool = g.pool.name(), worker = %g.hello.name, worker_id, "worker connected");
        let buf = std::mem::take(&mut g.buf);
        join(&g.pool, worker_id, g.meta(peer), move |control| {
            Link::spawn(io, buf, settings, control).0
        });
    }

    /// WELCOME with the shared-memory descriptors, then the rings; the socket stays open,
    /// silent, for liveness.
    async fn start_shm(&self, mut io: UnixStream, peer: String, g: Greeted) {
        if !g.buf.is_empty() {
            let why = "frames after HELLO on a link asking for shared memory".to_string();
            return refuse(&mut io, &peer, CloseCode::ProtocolError, why).await;
        }
        let offer = match ShmOffer::new() {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot set up shared memory for a worker");
                let why = format!("shared memory unavailable: {e}");
                return refuse(&mut io, &peer, CloseCode::Internal, why).await;
            }
        };
        let worker_id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        let welcome = self.welcome(&g, worker_id, SHM_MAX_FRAME, FEATURE_SHM);
        let transport = match tokio::time::timeout(HANDSHAKE_TIMEOUT, offer.send(io, &welcome))
            .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "worker left during the shared-memory handshake");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "worker took no WELCOME in time");
                return;
            }
        };
        let settings = self.settings(&g, SHM_MAX_FRAME);
        tracing::info!(%peer, pool = g.pool.name(), worker = %g.hello.name, worker_id, "worker connected over shared memory");
        join(&g.pool, worker_id, g.meta(peer), move |control| {
            Link::spawn_on(transport, settings, control).0
        });
    }
}

/// Whether a worker whose client certificate has these names (none: it came without one)
/// may serve a pool with this config, and if not, why.
fn allowed(config: &PoolConfig, certificate: Option<&AltNames>) -> Result<(), String> {
    if config.allowed_workers.is_empty() {
        return Ok(());
    }
    let Some(names) = certificate else {
        return Err(format!(
            "pool {:?} takes only workers with a client certificate over tls:// (allowed_workers); \
             this worker presented none",
            config.name
        ));
    };
    if config.allowed_workers.iter().any(|a| names.contains(a)) {
        return Ok(());
    }
    Err(format!(
        "the client certificate's names {:?} are not among pool {:?}'s allowed_workers",
        names.all(),
        config.name
    ))
}

/// The REQUEST modes the hub sends a worker of a pool with this config.
fn modes_needed(config: &PoolConfig) -> Modes {
    match config.mode {
        PoolMode::Respond => Modes::RESPOND,
        PoolMode::Filter => {
            let request = match config.filter_body {
                FilterBody::Streamed => Mode::FilterStreamed,
                FilterBody::None | FilterBody::Buffered => Mode::Filter,
            };
            let needed = Modes::of(request);
            if config.filter_response {
                needed.with(Mode::FilterResponse)
            } else {
                needed
            }
        }
    }
}

/// Answers a connection that did not open with the connection preface in terms its peer
/// understands: an HTTP client gets a 400 that says where it is, a worker of version 1 a
/// CLOSE it can read; anything else is only logged.
async fn turn_away<S>(io: &mut S, peer: &str, opening: Opening)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match opening {
        Opening::Http => {
            tracing::info!(%peer, "worker connection refused: an HTTP client on the worker port");
            let body = "this is a pullman worker port, not an HTTP server: \
                        HTTP clients go to the hub's listen address\n";
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                io.write_all(answer.as_bytes()).await?;
                io.shutdown().await?;
                // Read the rest of the request: closing on unread bytes resets the
                // connection, and the client could lose the answer.
                let mut sink = [0u8; 4096];
                while io.read(&mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            })
            .await;
        }
        Opening::HelloWithoutPreface => {
            let why = format!(
                "protocol version too old: this hub speaks version {PROTOCOL_VERSION}, whose \
                 workers send a connection preface before HELLO; upgrade the worker"
            );
            refuse(io, peer, CloseCode::UnsupportedVersion, why).await;
        }
        _ => {
            tracing::info!(%peer, "worker connection refused: no connection preface (not a pullman worker)")
        }
    }
}

async fn refuse<S>(io: &mut S, peer: &str, code: CloseCode, reason: String)
where
    S: AsyncWrite + Unpin,
{
    tracing::info!(%peer, ?code, %reason, "worker connection refused");
    let _ = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        send_frame(io, &Frame::Close { code, reason }),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_bound_are_in_their_handshake_and_a_place_comes_back_when_dropped() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut held: Vec<Handshaking> = (0..MAX_HANDSHAKING)
            .map(|_| Handshaking::take(&count).expect("under the bound"))
            .collect();
        assert!(Handshaking::take(&count).is_none(), "past the bound");
        held.pop();
        assert!(Handshaking::take(&count).is_some(), "a place given back");
        drop(held);
        assert_eq!(count.load(Ordering::Acquire), 0);
    }
}
