//! The task that streams a request body to a worker while the request waits for its answer.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use pullman_link::StreamSender;
use tokio::task::JoinHandle;

/// How streaming the request body to the worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    Done,
    TooLarge,
    ClientGone,
    StreamEnded,
}

/// The task copying a request body to the worker; aborted if the request fails first.
pub(crate) struct Pump(Option<JoinHandle<PumpEnd>>);

impl Pump {
    /// Starts copying `body` to the stream, at most `limit` bytes.
    pub(crate) fn start<B>(body: B, sender: StreamSender, limit: u64) -> Pump
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Send,
    {
        Pump(Some(tokio::spawn(pump_body(body, sender, limit))))
    }

    pub(crate) async fn wait(&mut self) -> PumpEnd {
        match &mut self.0 {
            Some(task) => task.await.unwrap_or(PumpEnd::ClientGone),
            None => PumpEnd::Done,
        }
    }

    /// The request was answered: let the body finish on its own.
    pub(crate) fn detach(&mut self) {
        self.0 = None;
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

async fn pump_body<B>(mut body: B, sender: StreamSender, limit: u64) -> PumpEnd
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut sent = 0u64;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                }; // trailers are not forwarded
                sent += data.len() as u64;
                if sent > limit {
                    return PumpEnd::TooLarge;
                }
                let end = body.is_end_stream();
                if sender.send_data(data, end).await.is_err() {
                    return PumpEnd::StreamEnded;
                }
                if end {
                    return PumpEnd::Done;
                }
            }
            Some(Err(_)) => return PumpEnd::ClientGone,
            None => {
                return match sender.send_data(Bytes::new(), true).await {
                    Ok(()) => PumpEnd::Done,
                    Err(_) => PumpEnd::StreamEnded,
                }
            }
        }
    }
}
