//! The transport scenario: the same hub and worker over TCP, a Unix socket and shared
//! memory. Round trips with 1 KiB, 64 KiB and 1 MiB request bodies (`POST /sink`: the worker
//! reads the body and answers its length) one request at a time, measured twice: over HTTP
//! through the hub (client, front, link, worker), and on the link alone (`link_hub`: this
//! process plays the hub's end of the link to a real worker process, so the transport's
//! share is not hidden under HTTP's). And `/hello` req/s in a closed loop at 32 connections.

use std::sync::Arc;

use bytes::Bytes;

use super::{median_of, median_ratio, opt, start_all, Ctx, Measured, Scenario};
use crate::error::Error;
use crate::link_hub::{LinkHub, LinkTransport};
use crate::load::{self, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, ms, thousands};

const NAME: &str = "transport";
const SYSTEMS: [System; 3] = [System::PullmanTcp, System::PullmanUnix, System::PullmanShm];
const KIB: usize = 1024;
/// Request body sizes of the round trips.
const BODIES: [(usize, &str); 3] = [(KIB, "1 KiB"), (64 * KIB, "64 KiB"), (1024 * KIB, "1 MiB")];
/// Connections of the `/hello` runs.
const HELLO_CONNS: usize = 32;
/// Concurrency of the one worker.
const WORKER_CONCURRENCY: usize = 64;
/// Aim: shared memory's p50 round trip over the Unix socket's.
const AIM_P50_VS_UNIX: f64 = 0.5;
/// The link round trips' transports.
const LINKS: [LinkTransport; 3] = [LinkTransport::Tcp, LinkTransport::Unix, LinkTransport::Shm];
/// Untimed link round trips before each timed run: the first touches of the arenas' pages
/// and the sockets' buffers are start-up costs, not the transport's.
const LINK_WARM_UP: usize = 200;

/// The record label of a link round trip over `t`.
fn link_label(t: LinkTransport) -> String {
    format!("link ({})", t.label())
}

struct Transport;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Transport)
}

impl Scenario for Transport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let layout = Layout::new(1, WORKER_CONCURRENCY);
        let (systems, mut down) = start_all(ctx, &SYSTEMS, &layout);
        let mut links = Vec::new();
        for t in LINKS {
            eprintln!("  starting a link hub and a worker over {}", t.label());
            match ctx.block_on(LinkHub::start(&ctx.env, t)) {
                Ok(hub) => links.push((t, hub)),
                Err(e) => {
                    eprintln!("  {} did not start: {e}", link_label(t));
                    down.push(format!("- {} could not run: {e}\n", link_label(t)));
                }
            }
        }
        let rounds = ctx.rounds(3);
        let secs = ctx.secs(5.0, 1.0);
        for round in 1..=rounds {
            eprintln!("  round {round}/{rounds}");
            for (size, name) in BODIES {
                let body = Bytes::from(vec![7u8; size]);
                for (t, hub) in super::in_turn(&links, round) {
                    let worker = hub.worker();
                    let before = worker.cpu();
                    let result = ctx.block_on(hub.run(&body, secs, LINK_WARM_UP))?;
                    let cpu_us_per_req = (result.ok > 0)
                        .then(|| (worker.cpu().micros - before.micros) as f64 / result.ok as f64);
                    let m = Measured {
                        result,
                        cpu_us_per_req,
                        others_cpu_us_per_req: None,
                    };
                    ctx.record(NAME, &link_label(*t), name, round, &m, Default::default());
                }
            }
            for (size, name) in BODIES {
                let body = Bytes::from(vec![7u8; size]);
                let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
                    Arc::new(move |_| RequestSpec::post("/sink", body.clone()));
                for s in super::in_turn(&systems, round) {
                    let target = s.target(Proto::H1)?;
                    let label = format!("{} {name}", s.system.label());
                    let m = ctx.measure(
                        s,
                        load::closed_loop(&target, 1, 1, secs, spec.clone(), &label),
                    )?;
                    ctx.record(NAME, s.system.label(), name, round, &m, Default::default());
                }
            }
            let hello: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
                Arc::new(|_| RequestSpec::get("/hello"));
            for s in super::in_turn(&systems, round) {
                let target = s.target(Proto::H1)?;
                let label = format!("{} /hello", s.system.label());
                let m = ctx.measure(
                    s,
                    load::closed_loop(&target, HELLO_CONNS, 1, secs, hello.clone(), &label),
                )?;
                ctx.record(NAME, s.system.label(), "/hello", round, &m, Default::default());
            }
        }
        drop(systems);
        drop(links);
        let recs = super::scenario_records(ctx, NAME);

        let mut md = ctx.preamble(
            "6. Transport: TCP, Unix socket and shared memory",
            &format!(
                "One hub and one `pullman worker --app demo` of concurrency {WORKER_CONCURRENCY} \
(one thread) per transport: over TCP, over a Unix socket, and over a Unix socket switched to \
shared memory (`--shm`). Round trip: one connection, one `POST /sink` at a time for {:.0} s \
(the worker reads the whole body and answers its length), so the figure is the latency of \
one request with its body through client, hub, transport and worker. `/hello`: closed loop, \
{HELLO_CONNS} connections. {rounds} round(s), transports alternating (each round starts with the next); medians over rounds.\n\n\
**Link round trip**: the transport alone. `pullman-bench` plays the hub's end of one worker \
link itself (`pullman-link`, the hub's handshake, for shared memory the hub's own `ShmOffer` \
of arenas and doorbells) against a real `pullman worker --app demo` process (one thread; \
`--shm` for shared memory), and times one `POST /sink` at a time for {:.0} s (after \
{LINK_WARM_UP} untimed) from handing the REQUEST and its body to the link until the \
response's last byte has arrived; no HTTP, no hub front. The bench's end runs on one thread, \
like the worker. CPU is the worker process's, per round trip.",
                secs.as_secs_f64(),
                secs.as_secs_f64()
            ),
        );
        md.push_str("### Link round trip (the transport alone)\n\n");
        let link_unix = link_label(LinkTransport::Unix);
        let link_shm = link_label(LinkTransport::Shm);
        let mut link_rows = Vec::new();
        for (_, name) in BODIES {
            for t in LINKS {
                let l = link_label(t);
                if super::of(&recs, &l, name).is_empty() {
                    continue;
                }
                link_rows.push(vec![
                    name.to_string(),
                    t.label().to_string(),
                    us(median_of(&recs, &l, name, |r| r.p50_ms)),
                    us(median_of(&recs, &l, name, |r| r.p99_ms)),
                    thousands(median_of(&recs, &l, name, |r| r.req_per_s)),
                    opt(
                        median_ratio(&recs, &l, &link_unix, name, |r| r.p50_ms),
                        |x| format!("{x:.2}"),
                    ),
                    opt(
                        Some(median_of(&recs, &l, name, |r| {
                            r.cpu_us_per_req.unwrap_or(f64::NAN)
                        }))
                        .filter(|x| x.is_finite()),
                        |x| format!("{x:.1}"),
                    ),
                ]);
            }
        }
        md.push_str(&report::table(
            &[
                "request body",
                "transport",
                "p50 µs",
                "p99 µs",
                "round trips/s",
                "p50 ÷ Unix p50",
                "worker CPU µs/round trip",
            ],
            &link_rows,
        ));
        md.push('\n');
        for (_, name) in BODIES {
            if let Some(x) = median_ratio(&recs, &link_shm, &link_unix, name, |r| r.p50_ms) {
                md.push_str(&format!(
                    "- shared memory / Unix socket p50 link round trip, {name} body: **{x:.2}** \
(aim ≤ {AIM_P50_VS_UNIX}: {})\n",
                    if x <= AIM_P50_VS_UNIX { "met" } else { "**not met**" }
                ));
            }
        }
        md.push_str("\n### HTTP round trip and `/hello` (client, hub, transport, worker)\n\n");
        let unix = System::PullmanUnix.label();
        let mut rows = Vec::new();
        for (_, name) in BODIES {
            for s in SYSTEMS {
                let l = s.label();
                if super::of(&recs, l, name).is_empty() {
                    continue;
                }
                rows.push(vec![
                    format!("round trip, {name} body"),
                    l.to_string(),
                    ms(median_of(&recs, l, name, |r| r.p50_ms)),
                    ms(median_of(&recs, l, name, |r| r.p99_ms)),
                    thousands(median_of(&recs, l, name, |r| r.req_per_s)),
                    opt(median_ratio(&recs, l, unix, name, |r| r.p50_ms), |x| {
                        format!("{x:.2}")
                    }),
                ]);
            }
        }
        for s in SYSTEMS {
            let l = s.label();
            if super::of(&recs, l, "/hello").is_empty() {
                continue;
            }
            rows.push(vec![
                format!("/hello, {HELLO_CONNS} connections"),
                l.to_string(),
                ms(median_of(&recs, l, "/hello", |r| r.p50_ms)),
                ms(median_of(&recs, l, "/hello", |r| r.p99_ms)),
                thousands(median_of(&recs, l, "/hello", |r| r.req_per_s)),
                opt(median_ratio(&recs, l, unix, "/hello", |r| r.p50_ms), |x| {
                    format!("{x:.2}")
                }),
            ]);
        }
        md.push_str(&report::table(
            &["what", "transport", "p50 ms", "p99 ms", "req/s", "p50 ÷ Unix p50"],
            &rows,
        ));
        let shm = System::PullmanShm.label();
        md.push('\n');
        for (_, name) in BODIES {
            if let Some(x) = median_ratio(&recs, shm, unix, name, |r| r.p50_ms) {
                md.push_str(&format!(
                    "- shared memory / Unix socket p50 round trip, {name} body: **{x:.2}** (aim ≤ \
{AIM_P50_VS_UNIX}: {})\n",
                    if x <= AIM_P50_VS_UNIX { "met" } else { "**not met**" }
                ));
            }
        }
        if let Some(x) = median_ratio(&recs, shm, unix, "/hello", |r| r.req_per_s) {
            md.push_str(&format!(
                "- shared memory / Unix socket `/hello` req/s: **{x:.2}** (aim > 1: {})\n",
                if x > 1.0 { "met" } else { "**not met**" }
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}

/// Milliseconds as whole microseconds.
fn us(ms: f64) -> String {
    format!("{:.0}", ms * 1000.0)
}
