//! How long a worker waits before dialing the hub again: steps that double from
//! [`FIRST_STEP`] up to [`MAX_STEP`], each pause a random point in the upper half of its step
//! ("equal jitter").
//!
//! The jitter matters when a hub restarts: every worker lost it at the same moment, and
//! without it they would all dial again at the same moments too. The cap matters as much: a
//! hub that is back is dialed within [`MAX_STEP`], so it serves again within about a second.

use std::time::Duration;

/// The first step: a hub that only dropped one link is dialed again within this.
pub(crate) const FIRST_STEP: Duration = Duration::from_millis(100);
/// The longest step: no pause is longer, so a restarted hub gets its workers back within a
/// second. Refused dials cost the hub one accept each, which it can afford at this rate.
pub(crate) const MAX_STEP: Duration = Duration::from_secs(1);

/// The pauses between dial attempts, from the first failure to the next success.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { step: FIRST_STEP }
    }

    /// Starts again from [`FIRST_STEP`], after a dial that succeeded.
    pub(crate) fn reset(&mut self) {
        self.step = FIRST_STEP;
    }

    /// The next pause, in `[step / 2, step]`; then the step doubles, up to [`MAX_STEP`].
    pub(crate) fn next_pause(&mut self) -> Duration {
        // Without entropy the pause is the whole step: slower, never shorter.
        let random = getrandom::u64().unwrap_or(u64::MAX);
        let pause = jittered(self.step, random);
        self.step = (self.step * 2).min(MAX_STEP);
        pause
    }
}

/// The point of `[step / 2, step]` that `random` picks: `0` the low end, `u64::MAX` the high.
fn jittered(step: Duration, random: u64) -> Duration {
    let half = step / 2;
    let span = (step - half).as_nanos();
    let offset = span * u128::from(random) / u128::from(u64::MAX);
    // offset <= span, under a second here, so it always fits a u64 of nanoseconds.
    half + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_lies_in_the_upper_half_of_its_step() {
        for step in [FIRST_STEP, Duration::from_millis(300), MAX_STEP] {
            assert_eq!(jittered(step, 0), step / 2);
            assert_eq!(jittered(step, u64::MAX), step);
            let middle = jittered(step, u64::MAX / 2);
            assert!(middle > step / 2 && middle < step, "{middle:?} of {step:?}");
        }
    }

    #[test]
    fn steps_double_from_100_ms_to_a_cap_of_one_second() {
        let mut backoff = Backoff::new();
        let mut steps = Vec::new();
        for _ in 0..8 {
            steps.push(backoff.step);
            let pause = backoff.next_pause();
            let step = steps[steps.len() - 1];
            assert!(
                pause >= step / 2 && pause <= step,
                "{pause:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        let ms: Vec<u128> = steps.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.step, FIRST_STEP);
        assert!(backoff.next_pause() <= FIRST_STEP);
    }

    #[test]
    fn no_pause_ever_exceeds_a_second() {
        let mut backoff = Backoff::new();
        for _ in 0..1_000 {
            let pause = backoff.next_pause();
            assert!(pause <= MAX_STEP, "{pause:?}");
        }
        // Past the cap, pauses are at least half of it: the cap does not turn into a spin.
        assert!(backoff.next_pause() >= MAX_STEP / 2);
    }
}
