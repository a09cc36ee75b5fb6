//! Handles: the addresses of the objects this library gave out and has not freed yet.
//!
//! Every entry point looks its handle up here before touching it, so a freed handle, a
//! pointer that never came from this library, or a handle of the other kind is refused
//! with `PM_CODE_BAD_HANDLE` instead of being read.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

use crate::error::{Fail, PmCode};

/// Live handles of one kind. Lookups are a short critical section; a handful of shards
/// keep threads serving different requests from queueing on one lock.
pub(crate) struct Registry {
    kind: &'static str,
    shards: [Mutex<HashSet<usize, FxBuildHasher>>; SHARDS],
}

const SHARDS: usize = 8;

impl Registry {
    pub(crate) fn new(kind: &'static str) -> Registry {
        Registry {
            kind,
            shards: std::array::from_fn(|_| Mutex::new(HashSet::default())),
        }
    }

    fn shard(&self, addr: usize) -> &Mutex<HashSet<usize, FxBuildHasher>> {
        // Allocations are at least 16-byte aligned: the low bits say nothing.
        &self.shards[(addr >> 4) % SHARDS]
    }

    /// Gives `value` out: boxes it and records its address.
    pub(crate) fn insert<T>(&self, value: T) -> *mut T {
        let ptr = Box::into_raw(Box::new(value));
        self.shard(ptr as usize).lock().insert(ptr as usize);
        ptr
    }

    /// Checks that `ptr` is a live handle of this kind.
    pub(crate) fn check<T>(&self, ptr: *const T) -> Result<(), Fail> {
        if ptr.is_null() {
            return Err(Fail::null(self.kind));
        }
        if self.shard(ptr as usize).lock().contains(&(ptr as usize)) {
            Ok(())
        } else {
            Err(Fail::new(
                PmCode::BadHandle,
                format!("not a live {} handle", self.kind),
            ))
        }
    }

    /// Takes `ptr` back: it is no longer a handle, and the caller owns the value.
    pub(crate) fn remove<T>(&self, ptr: *mut T) -> Result<Box<T>, Fail> {
        if ptr.is_null() {
            return Err(Fail::null(self.kind));
        }
        if !self.shard(ptr as usize).lock().remove(&(ptr as usize)) {
            return Err(Fail::new(
                PmCode::BadHandle,
                format!("not a live {} handle", self.kind),
            ));
        }
        // SAFETY: the address was recorded by `insert` from `Box::into_raw` and has just
        // been taken out of the registry, so this is the one owner.
        Ok(unsafe { Box::from_raw(ptr) })
    }
}

pub(crate) static WORKERS: LazyLock<Registry> = LazyLock::new(|| Registry::new("worker"));
pub(crate) static REQUESTS: LazyLock<Registry> = LazyLock::new(|| Registry::new("request"));
