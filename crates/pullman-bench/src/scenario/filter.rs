//! The filter scenario: `/hello` through a pullman filter pool (one pass-through filter
//! worker, then the upstream), against the upstream directly and nginx in front of the same
//! kind of upstream, closed loop. With `run --baseline`, `pullman filter (baseline)` runs
//! beside `pullman filter` and the section gives their ratio.

use std::sync::Arc;

use super::{median_of, median_ratio, opt, start_all, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, thousands};

const NAME: &str = "filter";
const SYSTEMS: [System; 3] = [System::Direct, System::Nginx, System::PullmanFilter];
const CONNS: usize = 32;
/// Concurrency of the filter worker (and nginx's upstream server's limit).
const CONCURRENCY: usize = 64;
/// Aim: the filter path's req/s over nginx's.
const AIM_VS_NGINX: f64 = 0.8;

struct Filter;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Filter)
}

impl Scenario for Filter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let layout = Layout::new(1, CONCURRENCY);
        let all = super::with_baselines(&SYSTEMS, ctx.env.baseline.is_some());
        let (systems, down) = start_all(ctx, &all, &layout);
        let rounds = ctx.rounds(3);
        let secs = ctx.secs(10.0, 2.0);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        let variant = format!("conns={CONNS}");
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for s in super::in_turn(&systems, round) {
                let target = s.target(Proto::H1)?;
                let label = format!("{} c{CONNS}", s.system.label());
                let m = ctx.measure(
                    s,
                    load::closed_loop(&target, CONNS, 1, secs, spec.clone(), &label),
                )?;
                ctx.record(NAME, s.system.label(), &variant, round, &m, Default::default());
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "7. Filter mode: `/hello` through a pass-through filter",
            &format!(
                "pullman filter: a hub with one filter pool (`filter_body = \"none\"`, no response \
phase) whose one `pullman worker --app demo-filter` (concurrency {CONCURRENCY}, one thread) \
passes every request with one added header, and whose upstream is a `pullman-bench server`. \
nginx proxies to the same kind of server (keep-alive upstream connections); direct is the \
server alone. Closed loop, {CONNS} connections, {:.0} s per system and round, {rounds} \
round(s), systems alternating (each round starts with the next). The filter path makes a worker round trip that nginx does not.",
                secs.as_secs_f64()
            ),
        );
        let nginx = System::Nginx.label();
        let mut rows = Vec::new();
        for s in &all {
            let l = s.label();
            if super::of(&recs, l, &variant).is_empty() {
                continue;
            }
            rows.push(vec![
                l.to_string(),
                thousands(median_of(&recs, l, &variant, |r| r.req_per_s)),
                ms(median_of(&recs, l, &variant, |r| r.p50_ms)),
                ms(median_of(&recs, l, &variant, |r| r.p99_ms)),
                super::median_cell(super::of(&recs, l, &variant), |r| r.cpu_us_per_req),
                opt(median_ratio(&recs, l, nginx, &variant, |r| r.req_per_s), |x| {
                    format!("{x:.2}")
                }),
            ]);
        }
        md.push_str(&report::table(
            &["system", "req/s", "p50 ms", "p99 ms", "CPU µs/req (middle)", "req/s ÷ nginx"],
            &rows,
        ));
        if let Some(x) = median_ratio(
            &recs,
            System::PullmanFilter.label(),
            nginx,
            &variant,
            |r| r.req_per_s,
        ) {
            md.push_str(&format!(
                "\n**pullman filter / nginx req/s: {x:.2}** (aim ≥ {AIM_VS_NGINX}: {}).\n",
                if x >= AIM_VS_NGINX { "met" } else { "**not met**" }
            ));
        }
        // Only with `--baseline`: without it the twin has no records.
        let (pm, base) = (
            System::PullmanFilter.label(),
            System::PullmanFilterBaseline.label(),
        );
        if let Some(x) = median_ratio(&recs, pm, base, &variant, |r| r.req_per_s) {
            md.push_str(&format!(
                "\n**{pm} / {base} req/s: {x:.2}** (this build over the `--baseline` binary, \
median of per-round ratios).\n",
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
