//! The worker port: workers dial in here, say HELLO, and become links of a pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pullman_link::handshake::{recv_frame, send_frame};
use pullman_link::{Control, Link, LinkError, Role, Settings};
use pullman_proto::handshake::{negotiate_version, token_matches};
use pullman_proto::window::MAX_WINDOW;
use pullman_proto::{
    CloseCode, Frame, Welcome, DEFAULT_INITIAL_WINDOW, DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME,
    PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::hub::HubShared;
use crate::pool::{Pool, WorkerMeta};

/// How long a new connection has to complete its HELLO. Long enough for a loaded worker
/// host, short enough that idle strangers do not pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Smallest frame a worker may say it accepts: a REQUEST carries the whole request head in
/// one frame, and the front admits heads up to 64 KiB by default.
const MIN_WORKER_MAX_FRAME: u32 = 128 * 1024;

static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

/// What a worker connection needs to find its pool.
pub(crate) struct WorkerPort {
    /// Pools are looked up in the current routing table, so pools added at run time take
    /// workers and removed ones refuse them.
    pub(crate) shared: Arc<HubShared>,
    pub(crate) ping_interval: Duration,
}

impl WorkerPort {
    /// Runs the handshake on a new connection and, if it succeeds, starts its link.
    pub(crate) async fn accept<S>(self: Arc<Self>, mut io: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut buf = BytesMut::with_capacity(1024);
        let hello = match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            recv_frame(&mut io, &mut buf, HANDSHAKE_MAX_FRAME),
        )
        .await
        {
            Ok(Ok(Frame::Hello(h))) => h,
            Ok(Ok(other)) => {
                return refuse(
                    io,
                    &peer,
                    CloseCode::ProtocolError,
                    format!("expected HELLO, got {:?}", other.frame_type()),
                )
                .await
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "worker handshake failed");
                if let LinkError::Protocol(why) = e {
                    refuse(io, &peer, CloseCode::ProtocolError, why).await;
                }
                return;
            }
            Err(_) => {
                return refuse(io, &peer, CloseCode::Timeout, "no HELLO in time".into()).await
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
            return refuse(io, &peer, CloseCode::UnsupportedVersion, why).await;
        };
        if hello.initial_window as u64 > MAX_WINDOW || hello.max_frame < MIN_WORKER_MAX_FRAME {
            let why = format!(
                "HELLO needs initial_window <= {MAX_WINDOW} and max_frame >= {MIN_WORKER_MAX_FRAME}"
            );
            return refuse(io, &peer, CloseCode::ProtocolError, why).await;
        }
        let Some(pool) = self.shared.pool(&hello.pool) else {
            return refuse(
                io,
                &peer,
                CloseCode::UnknownPool,
                format!("no pool named {:?}", hello.pool),
            )
            .await;
        };
        if !token_matches(
            pool.config().token.expose().as_bytes(),
            hello.token.as_bytes(),
        ) {
            tracing::warn!(%peer, pool = %hello.pool, worker = %hello.name, "worker refused: wrong token");
            return refuse(
                io,
                &peer,
                CloseCode::AuthFailed,
                format!("wrong token for pool {:?}", hello.pool),
            )
            .await;
        }
        let worker_id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        let recv_max_frame = DEFAULT_MAX_FRAME;
        let welcome = Frame::Welcome(Welcome {
            version,
            max_frame: recv_max_frame,
            initial_window: DEFAULT_INITIAL_WINDOW,
            features: 0,
            worker_id,
            ping_interval_ms: self.ping_interval.as_millis().min(u32::MAX as u128) as u32,
        });
        if send_frame(&mut io, &welcome).await.is_err() {
            return;
        }
        let settings = Settings {
            role: Role::Hub,
            recv_max_frame,
            recv_initial_window: DEFAULT_INITIAL_WINDOW,
            send_initial_window: hello.initial_window,
            ping_interval: Some(self.ping_interval),
        };
        tracing::info!(%peer, pool = pool.name(), worker = %hello.name, worker_id, "worker connected");
        let pool_for_control = pool.clone();
        let meta = WorkerMeta {
            name: hello.name.clone(),
            peer,
        };
        pool.add_worker(worker_id, meta, move |key| {
            let control = HubControl {
                pool: pool_for_control,
                key,
                worker_id,
            };
            Link::spawn(io, buf, settings, control).0
        });
    }
}

async fn refuse<S>(mut io: S, peer: &str, code: CloseCode, reason: String)
where
    S: AsyncWrite + Unpin,
{
    tracing::info!(%peer, ?code, %reason, "worker connection refused");
    let _ = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        send_frame(&mut io, &Frame::Close { code, reason }),
    )
    .await;
}

/// The hub's side of a worker link: credits feed the pool, the end removes the worker.
struct HubControl {
    pool: Arc<Pool>,
    key: usize,
    worker_id: u64,
}

impl Control for HubControl {
    fn on_frame(&mut self, _link: &Link, frame: Frame) -> Result<(), String> {
        match frame {
            Frame::Credit { n } => self.pool.add_credit(self.key, n),
            Frame::Drain { .. } => {
                tracing::info!(
                    pool = self.pool.name(),
                    worker_id = self.worker_id,
                    "worker draining"
                );
                self.pool.worker_draining(self.key);
                Ok(())
            }
            other => Err(format!("unexpected {:?} frame", other.frame_type())),
        }
    }

    fn on_closed(&mut self, err: &LinkError) {
        tracing::info!(pool = self.pool.name(), worker_id = self.worker_id, reason = %err, "worker link ended");
        self.pool.remove_worker(self.key);
    }
}
