//! One request's entry in its pool's metrics.

use std::time::Duration;

use tokio::time::Instant;

use super::pool::Pool;
use crate::error::RequestError;
use crate::metrics::outcome_index;

/// Records one request in its pool's metrics, when recording is on. Dropped before
/// [`Record::finish`] (the client went away and hyper dropped the request), it counts
/// `client_gone`.
pub(crate) struct Record<'a> {
    pool: &'a Pool,
    on: bool,
    done: bool,
}

impl<'a> Record<'a> {
    pub(crate) fn new(pool: &'a Pool, on: bool) -> Record<'a> {
        Record {
            pool,
            on,
            done: false,
        }
    }

    pub(crate) fn queue_wait(&self, waited: Duration) {
        if self.on {
            self.pool.metrics.queue_wait.observe(waited);
        }
    }

    /// Reads the clock only when recording: that is the one `Instant::now` metrics add.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.on.then(Instant::now)
    }

    /// Times a worker's service from now until the returned guard drops: when its answer
    /// comes, it fails, or the request is dropped while it waits (client gone), so that
    /// cancelled requests are in the histogram too.
    pub(crate) fn service(&self) -> ServiceTimer<'_> {
        ServiceTimer {
            pool: self.pool,
            since: self.start(),
        }
    }

    /// A filter pool's upstream answered (or failed) after `since`, from [`Record::start`].
    pub(crate) fn upstream(&self, since: Option<Instant>) {
        if let Some(since) = since {
            self.pool.metrics.upstream.observe(since.elapsed());
        }
    }

    /// Counts how the request ended.
    pub(crate) fn finish(&mut self, outcome: Result<(), RequestError>) {
        if self.on && !self.done {
            self.pool.metrics.count(outcome_index(outcome));
        }
        self.done = true;
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.finish(Err(RequestError::ClientGone));
    }
}

/// See [`Record::service`].
pub(crate) struct ServiceTimer<'a> {
    pool: &'a Pool,
    since: Option<Instant>,
}

impl Drop for ServiceTimer<'_> {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            self.pool.metrics.service.observe(since.elapsed());
        }
    }
}
