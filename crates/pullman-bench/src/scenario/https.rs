//! The HTTPS scenario: `/hello` over TLS, HTTP/1.1 and h2 (by ALPN), through pullman's TLS
//! listener and through nginx's, both serving the same certificate made for the run, in a
//! closed loop. The load client checks the certificate against the run's authority.

use std::sync::Arc;

use super::{
    extra_f64, median_of, median_ratio, opt, round_ratios, start_all, Ctx, Scenario,
};
use crate::error::Error;
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System, TlsFiles};
use crate::report::{self, ms, thousands};

const NAME: &str = "https";
const SYSTEMS: [System; 2] = [System::NginxTls, System::PullmanTls];
/// Concurrency of the one worker (and nginx's upstream server's limit), as in `overhead`.
const WORKER_CONCURRENCY: usize = 64;
/// The loads: protocol, connections and streams per connection (32 requests at once each).
const LOADS: [(Proto, usize, usize); 2] = [(Proto::H1, 32, 1), (Proto::H2, 8, 4)];
/// The record's extra: CPU per answered request of the processes behind the middle one
/// (pullman's worker; nginx's upstream server), µs.
const BEHIND_CPU: &str = "behind_cpu_us_per_req";
/// pullman's aim: req/s over nginx's, for each protocol.
const AIM_VS_NGINX: f64 = 1.3;

struct Https;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Https)
}

fn variant(proto: Proto, conns: usize, streams: usize) -> String {
    format!("{} conns={conns} streams={streams}", proto_name(proto))
}

fn proto_name(proto: Proto) -> &'static str {
    match proto {
        Proto::H1 => "HTTP/1.1",
        Proto::H2 => "h2",
    }
}

impl Scenario for Https {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let mut layout = Layout::new(1, WORKER_CONCURRENCY);
        layout.tls = Some(Arc::new(TlsFiles::generate()?));
        let (systems, down) = start_all(ctx, &SYSTEMS, &layout);
        let rounds = ctx.rounds(3);
        let secs = ctx.secs(10.0, 2.0);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        ctx.warm_up(&systems, 32)?;
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for (proto, conns, streams) in LOADS {
                for s in super::in_turn(&systems, round) {
                    let target = s.target(proto)?;
                    let v = variant(proto, conns, streams);
                    let label = format!("{} {v}", s.system.label());
                    let m = ctx.measure(
                        s,
                        load::closed_loop(&target, conns, streams, secs, spec.clone(), &label),
                    )?;
                    let mut extra = serde_json::Map::new();
                    if let Some(cpu) = m.others_cpu_us_per_req {
                        extra.insert(BEHIND_CPU.into(), cpu.into());
                    }
                    ctx.record(NAME, s.system.label(), &v, round, &m, extra);
                }
            }
        }
        drop(systems);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "11. HTTPS: `/hello` over TLS, HTTP/1.1 and h2",
            &format!(
                "pullman's client listener over TLS (`[hub.tls]`, rustls with the ring \
provider) and nginx's (`listen ... ssl http2`, OpenSSL), each serving the same ECDSA P-256 \
certificate for `localhost` made for the run, TLS 1.2 and 1.3. One worker of concurrency \
{WORKER_CONCURRENCY} behind each (pullman: `pullman worker --threads 1`; nginx: \
`pullman-bench server`, one thread, same limit), as in the overhead scenario. The load \
generator (`pullman-bench`, one thread, rustls) checks the certificate, asks for `localhost` \
by SNI and offers one ALPN name: `http/1.1` with 32 connections, or `h2` with 8 connections \
of 4 streams each; connections stay open, so handshakes are not what is measured. {:.0} s \
per system, load and round, {rounds} round(s), systems alternating. CPU is the middle \
process's user+system time per answered request, and that of the processes behind it (the \
worker; the upstream server). Ratio: req/s over nginx's in the same \
round, median over rounds.",
                secs.as_secs_f64()
            ),
        );
        let nginx = System::NginxTls.label();
        let mut rows = Vec::new();
        for (proto, conns, streams) in LOADS {
            let v = variant(proto, conns, streams);
            for s in &SYSTEMS {
                let l = s.label();
                if super::of(&recs, l, &v).is_empty() {
                    continue;
                }
                let errors: u64 = super::of(&recs, l, &v).iter().map(|r| r.errors).sum();
                rows.push(vec![
                    proto_name(proto).to_string(),
                    format!("{conns} x {streams}"),
                    l.to_string(),
                    thousands(median_of(&recs, l, &v, |r| r.req_per_s)),
                    ms(median_of(&recs, l, &v, |r| r.p50_ms)),
                    ms(median_of(&recs, l, &v, |r| r.p99_ms)),
                    super::median_cell(super::of(&recs, l, &v), |r| r.cpu_us_per_req),
                    super::median_cell(super::of(&recs, l, &v), |r| extra_f64(r, BEHIND_CPU)),
                    opt(median_ratio(&recs, l, nginx, &v, |r| r.req_per_s), |x| {
                        format!("{x:.2}")
                    }),
                    errors.to_string(),
                ]);
            }
        }
        md.push_str(&report::table(
            &[
                "protocol",
                "conns x streams",
                "system",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req (middle)",
                "CPU µs/req (behind)",
                "req/s ÷ nginx (TLS)",
                "errors",
            ],
            &rows,
        ));
        md.push('\n');
        let pm = System::PullmanTls.label();
        for (proto, conns, streams) in LOADS {
            let v = variant(proto, conns, streams);
            let Some(x) = median_ratio(&recs, pm, nginx, &v, |r| r.req_per_s) else {
                continue;
            };
            let per_round: Vec<String> = round_ratios(&recs, pm, nginx, &v, |r| r.req_per_s)
                .iter()
                .map(|(_, r)| format!("{r:.2}"))
                .collect();
            md.push_str(&format!(
                "\n**{pm} / {nginx} req/s, {}: {x:.2}** (rounds: {}; aim ≥ {AIM_VS_NGINX}: \
{}).\n",
                proto_name(proto),
                per_round.join(", "),
                if x >= AIM_VS_NGINX {
                    "met"
                } else {
                    "**not met**"
                }
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
