//! [`Pulled`]: one request a calling thread holds: its head read in place, its body read in
//! chunks, and its answer (a response, or a filter's pass verdict) sent back to the SDK.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};

use super::gone::{FireOnDrop, Gone, OnGone};
use super::{Incoming, Mode, PullError, Reply, Shared};
use crate::body::BoxError;
use crate::{Pass, RawResponse, RequestBody, RequestInfo, ResponseBody};

/// Chunks of a streamed response the caller may write ahead of the link: enough to keep the
/// link busy while the writer makes the next one, few enough that a slow client holds back
/// a writer instead of filling memory.
const WRITE_AHEAD: usize = 4;

/// A header edit of a pass verdict, for [`Pulled::edit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Replace every field of this name with one of this value.
    Set,
    /// Add a field, keeping those already there.
    Append,
    /// Remove every field of this name (the value is ignored).
    Remove,
}

/// A request a calling thread holds, from [`PullWorker::next`](super::PullWorker::next).
/// Dropped unanswered, it is answered 500; dropped before a streamed response was
/// finished, that response is aborted (the client's is cut short, never passed off as whole).
pub struct Pulled {
    shared: Arc<Shared>,
    info: RequestInfo,
    /// `None` once the body ended (or failed).
    body: Option<RequestBody>,
    /// Whether any of the body was read: a pass then cannot hand it on.
    body_touched: bool,
    /// The response head being built, as the RESPONSE frame carries it.
    response_headers: Vec<(Bytes, Bytes)>,
    /// A filter's pass being built.
    pass: Pass,
    answer: Answer,
    /// Whether the request went away while held, and who wants to hear of it.
    gone: Arc<Gone>,
    /// When it was handed out, if it is one of the requests timed.
    taken: Option<Instant>,
}

enum Answer {
    /// Nothing sent yet.
    Pending(oneshot::Sender<Reply>),
    /// The head went with [`Pulled::start`]; the body goes through this, and ends well
    /// only once `finished` is set.
    Streaming {
        chunks: mpsc::Sender<Bytes>,
        finished: Arc<AtomicBool>,
    },
    /// Answered.
    Done,
}

impl std::fmt::Debug for Pulled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pulled")
            .field("target", &String::from_utf8_lossy(self.info.head.target()))
            .finish_non_exhaustive()
    }
}

impl Pulled {
    pub(super) fn new(shared: Arc<Shared>, incoming: Incoming) -> Pulled {
        let taken = shared.driven.taken();
        Pulled {
            shared,
            info: incoming.info,
            body: Some(incoming.body),
            body_touched: false,
            response_headers: Vec::new(),
            pass: Pass::new(),
            answer: Answer::Pending(incoming.reply),
            gone: incoming.gone,
            taken,
        }
    }

    /// The kind of pool the request came from.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// The request's head (read in place: in shared memory when the link uses it), the
    /// client's address and the deadline.
    pub fn info(&self) -> &RequestInfo {
        &self.info
    }

    /// The next chunk of the request body, waiting for it to arrive; `None` once the body
    /// ended. Reading is what lets the client send more. [`PullError::Closed`] if the
    /// request was cancelled or the link broke.
    pub fn read(&mut self) -> Result<Option<Bytes>, PullError> {
        while let Some(body) = self.body.as_mut() {
            self.body_touched = true;
            match self.shared.driven.block_on(body.frame()) {
                None => self.body = None,
                Some(Err(e)) => {
                    self.body = None;
                    return Err(PullError::Closed(format!("the request body failed: {e}")));
                }
                Some(Ok(frame)) => {
                    // Trailers and empty chunks are skipped: an empty chunk means the end.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Adds a field to the response's head (for [`respond`](Self::respond) or
    /// [`start`](Self::start), also a filter's block response). `content-length` is set by
    /// `respond`; with `start`, set it to send a body of known length, else it goes chunked.
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), PullError> {
        let field = header_field(name, value)?;
        if !matches!(self.answer, Answer::Pending(_)) {
            return Err(PullError::WrongState(
                "the response head is sent already".into(),
            ));
        }
        self.response_headers.push(field);
        Ok(())
    }

    /// Answers with `status`, the headers added, and `body`, all at once. In a filter pool
    /// this blocks the request: the upstream never sees it. [`PullError::Closed`] if the
    /// hub cancelled the request meanwhile.
    pub fn respond(&mut self, status: u16, body: Bytes) -> Result<(), PullError> {
        let resp = self.response(status, ResponseBody::from(body))?;
        self.reply(Reply::Respond(resp))
    }

    /// Sends the response head (`status` and the headers added) and opens its body, which
    /// [`write`](Self::write) fills and [`finish`](Self::finish) ends.
    pub fn start(&mut self, status: u16) -> Result<(), PullError> {
        let (chunks, receiver) = mpsc::channel(WRITE_AHEAD);
        let finished = Arc::new(AtomicBool::new(false));
        let body = Streamed {
            chunks: receiver,
            finished: finished.clone(),
            gone: FireOnDrop::new(self.gone.clone()),
        };
        let resp = self.response(status, ResponseBody::from_body(body))?;
        self.reply(Reply::Respond(resp))?;
        self.answer = Answer::Streaming { chunks, finished };
        Ok(())
    }

    /// Writes a chunk of the response body opened by [`start`](Self::start), waiting while
    /// the client is slower than the writer. [`PullError::Closed`] if the request was
    /// cancelled: stop writing then.
    pub fn write(&mut self, chunk: Bytes) -> Result<(), PullError> {
        let Answer::Streaming { chunks, .. } = &self.answer else {
            return Err(PullError::WrongState(
                "no response body is open; call start first".into(),
            ));
        };
        if chunk.is_empty() {
            return Ok(());
        }
        // Waiting for room drives the runtime, which is what sends the earlier chunks.
        let sent = self.shared.driven.block_on(chunks.send(chunk));
        sent.map_err(|_| cancelled())
    }

    /// Ends the response body opened by [`start`](Self::start).
    pub fn finish(&mut self) -> Result<(), PullError> {
        match std::mem::replace(&mut self.answer, Answer::Done) {
            Answer::Streaming { finished, .. } => {
                finished.store(true, Ordering::Release);
                Ok(())
            }
            other => {
                self.answer = other;
                Err(PullError::WrongState(
                    "no response body is open; call start first".into(),
                ))
            }
        }
    }

    /// Adds a header edit to a filter's pass verdict, applied in the order added (the
    /// value of a [`Edit::Remove`] is ignored). The hub refuses (502) edits of `host` and
    /// hop-by-hop fields unless the pool allows them.
    pub fn edit(&mut self, edit: Edit, name: &[u8], value: &[u8]) -> Result<(), PullError> {
        let name = HeaderName::from_bytes(name).map_err(|_| {
            PullError::Invalid(format!(
                "{:?} is not a header name",
                String::from_utf8_lossy(name)
            ))
        })?;
        let value = || {
            HeaderValue::from_bytes(value).map_err(|_| {
                PullError::Invalid(format!("the value for {name} is not a header value"))
            })
        };
        let pass = std::mem::take(&mut self.pass);
        self.pass = match edit {
            Edit::Set => pass.set(name.clone(), value()?),
            Edit::Append => pass.append(name.clone(), value()?),
            Edit::Remove => pass.remove(name),
        };
        Ok(())
    }

    /// Sends the request to `target` (path and query, from `/`) on the upstream instead of
    /// the one the client asked for. For a filter's pass verdict.
    pub fn set_target(&mut self, target: &[u8]) -> Result<(), PullError> {
        let target = std::str::from_utf8(target)
            .ok()
            .filter(|t| t.starts_with('/') && http::uri::PathAndQuery::try_from(*t).is_ok())
            .ok_or_else(|| {
                PullError::Invalid("the target must be a path (and query) starting with /".into())
            })?;
        let pass = std::mem::take(&mut self.pass);
        self.pass = pass.target(target);
        Ok(())
    }

    /// A filter's verdict: pass the request on to the upstream with the edits made. The body
    /// goes on unchanged: the hub's copy when the pool buffers bodies for its filters, or,
    /// when it streams them, the body itself, which must then not have been read.
    /// [`PullError::WrongState`] in a respond pool.
    pub fn pass(&mut self) -> Result<(), PullError> {
        if self.shared.mode != Mode::Filter {
            return Err(PullError::WrongState(
                "a pass verdict is for filter pools; this worker serves a respond pool".into(),
            ));
        }
        let body = if self.body_touched {
            None
        } else {
            self.body.take()
        };
        let pass = std::mem::take(&mut self.pass);
        self.reply(Reply::Pass(pass, body))
    }

    /// Runs `callback` once if the request goes away while held: the hub cancelled it (its
    /// client left, its deadline passed) or the link broke, before its answer was sent
    /// whole. It runs on a thread driving the worker's runtime (at once, on this thread, if
    /// the request is gone already), so it must be quick and must not wait for this
    /// request; never after the request is dropped. A second call replaces the first.
    pub fn on_gone(&self, callback: impl FnOnce() + Send + 'static) {
        self.gone.on_gone(Box::new(callback) as OnGone);
    }

    fn reply(&mut self, reply: Reply) -> Result<(), PullError> {
        let Answer::Pending(sender) = std::mem::replace(&mut self.answer, Answer::Done) else {
            return Err(PullError::WrongState(
                "the request is answered already".into(),
            ));
        };
        self.shared.driven.answer(sender, reply)
    }

    fn response(&mut self, status: u16, body: ResponseBody) -> Result<RawResponse, PullError> {
        if !matches!(self.answer, Answer::Pending(_)) {
            return Err(PullError::WrongState(
                "the request is answered already".into(),
            ));
        }
        if !(100..=999).contains(&status) {
            return Err(PullError::Invalid(format!(
                "status {status} is not in 100..=999"
            )));
        }
        let headers = std::mem::take(&mut self.response_headers);
        Ok(RawResponse::new(status, headers, body))
    }
}

impl Drop for Pulled {
    fn drop(&mut self) {
        // A pending reply sender dropped here answers 500 on the SDK's side; a streaming
        // body's sender dropped unfinished aborts the body.
        self.answer = Answer::Done;
        self.gone.release();
        self.shared.driven.freed(self.taken);
    }
}

/// The body of a streamed answer: the chunks written, then an end that is clean only if
/// [`Pulled::finish`] was called; a request dropped mid-body fails it, which aborts the
/// response on the hub.
struct Streamed {
    chunks: mpsc::Receiver<Bytes>,
    finished: Arc<AtomicBool>,
    /// Tells the caller the request is gone if the SDK drops the body before its end (the
    /// hub cancelled the request).
    gone: FireOnDrop,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.chunks.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) if self.finished.load(Ordering::Acquire) => {
                self.gone.defuse();
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.gone.defuse();
                Poll::Ready(Some(Err(
                    "the worker released the request before finishing its response".into(),
                )))
            }
        }
    }
}

fn cancelled() -> PullError {
    PullError::Closed("the hub cancelled this request".into())
}

/// A response header field as the RESPONSE frame carries it: the name an HTTP token, in
/// lowercase; the value free of control characters but tab.
fn header_field(name: &[u8], value: &[u8]) -> Result<(Bytes, Bytes), PullError> {
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.is_empty() || !name.iter().all(token) {
        return Err(PullError::Invalid(format!(
            "{:?} is not a header name",
            String::from_utf8_lossy(name)
        )));
    }
    if (value.iter()).any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(PullError::Invalid(format!(
            "the value for {} is not a header value",
            String::from_utf8_lossy(name)
        )));
    }
    Ok((
        Bytes::from(name.to_ascii_lowercase()),
        Bytes::copy_from_slice(value),
    ))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use pullman_proto::{HeadBuilder, Version};

    use super::*;
    use crate::pull::{unlinked, Mode};

    fn info() -> RequestInfo {
        RequestInfo {
            peer: String::new(),
            tls: false,
            deadline_ms: 0,
            head: HeadBuilder::new(Version::Http11, b"GET", b"/", 0).finish(),
        }
    }

    #[test]
    fn a_streamed_answer_carries_what_was_written_and_then_ends() {
        let (mut req, answer) = unlinked(Mode::Respond, info(), RequestBody::empty()).unwrap();
        assert_eq!(req.read(), Ok(None), "an empty body ends at once");
        req.add_header(b"X-Kind", b"stream").unwrap();
        req.start(200).unwrap();
        let Ok(Reply::Respond(resp)) = answer.blocking_recv() else {
            panic!("the head did not reach the SDK");
        };
        assert_eq!(
            resp.headers,
            [(Bytes::from("x-kind"), Bytes::from("stream"))]
        );
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(resp.body.collect()).unwrap().to_bytes()
        });
        for chunk in ["one ", "two ", "three"] {
            req.write(Bytes::from(chunk)).unwrap();
        }
        req.finish().unwrap();
        assert!(matches!(
            req.write(Bytes::from("late")),
            Err(PullError::WrongState(_))
        ));
        drop(req);
        assert_eq!(reader.join().unwrap(), "one two three");
    }

    #[test]
    fn a_streamed_answer_dropped_unfinished_is_aborted_not_ended() {
        let (mut req, answer) = unlinked(Mode::Respond, info(), RequestBody::empty()).unwrap();
        req.start(200).unwrap();
        let Ok(Reply::Respond(resp)) = answer.blocking_recv() else {
            panic!("the head did not reach the SDK");
        };
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(resp.body.collect()).map(|b| b.to_bytes())
        });
        req.write(Bytes::from("half")).unwrap();
        drop(req);
        assert!(reader.join().unwrap().is_err(), "the body must fail");
    }

    #[test]
    fn a_cancelled_request_refuses_its_answer() {
        let (mut req, answer) = unlinked(Mode::Respond, info(), RequestBody::empty()).unwrap();
        drop(answer);
        assert!(matches!(
            req.respond(200, Bytes::new()),
            Err(PullError::Closed(_))
        ));
        let (mut req, _answer) = unlinked(Mode::Respond, info(), RequestBody::empty()).unwrap();
        assert!(matches!(req.pass(), Err(PullError::WrongState(_))));
        assert!(matches!(
            req.respond(99, Bytes::new()),
            Err(PullError::Invalid(_))
        ));
        req.respond(204, Bytes::new()).unwrap();
        assert!(matches!(
            req.respond(204, Bytes::new()),
            Err(PullError::WrongState(_))
        ));
    }
}
