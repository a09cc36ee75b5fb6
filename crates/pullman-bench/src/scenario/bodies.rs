//! Scenario 4, bodies: 1 MiB and 64 MiB downloads (`/bytes?n=`) and uploads (`POST /echo`,
//! the body comes back) through each system, back to back on one connection. MB/s and the
//! middle process's peak RSS during the run (VmHWM, reset before each run).

use std::sync::Arc;

use bytes::Bytes;

use super::{median_of, median_ratio, opt, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, thousands};

const NAME: &str = "bodies";
const SYSTEMS: [System; 7] = [
    System::Direct,
    System::Nginx,
    System::Haproxy,
    System::PullmanTcp,
    System::PullmanUnix,
    System::PullmanShm,
    System::Pothead,
];
const MIB: u64 = 1024 * 1024;
/// Body sizes; the quick run keeps the first only.
const SIZES: [u64; 2] = [MIB, 64 * MIB];

struct Bodies;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Bodies)
}

/// The variants: (label, size, upload?).
fn variants(quick: bool) -> Vec<(String, u64, bool)> {
    let sizes = if quick { &SIZES[..1] } else { &SIZES[..] };
    let mut v = Vec::new();
    for &n in sizes {
        v.push((format!("{} MiB download", n / MIB), n, false));
        v.push((format!("{} MiB upload+echo", n / MIB), n, true));
    }
    v
}

impl Scenario for Bodies {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let layout = Layout::new(1, 4);
        let (systems, down) = super::start_all(ctx, &SYSTEMS, &layout);
        let rounds = ctx.rounds(2);
        let secs = ctx.secs(5.0, 1.0);
        let mut skipped = Vec::new();
        for round in 1..=rounds {
            for (variant, n, upload) in variants(ctx.opts.quick) {
                for s in super::in_turn(&systems, round) {
                    if upload && s.system == System::Pothead {
                        if round == 1 {
                            skipped.push(variant.clone());
                        }
                        continue;
                    }
                    let target = s.target(Proto::H1)?;
                    let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> = if upload {
                        let body = Bytes::from(vec![7u8; n as usize]);
                        Arc::new(move |_| RequestSpec::post("/echo", body.clone()))
                    } else {
                        Arc::new(move |_| RequestSpec::get(format!("/bytes?n={n}")))
                    };
                    let reset = s.middle.is_some_and(|m| m.reset_peak());
                    let label = format!("{} {variant}", s.system.label());
                    let m = ctx.measure(s, load::closed_loop(&target, 1, 1, secs, spec, &label))?;
                    let mut extra = serde_json::Map::new();
                    let mb_s = (m.result.ok * n) as f64 / 1e6 / m.result.elapsed.as_secs_f64();
                    extra.insert("mb_per_s".into(), mb_s.into());
                    if let (Some(mid), true) = (s.middle, reset) {
                        extra.insert("peak_rss_bytes".into(), mid.peak_rss().into());
                    }
                    ctx.record(NAME, s.system.label(), &variant, round, &m, extra);
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);
        let mut md = ctx.preamble(
            "4. Bodies: large downloads and uploads",
            &format!(
                "One worker of concurrency 4 behind each system; one connection sending the \
same request back to back for {:.0} s; {rounds} round(s). Download: `GET /bytes?n=N` \
(streamed in 64 KiB chunks). Upload: `POST /echo` with an N-byte body that the worker \
sends back, so the body crosses the middle twice; MB/s counts it once. nginx runs with \
`proxy_buffering off` and `proxy_request_buffering off` (streaming, like pullman). Peak RSS: \
the middle process's VmHWM, reset (`clear_refs`) before each run (nginx: master plus \
workers, summed).",
                secs.as_secs_f64()
            ),
        );
        let field = |r: &report::Record, k: &str| {
            r.extra.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0)
        };
        let mut rows = Vec::new();
        for (variant, _, _) in variants(ctx.opts.quick) {
            for s in SYSTEMS {
                let l = s.label();
                if super::of(&recs, l, &variant).is_empty() {
                    continue;
                }
                let rss = median_of(&recs, l, &variant, |r| field(r, "peak_rss_bytes"));
                rows.push(vec![
                    variant.clone(),
                    l.to_string(),
                    thousands(median_of(&recs, l, &variant, |r| field(r, "mb_per_s"))),
                    opt(
                        median_ratio(&recs, l, System::Nginx.label(), &variant, |r| {
                            field(r, "mb_per_s")
                        }),
                        |x| format!("{x:.2}"),
                    ),
                    if rss > 0.0 {
                        format!("{:.1}", rss / MIB as f64)
                    } else {
                        "-".into()
                    },
                    super::of(&recs, l, &variant)
                        .iter()
                        .map(|r| r.errors)
                        .sum::<u64>()
                        .to_string(),
                ]);
            }
        }
        md.push_str(&report::table(
            &[
                "transfer",
                "system",
                "MB/s",
                "÷ nginx",
                "middle peak RSS MiB",
                "errors",
            ],
            &rows,
        ));
        if !skipped.is_empty() {
            md.push_str(&format!(
                "\nPOTHEAD was not sent uploads ({}): its hub (`pothead/server.py`, \
`client_handler`) forwards the method, URL and headers of a request but never its body, so \
the worker would wait for a body that never comes.\n",
                skipped.join(", ")
            ));
        }
        let pm = System::PullmanTcp.label();
        for (variant, _, _) in variants(ctx.opts.quick) {
            if let Some(x) = median_ratio(&recs, pm, System::Nginx.label(), &variant, |r| {
                field(r, "mb_per_s")
            }) {
                md.push_str(&format!(
                    "\n- pullman (TCP) / nginx MB/s, {variant}: **{x:.2}** (aim ≥ 1: {})",
                    if x >= 1.0 { "met" } else { "**not met**" }
                ));
            }
        }
        md.push('\n');
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
