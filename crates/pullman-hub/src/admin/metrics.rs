//! The hub's metric families, written at scrape time: per pool, its requests' outcomes and
//! latencies, its filters' decisions, its workers' faults and its queue, worker and credit
//! gauges; per supervised program, its restarts and running instances.

use std::sync::atomic::Ordering;

use crate::dispatch::PoolStatus;
use crate::metrics::{Exposition, Kind, Source, OUTCOMES};
use crate::programs::{ProgramHealth, Supervisor};
use crate::state::HubState;

/// The pools' families: request outcomes and latencies, and the queue, worker and credit
/// gauges read from each pool's state at scrape time.
impl Source for HubState {
    fn render(&self, out: &mut Exposition) {
        let pools = self.pools();

        out.family(
            "pullman_requests_total",
            Kind::Counter,
            "Requests by pool and how they ended (ok: the worker answered).",
        );
        for pool in &pools {
            let counts = pool.metrics.outcomes();
            for (outcome, count) in OUTCOMES.iter().zip(counts) {
                if *outcome != "no_route" {
                    out.sample(
                        "pullman_requests_total",
                        &[("pool", pool.name()), ("outcome", outcome)],
                        count as f64,
                    );
                }
            }
        }
        out.sample(
            "pullman_requests_total",
            &[("pool", ""), ("outcome", "no_route")],
            self.unrouted.load(Ordering::Relaxed) as f64,
        );

        out.family(
            "pullman_filter_total",
            Kind::Counter,
            "Decisions of a filter pool's filters, and requests no filter decided on (failed_open, failed_closed).",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            for (outcome, count) in pool.filter_stats.counts() {
                out.sample(
                    "pullman_filter_total",
                    &[("pool", pool.name()), ("outcome", outcome)],
                    count as f64,
                );
            }
        }

        out.family(
            "pullman_queue_wait_seconds",
            Kind::Histogram,
            "Time from arrival until a worker's credit was taken, for requests that got one.",
        );
        for pool in &pools {
            let h = pool.metrics.queue_wait.snapshot();
            out.histogram("pullman_queue_wait_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_service_seconds",
            Kind::Histogram,
            "Time from handing a request to a worker until its response head or verdict (or failure).",
        );
        for pool in &pools {
            let h = pool.metrics.service.snapshot();
            out.histogram("pullman_service_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_upstream_seconds",
            Kind::Histogram,
            "Filter pools: time from sending a request upstream until its response head (or failure).",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            let h = pool.metrics.upstream.snapshot();
            out.histogram("pullman_upstream_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_upstream_stalls_total",
            Kind::Counter,
            "Filter pools: upstream response bodies cut off because nothing of them came for upstream_timeout.",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            out.sample(
                "pullman_upstream_stalls_total",
                &[("pool", pool.name())],
                pool.metrics.upstream_stalls.load(Ordering::Relaxed) as f64,
            );
        }

        out.family(
            "pullman_worker_faults_total",
            Kind::Counter,
            "Answers of a pool's workers that the hub could not use (the worker is told, the client gets 502 or a cut-off body).",
        );
        for pool in &pools {
            for (fault, count) in pool.metrics.worker_faults.counts() {
                out.sample(
                    "pullman_worker_faults_total",
                    &[("pool", pool.name()), ("fault", fault)],
                    count as f64,
                );
            }
        }

        let status: Vec<_> = pools.iter().map(|p| (p.name(), p.status())).collect();
        let gauges: [Gauge; 4] = [
            (
                "pullman_queue_depth",
                "Requests waiting for a worker.",
                |s| s.queued as u64,
            ),
            (
                "pullman_workers",
                "Worker links connected (draining ones included).",
                |s| s.workers as u64,
            ),
            (
                "pullman_credits_free",
                "Credits workers granted that no request has taken yet.",
                |s| s.credits_free,
            ),
            (
                "pullman_in_flight",
                "Requests handed to workers and not yet answered in full.",
                |s| s.in_flight,
            ),
        ];
        for (name, help, read) in gauges {
            out.family(name, Kind::Gauge, help);
            for (pool, s) in &status {
                out.sample(name, &[("pool", pool)], read(s) as f64);
            }
        }
    }
}

/// A gauge read from a pool's status: name, help, reader.
type Gauge = (&'static str, &'static str, fn(&PoolStatus) -> u64);

impl Source for Supervisor {
    fn render(&self, out: &mut Exposition) {
        let programs = self.status();
        out.family(
            "pullman_program_restarts_total",
            Kind::Counter,
            "Restarts of a supervised program's instances since it was last (re)applied.",
        );
        for p in &programs {
            out.sample(
                "pullman_program_restarts_total",
                &[("program", &p.name)],
                p.restarts as f64,
            );
        }
        out.family(
            "pullman_program_up",
            Kind::Gauge,
            "Instances of a supervised program running now.",
        );
        for p in &programs {
            out.sample(
                "pullman_program_up",
                &[("program", &p.name)],
                f64::from(p.running),
            );
        }
        out.family(
            "pullman_program_failed",
            Kind::Gauge,
            "1 when a program restarted more often than its intensity allows and was given up.",
        );
        for p in &programs {
            let failed = p.state == ProgramHealth::Failed;
            out.sample(
                "pullman_program_failed",
                &[("program", &p.name)],
                f64::from(u8::from(failed)),
            );
        }
    }
}
