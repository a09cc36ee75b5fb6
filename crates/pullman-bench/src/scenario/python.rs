//! The python scenario: one Python app (`bench/python_app.py`, no framework) served by
//! pullman's Python runners behind pullman's hub and by the Python servers people run it
//! with today, side by side in the same rounds. WSGI, one process running one request at a
//! time: `python -m pullman.wsgi --threads 1 --prefetch 8` behind the hub, granian (`--interface wsgi
//! --blocking-threads 1`, one worker) and gunicorn (one sync worker) serving it directly, and
//! POTHEAD's worker (`--workers 1`) behind POTHEAD's hub. ASGI, one process:
//! `python -m pullman.asgi` behind the hub, and uvicorn (`--http httptools`) directly.
//! `/hello` in a closed loop at a few connection counts; req/s, p50, p99, the hub's CPU per
//! request, the Python process's (for a direct server, the server's), and the ratios issue
//! 18 sets targets for, round by round and their median.

use std::sync::Arc;

use super::{
    extra_f64, median_of, median_ratio, opt, round_ratios, start_all, Ctx, Scenario,
};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::python::WSGI_PREFETCH;
use crate::peers::{Layout, System};
use crate::report::{self, ms, thousands};

const NAME: &str = "python";
/// The WSGI systems: one process, one request at a time.
const WSGI: [System; 4] = [
    System::PullmanWsgi,
    System::Granian,
    System::Gunicorn,
    System::Pothead,
];
/// The ASGI systems: one process, an event loop.
const ASGI: [System; 2] = [System::PullmanAsgi, System::Uvicorn];
/// Requests the ASGI runner takes at once (`--limit`, its default): above the most
/// connections measured, so the hub never queues for want of credits, as uvicorn never
/// queues in front of its event loop.
const ASGI_LIMIT: usize = 100;
/// Connections: one request at a time (the whole path's latency), a few, and many queued.
const CONNS: [usize; 3] = [1, 8, 32];

/// A ratio the issue names: `system`'s req/s over `reference`'s, and its target.
struct Ratio {
    system: System,
    reference: System,
    aim: Option<f64>,
}

const RATIOS: [Ratio; 4] = [
    Ratio {
        system: System::PullmanWsgi,
        reference: System::Granian,
        aim: Some(0.8),
    },
    Ratio {
        system: System::PullmanWsgi,
        reference: System::Gunicorn,
        aim: Some(5.0),
    },
    Ratio {
        system: System::PullmanWsgi,
        reference: System::Pothead,
        aim: None,
    },
    Ratio {
        system: System::PullmanAsgi,
        reference: System::Uvicorn,
        aim: Some(1.0),
    },
];

struct Python;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Python)
}

/// The record variant at `conns` connections.
fn variant(conns: usize) -> String {
    format!("/hello conns={conns}")
}


/// The Python process's CPU per request, in a record's `extra`.
const PYTHON_CPU: &str = "python_cpu_us_per_req";

impl Scenario for Python {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let rounds = ctx.rounds(5);
        let secs = ctx.secs(3.0, 0.5);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        let (mut systems, mut down) = start_all(ctx, &WSGI, &Layout::new(1, 1));
        let (asgi, asgi_down) = start_all(ctx, &ASGI, &Layout::new(1, ASGI_LIMIT));
        systems.extend(asgi);
        down.extend(asgi_down);
        ctx.warm_up(&systems, CONNS[1])?;
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
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
                       extra.insert(PYTHON_CPU.into(), cpu.into());
                   }
                    ctx.record(NAME, s.system.label(), &variant(conns), round, &m, extra);
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "10. Python apps: pullman's runners against granian, gunicorn, uvicorn and POTHEAD",
            &format!(
                "One app, `bench/python_app.py` (no framework: `/hello` answers a fixed 18-byte \
text body with its length), as WSGI and as ASGI, in the venv of `bench/setup.sh`. WSGI, one \
process running one request at a time: `{pw}` is pullman's hub (the configuration of `pullman \
(TCP)` in the other sections) with `python -m pullman.wsgi --threads 1 --prefetch \
{WSGI_PREFETCH} python_app:wsgi` dialling it over TCP (one thread runs the app; up to \
{WSGI_PREFETCH} more requests wait in the process, read ahead, as requests wait in granian's \
own queue); `{g}` is `granian --interface wsgi --workers 1 --blocking-threads 1`, `{gu}` is \
`gunicorn --workers 1 --worker-class sync` (which closes each connection after its answer), \
both serving the app directly; `{p}` is POTHEAD 0.10.6's hub with one `python -m \
pothead.worker --workers 1` process on `bench/pothead_app.py` (whose `/hello` is the same few \
lines; POTHEAD's worker reconnects for every job). ASGI, one process with an asyncio event \
loop: `{pa}` is the hub with `python -m pullman.asgi --limit {ASGI_LIMIT} python_app:asgi`; \
`{u}` is `uvicorn --http httptools` serving the app directly (no uvloop installed: both run \
asyncio's loop). `GET /hello`, closed loop (`pullman-bench`, HTTP/1.1, one thread), N \
connections for {} s per system and round, {rounds} round(s), the six systems alternating \
(each round starts one further along). CPU: user+system time per answered request of the hub \
(none for a direct server), and of the Python process (pullman's runner, POTHEAD's worker, \
or the direct server with its worker processes); total is both. Ratios: req/s over the \
reference's in the same round; the median over rounds, then every round.",
                secs.as_secs_f64(),
                pw = System::PullmanWsgi.label(),
                g = System::Granian.label(),
                gu = System::Gunicorn.label(),
                p = System::Pothead.label(),
                pa = System::PullmanAsgi.label(),
                u = System::Uvicorn.label(),
            ),
        );
        let mut rows = Vec::new();
        for conns in CONNS {
            let v = variant(conns);
            for s in WSGI.iter().chain(&ASGI) {
                let l = s.label();
                let of = super::of(&recs, l, &v);
                if of.is_empty() {
                    continue;
                }
                let errors: u64 = of.iter().map(|r| r.errors).sum();
                let hub: Vec<f64> = of.iter().filter_map(|r| r.cpu_us_per_req).collect();
                let py: Vec<f64> = of.iter().filter_map(|r| extra_f64(r, PYTHON_CPU)).collect();
                let total: Vec<f64> = of
                    .iter()
                    .filter_map(|r| Some(r.cpu_us_per_req.unwrap_or(0.0) + extra_f64(r, PYTHON_CPU)?))
                    .collect();
                let median = |v: Vec<f64>| (!v.is_empty()).then(|| report::median(v));
                let us = |c: f64| format!("{c:.1}");
                rows.push(vec![
                    conns.to_string(),
                    l.to_string(),
                    thousands(median_of(&recs, l, &v, |r| r.req_per_s)),
                    ms(median_of(&recs, l, &v, |r| r.p50_ms)),
                    ms(median_of(&recs, l, &v, |r| r.p99_ms)),
                    opt(median(hub), us),
                    opt(median(py), us),
                    opt(median(total), us),
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
                "CPU µs/req (hub)",
                "CPU µs/req (Python process)",
                "CPU µs/req (total)",
                "errors",
            ],
            &rows,
        ));
        md.push('\n');

        let mut ratio_rows = Vec::new();
        let mut missed = Vec::new();
        for ratio in &RATIOS {
            let (sys, reference) = (ratio.system.label(), ratio.reference.label());
            let mut row = vec![format!("{sys} ÷ {reference}")];
            for conns in CONNS {
                let v = variant(conns);
                let per_round: Vec<String> =
                    round_ratios(&recs, sys, reference, &v, |r| r.req_per_s)
                        .iter()
                        .map(|(_, x)| format!("{x:.2}"))
                        .collect();
                let median = median_ratio(&recs, sys, reference, &v, |r| r.req_per_s);
                match (median, ratio.aim) {
                    (Some(x), Some(aim)) if x < aim => {
                        missed.push(format!("{sys} ÷ {reference} at {conns}: {x:.2}"));
                    }
                    (None, Some(_)) => {
                        missed.push(format!("{sys} ÷ {reference} at {conns}: not measured"));
                    }
                    _ => {}
                }
                row.push(opt(median, |x| {
                    format!("**{x:.2}** ({})", per_round.join(", "))
                }));
            }
            row.push(opt(ratio.aim, |a| format!("≥ {a}")));
            ratio_rows.push(row);
        }
        let headers: Vec<String> = std::iter::once("req/s ratio".to_string())
            .chain(CONNS.iter().map(|c| format!("{c} conns")))
            .chain(std::iter::once("target".to_string()))
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        md.push_str(&report::table(&headers, &ratio_rows));
        md.push('\n');
        md.push_str(&if missed.is_empty() {
            "**Targets: met at every connection count measured.**\n".to_string()
        } else {
            format!("**Targets not met**: {}.\n", missed.join("; "))
        });
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
