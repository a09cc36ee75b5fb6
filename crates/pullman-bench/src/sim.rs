//! Zero-overhead queueing simulation on a trace: what an ideal dispatcher would achieve.
//!
//! `k` servers of concurrency 1, no network, no parsing. Three policies:
//! - `CentralFifo`: one queue, the next free server takes the oldest job (the M/G/k floor a
//!   pull design aims for);
//! - `RoundRobin`: job i goes to server i mod k and waits there (nginx's default);
//! - `ShortestQueue`: each job joins the server with the fewest jobs at its arrival
//!   (least-connections without a proxy-side queue).
//!
//! Jobs are processed in arrival order and each server serves its own jobs in order, so
//! the event loop reduces to one pass over the trace.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::trace::Trace;

/// How jobs are assigned to servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Policy {
    CentralFifo,
    RoundRobin,
    ShortestQueue,
}

impl Policy {
    pub const ALL: [Policy; 3] = [
        Policy::CentralFifo,
        Policy::RoundRobin,
        Policy::ShortestQueue,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Policy::CentralFifo => "sim: central FIFO (floor)",
            Policy::RoundRobin => "sim: round robin",
            Policy::ShortestQueue => "sim: join shortest queue",
        }
    }
}

/// A time in ms as a totally ordered key for the heap (times are finite and non-negative).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ms(f64);
impl Eq for Ms {}
impl PartialOrd for Ms {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ms {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sojourn time (wait + service, ms) of every job of `trace`, in trace order.
pub fn simulate(trace: &Trace, k: usize, policy: Policy) -> Vec<f64> {
    let k = k.max(1);
    let mut sojourn = Vec::with_capacity(trace.jobs.len());
    match policy {
        Policy::CentralFifo => {
            // Min-heap of the times each server becomes free.
            let mut free: BinaryHeap<Reverse<Ms>> = (0..k).map(|_| Reverse(Ms(0.0))).collect();
            for job in &trace.jobs {
                let Some(Reverse(Ms(t))) = free.pop() else {
                    break;
                };
                let done = t.max(job.at_ms) + job.service_ms;
                free.push(Reverse(Ms(done)));
                sojourn.push(done - job.at_ms);
            }
        }
        Policy::RoundRobin => {
            let mut free = vec![0.0f64; k];
            for (i, job) in trace.jobs.iter().enumerate() {
                let s = &mut free[i % k];
                let done = s.max(job.at_ms) + job.service_ms;
                *s = done;
                sojourn.push(done - job.at_ms);
            }
        }
        Policy::ShortestQueue => {
            // Departure times of the jobs still at each server, oldest first.
            let mut at: Vec<VecDeque<f64>> = vec![VecDeque::new(); k];
            for job in &trace.jobs {
                for q in at.iter_mut() {
                    while q.front().is_some_and(|&d| d <= job.at_ms) {
                        q.pop_front();
                    }
                }
                let (best, q) = at
                    .iter_mut()
                    .enumerate()
                    .min_by_key(|(i, q)| (q.len(), *i))
                    .expect("k >= 1");
                let _ = best;
                let start = q.back().copied().unwrap_or(0.0).max(job.at_ms);
                let done = start + job.service_ms;
                q.push_back(done);
                sojourn.push(done - job.at_ms);
            }
        }
    }
    sojourn
}

/// Erlang C: the probability that an arrival waits in M/M/k with offered load `a = λ/μ`.
pub fn erlang_c(k: usize, a: f64) -> f64 {
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for i in 1..=k {
        b = a * b / (i as f64 + a * b);
    }
    let rho = a / k as f64;
    b / (1.0 - rho + rho * b)
}

/// Mean sojourn time of M/M/k with arrival rate `lambda` and service rate `mu` per server.
pub fn mmk_mean_sojourn(k: usize, lambda: f64, mu: f64) -> f64 {
    let a = lambda / mu;
    erlang_c(k, a) / (k as f64 * mu - lambda) + 1.0 / mu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ServiceDist;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn check(k: usize, utilisation: f64, seed: u64) {
        let dist = ServiceDist::Exp { mean_ms: 10.0 };
        let rate = Trace::rate_for(utilisation, k, dist);
        let trace = Trace::poisson(rate, 8000.0 / k as f64, dist, seed, false);
        let got = mean(&simulate(&trace, k, Policy::CentralFifo));
        let want = mmk_mean_sojourn(k, rate / 1000.0, 1.0 / 10.0);
        let err = (got / want - 1.0).abs();
        assert!(
            err < 0.02,
            "M/M/{k} at {utilisation}: simulated {got:.3} ms, Erlang C {want:.3} ms ({:.1} %)",
            err * 100.0
        );
    }

    #[test]
    fn mm1_matches_theory() {
        // M/M/1: W = 1 / (mu - lambda).
        assert!((mmk_mean_sojourn(1, 0.07, 0.1) - 1.0 / 0.03).abs() < 1e-9);
        check(1, 0.7, 11);
    }

    #[test]
    fn mmk_matches_erlang_c() {
        check(8, 0.8, 12);
        check(4, 0.6, 13);
    }

    #[test]
    fn central_queue_beats_push_policies_on_the_same_trace() {
        let dist = ServiceDist::LogNormal {
            mean_ms: 20.0,
            sigma: 1.0,
        };
        let trace = Trace::poisson(Trace::rate_for(0.8, 8, dist), 300.0, dist, 5, true);
        let fifo = mean(&simulate(&trace, 8, Policy::CentralFifo));
        let rr = mean(&simulate(&trace, 8, Policy::RoundRobin));
        let jsq = mean(&simulate(&trace, 8, Policy::ShortestQueue));
        assert!(fifo < jsq && jsq < rr, "fifo {fifo} jsq {jsq} rr {rr}");
    }
}
