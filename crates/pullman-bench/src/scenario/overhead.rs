//! Scenario 1, overhead: `/hello` in a closed loop at 32 and 256 connections through every
//! system, one worker of concurrency 64. Reports req/s, p50, p99, CPU per request of the
//! middle process and each system's ratio to nginx in the same round. With `run --baseline`,
//! `pullman (TCP, baseline)` runs beside `pullman (TCP)` and the section gives their ratio.

use std::sync::Arc;

use super::{median_of, median_ratio, opt, start_all, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, svg, thousands};

const NAME: &str = "overhead";
const SYSTEMS: [System; 7] = [
    System::Direct,
    System::Nginx,
    System::Haproxy,
    System::PullmanTcp,
    System::PullmanUnix,
    System::PullmanShm,
    System::Pothead,
];
const CONNS: [usize; 2] = [32, 256];
/// Concurrency of the one worker: what `bench/hello.sh` used, above 32 connections.
const WORKER_CONCURRENCY: usize = 64;
/// pullman's aim: req/s at 32 connections over nginx's.
const AIM_VS_NGINX: f64 = 1.5;

struct Overhead;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Overhead)
}

impl Scenario for Overhead {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let layout = Layout::new(1, WORKER_CONCURRENCY);
        let all = super::with_baselines(&SYSTEMS, ctx.env.baseline.is_some());
        let (systems, down) = start_all(ctx, &all, &layout);
        let rounds = ctx.rounds(3);
        let secs = ctx.secs(10.0, 2.0);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        ctx.warm_up(&systems, 32)?;
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for &conns in &CONNS {
                for s in super::in_turn(&systems, round) {
                    let target = s.target(Proto::H1)?;
                    let label = format!("{} c{conns}", s.system.label());
                    let m = ctx.measure(
                        s,
                        load::closed_loop(&target, conns, 1, secs, spec.clone(), &label),
                    )?;
                    ctx.record(
                        NAME,
                        s.system.label(),
                        &format!("conns={conns}"),
                        round,
                        &m,
                        Default::default(),
                    );
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "1. Overhead: `/hello`, closed loop",
            &format!(
                "One worker of concurrency {WORKER_CONCURRENCY} behind each system (pullman: \
`pullman worker --threads 1`; nginx and HAProxy: `pullman-bench server`, one thread, same \
limit; POTHEAD: its WSGI runner with {WORKER_CONCURRENCY} threads). The load generator \
(`pullman-bench`, HTTP/1.1, one thread) keeps N connections busy for {:.0} s per \
system and round, {rounds} round(s), systems alternating (each round starts with the next). CPU is the middle process's \
user+system time per answered request (nginx: master and workers). Ratio: req/s over \
nginx's in the same round, median over rounds.",
                secs.as_secs_f64()
            ),
        );
        let nginx = System::Nginx.label();
        let mut rows = Vec::new();
        for &conns in &CONNS {
            let v = format!("conns={conns}");
            for s in &all {
                let l = s.label();
                if super::of(&recs, l, &v).is_empty() {
                    continue;
                }
                let errors: u64 = super::of(&recs, l, &v).iter().map(|r| r.errors).sum();
                rows.push(vec![
                    conns.to_string(),
                    l.to_string(),
                    thousands(median_of(&recs, l, &v, |r| r.req_per_s)),
                    ms(median_of(&recs, l, &v, |r| r.p50_ms)),
                    ms(median_of(&recs, l, &v, |r| r.p99_ms)),
                    super::median_cell(super::of(&recs, l, &v), |r| r.cpu_us_per_req),
                    opt(median_ratio(&recs, l, nginx, &v, |r| r.req_per_s), |x| {
                        format!("{x:.2}")
                    }),
                    errors.to_string(),
                ]);
            }
        }
        md.push_str(&report::table(
            &[
                "conns",
                "system",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req (middle)",
                "req/s ÷ nginx",
                "errors",
            ],
            &rows,
        ));
        let bars: Vec<(String, f64)> = all
            .iter()
            .filter(|s| !super::of(&recs, s.label(), "conns=32").is_empty())
            .map(|s| {
                (
                    s.label().to_string(),
                    median_of(&recs, s.label(), "conns=32", |r| r.req_per_s),
                )
            })
            .collect();
        md.push('\n');
        md.push_str(&ctx.plot(
            "overhead-req-per-s.svg",
            "req/s per system, 32 connections",
            &svg::bars("/hello req/s, 32 connections (median)", "req/s", &bars),
        )?);
        for c in CONNS {
            let v = format!("conns={c}");
            if let Some(x) = median_ratio(&recs, System::PullmanTcp.label(), nginx, &v, |r| {
                r.req_per_s
            }) {
                md.push_str(&format!(
                    "\n**pullman (TCP) / nginx req/s at {c} connections: {x:.2}** (aim at 32: \
≥ {AIM_VS_NGINX}; {}).\n",
                    if x >= AIM_VS_NGINX {
                        "met"
                    } else {
                        "**not met**"
                    }
                ));
            }
        }
        // Only with `--baseline`: without it the twin has no records.
        let (pm, base) = (System::PullmanTcp.label(), System::PullmanTcpBaseline.label());
        let ratios: Vec<String> = CONNS
            .iter()
            .filter_map(|c| {
                let x = median_ratio(&recs, pm, base, &format!("conns={c}"), |r| r.req_per_s)?;
                Some(format!("{x:.2} at {c} connections"))
            })
            .collect();
        if !ratios.is_empty() {
            md.push_str(&format!(
                "\n**{pm} / {base} req/s: {}** (this build over the `--baseline` binary, \
median of per-round ratios).\n",
                ratios.join(", ")
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
