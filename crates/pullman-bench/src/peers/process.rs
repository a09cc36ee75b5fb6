//! Child processes of a peer: started with piped stdout, killed by pid when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::Error;

/// How long a peer may take to print its ready line or answer its first request: a hang
/// guard (POTHEAD's Python start-up is the slowest, about a second).
pub(crate) const START_GUARD: Duration = Duration::from_secs(30);

/// A running child; killed (by its own pid) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    pub(crate) child: Child,
    pub(crate) name: String,
    lines: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Starts `cmd` with stdout piped (read line by line by a thread) and stderr to `log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, Error> {
        let log = std::fs::File::create(log)?;
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::peer(name, format!("cannot start {:?}: {e}", cmd.get_program())))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            child,
            name: name.to_string(),
            lines: Some(rx),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub(crate) fn wait_line(&mut self, needle: &str) -> Result<String, Error> {
        let rx = self
            .lines
            .as_ref()
            .ok_or_else(|| Error::peer(&self.name, "no stdout"))?;
        let deadline = std::time::Instant::now() + START_GUARD;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(Error::peer(
                        &self.name,
                        format!("never printed {needle:?} (exit status {status:?})"),
                    ));
                }
            }
        }
    }

    /// Whether the process has exited.
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    #[allow(unsafe_code)] // kill(2) has no safe wrapper in std
    fn drop(&mut self) {
        // SIGTERM first so servers drain; SIGKILL if still there.
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..50 {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port, found by binding port 0 and releasing it (nginx and HAProxy cannot
/// be told to pick one). Another process could take it in between; on loopback during a
/// benchmark that is unlikely, and the peer then fails to start with a clear error.
pub(crate) fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
