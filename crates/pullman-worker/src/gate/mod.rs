//! Gates: whether the worker may take more work now.
//!
//! A worker grants the hub one credit per request it can run. With gates, it grants a credit
//! only while every gate is open: a closed gate holds credits back until it opens. It never
//! refuses or cancels what the hub already sent against credits granted earlier, so a gate
//! that closes lets the requests in flight finish and only stops new ones coming.
//!
//! - [`CpuGate`]: open while the CPU is at most a share busy (the host's, and the worker's
//!   cgroup's quota if it has one).
//! - [`MemoryGate`]: open while at least so many bytes are available (the host's
//!   `MemAvailable`, and the room left under the worker's cgroup's limit if it has one).
//! - Any `FnMut() -> impl Future<Output = bool>` closure, or a type of your own that
//!   implements [`Gate`]: open when it says so.
//!
//! While a gate holds credits back, the worker asks again every [`GATE_RECHECK`].
//!
//! # Layout
//! - this file: the [`Gate`] trait and the set of gates a worker checks.
//! - `cgroup`: which cgroup the worker is in (`/proc/self/cgroup`) and where its files are.
//! - [`cpu`]: [`CpuGate`], busy shares from `/proc/stat` and the cgroup's CPU usage and quota.
//! - [`memory`]: [`MemoryGate`], `/proc/meminfo` and the cgroup's memory limit and usage.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use crate::error::WorkerError;

mod cgroup;
pub mod cpu;
pub mod memory;

pub use cpu::CpuGate;
pub use memory::MemoryGate;

/// How often a worker whose gate holds credits back asks again. 200 ms: a gate that opens
/// is noticed within a fifth of a second, which is short beside requests worth gating on,
/// and the checks (a few small reads from `/proc` and `/sys`) cost next to nothing.
pub const GATE_RECHECK: Duration = Duration::from_millis(200);

/// Decides whether the worker may take more work now.
///
/// Implemented for every `FnMut() -> impl Future<Output = bool>` closure:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let ready = Arc::new(AtomicBool::new(true));
/// let gate = { let ready = ready.clone(); move || { let open = ready.load(Ordering::Relaxed); async move { open } } };
/// let builder = pullman_worker::Worker::builder().gate(gate);
/// # let _ = builder;
/// ```
pub trait Gate: Send + Sync + 'static {
    /// Whether the gate is open now. Called each time the worker has credits to grant, and
    /// every [`GATE_RECHECK`] while it is closed; it may take a while (the CPU gate waits
    /// for a second reading when its last one is old) but should not take long.
    fn is_open(&mut self) -> impl Future<Output = bool> + Send;
}

impl<F, Fut> Gate for F
where
    F: FnMut() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    fn is_open(&mut self) -> impl Future<Output = bool> + Send {
        self()
    }
}

/// [`Gate`] in a form that can be boxed.
trait DynGate: Send + Sync {
    fn is_open(&mut self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

impl<G: Gate> DynGate for G {
    fn is_open(&mut self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(Gate::is_open(self))
    }
}

/// The gates of one worker; all must be open.
#[derive(Default)]
pub(crate) struct Gates(Vec<Box<dyn DynGate>>);

impl fmt::Debug for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gates({})", self.0.len())
    }
}

impl Gates {
    pub(crate) fn push(&mut self, gate: impl Gate) {
        self.0.push(Box::new(gate));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every gate is open; stops at the first that is not.
    pub(crate) async fn are_open(&mut self) -> bool {
        for gate in &mut self.0 {
            if !gate.is_open().await {
                return false;
            }
        }
        true
    }
}

/// Reads a small kernel file whole.
fn read_text(path: &Path) -> Result<String, WorkerError> {
    std::fs::read_to_string(path).map_err(|source| WorkerError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file that holds one number.
fn read_number(path: &Path) -> Result<u64, WorkerError> {
    let text = read_text(path)?;
    parse_number(path, text.trim(), "a number")
}

fn parse_number(path: &Path, text: &str, expected: &'static str) -> Result<u64, WorkerError> {
    text.parse().map_err(|_| format_error(path, expected, text))
}

fn format_error(path: &Path, expected: &'static str, found: &str) -> WorkerError {
    WorkerError::Format {
        path: path.to_owned(),
        expected,
        found: found.chars().take(80).collect(),
    }
}

/// The value of `key` in a file of `key value` lines (`cpu.stat`, `memory.stat`).
fn keyed_value(path: &Path, text: &str, key: &str) -> Option<Result<u64, WorkerError>> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| parse_number(path, v.trim(), "a number after the key"))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn all_gates_must_be_open_and_the_first_closed_one_ends_the_check() {
        let second_asked = Arc::new(AtomicUsize::new(0));
        let first_open = Arc::new(AtomicBool::new(false));
        let mut gates = Gates::default();
        let open = first_open.clone();
        gates.push(move || {
            let is = open.load(Ordering::SeqCst);
            async move { is }
        });
        let asked = second_asked.clone();
        gates.push(move || {
            asked.fetch_add(1, Ordering::SeqCst);
            async { true }
        });
        assert!(!gates.are_open().await);
        assert_eq!(second_asked.load(Ordering::SeqCst), 0);
        first_open.store(true, Ordering::SeqCst);
        assert!(gates.are_open().await);
        assert_eq!(second_asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn keyed_values_are_found_by_whole_key() {
        let path = Path::new("cpu.stat");
        let text = "usage_usec_total 9\nusage_usec 1234\nuser_usec 1000\n";
        assert_eq!(
            keyed_value(path, text, "usage_usec").unwrap().unwrap(),
            1234
        );
        assert!(keyed_value(path, text, "system_usec").is_none());
        assert!(keyed_value(path, "usage_usec x\n", "usage_usec")
            .unwrap()
            .is_err());
    }
}
