//! [`Gone`]: whether a request went away (the hub cancelled it, the link broke) while its
//! caller still held it, and the callback that wants to hear of it.

use parking_lot::Mutex;

/// What a caller runs when its request is gone: see [`Pulled::on_gone`](super::Pulled::on_gone).
pub(crate) type OnGone = Box<dyn FnOnce() + Send>;

/// Shared by a pulled request and the SDK's side of it.
#[derive(Default)]
pub(crate) struct Gone {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The hub cancelled the request or the link broke.
    gone: bool,
    /// The caller released the request: nobody wants to hear any more.
    released: bool,
    callback: Option<OnGone>,
}

impl Gone {
    /// The SDK's side lost the request: runs the callback, once, unless released.
    pub(crate) fn fire(&self) {
        let callback = {
            let mut state = self.state.lock();
            if state.gone || state.released {
                return;
            }
            state.gone = true;
            state.callback.take()
        };
        if let Some(callback) = callback {
            callback();
        }
    }

    /// Sets the callback; runs it at once (on this thread) if the request is gone already.
    pub(crate) fn on_gone(&self, callback: OnGone) {
        let mut state = self.state.lock();
        if state.released {
            return;
        }
        if state.gone {
            drop(state);
            callback();
        } else {
            state.callback = Some(callback);
        }
    }

    /// The caller released the request.
    pub(crate) fn release(&self) {
        let callback = {
            let mut state = self.state.lock();
            state.released = true;
            state.callback.take()
        };
        // Dropped outside the lock: it may hold anything.
        drop(callback);
    }
}

/// Fires [`Gone`] if dropped before [`defuse`](Self::defuse): held by the SDK's side while
/// it waits for the caller's answer, which the hub cancelling drops.
pub(crate) struct FireOnDrop(Option<std::sync::Arc<Gone>>);

impl FireOnDrop {
    pub(crate) fn new(gone: std::sync::Arc<Gone>) -> FireOnDrop {
        FireOnDrop(Some(gone))
    }

    /// The wait ended well: the drop says nothing.
    pub(crate) fn defuse(&mut self) {
        self.0 = None;
    }
}

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        if let Some(gone) = self.0.take() {
            gone.fire();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn counter() -> (Arc<AtomicUsize>, OnGone) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            n,
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[test]
    fn the_callback_runs_once_when_gone_and_never_after_release() {
        let gone = Arc::new(Gone::default());
        let (n, callback) = counter();
        gone.on_gone(callback);
        drop(FireOnDrop::new(gone.clone()));
        drop(FireOnDrop::new(gone.clone()));
        assert_eq!(n.load(Ordering::SeqCst), 1);

        let (late, callback) = counter();
        gone.on_gone(callback);
        assert_eq!(late.load(Ordering::SeqCst), 1, "gone already: runs at once");

        let released = Arc::new(Gone::default());
        let (n, callback) = counter();
        released.on_gone(callback);
        released.release();
        let mut defused = FireOnDrop::new(released.clone());
        defused.defuse();
        drop(defused);
        drop(FireOnDrop::new(released));
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }
}
