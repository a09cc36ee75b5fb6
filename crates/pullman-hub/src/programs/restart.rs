//! The supervisor's decisions, apart from processes and time: whether an exited instance is
//! started again, how long to wait first, and when a program has crashed too often.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{Backoff, RestartPolicy};

/// How an instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exit status 0.
    Clean,
    /// A non-zero exit status, a signal, or a program that could not be started.
    Crash,
}

impl RestartPolicy {
    /// Whether an instance that ended with `exit` is started again.
    pub(crate) fn restarts(self, exit: Exit) -> bool {
        match self {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => exit == Exit::Crash,
            RestartPolicy::Temporary => false,
        }
    }
}

impl Backoff {
    /// The wait before restart number `in_a_row` (0 for the first) of an instance that keeps
    /// exiting: `min`, doubling each time, capped at `max`.
    pub(crate) fn delay(self, in_a_row: u32) -> Duration {
        let factor = 1u32.checked_shl(in_a_row).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }
}

/// Restart intensity: at most `max` restarts within a sliding window of `within`, counted
/// over all instances of a program.
#[derive(Debug)]
pub(crate) struct Intensity {
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max: u32, within: Duration) -> Intensity {
        Intensity {
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the window has room for it; `false` means the program is
    /// over its intensity and must not be restarted.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.duration_since(oldest) < self.within {
                break;
            }
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(RestartPolicy::Permanent.restarts(Exit::Clean));
        assert!(RestartPolicy::Permanent.restarts(Exit::Crash));
        assert!(!RestartPolicy::Transient.restarts(Exit::Clean));
        assert!(RestartPolicy::Transient.restarts(Exit::Crash));
        assert!(!RestartPolicy::Temporary.restarts(Exit::Clean));
        assert!(!RestartPolicy::Temporary.restarts(Exit::Crash));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (0..6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(40), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn intensity_is_a_sliding_window() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut intensity = Intensity::new(3, Duration::from_secs(10));
        assert!(intensity.admit(at(0)));
        assert!(intensity.admit(at(1000)));
        assert!(intensity.admit(at(2000)));
        assert!(!intensity.admit(at(3000)), "a fourth restart within 10 s");
        // The first restart leaves the window at 10 s.
        assert!(intensity.admit(at(10_000)));
        assert!(!intensity.admit(at(10_500)));
    }

    #[test]
    fn zero_restarts_allowed_fails_at_the_first_exit() {
        let mut intensity = Intensity::new(0, Duration::from_secs(10));
        assert!(!intensity.admit(Instant::now()));
    }
}
