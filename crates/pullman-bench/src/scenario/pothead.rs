//! The pothead scenario: the same POTHEAD worker processes (`bench/pothead_app.py` under
//! `python -m pothead.worker`, one process of one thread per slot) behind POTHEAD's own hub
//! and behind pullman's hub on its PTTH port, and `pullman worker --app demo` processes (one
//! slot each) behind pullman's hub, the same number of slots for all three. `/hello` and a
//! short sleep in a closed loop at a few connection counts; req/s, p50, p99, the middle
//! process's CPU per request, and ratios to POTHEAD's hub in the same round. GETs only:
//! POTHEAD's hub does not forward request bodies.

use std::sync::Arc;

use super::{median_of, median_ratio, opt, start_all, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, thousands};

const NAME: &str = "pothead";
const SYSTEMS: [System; 3] = [System::Pothead, System::PullmanPtth, System::PullmanTcp];
/// The reference of the ratios.
const REFERENCE: System = System::Pothead;
/// Worker slots of every system: processes of concurrency 1 (a POTHEAD worker process with
/// `--workers 1` holds one connection to its hub at a time).
const SLOTS: usize = 4;
/// The requests: the hop alone, and a short job that keeps a slot busy.
const PATHS: [&str; 2] = ["/hello", "/sleep?ms=5"];
/// Connections: one request at a time (the hop's latency), as many as slots, and a queue
/// of 8 per slot in front of them.
const CONNS: [usize; 3] = [1, SLOTS, 8 * SLOTS];

struct Pothead;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Pothead)
}

/// The record variant of `path` at `conns` connections.
fn variant(path: &str, conns: usize) -> String {
    format!("{path} conns={conns}")
}

impl Scenario for Pothead {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let layout = Layout::new(SLOTS, 1);
        let (systems, down) = start_all(ctx, &SYSTEMS, &layout);
        let rounds = ctx.rounds(3);
        let secs = ctx.secs(4.0, 0.5);
        ctx.warm_up(&systems, SLOTS)?;
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for path in PATHS {
                let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
                    Arc::new(move |_| RequestSpec::get(path));
                for conns in CONNS {
                    for s in super::in_turn(&systems, round) {
                        let target = s.target(Proto::H1)?;
                        let label = format!("{} {path} c{conns}", s.system.label());
                        let m = ctx.measure(
                            s,
                            load::closed_loop(&target, conns, 1, secs, spec.clone(), &label),
                        )?;
                        ctx.record(
                            NAME,
                            s.system.label(),
                            &variant(path, conns),
                            round,
                            &m,
                            Default::default(),
                        );
                    }
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "8. POTHEAD's workers: POTHEAD's hub against pullman's PTTH port",
            &format!(
                "The same POTHEAD 0.10.6 worker processes (`python -m pothead.worker --workers 1 \
pothead_app:app`, `bench/pothead_app.py`, {SLOTS} processes, so {SLOTS} slots) behind POTHEAD's \
own hub (`bench/pothead_hub.py`) and behind pullman's hub on a PTTH worker port \
(`workers_listen = [\"ptth://127.0.0.1:0?pool=bench\"]`, each worker connection one slot); \
and, for the same work natively, {SLOTS} `pullman worker --app demo` processes of \
concurrency 1 (one thread) behind pullman's hub over TCP. GETs only: POTHEAD's hub does not \
forward request bodies. Closed loop (`pullman-bench`, HTTP/1.1, one thread), N connections \
for {} s per system and round, {rounds} round(s), systems alternating (each round starts \
with the next). CPU is the middle process's (the hub's) user+system time per answered \
request; POTHEAD's workers reconnect for every job, behind either hub. Ratios: over POTHEAD's \
hub in the same round, median over rounds.",
                secs.as_secs_f64()
            ),
        );
        let reference = REFERENCE.label();
        let mut rows = Vec::new();
        for path in PATHS {
            for conns in CONNS {
                let v = variant(path, conns);
                for s in SYSTEMS {
                    let l = s.label();
                    let of = super::of(&recs, l, &v);
                    if of.is_empty() {
                        continue;
                    }
                    let errors: u64 = of.iter().map(|r| r.errors).sum();
                    rows.push(vec![
                        format!("`{path}`"),
                        conns.to_string(),
                        l.to_string(),
                        thousands(median_of(&recs, l, &v, |r| r.req_per_s)),
                        ms(median_of(&recs, l, &v, |r| r.p50_ms)),
                        ms(median_of(&recs, l, &v, |r| r.p99_ms)),
                        super::median_cell(of.iter().copied(), |r| r.cpu_us_per_req),
                        opt(median_ratio(&recs, l, reference, &v, |r| r.req_per_s), |x| {
                            format!("{x:.2}")
                        }),
                        opt(median_ratio(&recs, l, reference, &v, |r| r.p99_ms), |x| {
                            format!("{x:.2}")
                        }),
                        errors.to_string(),
                    ]);
                }
            }
        }
        md.push_str(&report::table(
            &[
                "request",
                "conns",
                "system",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req (hub)",
                "req/s ÷ POTHEAD",
                "p99 ÷ POTHEAD",
                "errors",
            ],
            &rows,
        ));
        md.push('\n');
        let ptth = System::PullmanPtth.label();
        for path in PATHS {
            let ratios: Vec<String> = CONNS
                .iter()
                .filter_map(|&c| {
                    let x = median_ratio(&recs, ptth, reference, &variant(path, c), |r| {
                        r.req_per_s
                    })?;
                    Some(format!("{x:.2} at {c}"))
                })
                .collect();
            if !ratios.is_empty() {
                md.push_str(&format!(
                    "- {ptth} / {reference} req/s, `{path}`, by connections: **{}**\n",
                    ratios.join(", ")
                ));
            }
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
