//! Pools and dispatch: each pool's queue and workers, and the one path by which a request
//! is handed to a worker and its answer comes back.
//!
//! # Layout
//! - `pool`: a pool's queue, its workers' credits, and the dispatcher that pairs the oldest
//!   waiting request with a worker holding a free credit ([`Pool`], [`Lease`]).
//! - `queue`: the order waiting requests meet workers in (FIFO, behind a narrow interface).
//! - `job`: what is handed to a worker ([`Job`], [`Payload`]) and how one try ended.
//! - `attempt`: [`dispatch`], the request's trip to a worker and back, with the retry rules.
//! - `ptth`: a try at a PTTH worker: the request as HTTP/1.1 on the connection it dialed.
//! - `pump`: the task streaming a request body to the worker.
//! - `replay`: a body read whole ([`read_whole`]), and a small body of announced length
//!   read first and kept so a retry can send it again ([`keep_small`]).
//! - `in_flight`: [`InFlight`], a request a worker holds until its answer is complete.
//! - `record`: [`Record`], one request's entry in its pool's metrics.

mod attempt;
mod in_flight;
mod job;
mod pool;
mod ptth;
mod pump;
mod queue;
mod record;
mod replay;

pub(crate) use attempt::{dispatch, Answer, Failed, First};
pub(crate) use in_flight::InFlight;
pub(crate) use job::{Job, Payload};
pub(crate) use pool::{Pool, PoolStatus, WorkerMeta};
pub(crate) use ptth::PtthBody;
pub(crate) use record::Record;
pub(crate) use replay::{keep_small, read_whole};
