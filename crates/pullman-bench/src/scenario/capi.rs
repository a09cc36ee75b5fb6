//! The capi scenario: a worker in C on pullman's C API (`examples/c/hello.c` compiled
//! against `libpullman_capi.a`) beside the Rust SDK's `pullman worker --app demo`, behind
//! the same hub configuration over TCP, with the same worker processes and concurrency.
//! `/hello` in a closed loop at a few connection counts, for each layout; req/s, p50, p99,
//! the hub's and the workers' CPU per request, the workers' CPU at rest, and the C worker's
//! req/s over the Rust worker's round by round and their median (the aim: at least 0.9).

use std::sync::Arc;

use super::{
    cpu_us, extra_f64, median_of, median_ratio, opt, round_ratios, start_all, Ctx, Scenario,
};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, thousands};

const NAME: &str = "capi";
/// The Rust SDK's worker, the reference of the ratios, and the C worker.
const REFERENCE: System = System::PullmanTcp;
const C_WORKER: System = System::PullmanC;
const SYSTEMS: [System; 2] = [REFERENCE, C_WORKER];
/// Worker processes x concurrency: one process of hello.c's 4 pull threads, and two of
/// concurrency 2 (hello.c still runs 4 threads each, taking 2 requests at a time).
const LAYOUTS: [(usize, usize); 2] = [(1, 4), (2, 2)];
/// Connections: one request at a time (the hop's latency), as many as slots, and a queue
/// of 8 per slot in front of them.
const CONNS: [usize; 3] = [1, 4, 32];
/// The acceptance criterion: the C worker's `/hello` req/s over the Rust worker's.
const AIM: f64 = 0.9;

struct Capi;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Capi)
}

/// "1x4": processes x concurrency.
fn layout_name(workers: usize, concurrency: usize) -> String {
    format!("{workers}x{concurrency}")
}

/// The record variant of a layout at `conns` connections.
fn variant(workers: usize, concurrency: usize, conns: usize) -> String {
    format!("{} conns={conns}", layout_name(workers, concurrency))
}


impl Scenario for Capi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let rounds = ctx.rounds(5);
        let secs = ctx.secs(4.0, 0.5);
        let rest = ctx.secs(3.0, 0.5);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        let mut down: Vec<String> = Vec::new();
        for (workers, concurrency) in LAYOUTS {
            let layout = Layout::new(workers, concurrency);
            let (systems, d) = start_all(ctx, &SYSTEMS, &layout);
            for d in d {
                if !down.contains(&d) {
                    down.push(d);
                }
            }
            ctx.warm_up(&systems, workers * concurrency)?;
            // The workers' CPU with no requests: what a worker costs the machine at rest,
            // and while the other system is measured.
            let mut at_rest = Vec::new();
            for s in &systems {
                let others = s.others();
                let before = cpu_us(&others);
                std::thread::sleep(rest);
                let spent = cpu_us(&others).saturating_sub(before);
                at_rest.push((s.system, spent as f64 / 1000.0 / rest.as_secs_f64()));
            }
            for round in 1..=rounds {
                eprintln!(
                    "  {} round {round}/{rounds}",
                    layout_name(workers, concurrency)
                );
                for conns in CONNS {
                    for s in super::in_turn(&systems, round) {
                        let target = s.target(Proto::H1)?;
                        let label = format!("{} /hello c{conns}", s.system.label());
                        let m = ctx.measure(
                            s,
                            load::closed_loop(&target, conns, 1, secs, spec.clone(), &label),
                       )?;
                       let mut extra = serde_json::Map::new();
                       if let Some(cpu) = m.others_cpu_us_per_req {
                           extra.insert("workers_cpu_us_per_req".into(), cpu.into());
                       }
                        if let Some(&(_, x)) = at_rest.iter().find(|(a, _)| *a == s.system) {
                            extra.insert("workers_cpu_ms_per_s_at_rest".into(), x.into());
                        }
                        ctx.record(
                            NAME,
                            s.system.label(),
                            &variant(workers, concurrency, conns),
                            round,
                            &m,
                            extra,
                        );
                    }
                }
            }
            drop(systems);
        }
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "9. The C worker: pullman's C API against the Rust SDK",
            &format!(
                "pullman's hub (the configuration of `pullman (TCP)` in the other sections) with \
two kinds of worker dialling it over TCP: the Rust SDK's `pullman worker --app demo --threads 1 \
--concurrency C` (label `{r}`), and `examples/c/hello.c` (respond mode, a `pm_worker_next` pull loop on 4 \
threads, `pm_request_respond`) compiled with `cc -O2` against `target/release/libpullman_capi.a` \
and run with `--concurrency C` (label `{c}`). Layouts: P worker processes x concurrency C, \
{layouts}; hello.c runs its 4 pull threads whatever C is. `GET /hello`, closed loop \
(`pullman-bench`, HTTP/1.1, one thread), N connections for {} s per system and round, \
{rounds} round(s) per layout, the two systems alternating (each round starts with the other). \
CPU: user+system time per answered request of the hub, and of the worker processes together. \
At rest: the worker processes' CPU over {} s with no requests, after the warm-up. Ratio: \
the C worker's req/s over the Rust worker's in the same round; the median over rounds in the \
table, every round below it.",
                secs.as_secs_f64(),
                rest.as_secs_f64(),
                r = REFERENCE.label(),
                c = C_WORKER.label(),
                layouts = LAYOUTS
                    .iter()
                    .map(|&(p, c)| format!("{p} x {c}"))
                    .collect::<Vec<_>>()
                    .join(" and "),
            ),
        );
        let reference = REFERENCE.label();
        let mut rows = Vec::new();
        for (workers, concurrency) in LAYOUTS {
            for conns in CONNS {
                let v = variant(workers, concurrency, conns);
                for s in SYSTEMS {
                    let l = s.label();
                    let of = super::of(&recs, l, &v);
                    if of.is_empty() {
                        continue;
                    }
                    let errors: u64 = of.iter().map(|r| r.errors).sum();
                    rows.push(vec![
                        format!("{workers} x {concurrency}"),
                        conns.to_string(),
                        l.to_string(),
                        thousands(median_of(&recs, l, &v, |r| r.req_per_s)),
                        ms(median_of(&recs, l, &v, |r| r.p50_ms)),
                        ms(median_of(&recs, l, &v, |r| r.p99_ms)),
                        super::median_cell(of.iter().copied(), |r| r.cpu_us_per_req),
                        super::median_cell(of.iter().copied(), |r| {
                            extra_f64(r, "workers_cpu_us_per_req")
                        }),
                        opt(
                            median_ratio(&recs, l, reference, &v, |r| r.req_per_s),
                            |x| format!("{x:.2}"),
                        ),
                        errors.to_string(),
                    ]);
                }
            }
        }
        md.push_str(&report::table(
            &[
                "processes x concurrency",
                "conns",
                "system",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req (hub)",
                "CPU µs/req (workers)",
                "req/s ÷ Rust worker",
                "errors",
            ],
            &rows,
        ));
        md.push('\n');
        let c = C_WORKER.label();
        let mut medians = Vec::new();
        for (workers, concurrency) in LAYOUTS {
            let mut parts = Vec::new();
            for conns in CONNS {
                let v = variant(workers, concurrency, conns);
                let per_round = round_ratios(&recs, c, reference, &v, |r| r.req_per_s);
                let Some(x) = median_ratio(&recs, c, reference, &v, |r| r.req_per_s) else {
                    continue;
                };
                let connections = if conns == 1 { "connection" } else { "connections" };
                medians.push((
                    format!("{workers} x {concurrency}, {conns} {connections}"),
                    x,
                ));
                let rounds: Vec<String> =
                    per_round.iter().map(|(_, r)| format!("{r:.2}")).collect();
                parts.push(format!("**{x:.2} at {conns}** ({})", rounds.join(", ")));
            }
            if !parts.is_empty() {
                md.push_str(&format!(
                    "- {c} / {reference} req/s, {workers} x {concurrency}, by connections \
(median, then round by round): {}\n",
                    parts.join("; ")
                ));
            }
        }
        for (workers, concurrency) in LAYOUTS {
            let v = variant(workers, concurrency, CONNS[0]);
            let rest: Vec<String> = SYSTEMS
                .iter()
                .filter_map(|s| {
                    let r = super::of(&recs, s.label(), &v).into_iter().next()?;
                    let x = extra_f64(r, "workers_cpu_ms_per_s_at_rest")?;
                    Some(format!("{} {x:.1}", s.label()))
                })
                .collect();
            if !rest.is_empty() {
                md.push_str(&format!(
                    "- Workers' CPU at rest, {workers} x {concurrency}, ms per second: {}\n",
                    rest.join(", ")
                ));
            }
        }
        if !medians.is_empty() {
            let short: Vec<&str> = medians
                .iter()
                .filter(|(_, x)| *x < AIM)
                .map(|(w, _)| w.as_str())
                .collect();
            let (low_at, low) = medians
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(w, x)| (w.as_str(), *x))
                .unwrap_or(("", 0.0));
            md.push_str(&format!(
                "\n**{c} / {reference} req/s: lowest median {low:.2} ({low_at})** (aim: ≥ \
{AIM} everywhere; {}).\n",
                if short.is_empty() {
                    "met".to_string()
                } else {
                    format!(
                        "**not met** at {} of {}: {}",
                        short.len(),
                        medians.len(),
                        short.join("; ")
                    )
                }
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
