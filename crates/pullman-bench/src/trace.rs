//! Seeded traces: when each request is meant to leave and how long its worker should sleep.
//!
//! Every system in a scenario, and the simulator, replays the same trace, so their latency
//! distributions differ only by what the systems do, not by luck.

/// A small seedable generator (SplitMix64). Statistical quality is ample for arrival times
/// and service draws, and it keeps the crate free of a random-number dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `ln` is always finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -self.unit().ln() * mean
    }

    /// Standard normal (Box-Muller; the second value is dropped for simplicity).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// How long a request's worker sleeps, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceDist {
    /// Always the same.
    Fixed { ms: f64 },
    /// Exponential (the M in M/M/k).
    Exp { mean_ms: f64 },
    /// Lognormal with the given mean and sigma of the underlying normal.
    LogNormal { mean_ms: f64, sigma: f64 },
    /// `slow_ms` with probability `slow_frac`, else `fast_ms` (head-of-line scenario).
    Bimodal {
        fast_ms: f64,
        slow_ms: f64,
        slow_frac: f64,
    },
}

impl ServiceDist {
    pub fn mean_ms(&self) -> f64 {
        match *self {
            ServiceDist::Fixed { ms } => ms,
            ServiceDist::Exp { mean_ms } | ServiceDist::LogNormal { mean_ms, .. } => mean_ms,
            ServiceDist::Bimodal {
                fast_ms,
                slow_ms,
                slow_frac,
            } => fast_ms * (1.0 - slow_frac) + slow_ms * slow_frac,
        }
    }

    /// One draw, and its class (1 for the slow mode of `Bimodal`, else 0).
    fn sample(&self, rng: &mut Rng) -> (f64, u8) {
        match *self {
            ServiceDist::Fixed { ms } => (ms, 0),
            ServiceDist::Exp { mean_ms } => (rng.exp(mean_ms), 0),
            ServiceDist::LogNormal { mean_ms, sigma } => {
                // E[exp(mu + sigma N)] = exp(mu + sigma^2 / 2) = mean.
                let mu = mean_ms.ln() - sigma * sigma / 2.0;
                ((mu + sigma * rng.normal()).exp(), 0)
            }
            ServiceDist::Bimodal {
                fast_ms,
                slow_ms,
                slow_frac,
            } => {
                if rng.unit() <= slow_frac {
                    (slow_ms, 1)
                } else {
                    (fast_ms, 0)
                }
            }
        }
    }
}

/// One planned request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Intended send time from the start of the run, ms.
    pub at_ms: f64,
    /// Service time the worker is asked to spend, ms.
    pub service_ms: f64,
    /// A label the report splits latencies by (e.g. fast 0 / slow 1).
    pub class: u8,
}

/// The precision of the workers' `/sleep?ms=N` (`pullman_worker::time::sleep_precisely`),
/// and the step the traces' service times are rounded to.
pub const SLEEP_STEP_MS: f64 = 0.1;

impl Job {
    /// The request that asks a worker (the demo app or `pullman-bench server`) to spend
    /// this job's service time.
    pub fn sleep_path(&self) -> String {
        format!("/sleep?ms={:.1}", self.service_ms)
    }
}

/// A seeded open-loop trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub jobs: Vec<Job>,
}

impl Trace {
    /// Poisson arrivals at `rate_per_s` for `duration_s`, services from `dist`. With
    /// `in_sleep_steps`, services are rounded to [`SLEEP_STEP_MS`] (what the workers'
    /// `/sleep?ms=` keeps to), so the simulator sees what the workers are asked to do.
    pub fn poisson(
        rate_per_s: f64,
        duration_s: f64,
        dist: ServiceDist,
        seed: u64,
        in_sleep_steps: bool,
    ) -> Trace {
        let mut rng = Rng::new(seed);
        let mean_gap_ms = 1000.0 / rate_per_s;
        let end_ms = duration_s * 1000.0;
        let mut jobs = Vec::new();
        let mut at_ms = rng.exp(mean_gap_ms);
        while at_ms < end_ms {
            let (mut service_ms, class) = dist.sample(&mut rng);
            if in_sleep_steps {
                service_ms = (service_ms / SLEEP_STEP_MS).round() * SLEEP_STEP_MS;
            }
            jobs.push(Job {
                at_ms,
                service_ms,
                class,
            });
            at_ms += rng.exp(mean_gap_ms);
        }
        Trace { jobs }
    }

    /// The arrival rate that loads `k` servers to `utilisation` under `dist`.
    pub fn rate_for(utilisation: f64, k: usize, dist: ServiceDist) -> f64 {
        utilisation * k as f64 * 1000.0 / dist.mean_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace_and_means_match() {
        let dist = ServiceDist::LogNormal {
            mean_ms: 20.0,
            sigma: 1.0,
        };
        let a = Trace::poisson(1000.0, 200.0, dist, 7, false);
        let b = Trace::poisson(1000.0, 200.0, dist, 7, false);
        assert_eq!(a.jobs, b.jobs);
        let n = a.jobs.len() as f64;
        assert!((n / 200_000.0 - 1.0).abs() < 0.01, "rate off: {n}");
        let mean = a.jobs.iter().map(|j| j.service_ms).sum::<f64>() / n;
        assert!(
            (mean / 20.0 - 1.0).abs() < 0.02,
            "lognormal mean off: {mean}"
        );
        assert!(a.jobs.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
}
