//! Single-frame reads and writes for the handshake, before a link task owns the socket.

use bytes::BytesMut;
use pullman_proto::{decode, encode, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::LinkError;

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

/// Writes one frame and flushes it.
pub async fn send_frame<S>(io: &mut S, frame: &Frame) -> Result<(), LinkError>
where
    S: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    encode(frame, &mut buf);
    io.write_all(&buf).await?;
    io.flush().await?;
    Ok(())
}
