//! A one-line progress display on stderr, only when stderr is a terminal (quiet in logs
//! and CI).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

pub(crate) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(label: &str, total: Option<Duration>, done: Arc<AtomicU64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { task: None };
        }
        let label = label.to_string();
        let start = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REDRAW).await;
                let secs = start.elapsed().as_secs_f64();
                let bar = match total {
                    Some(t) if !t.is_zero() => {
                        let frac = (secs / t.as_secs_f64()).min(1.0);
                        let filled = (frac * 20.0) as usize;
                        format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
                    }
                    _ => String::new(),
                };
                let n = done.load(Ordering::Relaxed);
                eprint!("\r\x1b[2K{label} {bar} {secs:.0}s {n} req");
                let _ = std::io::stderr().flush();
            }
        });
        Progress { task: Some(task) }
    }

    pub(crate) fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            eprint!("\r\x1b[2K");
        }
    }
}
