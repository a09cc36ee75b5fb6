//! Scenario 2, expensive requests (why pull exists): k workers of concurrency 1, lognormal
//! service times, Poisson arrivals at a set utilisation, open loop from one seeded trace
//! replayed through every system and through the simulator (central FIFO floor, round
//! robin, join shortest queue).

use std::sync::Arc;

use hdrhistogram::Histogram;

use super::{median_of, median_ratio, opt, start_all, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, quantile_ms, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, svg};
use crate::sim::{self, Policy};
use crate::trace::{Job, ServiceDist, Trace, SLEEP_STEP_MS};

const NAME: &str = "expensive";
const SYSTEMS: [System; 5] = [
    System::PullmanTcp,
    System::Nginx,
    System::NginxLeastConn,
    System::HaproxyMaxconn,
    System::Pothead,
];
/// HTTP/1.1 connections of the open loop: the most requests in flight at once. Far above
/// what 8 workers at 80 % queue, so the client never adds a queue of its own.
const OPEN_LOOP_CONNS: usize = 512;
/// pullman's aim: p99 over the simulated central-queue floor's.
const AIM_VS_FLOOR: f64 = 1.05;
/// The simulated floor with every service one sleep step longer: what the workers' sleeps
/// may cost before any dispatching.
const FLOOR_PLUS_STEP: &str = "sim: central FIFO, sleeps +0.1 ms";
/// Percentiles plotted.
const PLOT_QS: [f64; 7] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999];

struct Expensive;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Expensive)
}

fn label_floor() -> &'static str {
    Policy::CentralFifo.label()
}

impl Scenario for Expensive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let p = ctx.opts.expensive.clone();
        let duration = if ctx.opts.quick {
            (p.duration_s / 10.0).max(5.0)
        } else {
            p.duration_s
        };
        let dist = ServiceDist::LogNormal {
            mean_ms: p.mean_ms,
            sigma: p.sigma,
        };
        let rate = Trace::rate_for(p.utilisation, p.workers, dist);
        let trace = Trace::poisson(rate, duration, dist, p.seed, true);
        let layout = Layout::new(p.workers, 1);
        let (systems, down) = start_all(ctx, &SYSTEMS, &layout);
        let rounds = ctx.rounds(1);
        let spec: Arc<dyn Fn(&Job) -> RequestSpec + Send + Sync> =
            Arc::new(|j| RequestSpec::get(j.sleep_path()));
        let mut curves: Vec<(String, Histogram<u64>)> = Vec::new();

        // The simulated policies: same trace, one "round" each (they are deterministic).
        for policy in Policy::ALL {
            let mut h = load::new_histogram();
            for s in sim::simulate(&trace, p.workers, policy) {
                h.saturating_record(((s * 1000.0) as u64).max(1));
            }
            for round in 1..=rounds {
                let m = super::Measured {
                    result: load::LoadResult::from_histogram(h.clone(), duration),
                    cpu_us_per_req: None,
                    others_cpu_us_per_req: None,
                };
                ctx.record(NAME, policy.label(), "trace", round, &m, Default::default());
            }
            curves.push((policy.label().to_string(), h));
        }
        // The floor again with every sleep one step longer: what the precision of a real
        // worker's sleep may cost before any dispatching.
        let slower = Trace {
            jobs: trace
                .jobs
                .iter()
                .map(|j| Job {
                    service_ms: j.service_ms + SLEEP_STEP_MS,
                    ..*j
                })
                .collect(),
        };
        let mut h = load::new_histogram();
        for s in sim::simulate(&slower, p.workers, Policy::CentralFifo) {
            h.saturating_record(((s * 1000.0) as u64).max(1));
        }
        for round in 1..=rounds {
            let m = super::Measured {
                result: load::LoadResult::from_histogram(h.clone(), duration),
                cpu_us_per_req: None,
                others_cpu_us_per_req: None,
            };
            ctx.record(NAME, FLOOR_PLUS_STEP, "trace", round, &m, Default::default());
        }
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for s in super::in_turn(&systems, round) {
                let target = s.target(Proto::H1)?;
                let m = ctx.measure(
                    s,
                    load::open_loop(
                        &target,
                        &trace,
                        OPEN_LOOP_CONNS,
                        spec.clone(),
                        s.system.label(),
                    ),
                )?;
                let mut extra = serde_json::Map::new();
                extra.insert(
                    "client_late_p99_ms".into(),
                    quantile_ms(&m.result.late, 0.99).into(),
                );
                ctx.record(NAME, s.system.label(), "trace", round, &m, extra);
                if round == rounds {
                    curves.push((s.system.label().to_string(), m.result.hist.clone()));
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "2. Expensive requests: one central queue against push balancing",
            &format!(
                "{} workers of concurrency 1 (pullman: `pullman worker --concurrency 1`; nginx, \
HAProxy: one `pullman-bench server` listener each with a limit of 1; POTHEAD: one runner \
process with `--workers 1` each). Service times lognormal, mean {} ms, sigma {}, rounded to \
0.1 ms and sent as `/sleep?ms=N` (the workers sleep, so the CPU stays free for the \
middle). Poisson arrivals at {:.0} % utilisation ({rate:.0} req/s), {duration:.0} s, seed \
{}: {} requests, the same trace for every system and for the simulation. Open loop: latency \
counts from each request's intended send time. {rounds} round(s); medians over rounds.",
                p.workers,
                p.mean_ms,
                p.sigma,
                p.utilisation * 100.0,
                p.seed,
                trace.jobs.len()
            ),
        );
        let floor = label_floor();
        let mut rows = Vec::new();
        let names: Vec<&str> = Policy::ALL
            .iter()
            .map(|p| p.label())
            .chain([FLOOR_PLUS_STEP])
            .chain(SYSTEMS.iter().map(|s| s.label()))
            .collect();
        for l in &names {
            if super::of(&recs, l, "trace").is_empty() {
                continue;
            }
            let cpu: Vec<f64> = super::of(&recs, l, "trace")
                .iter()
                .filter_map(|r| r.cpu_us_per_req)
                .collect();
            rows.push(vec![
                l.to_string(),
                ms(median_of(&recs, l, "trace", |r| r.p50_ms)),
                ms(median_of(&recs, l, "trace", |r| r.p90_ms)),
                ms(median_of(&recs, l, "trace", |r| r.p99_ms)),
                ms(median_of(&recs, l, "trace", |r| r.p999_ms)),
                opt(median_ratio(&recs, l, floor, "trace", |r| r.p99_ms), |x| {
                    format!("{x:.2}")
                }),
                opt((!cpu.is_empty()).then(|| report::median(cpu)), |c| {
                    format!("{c:.0}")
                }),
                super::of(&recs, l, "trace")
                    .iter()
                    .map(|r| r.errors)
                    .sum::<u64>()
                    .to_string(),
                opt(
                    super::of(&recs, l, "trace")
                        .iter()
                        .filter_map(|r| r.extra.get("client_late_p99_ms")?.as_f64())
                        .reduce(f64::max),
                    ms,
                ),
            ]);
        }
        md.push_str(&report::table(
            &[
                "system",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "p99 ÷ floor p99",
                "CPU µs/req (middle)",
                "errors",
                "load gen late p99 ms",
            ],
            &rows,
        ));
        let series: Vec<(String, Vec<(f64, f64)>)> = curves
            .iter()
            .map(|(l, h)| {
                (
                    l.clone(),
                    PLOT_QS.iter().map(|&q| (q, quantile_ms(h, q))).collect(),
                )
            })
            .collect();
        md.push('\n');
        md.push_str(&ctx.plot(
            "expensive-latency.svg",
            "latency percentiles per system and simulated policy",
            &svg::percentiles(
                &format!(
                    "Latency, {} workers at {:.0} %, lognormal mean {} ms (last round)",
                    p.workers,
                    p.utilisation * 100.0,
                    p.mean_ms
                ),
                &series,
            ),
        )?);
        let pm = System::PullmanTcp.label();
        if let Some(x) = median_ratio(&recs, pm, floor, "trace", |r| r.p99_ms) {
            let haproxy = median_of(&recs, System::HaproxyMaxconn.label(), "trace", |r| r.p99_ms);
            let mine = median_of(&recs, pm, "trace", |r| r.p99_ms);
            md.push_str(&format!(
                "\n**pullman p99 / simulated floor p99: {x:.2}** (aim ≤ {AIM_VS_FLOOR}: {}); \
pullman p99 {} ms against HAProxy's maxconn queue {} ms ({}).\n",
                if x <= AIM_VS_FLOOR {
                    "met"
                } else {
                    "**not met**"
                },
                ms(mine),
                ms(haproxy),
                if haproxy > 0.0 && mine < haproxy {
                    "below it: met"
                } else {
                    "**not below it**"
                }
            ));
            md.push_str(
                "\nThe floor is the simulation with zero overhead: each sleep exactly N ms. A \
real worker's `/sleep?ms=N` (`pullman_worker::time::sleep_precisely`, in the demo app and \
`pullman-bench server` alike) lasts N ms plus up to about 0.1 ms on an idle machine, which \
every real system pays and the floor does not. \"Load gen late\": how late the \
load generator itself sent requests (p99 over the run; worst round); it is part of every \
latency above, and on a busy machine it is the machine's share, not the system's.\n",
            );
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
