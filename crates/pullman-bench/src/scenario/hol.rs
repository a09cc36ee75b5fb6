//! Scenario 3, head-of-line blocking: one worker of concurrency 16 on one link; 10 % of
//! requests sleep 500 ms, 90 % sleep 5 ms. The fast requests' p99 with the slow ones
//! present against the same trace with the slow ones removed. HAProxy in front of an
//! HTTP/1.1 server of concurrency 16 (`maxconn 16`) for reference.

use std::sync::Arc;

use super::{median_of, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms};
use crate::trace::{Job, ServiceDist, Trace};

const NAME: &str = "hol";
const SYSTEMS: [System; 2] = [System::PullmanTcp, System::HaproxyMaxconn];
const CONCURRENCY: usize = 16;
const DIST: ServiceDist = ServiceDist::Bimodal {
    fast_ms: 5.0,
    slow_ms: 500.0,
    slow_frac: 0.1,
};
/// Arrival rate: about a third of the worker's capacity (16 / 54.5 ms ≈ 294 req/s), so
/// fast requests rarely find all 16 slots taken by slow ones and what remains is the
/// transport's doing.
const RATE_PER_S: f64 = 100.0;
const SEED: u64 = 3;
/// The fast requests' p99 with slow ones over without: pullman's aim.
const AIM: f64 = 1.1;

struct Hol;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Hol)
}

impl Scenario for Hol {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let secs = ctx.secs(30.0, 5.0).as_secs_f64();
        let mixed = Trace::poisson(RATE_PER_S, secs, DIST, SEED, true);
        let fast_only = Trace {
            jobs: mixed.jobs.iter().copied().filter(|j| j.class == 0).collect(),
        };
        let layout = Layout::new(1, CONCURRENCY);
        let (systems, down) = super::start_all(ctx, &SYSTEMS, &layout);
        let rounds = ctx.rounds(1);
        let spec: Arc<dyn Fn(&Job) -> RequestSpec + Send + Sync> =
            Arc::new(|j| RequestSpec::get(j.sleep_path()));
        for round in 1..=rounds {
            for s in super::in_turn(&systems, round) {
                let target = s.target(Proto::H1)?;
                for (variant, trace) in [("with slow", &mixed), ("fast only", &fast_only)] {
                    let m = ctx.measure(
                        s,
                        load::open_loop(&target, trace, 256, spec.clone(), s.system.label()),
                    )?;
                    // The figure of interest: the fast class's latency.
                    let fast = m.result.by_class.first().cloned().unwrap_or_else(load::new_histogram);
                    let mut fm = super::Measured {
                        result: load::LoadResult::from_histogram(fast, secs),
                        cpu_us_per_req: m.cpu_us_per_req,
                        others_cpu_us_per_req: m.others_cpu_us_per_req,
                    };
                    fm.result.errors = m.result.errors;
                    ctx.record(NAME, s.system.label(), variant, round, &fm, Default::default());
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);
        let mut md = ctx.preamble(
            "3. Head-of-line blocking: fast requests behind slow ones",
            &format!(
                "One worker of concurrency {CONCURRENCY}: pullman, one worker on one link; \
HAProxy `maxconn {CONCURRENCY}` in front of one HTTP/1.1 `pullman-bench server` of \
concurrency {CONCURRENCY}. Open loop, Poisson {RATE_PER_S:.0} req/s for {secs:.0} s, seed \
{SEED}: 10 % sleep 500 ms, 90 % sleep 5 ms ({} requests); then the same trace without the \
slow ones ({} requests). Latencies below are the fast requests' only.",
                mixed.jobs.len(),
                fast_only.jobs.len()
            ),
        );
        let mut rows = Vec::new();
        for s in SYSTEMS {
            let l = s.label();
            if super::of(&recs, l, "with slow").is_empty() {
                continue;
            }
            let with = median_of(&recs, l, "with slow", |r| r.p99_ms);
            let without = median_of(&recs, l, "fast only", |r| r.p99_ms);
            let ratio = if without > 0.0 { with / without } else { 0.0 };
            rows.push(vec![
                l.to_string(),
                ms(median_of(&recs, l, "with slow", |r| r.p50_ms)),
                ms(with),
                ms(median_of(&recs, l, "fast only", |r| r.p50_ms)),
                ms(without),
                format!("{ratio:.2}"),
                super::of(&recs, l, "with slow")
                    .iter()
                    .chain(super::of(&recs, l, "fast only").iter())
                    .map(|r| r.errors)
                    .sum::<u64>()
                    .to_string(),
            ]);
            if s == System::PullmanTcp {
                md.push_str(&format!(
                    "**pullman: fast p99 with slow ones / without: {ratio:.2}** (aim ≤ {AIM}: \
{}).\n\n",
                    if ratio <= AIM { "met" } else { "**not met**" }
                ));
            }
        }
        md.push_str(&report::table(
            &[
                "system",
                "fast p50 ms, with slow",
                "fast p99 ms, with slow",
                "p50 ms, fast only",
                "p99 ms, fast only",
                "p99 ratio",
                "errors",
            ],
            &rows,
        ));
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
