//! The CPU gate: open while the CPU is at most a share busy.
//!
//! Two shares are measured between two readings of cumulative counters, and the larger one
//! counts:
//! - the host's: the time all CPUs were not idle (nor waiting for I/O) over the time they ran,
//!   from the first line of `/proc/stat`;
//! - the worker's cgroup's, when it has a CPU quota: the CPU time it used over the time its
//!   quota allows in the same interval. cgroup v2: `cpu.stat` (`usage_usec`) and `cpu.max`;
//!   v1: `cpuacct.usage` (nanoseconds) and `cpu.cfs_quota_us` / `cpu.cfs_period_us`. A cgroup
//!   without a quota is bounded by the host alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::cgroup::{self, Version};
use super::{format_error, keyed_value, parse_number, read_number, read_text, Gate};
use crate::error::WorkerError;

/// Shortest interval between two readings; a check sooner than this after the last reading
/// answers from it. The kernel counts host CPU time in ticks of 10 ms, so over 200 ms on one
/// core a share is known to 5 %; shorter intervals are noise, longer ones answer late.
pub const CPU_SAMPLE: Duration = Duration::from_millis(200);

/// A last reading older than this says little about now: the gate takes a fresh pair of
/// readings, [`CPU_SAMPLE`] apart, instead of measuring since then.
const STALE: Duration = Duration::from_secs(1);

/// Open while the CPU is at most `max_busy` busy: the host's CPUs, and the worker's cgroup's
/// CPU quota if it has one (see the module docs).
#[derive(Debug)]
pub struct CpuGate {
    max_busy: f64,
    source: Source,
    last: Option<Sample>,
    /// Whether the last reading failed, so that a failure is logged once, not at every check.
    failing: bool,
}

/// Where the counters are.
#[derive(Debug)]
struct Source {
    proc_stat: PathBuf,
    cgroup: Option<CgroupFiles>,
}

/// The worker's cgroup's CPU files.
#[derive(Debug)]
struct CgroupFiles {
    version: Version,
    /// Where the usage counter is (v1: the `cpuacct` controller's directory).
    usage_dir: PathBuf,
    /// Where the quota is (v1: the `cpu` controller's directory).
    quota_dir: PathBuf,
}

/// Cumulative counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    /// Host ticks spent neither idle nor waiting for I/O, all CPUs.
    host_busy: u64,
    /// Host ticks, all CPUs.
    host_total: u64,
    cgroup: Option<CgroupReading>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CgroupReading {
    /// CPU time the cgroup used, in nanoseconds.
    usage_ns: u64,
    /// How many CPUs' worth of time the quota allows; `None` without a quota.
    quota_cpus: Option<f64>,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    reading: Reading,
    /// The busy share measured up to `reading`.
    busy: f64,
}

impl CpuGate {
    /// Open while the CPU is at most `max_busy` busy (a share: 0.8 is 80 %), reading the
    /// host's `/proc` and `/sys/fs/cgroup`. Fails if `max_busy` is not above 0 and at most 1,
    /// or if the counters cannot be read.
    pub fn new(max_busy: f64) -> Result<CpuGate, WorkerError> {
        CpuGate::with_roots(max_busy, "/proc", "/sys/fs/cgroup")
    }

    /// The same, reading `proc_root` for `/proc` and `cgroup_root` for `/sys/fs/cgroup`.
    pub fn with_roots(
        max_busy: f64,
        proc_root: impl AsRef<Path>,
        cgroup_root: impl AsRef<Path>,
    ) -> Result<CpuGate, WorkerError> {
        if !(max_busy > 0.0 && max_busy <= 1.0) {
            return Err(WorkerError::OutOfRange {
                setting: "CPU gate",
                value: max_busy.to_string(),
                expected: "a busy share above 0 and at most 1",
            });
        }
        let source = Source::find(proc_root.as_ref(), cgroup_root.as_ref())?;
        // Fail now, not at the first check, if the files are not what they should be.
        source.read()?;
        Ok(CpuGate {
            max_busy,
            source,
            last: None,
            failing: false,
        })
    }

    /// How busy the CPU is: the larger of the host's share and the cgroup's share of its
    /// quota, over the last [`CPU_SAMPLE`] or more. Waits for a second reading when the last
    /// one is older than a second.
    pub async fn busy(&mut self) -> Result<f64, WorkerError> {
        if let Some(last) = &self.last {
            if last.at.elapsed() < CPU_SAMPLE {
                return Ok(last.busy);
            }
        }
        let mut at = Instant::now();
        let mut reading = self.source.read()?;
        let since = match self.last.take() {
            Some(last) if at.duration_since(last.at) <= STALE => (last.at, last.reading),
            _ => {
                tokio::time::sleep(CPU_SAMPLE).await;
                let first = (at, reading);
                at = Instant::now();
                reading = self.source.read()?;
                first
            }
        };
        let busy = busy_share(&since.1, &reading, at.duration_since(since.0));
        self.last = Some(Sample { at, reading, busy });
        Ok(busy)
    }
}

impl Gate for CpuGate {
    async fn is_open(&mut self) -> bool {
        match self.busy().await {
            Ok(busy) => {
                self.failing = false;
                busy <= self.max_busy
            }
            Err(e) => {
                // A worker that cannot tell how busy the CPU is keeps serving rather than
                // starving with work waiting.
                if !self.failing {
                    tracing::warn!(error = %e, "the CPU gate cannot read the CPU's use; it stays open until it can");
                }
                self.failing = true;
                self.last = None;
                true
            }
        }
    }
}

impl Source {
    fn find(proc_root: &Path, cgroup_root: &Path) -> Result<Source, WorkerError> {
        let usage = cgroup::find(proc_root, cgroup_root, "cpuacct")?;
        let cgroup = match usage {
            Some(usage) if usage.version == Version::V1 => {
                let quota = cgroup::find(proc_root, cgroup_root, "cpu")?;
                Some(CgroupFiles {
                    version: Version::V1,
                    quota_dir: quota.map_or_else(|| usage.path.clone(), |q| q.path),
                    usage_dir: usage.path,
                })
            }
            Some(unified) => Some(CgroupFiles {
                version: Version::V2,
                quota_dir: unified.path.clone(),
                usage_dir: unified.path,
            }),
            None => None,
        };
        Ok(Source {
            proc_stat: proc_root.join("stat"),
            cgroup,
        })
    }

    fn read(&self) -> Result<Reading, WorkerError> {
        let (host_busy, host_total) = read_host(&self.proc_stat)?;
        let cgroup = match &self.cgroup {
            Some(files) => Some(files.read()?),
            None => None,
        };
        Ok(Reading {
            host_busy,
            host_total,
            cgroup,
        })
    }
}

impl CgroupFiles {
    fn read(&self) -> Result<CgroupReading, WorkerError> {
        Ok(match self.version {
            Version::V2 => {
                let stat = self.usage_dir.join("cpu.stat");
                let text = read_text(&stat)?;
                let usage_us = keyed_value(&stat, &text, "usage_usec")
                    .unwrap_or_else(|| Err(format_error(&stat, "a usage_usec line", &text)))?;
                CgroupReading {
                    usage_ns: usage_us.saturating_mul(1000),
                    quota_cpus: quota_v2(&self.quota_dir.join("cpu.max"))?,
                }
            }
            Version::V1 => CgroupReading {
                usage_ns: read_number(&self.usage_dir.join("cpuacct.usage"))?,
                quota_cpus: quota_v1(&self.quota_dir)?,
            },
        })
    }
}

/// Busy and total ticks of all CPUs, from the `cpu` line of `/proc/stat`.
fn read_host(path: &Path) -> Result<(u64, u64), WorkerError> {
    let text = read_text(path)?;
    let expected = "a first line \"cpu  USER NICE SYSTEM IDLE IOWAIT IRQ SOFTIRQ STEAL ...\"";
    let line = text.lines().next().unwrap_or_default();
    let mut fields = line.split_whitespace();
    if fields.next() != Some("cpu") {
        return Err(format_error(path, expected, line));
    }
    // user nice system idle iowait irq softirq steal; guest time is counted in user already.
    let mut ticks = [0u64; 8];
    for tick in &mut ticks {
        let field = fields
            .next()
            .ok_or_else(|| format_error(path, expected, line))?;
        *tick = parse_number(path, field, expected)?;
    }
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Ok((total - idle, total))
}

/// CPUs' worth of quota from a v2 `cpu.max` (`QUOTA PERIOD`, or `max PERIOD`); `None` for
/// none, or when the file is not there (the root cgroup has none).
fn quota_v2(path: &Path) -> Result<Option<f64>, WorkerError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text(path)?;
    let expected = "\"QUOTA PERIOD\" or \"max PERIOD\"";
    let mut fields = text.split_whitespace();
    let (Some(quota), Some(period), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format_error(path, expected, text.trim()));
    };
    if quota == "max" {
        return Ok(None);
    }
    let quota = parse_number(path, quota, expected)?;
    let period = parse_number(path, period, expected)?;
    if quota == 0 || period == 0 {
        return Err(format_error(path, expected, text.trim()));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// CPUs' worth of quota from v1's `cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`;
/// `None` for none, or when the files are not there.
fn quota_v1(dir: &Path) -> Result<Option<f64>, WorkerError> {
    let quota_path = dir.join("cpu.cfs_quota_us");
    if !quota_path.is_file() {
        return Ok(None);
    }
    let text = read_text(&quota_path)?;
    let expected = "a number of microseconds, or -1";
    let quota: i64 = text
        .trim()
        .parse()
        .map_err(|_| format_error(&quota_path, expected, text.trim()))?;
    if quota < 0 {
        return Ok(None);
    }
    let period = read_number(&dir.join("cpu.cfs_period_us"))?;
    if quota == 0 || period == 0 {
        return Err(format_error(&quota_path, expected, text.trim()));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// The busy share between two readings `elapsed` apart: the larger of the host's and the
/// cgroup's share of its quota.
fn busy_share(before: &Reading, after: &Reading, elapsed: Duration) -> f64 {
    let total = after.host_total.saturating_sub(before.host_total);
    let host = if total == 0 {
        0.0
    } else {
        after.host_busy.saturating_sub(before.host_busy) as f64 / total as f64
    };
    let cgroup = match (before.cgroup, after.cgroup) {
        (
            Some(b),
            Some(CgroupReading {
                usage_ns,
                quota_cpus: Some(cpus),
            }),
        ) if !elapsed.is_zero() => {
            usage_ns.saturating_sub(b.usage_ns) as f64 / (elapsed.as_nanos() as f64 * cpus)
        }
        _ => 0.0,
    };
    host.max(cgroup)
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::tests::FakeRoots;
    use super::*;

    /// A `/proc/stat` whose CPUs were busy for `busy` ticks and idle (or waiting) for `idle`.
    fn proc_stat(busy: u64, idle: u64) -> String {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let (user, system, iowait) = (busy / 2, busy - busy / 2, idle / 4);
        format!(
            "cpu  {user} 0 {system} {} {iowait} 0 0 0 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2\n",
            idle - iowait
        )
    }

    fn source(roots: &FakeRoots) -> Source {
        Source::find(&roots.proc(), &roots.cgroup()).unwrap()
    }

    #[test]
    fn host_share_is_busy_ticks_over_all_ticks() {
        let roots = FakeRoots::new();
        roots.write("proc/stat", &proc_stat(1000, 3000));
        let src = source(&roots);
        let before = src.read().unwrap();
        assert_eq!(before.cgroup, None);
        roots.write("proc/stat", &proc_stat(1000 + 300, 3000 + 100));
        let after = src.read().unwrap();
        let busy = busy_share(&before, &after, Duration::from_secs(1));
        assert!((busy - 0.75).abs() < 1e-9, "{busy}");
    }

    #[test]
    fn v2_share_is_usage_over_the_quota() {
        let roots = FakeRoots::v2();
        roots.write("proc/stat", &proc_stat(0, 100));
        let dir = "cgroup/app.slice/w.service";
        roots.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 5000000\nuser_usec 4000000\n",
        );
        // Two CPUs' worth.
        roots.write(&format!("{dir}/cpu.max"), "200000 100000\n");
        let src = source(&roots);
        let before = src.read().unwrap();
        // 1.5 CPU-seconds in one second of two CPUs: 75 %, with the host idle.
        roots.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 6500000\nuser_usec 5000000\n",
        );
        roots.write("proc/stat", &proc_stat(0, 200));
        let after = src.read().unwrap();
        let busy = busy_share(&before, &after, Duration::from_secs(1));
        assert!((busy - 0.75).abs() < 1e-9, "{busy}");
    }

    #[test]
    fn v2_without_a_quota_is_the_host_share() {
        let roots = FakeRoots::v2();
        roots.write("proc/stat", &proc_stat(0, 100));
        let dir = "cgroup/app.slice/w.service";
        roots.write(&format!("{dir}/cpu.stat"), "usage_usec 0\n");
        roots.write(&format!("{dir}/cpu.max"), "max 100000\n");
        let src = source(&roots);
        let before = src.read().unwrap();
        roots.write(&format!("{dir}/cpu.stat"), "usage_usec 900000000\n");
        roots.write("proc/stat", &proc_stat(10, 190));
        let after = src.read().unwrap();
        let busy = busy_share(&before, &after, Duration::from_secs(1));
        assert!((busy - 0.1).abs() < 1e-9, "{busy}");
    }

    #[test]
    fn v1_share_is_usage_over_the_cfs_quota() {
        let roots = FakeRoots::v1();
        roots.write("proc/stat", &proc_stat(0, 100));
        let dir = "cgroup/cpu,cpuacct/docker/abc";
        roots.write(&format!("{dir}/cpuacct.usage"), "1000000000\n");
        // Half a CPU.
        roots.write(&format!("{dir}/cpu.cfs_quota_us"), "50000\n");
        roots.write(&format!("{dir}/cpu.cfs_period_us"), "100000\n");
        let src = source(&roots);
        let before = src.read().unwrap();
        // 0.4 CPU-seconds in two seconds of half a CPU: 40 %.
        roots.write(&format!("{dir}/cpuacct.usage"), "1400000000\n");
        roots.write("proc/stat", &proc_stat(0, 200));
        let after = src.read().unwrap();
        let busy = busy_share(&before, &after, Duration::from_secs(2));
        assert!((busy - 0.4).abs() < 1e-9, "{busy}");
        // No quota (-1): the host alone.
        roots.write(&format!("{dir}/cpu.cfs_quota_us"), "-1\n");
        assert_eq!(src.read().unwrap().cgroup.unwrap().quota_cpus, None);
    }

    #[test]
    fn the_larger_share_counts() {
        let roots = FakeRoots::v2();
        let dir = "cgroup/app.slice/w.service";
        roots.write("proc/stat", &proc_stat(0, 100));
        roots.write(&format!("{dir}/cpu.stat"), "usage_usec 0\n");
        roots.write(&format!("{dir}/cpu.max"), "100000 100000\n");
        let src = source(&roots);
        let before = src.read().unwrap();
        // The cgroup used 20 % of its one CPU; the host was 90 % busy.
        roots.write(&format!("{dir}/cpu.stat"), "usage_usec 200000\n");
        roots.write("proc/stat", &proc_stat(90, 110));
        let after = src.read().unwrap();
        let busy = busy_share(&before, &after, Duration::from_secs(1));
        assert!((busy - 0.9).abs() < 1e-9, "{busy}");
    }

    #[test]
    fn files_that_are_not_what_the_kernel_writes_are_refused_with_their_path() {
        let roots = FakeRoots::v2();
        roots.write("proc/stat", "intr 1 2 3\n");
        let err = CpuGate::with_roots(0.8, roots.proc(), roots.cgroup()).unwrap_err();
        assert!(
            matches!(&err, WorkerError::Format { path, .. } if path.ends_with("stat")),
            "{err:?}"
        );
        roots.write("proc/stat", &proc_stat(1, 1));
        let dir = "cgroup/app.slice/w.service";
        roots.write(&format!("{dir}/cpu.stat"), "usage_usec 1\n");
        roots.write(&format!("{dir}/cpu.max"), "lots 100000\n");
        let err = CpuGate::with_roots(0.8, roots.proc(), roots.cgroup()).unwrap_err();
        assert!(
            matches!(&err, WorkerError::Format { path, .. } if path.ends_with("cpu.max")),
            "{err:?}"
        );
        let missing = FakeRoots::new();
        let err = CpuGate::with_roots(0.8, missing.proc(), missing.cgroup()).unwrap_err();
        assert!(matches!(err, WorkerError::Read { .. }), "{err:?}");
    }

    #[test]
    fn a_share_outside_0_to_1_is_refused() {
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let err = CpuGate::new(bad).unwrap_err();
            assert!(
                matches!(err, WorkerError::OutOfRange { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_closes_above_its_share_and_opens_at_or_below_it() {
        let roots = FakeRoots::new();
        roots.write("proc/stat", &proc_stat(0, 0));
        let mut gate = CpuGate::with_roots(0.5, roots.proc(), roots.cgroup()).unwrap();
        // First check: two readings CPU_SAMPLE apart; the files do not change, so the
        // CPUs ran no ticks in between and count as idle.
        assert!(gate.is_open().await);
        // 80 % busy since the last reading.
        roots.write("proc/stat", &proc_stat(80, 20));
        tokio::time::advance(CPU_SAMPLE).await;
        assert!(!gate.is_open().await);
        // Within CPU_SAMPLE of that reading the gate answers from it.
        roots.write("proc/stat", &proc_stat(80, 1020));
        assert!(!gate.is_open().await);
        tokio::time::advance(CPU_SAMPLE).await;
        assert!(gate.is_open().await);
    }
}
