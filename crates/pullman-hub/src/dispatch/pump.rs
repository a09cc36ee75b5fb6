//! The task that streams a request body to a worker while the request waits for its answer.

use bytes::Bytes;
use http_body::Body;
use pullman_link::{send_body, SendBodyError, StreamSender};
use tokio::task::JoinHandle;

use crate::http1::conn::BoxError;
use crate::rate::too_slow;

/// How streaming the request body to the worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    Done,
    TooLarge,
    /// The client's body fell below `hub.min_body_rate`.
    TooSlow,
    ClientGone,
    StreamEnded,
}

/// The task copying a request body to the worker; aborted if the request fails first.
pub(crate) struct Pump(Option<JoinHandle<PumpEnd>>);

impl Pump {
    /// Starts copying `body` to the stream, at most `limit` bytes.
    pub(crate) fn start<B>(body: B, sender: StreamSender, limit: u64) -> Pump
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError> + Send,
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

async fn pump_body<B>(body: B, sender: StreamSender, limit: u64) -> PumpEnd
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match send_body(body, &sender, limit).await {
        Ok(()) => PumpEnd::Done,
        Err(SendBodyError::TooLarge { .. }) => PumpEnd::TooLarge,
        Err(SendBodyError::Body(e)) => match too_slow(&*e.into()) {
            Some(_) => PumpEnd::TooSlow,
            None => PumpEnd::ClientGone,
        },
        Err(SendBodyError::Stream(_)) => PumpEnd::StreamEnded,
    }
}
