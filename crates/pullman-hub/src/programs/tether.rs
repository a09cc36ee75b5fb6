//! Ties an instance's process group to the hub's life, so that nothing an instance started
//! outlives the hub, even a hub killed with SIGKILL, even a process that ignores SIGTERM.
//!
//! `PR_SET_PDEATHSIG` alone cannot promise that: the kernel signals only the direct child,
//! so a wrapper script's children survive, and so does a program that ignores the signal.
//! A tether is a pipe and a watcher: the watcher (`/bin/sh`, reading the pipe) leads a new
//! process group, which the instance then joins; the hub holds the pipe's only write end.
//! When that end closes, because the hub let go of the instance or because the hub died
//! (the kernel closes a dead process's files, whatever killed it), the watcher reads end of
//! file and sends SIGKILL to its whole group, itself included.
//!
//! The watcher ignores SIGTERM, so a graceful stop (SIGTERM to the group, SIGKILL after the
//! grace) works as before; and being in the group, it keeps the group's id from being reused
//! for as long as the hub may signal it.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// What the watcher runs. `read` returns at end of file only, as the hub never writes; `kill`
/// with pid 0 signals the shell's own process group. Terminal signals are ignored too: the
/// group is no terminal's foreground, but a program may signal its own group.
const WATCHER_SCRIPT: &str = "trap '' TERM INT HUP QUIT; read -r _; kill -s KILL 0";

/// How often [`Tether::emptied`] looks: Linux tells no one when a group empties, and a
/// stop's grace is counted in seconds.
const EMPTY_POLL: Duration = Duration::from_millis(50);

/// A running watcher, and the hub's end of its pipe.
#[derive(Debug)]
pub(crate) struct Tether {
    /// Closing it, by drop or by the hub's death, kills the group.
    hub_end: OwnedFd,
    watcher: Child,
    pgid: u32,
}

impl Tether {
    /// Starts a watcher leading a new process group, for an instance to join.
    pub(crate) fn start() -> io::Result<Tether> {
        let (watcher_end, hub_end) = pipe()?;
        let watcher = Command::new("/bin/sh")
            .args(["-c", WATCHER_SCRIPT])
            .stdin(Stdio::from(watcher_end))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start its watcher, /bin/sh: {e}"))
            })?;
        // The read end went with the command: the watcher holds the only one, so the pipe
        // cannot fill, and the hub the only write end, so its closing is end of file.
        let pgid = watcher
            .id()
            .ok_or_else(|| io::Error::other("the watcher exited at once"))?;
        Ok(Tether {
            hub_end,
            watcher,
            pgid,
        })
    }

    /// The process group an instance joins: the watcher's pid.
    pub(crate) fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Sends `signal` to every process of the group, the watcher included (which ignores
    /// SIGTERM, but not SIGKILL).
    #[allow(unsafe_code)] // kill(2) has no safe wrapper in std
    pub(crate) fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) involves no memory. The group id is still the one the watcher
        // created: the watcher is a member and our child, not yet reaped (that happens only
        // in `release`, which takes self), so its pid, the group's id, cannot be reused.
        unsafe { libc::kill(-(self.pgid as libc::pid_t), signal) };
    }

    /// Resolves once no process but the watcher is left in the group. A zombie counts as
    /// gone: it runs nothing, and whoever inherited it reaps it.
    pub(crate) async fn emptied(&self) {
        while has_members_besides(self.pgid) {
            tokio::time::sleep(EMPTY_POLL).await;
        }
    }

    /// Lets go of the group: whatever is left of it (a wrapper's children, a process that
    /// ignored SIGTERM) is killed, and the watcher is reaped.
    pub(crate) async fn release(self) {
        let Tether {
            hub_end,
            mut watcher,
            ..
        } = self;
        drop(hub_end);
        let _ = watcher.wait().await;
    }
}

/// A pipe, read end first, both ends close-on-exec so that no other child inherits them
/// (the watcher gets its read end as stdin, which exec keeps).
#[allow(unsafe_code)] // pipe2(2) has no safe wrapper in std before Rust 1.87
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into an array of two ints that we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and nothing else owns them.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok(ends)
}

/// Whether a live process other than the watcher (whose pid is `pgid`) is in group `pgid`,
/// as `/proc` says. Unreadable entries are processes that exited while we looked.
fn has_members_besides(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != pgid)
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| is_live_member(&stat, pgid))
        })
}

/// Whether a `/proc/PID/stat` line is that of a live process in group `pgid`. The fields
/// after the command name (which may hold anything, so they start after the last `)`) are
/// the state, the parent's pid, then the group's id.
fn is_live_member(stat: &str, pgid: u32) -> bool {
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = fields.split_whitespace();
    let state = fields.next();
    let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
    state != Some("Z") && group == Some(pgid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_tells_group_and_state() {
        let live = "4242 (sleep) S 4240 4200 4200 0 -1 4194560 95 0 0 0";
        assert!(is_live_member(live, 4200));
        assert!(!is_live_member(live, 4240));
        let zombie = "4242 (sleep) Z 1 4200 4200 0 -1 4194560 95 0 0 0";
        assert!(!is_live_member(zombie, 4200));
        // A command name may hold spaces and parentheses.
        let odd = "4242 (a) b (c) R 4240 4200 4200 0";
        assert!(is_live_member(odd, 4200));
        assert!(!is_live_member("garbage", 4200));
    }
}
