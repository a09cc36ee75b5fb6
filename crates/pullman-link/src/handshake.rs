//! The handshake, before a link task owns the socket: the connection preface, single-frame
//! reads and writes, and the hub's offer of shared memory (WELCOME with the worker's
//! descriptors).

use std::os::fd::{AsFd, OwnedFd};

use bytes::{Buf, BytesMut};
use pullman_proto::preface::classify;
use pullman_proto::{decode, encode, Frame, Opening, HANDSHAKE_MAX_FRAME, PREFACE};
use pullman_shm::handoff::send_with_fds;
use pullman_shm::{Bell, Channel, ShmError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::error::LinkError;
use crate::shm::{ShmTransport, SHM_MAX_FRAME};

/// Reads one frame of at most `max_frame` payload bytes. Bytes read past it stay in `buf`
/// and must be handed to the link task.
pub async fn recv_frame<S>(
    io: &mut S,
    buf: &mut BytesMut,
    max_frame: u32,
) -> Result<Frame, LinkError>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(frame) =
            decode(buf, max_frame).map_err(|e| LinkError::Protocol(e.to_string()))?
        {
            return Ok(frame);
        }
        if io.read_buf(buf).await? == 0 {
            return Err(LinkError::Eof);
        }
    }
}

/// Reads the first bytes of a connection to a worker port (the hub's side) until they tell
/// what dialed in. On [`Opening::Preface`] the preface is consumed and what follows stays in
/// `buf`; on anything else `buf` holds the bytes that told.
pub async fn recv_preface<S>(io: &mut S, buf: &mut BytesMut) -> Result<Opening, LinkError>
where
    S: AsyncRead + Unpin,
{
    loop {
        match classify(buf) {
            Opening::Incomplete => {}
            Opening::Preface => {
                buf.advance(PREFACE.len());
                return Ok(Opening::Preface);
            }
            other => return Ok(other),
        }
        if io.read_buf(buf).await? == 0 {
            return Err(LinkError::Eof);
        }
    }
}

/// Writes the connection preface and HELLO (the worker's side), in one write; HELLO is held to
/// HANDSHAKE_MAX_FRAME, the limit the hub reads it with.
pub async fn send_hello<S>(io: &mut S, hello: &Frame) -> Result<(), LinkError>
where
    S: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::from(&PREFACE[..]);
    encode(hello, &mut buf, HANDSHAKE_MAX_FRAME).map_err(LinkError::Unencodable)?;
    io.write_all(&buf).await?;
    io.flush().await?;
    Ok(())
}

/// Writes one frame (of at most HANDSHAKE_MAX_FRAME payload bytes, the limit the peer reads
/// it with) and flushes it.
pub async fn send_frame<S>(io: &mut S, frame: &Frame) -> Result<(), LinkError>
where
    S: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    encode(frame, &mut buf, HANDSHAKE_MAX_FRAME).map_err(LinkError::Unencodable)?;
    io.write_all(&buf).await?;
    io.flush().await?;
    Ok(())
}

/// The hub's end of a shared-memory link being set up: the memory exists, the worker has
/// not received its descriptors yet. The hub and the benchmark's stand-in hub both go
/// through here, so there is one way to hand a worker its arenas.
#[derive(Debug)]
pub struct ShmOffer {
    channel: Channel,
    bell: Bell,
    fds: [OwnedFd; pullman_shm::channel::WORKER_FDS],
}

impl ShmOffer {
    /// Creates both arenas and both doorbells. Fails if the host cannot (no memfd, no
    /// eventfd, out of memory): the caller refuses the worker with that reason.
    pub fn new() -> Result<ShmOffer, ShmError> {
        let (channel, bell, fds) = pullman_shm::create()?;
        Ok(ShmOffer { channel, bell, fds })
    }

    /// Sends `welcome` (which must announce `FEATURE_SHM` and [`SHM_MAX_FRAME`]) with the
    /// worker's descriptors by SCM_RIGHTS, then starts the hub's transport over the rings;
    /// `io` stays open, silent, for liveness. Must run inside a tokio runtime; the caller
    /// bounds how long it may take. An error means the worker left or the socket failed.
    pub async fn send(
        self,
        mut io: UnixStream,
        welcome: &Frame,
    ) -> Result<ShmTransport, LinkError> {
        let mut bytes = BytesMut::new();
        encode(welcome, &mut bytes, HANDSHAKE_MAX_FRAME).map_err(LinkError::Unencodable)?;
        let borrowed: Vec<_> = self.fds.iter().map(AsFd::as_fd).collect();
        let n = io
            .async_io(Interest::WRITABLE, || {
                send_with_fds(io.as_fd(), &bytes, &borrowed)
            })
            .await?;
        // The descriptors went with the first byte; the rest is plain bytes.
        io.write_all(&bytes[n..]).await?;
        // The worker holds its own copies now.
        drop(borrowed);
        drop(self.fds);
        Ok(ShmTransport::new(
            self.channel,
            self.bell,
            io,
            SHM_MAX_FRAME,
        )?)
    }
}
