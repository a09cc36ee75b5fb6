//! Scenario 5, scale: (a) 100,000 requests queued at once over HTTP/2 with no worker
//! connected: hub memory per queued request; (b) `/hello` req/s with 1, 8, 64 and 512
//! workers connected at the same total concurrency (dispatch cost should stay flat).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{median_of, Ctx, Scenario};
use crate::error::Error;
use crate::load::{self, Conn, Proto, RequestSpec};
use crate::peers::{Layout, System};
use crate::report::{self, thousands};

const NAME: &str = "scale";
/// Requests queued at once (the quick run: a tenth).
const QUEUED: usize = 100_000;
/// HTTP/2 streams per client connection: under the hub's limit of 1024 per connection.
const STREAMS_PER_CONN: usize = 1000;
/// Total worker concurrency in part (b), split evenly over the workers.
const TOTAL_CONCURRENCY: usize = 512;
const WORKER_COUNTS: [usize; 4] = [1, 8, 64, 512];
/// Client connections in part (b).
const CONNS: usize = 256;
/// Memory is sampled this often while the queue fills.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The queue counts as full once the RSS has not grown for this long.
const SETTLED: Duration = Duration::from_secs(2);
/// Hang guard on filling the queue.
const FILL_GUARD: Duration = Duration::from_secs(90);
/// pullman's aims: bytes per queued request, and req/s at 512 workers over 8.
const AIM_BYTES: f64 = 2048.0;
const AIM_FLAT: f64 = 0.9;

struct Scale;

pub(super) fn scenario() -> Box<dyn Scenario> {
    Box::new(Scale)
}

/// (a): returns (queued, bytes of hub RSS growth, baseline RSS).
fn queue_memory(ctx: &Ctx, n: usize) -> Result<(u64, u64, u64), Error> {
    let mut layout = Layout::new(1, 1);
    layout.queue_limit = n + STREAMS_PER_CONN;
    layout.timeout = Duration::from_secs(300);
    let mut running = ctx.start(System::PullmanTcp, &layout)?;
    // Stop the worker (the hub is the first process): everything sent now stays queued.
    running.procs_mut().truncate(1);
    let Some(hub) = running.middle else {
        return Err(Error::peer("pullman", "no hub process"));
    };
    std::thread::sleep(Duration::from_millis(500));
    let base = hub.rss();
    let target = running.target(Proto::H2)?;
    ctx.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..n.div_ceil(STREAMS_PER_CONN) {
            conns.push(Conn::open(&target).await?);
        }
        let answered = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let Some(mut c) = conns[i % conns.len()].share() else {
                continue;
            };
            let (t, a) = (target.clone(), answered.clone());
            tasks.spawn(async move {
                let _ = c.send(&t, &RequestSpec::get("/hello")).await;
                a.fetch_add(1, Ordering::Relaxed);
            });
        }
        let start = Instant::now();
        let (mut peak, mut since) = (base, Instant::now());
        while start.elapsed() < FILL_GUARD {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let now = hub.rss();
            if now > peak + peak / 200 {
                since = Instant::now();
            }
            peak = peak.max(now);
            if since.elapsed() >= SETTLED && start.elapsed() > SETTLED * 2 {
                break;
            }
        }
        let queued = n as u64 - answered.load(Ordering::Relaxed);
        tasks.abort_all();
        Ok((queued, peak.saturating_sub(base), base))
    })
}

impl Scenario for Scale {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut Ctx) -> Result<String, Error> {
        let quick = ctx.opts.quick;
        let n = if quick { QUEUED / 10 } else { QUEUED };
        eprintln!("  queueing {n} requests");
        let (queued, grown, base) = queue_memory(ctx, n)?;
        let per = grown as f64 / queued.max(1) as f64;
        let mut extra = serde_json::Map::new();
        extra.insert("queued".into(), queued.into());
        extra.insert("hub_rss_growth_bytes".into(), grown.into());
        extra.insert("bytes_per_queued_request".into(), per.into());
        let m = super::Measured {
            result: load::LoadResult::from_histogram(load::new_histogram(), 1.0),
            cpu_us_per_req: None,
            others_cpu_us_per_req: None,
        };
        ctx.record(NAME, System::PullmanTcp.label(), "queued", 1, &m, extra);

        let counts: &[usize] = if quick {
            &WORKER_COUNTS[..3]
        } else {
            &WORKER_COUNTS
        };
        let rounds = ctx.rounds(1);
        let secs = ctx.secs(10.0, 2.0);
        let spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync> =
            Arc::new(|_| RequestSpec::get("/hello"));
        let mut down = Vec::new();
        for round in 1..=rounds {
            for &w in counts {
                let layout = Layout::new(w, TOTAL_CONCURRENCY / w);
                let running = match ctx.start(System::PullmanTcp, &layout) {
                    Ok(r) => r,
                    Err(e) => {
                        down.push(format!("- {w} workers could not run: {e}\n"));
                        continue;
                    }
                };
                let target = running.target(Proto::H1)?;
                let label = format!("pullman {w} workers");
                let _ = ctx.block_on(load::closed_loop(
                    &target,
                    CONNS,
                    1,
                    ctx.secs(1.0, 0.3),
                    spec.clone(),
                    "warm-up",
                ));
                let m = ctx.measure(
                    &running,
                    load::closed_loop(&target, CONNS, 1, secs, spec.clone(), &label),
                )?;
                ctx.record(
                    NAME,
                    System::PullmanTcp.label(),
                    &format!("workers={w}"),
                    round,
                    &m,
                    Default::default(),
                );
            }
        }
        let recs = super::scenario_records(ctx, NAME);
        let mut md = ctx.preamble(
            "5. Scale: a deep queue, many workers",
            &format!(
                "(a) pullman (TCP) with no worker connected; {n} `GET /hello` sent at once over \
HTTP/2 ({STREAMS_PER_CONN} streams per connection, {} connections); the hub's RSS sampled \
every {} ms until it stops growing. Per queued request: RSS growth over the number still \
waiting (this includes the front's HTTP/2 stream state, which a queued request needs \
too).\n\n(b) `/hello`, closed loop, {CONNS} connections, {:.0} s, with W workers of \
concurrency {TOTAL_CONCURRENCY}/W (`--threads 1` each), W in {counts:?}.",
                n.div_ceil(STREAMS_PER_CONN),
                SAMPLE_EVERY.as_millis(),
                secs.as_secs_f64()
            ),
        );
        md.push_str(&format!(
            "**(a) {} bytes of hub memory per queued request** ({queued} queued, RSS {:.1} MiB \
→ {:.1} MiB; aim < {AIM_BYTES:.0}: {}).\n\n",
            thousands(per),
            base as f64 / 1048576.0,
            (base + grown) as f64 / 1048576.0,
            if per < AIM_BYTES && queued > 0 {
                "met"
            } else {
                "**not met**"
            }
        ));
        let pm = System::PullmanTcp.label();
        let mut rows = Vec::new();
        for &w in counts {
            let v = format!("workers={w}");
            if super::of(&recs, pm, &v).is_empty() {
                continue;
            }
            rows.push(vec![
                w.to_string(),
                (TOTAL_CONCURRENCY / w).to_string(),
                thousands(median_of(&recs, pm, &v, |r| r.req_per_s)),
                report::ms(median_of(&recs, pm, &v, |r| r.p99_ms)),
                format!(
                    "{:.1}",
                    median_of(&recs, pm, &v, |r| r.cpu_us_per_req.unwrap_or(0.0))
                ),
            ]);
        }
        md.push_str(&report::table(
            &[
                "workers",
                "concurrency each",
                "req/s",
                "p99 ms",
                "hub CPU µs/req",
            ],
            &rows,
        ));
        let at = |w: usize| median_of(&recs, pm, &format!("workers={w}"), |r| r.req_per_s);
        let last = *counts.last().unwrap_or(&1);
        if at(8) > 0.0 && at(last) > 0.0 {
            let x = at(last) / at(8);
            md.push_str(&format!(
                "\n**(b) req/s with {last} workers / with 8: {x:.2}** (aim ≥ {AIM_FLAT} at 512: \
{}).\n",
                if last == 512 && x >= AIM_FLAT {
                    "met"
                } else if last == 512 {
                    "**not met**"
                } else {
                    "not measured at 512 in this run"
                }
            ));
        }
        for d in down {
            md.push_str(&d);
        }
        Ok(md)
    }
}
