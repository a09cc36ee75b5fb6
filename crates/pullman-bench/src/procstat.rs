//! CPU time and memory of the process in the middle (hub or proxy), from `/proc`.
//!
//! A system may be several processes (nginx's master and its workers): a `ProcessTree` is a
//! pid plus its direct children, summed.

use std::path::PathBuf;

/// CPU time (user + system) of a set of processes, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub micros: u64,
}

/// A process and its direct children.
#[derive(Debug, Clone, Copy)]
pub struct ProcessTree {
    pub pid: u32,
}

impl ProcessTree {
    pub fn new(pid: u32) -> ProcessTree {
        ProcessTree { pid }
    }

    /// The pid and every live process whose parent it is.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                    == Some(self.pid)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// utime + stime of the tree, now.
    #[allow(unsafe_code)] // sysconf has no safe wrapper in std
    pub fn cpu(&self) -> CpuTime {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let total: u64 = self
            .pids()
            .into_iter()
            .filter_map(stat_fields)
            .map(|f| {
                // After "pid (comm)": state is field 0, utime 11, stime 12.
                let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                get(11) + get(12)
            })
            .sum();
        CpuTime {
            micros: total * 1_000_000 / ticks,
        }
    }

    /// Sum of the peak resident sizes (VmHWM) of the tree, bytes.
    pub fn peak_rss(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| status_kb(p, "VmHWM:"))
            .sum::<u64>()
            * 1024
    }

    /// Sum of the current resident sizes (VmRSS) of the tree, bytes.
    pub fn rss(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| status_kb(p, "VmRSS:"))
            .sum::<u64>()
            * 1024
    }

    /// Resets the peak RSS to the current RSS (Linux `clear_refs` 5), so a peak can be taken
    /// per measurement. Needs to own the processes; returns whether it worked.
    pub fn reset_peak(&self) -> bool {
        self.pids()
            .into_iter()
            .all(|p| std::fs::write(PathBuf::from(format!("/proc/{p}/clear_refs")), "5").is_ok())
    }
}

/// The fields of `/proc/PID/stat` after the `(comm)` (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_and_memory() {
        let me = ProcessTree::new(std::process::id());
        let before = me.cpu();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(me.cpu().micros > before.micros);
        // Current first: the peak, read after, can only be as high or higher.
        let rss = me.rss();
        assert!(rss > 0 && me.peak_rss() >= rss);
    }
}
