//! Requests pulled by threads the SDK does not own: a C program's, a Python interpreter's.
//!
//! [`PullWorker`] runs a [`Worker`] on a runtime the calling threads drive themselves
//! (`driven.rs`): a thread asks for the next request with [`PullWorker::next`], gets a
//! [`Pulled`] request, reads its head in place and its body in chunks, and answers it (a
//! response, or in a filter pool a pass verdict). Any number of threads may pull at once.
//! The C API (`crates/pullman-capi`) and the Python package (`python/`) are thin layers
//! over this module: handles and argument checks on top, no logic of their own.
//!
//! ```no_run
//! use pullman_worker::pull::{Mode, PullWorker};
//! use pullman_worker::Worker;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder()
//!     .hub("tcp://127.0.0.1:7070".parse()?)
//!     .pool("demo")
//!     .token("change-me")
//!     .build();
//! let pull = PullWorker::start(worker, Mode::Respond)?;
//! while let Ok(mut req) = pull.next(None) {
//!     req.add_header(b"content-type", b"text/plain")?;
//!     req.respond(200, "hello\n".into())?;
//! }
//! # Ok(())
//! # }
//! ```

mod driven;
mod gone;
mod request;

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::{
    Filter, Pass, RawResponse, RequestBody, RequestInfo, ResponseBody, Verdict, ViewHandler, Worker,
};
use driven::{Driven, Inbox};
use gone::{FireOnDrop, Gone};

pub use request::{Edit, Pulled};

/// The kind of pool a pulling worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A respond pool: the worker answers each request.
    Respond,
    /// A filter pool: the worker passes each request on to the upstream (possibly edited)
    /// or answers it instead.
    Filter,
}

/// Why a pulling call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// [`PullWorker::next`]'s timeout passed with no request.
    #[error("no request within the timeout")]
    Timeout,
    /// The worker has drained: no request will come any more.
    #[error("the worker has drained")]
    Drained,
    /// The hub refused the worker for good (a wrong token, an unknown pool, a pool of the
    /// other mode), or the address is not a hub's; the text says which.
    #[error("{0}")]
    Refused(String),
    /// The request is gone: the hub cancelled it (its client left, its deadline passed) or
    /// the link broke while its body was read or written.
    #[error("{0}")]
    Closed(String),
    /// The call does not fit the request's state: a second answer, a write before
    /// [`Pulled::start`], a pass verdict in a respond pool.
    #[error("{0}")]
    WrongState(String),
    /// An argument's value is wrong: an invalid header name or value, a status outside
    /// 100..=999, a target that is not a path.
    #[error("{0}")]
    Invalid(String),
}

/// A worker whose requests the calling threads pull. Share it (in an `Arc`) among them.
#[derive(Debug)]
pub struct PullWorker {
    shared: Arc<Shared>,
    drain: watch::Sender<bool>,
}

/// What every request of a worker holds on to.
struct Shared {
    driven: Arc<Driven>,
    mode: Mode,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A request on its way from the SDK to a calling thread.
struct Incoming {
    info: RequestInfo,
    body: RequestBody,
    reply: oneshot::Sender<Reply>,
    gone: Arc<Gone>,
}

/// What the calling thread answered, for the SDK.
#[doc(hidden)]
#[derive(Debug)]
pub enum Reply {
    /// A response (in a filter pool: instead of the upstream's).
    Respond(RawResponse),
    /// A filter's pass, with the request body if the caller did not read it.
    Pass(Pass, Option<RequestBody>),
}

impl PullWorker {
    /// Starts `worker` for a pool of kind `mode`: it dials the hub in the background, and
    /// keeps dialing, with backoff, while the hub is away. A hub that refuses the worker for
    /// good ends it; [`next`](Self::next) then says why. `Err` if the runtime cannot start
    /// (no thread or no file descriptor to spare).
    pub fn start(worker: Worker, mode: Mode) -> std::io::Result<PullWorker> {
        let driven = Driven::start()?;
        let inbox = driven.inbox();
        let (drain, mut drained) = watch::channel(false);
        let shutdown = async move {
            let _ = drained.wait_for(|d| *d).await;
        };
        let ended = inbox.clone();
        match mode {
            Mode::Respond => {
                let handler = ToCaller { inbox };
                driven.spawn(async move {
                    let result = worker.run_views(handler, shutdown).await;
                    ended.end(result.map_err(|e| e.to_string()));
                });
            }
            Mode::Filter => {
                let filter = ToCaller { inbox };
                driven.spawn(async move {
                    let result = worker.run_filter(filter, shutdown).await;
                    ended.end(result.map_err(|e| e.to_string()));
                });
            }
        }
        Ok(PullWorker {
            shared: Arc::new(Shared { driven, mode }),
            drain,
        })
    }

    /// The kind of pool it serves.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// Waits for the next request, at most `timeout` (`None`: as long as it takes).
    /// [`PullError::Timeout`] when the time passed, [`PullError::Drained`] once the worker
    /// has drained (every later call says so too), [`PullError::Refused`] if the hub
    /// refused it. The request is the caller's to answer; one dropped unanswered gets 500.
    pub fn next(&self, timeout: Option<Duration>) -> Result<Pulled, PullError> {
        let incoming = self.shared.driven.next(timeout)?;
        Ok(Pulled::new(self.shared.clone(), incoming))
    }

    /// For a thread that runs an event loop of its own (Python's asyncio, a C program's
    /// epoll loop) and calls this where it would wait for its events, so that it needs no
    /// second thread to wait for requests: drives the worker's link on this thread until a
    /// request waits, `also` (the loop's own poller, see [`watch`](Self::watch)) is
    /// readable, or `timeout` passed (`None`: no limit), then returns the requests waiting,
    /// at most `max`, possibly none. It always runs the link one turn, so that the answers
    /// this thread gave since its last call go out. Errors as [`next`](Self::next) once
    /// nothing waits; [`PullError::Invalid`] for a watch another worker made.
    pub fn next_batch(
        &self,
        max: usize,
        timeout: Option<Duration>,
        also: Option<&Watch>,
    ) -> Result<Vec<Pulled>, PullError> {
        let batch = (self.shared.driven).next_batch(max, timeout, also.map(|w| &w.0))?;
        Ok(batch
            .into_iter()
            .map(|incoming| Pulled::new(self.shared.clone(), incoming))
            .collect())
    }

    /// Registers `fd` (an epoll fd, a pipe, a socket) for [`next_batch`](Self::next_batch)
    /// to wait on besides requests, until the returned `Watch` is dropped. The worker
    /// watches a duplicate of it, so `fd` may be closed at any time (close the `Watch` too).
    pub fn watch(&self, fd: BorrowedFd<'_>) -> Result<Watch, PullError> {
        (self.shared.driven.watch(fd))
            .map(Watch)
            .map_err(|e| PullError::Invalid(format!("cannot watch this fd: {e}")))
    }

    /// Starts draining: the hub is told to send nothing new, requests already taken finish
    /// (within the drain grace), and then [`next`](Self::next) says
    /// [`PullError::Drained`]. Returns at once; any thread may call it, more than once.
    pub fn drain(&self) {
        // One turn of the link first: requests the hub sent before the drain, still in the
        // socket while every calling thread was busy, are taken rather than turned back.
        self.shared.driven.block_on(tokio::task::yield_now());
        self.drain.send_replace(true);
    }

    /// Drains, and waits until the worker's run has ended.
    pub fn close(&self) {
        self.drain.send_replace(true);
        self.shared.driven.wait_ended();
    }
}

/// A file descriptor [`PullWorker::next_batch`] waits on; see [`PullWorker::watch`].
pub struct Watch(driven::Watched);

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

/// Hands each request the SDK receives to a calling thread and waits for its answer: the
/// [`ViewHandler`] of respond pools and the [`Filter`] of filter pools.
struct ToCaller {
    inbox: Arc<Inbox>,
}

impl ToCaller {
    /// Queues a request for the callers and waits for its answer (an error if the caller
    /// dropped it unanswered). If this wait is dropped first (the hub cancelled the
    /// request), the caller hears of it through [`Pulled::on_gone`].
    async fn hand_over(
        &self,
        info: RequestInfo,
        body: RequestBody,
    ) -> Result<Reply, oneshot::error::RecvError> {
        let (reply, answer) = oneshot::channel();
        let gone = Arc::new(Gone::default());
        let mut watch = FireOnDrop::new(gone.clone());
        self.inbox.push(Incoming {
            info,
            body,
            reply,
            gone,
        });
        let answer = answer.await;
        watch.defuse();
        answer
    }
}

/// The answer to a request its caller dropped without answering.
fn unanswered() -> RawResponse {
    let body = ResponseBody::from("the worker released the request without answering it\n");
    RawResponse::new(500, Vec::new(), body)
}

impl ViewHandler for ToCaller {
    async fn call(&self, info: RequestInfo, body: RequestBody) -> RawResponse {
        match self.hand_over(info, body).await {
            Ok(Reply::Respond(resp)) => resp,
            Ok(Reply::Pass(..)) | Err(_) => unanswered(),
        }
    }
}

impl Filter for ToCaller {
    async fn request(&self, req: &mut http::Request<RequestBody>) -> Verdict {
        // The SDK puts a RequestInfo in every request it makes.
        let Some(info) = req.extensions().get::<RequestInfo>().cloned() else {
            return Verdict::respond(unanswered().into());
        };
        let body = std::mem::replace(req.body_mut(), RequestBody::empty());
        match self.hand_over(info, body).await {
            Ok(Reply::Respond(resp)) => Verdict::respond(resp.into()),
            Ok(Reply::Pass(pass, body)) => {
                // A streamed body the caller left unread flows on to the upstream.
                if let Some(body) = body {
                    *req.body_mut() = body;
                }
                Verdict::Pass(pass)
            }
            Err(_) => Verdict::respond(unanswered().into()),
        }
    }
}

/// A request as [`PullWorker::next`] makes it, on a worker with no link, and the receiver
/// of its answer: for tests of the layers over this module.
#[doc(hidden)]
pub fn unlinked(
    mode: Mode,
    info: RequestInfo,
    body: RequestBody,
) -> std::io::Result<(Pulled, oneshot::Receiver<Reply>)> {
    let shared = Arc::new(Shared {
        driven: Driven::start()?,
        mode,
    });
    let (reply, answer) = oneshot::channel();
    let incoming = Incoming {
        info,
        body,
        reply,
        gone: Arc::default(),
    };
    Ok((Pulled::new(shared, incoming), answer))
}
