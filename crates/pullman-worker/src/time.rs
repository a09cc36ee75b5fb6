//! Sleeping to the tenth of a millisecond, for workers that pace or stand in for work (the
//! demo app's `/sleep`, the benchmark's servers).
//!
//! tokio's timer ends a sleep at the first millisecond tick at or after its deadline, and
//! its driver waits in whole milliseconds, so `tokio::time::sleep(5 ms)` lasts 5 to about
//! 6.1 ms. [`sleep_precisely`] leaves the last [`FINE_SPAN`] to a blocking thread, whose
//! sleep the kernel's high-resolution timers end within tens of microseconds.

use std::time::Duration;

use tokio::time::Instant;

/// How much of a sleep's end a blocking thread times: more than tokio's overshoot, so
/// the coarse part never ends past the deadline.
pub const FINE_SPAN: Duration = Duration::from_millis(2);

/// Sleeps for `duration`, ending within about 0.1 ms of it on an idle machine. The task
/// stays cancellable (dropped, it stops waiting; a blocking thread already sleeping ends
/// its few milliseconds on its own).
pub async fn sleep_precisely(duration: Duration) {
    let deadline = Instant::now() + duration;
    if duration > FINE_SPAN {
        tokio::time::sleep_until(deadline - FINE_SPAN).await;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_sleep_never_ends_early() {
        // Never early is what can be checked whatever the machine's load; how late it
        // ends is the benchmark's to measure.
        for us in [0, 300, 1_500, 2_000, 4_700] {
            let d = Duration::from_micros(us);
            let start = std::time::Instant::now();
            sleep_precisely(d).await;
            assert!(
                start.elapsed() >= d,
                "{us} µs ended after {:?}",
                start.elapsed()
            );
        }
    }
}
