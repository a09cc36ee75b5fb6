//! The order in which waiting requests meet workers.
//!
//! The dispatcher only pushes, pops and purges; that narrow interface is where FIFO can later
//! become something smarter (CoDel-style sojourn control, deadlines, fair shares) without
//! the dispatcher or the transports noticing.

use std::collections::VecDeque;

use tokio::sync::oneshot;

/// One request waiting for a worker: the channel its grant (a lease of a worker's credit)
/// will arrive on.
pub(crate) struct Waiter<T> {
    tx: oneshot::Sender<T>,
}

impl<T> Waiter<T> {
    pub(crate) fn new(tx: oneshot::Sender<T>) -> Waiter<T> {
        Waiter { tx }
    }

    /// Whether the request stopped waiting (client gone, queue timeout).
    pub(crate) fn is_abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    /// Hands over the lease; gives it back if the request stopped waiting meanwhile.
    pub(crate) fn serve(self, grant: T) -> Result<(), T> {
        self.tx.send(grant)
    }
}

/// First in, first out; a request re-queued after a worker failure goes to the front.
pub(crate) struct WaitQueue<T> {
    items: VecDeque<Waiter<T>>,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue {
            items: VecDeque::new(),
        }
    }
}

impl<T> WaitQueue<T> {
    /// Entries, including abandoned ones not yet purged.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn push_back(&mut self, w: Waiter<T>) {
        self.items.push_back(w);
    }

    pub(crate) fn push_front(&mut self, w: Waiter<T>) {
        self.items.push_front(w);
    }

    /// The oldest request still waiting.
    pub(crate) fn pop(&mut self) -> Option<Waiter<T>> {
        while let Some(w) = self.items.pop_front() {
            if !w.is_abandoned() {
                return Some(w);
            }
        }
        None
    }

    /// Drops abandoned entries; returns how many went.
    pub(crate) fn purge(&mut self) -> usize {
        let before = self.items.len();
        self.items.retain(|w| !w.is_abandoned());
        before - self.items.len()
    }
}
