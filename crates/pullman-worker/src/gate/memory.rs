//! The memory gate: open while at least so many bytes are available.
//!
//! Available is the smaller of:
//! - the host's `MemAvailable` (`/proc/meminfo`): what the kernel estimates can be allocated
//!   without swapping, page cache it can drop included;
//! - when the worker's cgroup has a memory limit, the limit minus what the cgroup uses. cgroup
//!   v2: `memory.max` and `memory.current`; v1: `memory.limit_in_bytes` and
//!   `memory.usage_in_bytes`. The cgroup's inactive page cache (`inactive_file` in v2's
//!   `memory.stat`, `total_inactive_file` in v1's) counts as available, as it does on the host:
//!   the kernel drops it before it reaches the limit, and a worker that writes files would
//!   otherwise find its gate shut by cache alone.

use std::path::{Path, PathBuf};

use super::cgroup::{self, CgroupDir, Version};
use super::{format_error, keyed_value, parse_number, read_number, read_text, Gate};
use crate::error::WorkerError;

/// Open while at least `min_available` bytes of memory are available (see the module docs).
#[derive(Debug)]
pub struct MemoryGate {
    min_available: u64,
    meminfo: PathBuf,
    cgroup: Option<CgroupDir>,
    /// Whether the last reading failed, so that a failure is logged once.
    failing: bool,
}

impl MemoryGate {
    /// Open while at least `min_available` bytes are available, reading the host's `/proc`
    /// and `/sys/fs/cgroup`. Fails if `min_available` is 0 (a gate that is always open) or
    /// the files cannot be read.
    pub fn new(min_available: u64) -> Result<MemoryGate, WorkerError> {
        MemoryGate::with_roots(min_available, "/proc", "/sys/fs/cgroup")
    }

    /// The same, reading `proc_root` for `/proc` and `cgroup_root` for `/sys/fs/cgroup`.
    pub fn with_roots(
        min_available: u64,
        proc_root: impl AsRef<Path>,
        cgroup_root: impl AsRef<Path>,
    ) -> Result<MemoryGate, WorkerError> {
        if min_available == 0 {
            return Err(WorkerError::OutOfRange {
                setting: "memory gate",
                value: "0".into(),
                expected: "at least one byte",
            });
        }
        let proc_root = proc_root.as_ref();
        let gate = MemoryGate {
            min_available,
            meminfo: proc_root.join("meminfo"),
            cgroup: cgroup::find(proc_root, cgroup_root.as_ref(), "memory")?,
            failing: false,
        };
        // Fail now, not at the first check, if the files are not what they should be.
        gate.available()?;
        Ok(gate)
    }

    /// Bytes available now: the smaller of the host's and the cgroup's (see the module docs).
    pub fn available(&self) -> Result<u64, WorkerError> {
        let host = host_available(&self.meminfo)?;
        let cgroup = match &self.cgroup {
            Some(dir) => cgroup_available(dir)?,
            None => None,
        };
        Ok(cgroup.map_or(host, |c| c.min(host)))
    }
}

impl Gate for MemoryGate {
    async fn is_open(&mut self) -> bool {
        match self.available() {
            Ok(available) => {
                self.failing = false;
                available >= self.min_available
            }
            Err(e) => {
                // As the CPU gate: keep serving rather than starve with work waiting.
                if !self.failing {
                    tracing::warn!(error = %e, "the memory gate cannot read the memory's use; it stays open until it can");
                }
                self.failing = true;
                true
            }
        }
    }
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn host_available(path: &Path) -> Result<u64, WorkerError> {
    let text = read_text(path)?;
    let expected = "a line \"MemAvailable: N kB\"";
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .ok_or_else(|| format_error(path, expected, &text))?;
    let kib = line
        .trim()
        .strip_suffix("kB")
        .ok_or_else(|| format_error(path, expected, line))?;
    Ok(parse_number(path, kib.trim(), expected)?.saturating_mul(1024))
}

/// The room under the cgroup's memory limit, in bytes; `None` without a limit.
fn cgroup_available(dir: &CgroupDir) -> Result<Option<u64>, WorkerError> {
    let (limit, usage, stat, inactive_key) = match dir.version {
        Version::V2 => (
            "memory.max",
            "memory.current",
            "memory.stat",
            "inactive_file",
        ),
        Version::V1 => (
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.stat",
            "total_inactive_file",
        ),
    };
    let limit_path = dir.path.join(limit);
    if !limit_path.is_file() {
        // v2's root cgroup, or a cgroup whose memory controller is not enabled.
        return Ok(None);
    }
    let limit_text = read_text(&limit_path)?;
    let limit = match limit_text.trim() {
        "max" => return Ok(None),
        n => parse_number(&limit_path, n, "a number of bytes, or max")?,
    };
    let usage = read_number(&dir.path.join(usage))?;
    let stat_path = dir.path.join(stat);
    let inactive = if stat_path.is_file() {
        let text = read_text(&stat_path)?;
        keyed_value(&stat_path, &text, inactive_key).transpose()?
    } else {
        None
    };
    let used = usage.saturating_sub(inactive.unwrap_or(0));
    Ok(Some(limit.saturating_sub(used)))
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::tests::FakeRoots;
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn meminfo(available_kib: u64) -> String {
        format!("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kib} kB\nBuffers: 1 kB\n")
    }

    fn available(roots: &FakeRoots) -> u64 {
        MemoryGate::with_roots(1, roots.proc(), roots.cgroup())
            .unwrap()
            .available()
            .unwrap()
    }

    #[test]
    fn host_only_is_mem_available() {
        let roots = FakeRoots::new();
        roots.write("proc/meminfo", &meminfo(2048));
        assert_eq!(available(&roots), 2 * MIB);
    }

    #[test]
    fn v2_is_the_room_under_memory_max_when_that_is_smaller() {
        let roots = FakeRoots::v2();
        roots.write("proc/meminfo", &meminfo(8 * 1024 * 1024));
        let dir = "cgroup/app.slice/w.service";
        roots.write(&format!("{dir}/memory.max"), &format!("{}\n", 512 * MIB));
        roots.write(
            &format!("{dir}/memory.current"),
            &format!("{}\n", 400 * MIB),
        );
        roots.write(
            &format!("{dir}/memory.stat"),
            &format!(
                "anon 1\nfile 2\ninactive_file {}\nactive_file 3\n",
                16 * MIB
            ),
        );
        // 512 - (400 - 16 of dropable cache).
        assert_eq!(available(&roots), 128 * MIB);
        // The host smaller still.
        roots.write("proc/meminfo", &meminfo(1024));
        assert_eq!(available(&roots), MIB);
        // No limit: the host.
        roots.write(&format!("{dir}/memory.max"), "max\n");
        assert_eq!(available(&roots), MIB);
    }

    #[test]
    fn v1_is_the_room_under_the_limit() {
        let roots = FakeRoots::v1();
        roots.write("proc/meminfo", &meminfo(8 * 1024 * 1024));
        let dir = "cgroup/memory/docker/abc";
        roots.write(
            &format!("{dir}/memory.limit_in_bytes"),
            &format!("{}\n", 256 * MIB),
        );
        roots.write(
            &format!("{dir}/memory.usage_in_bytes"),
            &format!("{}\n", 200 * MIB),
        );
        roots.write(
            &format!("{dir}/memory.stat"),
            &format!(
                "cache 5\ninactive_file 7\ntotal_inactive_file {}\n",
                8 * MIB
            ),
        );
        assert_eq!(available(&roots), 64 * MIB);
        // v1 writes a huge number for no limit: the host is smaller.
        roots.write(
            &format!("{dir}/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        assert_eq!(available(&roots), 8 * 1024 * MIB);
        // Usage above the limit (it happens for a moment) is no room, not an overflow.
        roots.write(
            &format!("{dir}/memory.limit_in_bytes"),
            &format!("{}\n", 100 * MIB),
        );
        assert_eq!(available(&roots), 0);
    }

    #[tokio::test]
    async fn the_gate_is_open_while_enough_is_available() {
        let roots = FakeRoots::new();
        roots.write("proc/meminfo", &meminfo(1024));
        let mut gate = MemoryGate::with_roots(MIB, roots.proc(), roots.cgroup()).unwrap();
        assert!(gate.is_open().await);
        roots.write("proc/meminfo", &meminfo(1023));
        assert!(!gate.is_open().await);
    }

    #[test]
    fn bad_files_and_zero_are_refused() {
        let roots = FakeRoots::new();
        roots.write("proc/meminfo", "MemTotal: 5 kB\n");
        let err = MemoryGate::with_roots(1, roots.proc(), roots.cgroup()).unwrap_err();
        assert!(matches!(err, WorkerError::Format { .. }), "{err:?}");
        roots.write("proc/meminfo", &meminfo(1));
        let err = MemoryGate::with_roots(0, roots.proc(), roots.cgroup()).unwrap_err();
        assert!(matches!(err, WorkerError::OutOfRange { .. }), "{err:?}");
        let v2 = FakeRoots::v2();
        v2.write("proc/meminfo", &meminfo(1));
        v2.write("cgroup/app.slice/w.service/memory.max", "100\n");
        v2.write("cgroup/app.slice/w.service/memory.current", "lots\n");
        let err = MemoryGate::with_roots(1, v2.proc(), v2.cgroup()).unwrap_err();
        assert!(
            matches!(&err, WorkerError::Format { path, .. } if path.ends_with("memory.current")),
            "{err:?}"
        );
    }
}
