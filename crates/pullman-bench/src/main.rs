//! `pullman-bench`: the benchmark suite's command line.
//!
//! `run` runs scenarios and writes the report; `load`, `sim`, `server`, `direct` and
//! `link` are the building blocks, usable alone. `run --baseline PATH` also runs pullman from
//! an older `pullman` binary in the overhead and filter scenarios, beside this build's.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pullman_bench::link_hub::{LinkHub, LinkTransport};
use pullman_bench::load::{self, Proto, RequestSpec, Target};
use pullman_bench::peers::Env;
use pullman_bench::scenario::{self, Ctx, ExpensiveParams, RunOpts};
use pullman_bench::sim::{self, Policy};
use pullman_bench::trace::{ServiceDist, Trace};
use pullman_bench::{report, server};

#[derive(Parser)]
#[command(name = "pullman-bench", about = "pullman's benchmark suite.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LinkArg {
    Tcp,
    Unix,
    Shm,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios against every system, interleaved, and write the report.
    Run {
        /// Scenarios to run (default: all), in any order; the report keeps registry order.
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// Every scenario briefly, one round: a smoke check, not figures to quote.
        #[arg(long)]
        quick: bool,
        /// Rounds per scenario (default: each scenario's own; 1 with --quick).
        #[arg(long)]
        rounds: Option<usize>,
        /// Also write every record of this run here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The report to (re)assemble [default: docs/benchmarks.md with the default
        /// --out-dir, else OUT_DIR/benchmarks.md].
        #[arg(long)]
        report: Option<PathBuf>,
        /// Where sections, per-scenario records and plots go.
        #[arg(long, default_value = DEFAULT_OUT_DIR)]
        out_dir: PathBuf,
        /// Threads of the load generator.
        #[arg(long, default_value_t = 1)]
        load_threads: usize,
        /// A `pullman` binary built from an older commit: the overhead and filter scenarios
        /// also run pullman (TCP) and pullman filter from it, hub and workers, in the same
        /// rounds, and report this build's req/s over the baseline's.
        #[arg(long, value_name = "PATH")]
        baseline: Option<PathBuf>,
        /// Threads of every pullman hub (`pullman hub --threads N`) [default: the hub's own,
        /// half the cores].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        hub_threads: Option<u32>,
        #[command(flatten)]
        expensive: ExpensiveParams,
    },
    /// Reassemble the report from the sections already in the out dir (after editing
    /// `findings.md`, say), without running anything.
    Report {
        /// The report [default: docs/benchmarks.md with the default --out-dir, else
        /// OUT_DIR/benchmarks.md].
        #[arg(long)]
        report: Option<PathBuf>,
        /// Where the sections are.
        #[arg(long, default_value = DEFAULT_OUT_DIR)]
        out_dir: PathBuf,
    },
    /// Load one URL: closed loop (default) or open loop at a Poisson rate.
    Load {
        /// http://IP:PORT
        #[arg(long)]
        url: String,
        /// Path and query of every request.
        #[arg(long, default_value = "/hello")]
        path: String,
        /// Connections.
        #[arg(long, default_value_t = 32)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// HTTP version.
        #[arg(long, value_enum, default_value_t = Proto::H1)]
        proto: Proto,
        /// Open loop at this many requests per second (Poisson, seeded).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Simulate k workers of concurrency 1 on a seeded lognormal trace.
    Sim {
        #[arg(long, default_value_t = 8)]
        workers: usize,
        #[arg(long, default_value_t = 0.8)]
        utilisation: f64,
        #[arg(long, default_value_t = 20.0)]
        mean_ms: f64,
        #[arg(long, default_value_t = 1.0)]
        sigma: f64,
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Plain HTTP worker servers with the demo routes, on 127.0.0.1 port 0.
    Server {
        /// Listeners, each a worker with its own limit.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Requests each worker runs at once (default: unlimited).
        #[arg(long)]
        concurrency: Option<usize>,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Link round trips alone: this process plays the hub's end of a link to one `pullman
    /// worker --app demo` and times `POST /sink` one at a time (to profile the transport).
    Link {
        #[arg(long, value_enum, default_value_t = LinkArg::Shm)]
        transport: LinkArg,
        /// Request body bytes.
        #[arg(long, default_value_t = 1024)]
        body: usize,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// One unlimited server on a given address: the direct baseline of `bench/hello.sh`.
    Direct {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// Where `run` writes sections, records and plots unless told otherwise.
const DEFAULT_OUT_DIR: &str = "docs/bench";

/// The report assembled from `out_dir` when `--report` is not given: the committed
/// `docs/benchmarks.md` for the default out dir, else a `benchmarks.md` in the out dir
/// itself, so that a run into a scratch dir never rewrites the committed report from the
/// few sections that dir holds.
fn default_report(out_dir: &Path) -> PathBuf {
    if out_dir == Path::new(DEFAULT_OUT_DIR) {
        PathBuf::from("docs/benchmarks.md")
    } else {
        out_dir.join("benchmarks.md")
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenarios,
            quick,
            rounds,
            json,
            report: report_path,
            out_dir,
            load_threads,
            baseline,
            hub_threads,
            expensive,
        } => {
            let command = std::env::args()
                .skip(1)
                .fold(String::from("pullman-bench"), |s, a| s + " " + &a);
            let opts = RunOpts {
                quick,
                rounds,
                out_dir: out_dir.clone(),
                expensive,
                command,
            };
            let mut env = Env::discover()?;
            env.hub_threads = hub_threads;
            if let Some(path) = baseline {
                // Absolute, so the hub and workers find it whatever their directory; checked
                // now rather than as a system that fails to start.
                let path = std::fs::canonicalize(&path)
                    .with_context(|| format!("--baseline {}", path.display()))?;
                anyhow::ensure!(
                    path.is_file(),
                    "--baseline {} is not a file",
                    path.display()
                );
                env.baseline = Some(path);
            }
            let mut ctx = Ctx::new(env, opts, load_threads)?;
            for s in &scenarios {
                anyhow::ensure!(
                    scenario::NAMES.contains(&s.as_str()),
                    "unknown scenario {s:?}; known: {}",
                    scenario::NAMES.join(", ")
                );
            }
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let mut failed = Vec::new();
            for sc in scenario::all() {
                if !scenarios.is_empty() && !scenarios.iter().any(|s| s == sc.name()) {
                    continue;
                }
                eprintln!("scenario {}", sc.name());
                match sc.run(&mut ctx) {
                    Ok(md) => {
                        std::fs::write(out_dir.join(format!("{}.md", sc.name())), md)?;
                        let recs = ctx
                            .records
                            .iter()
                            .filter(|r| r.scenario == sc.name())
                            .collect::<Vec<_>>();
                        std::fs::write(
                            out_dir.join(format!("{}.json", sc.name())),
                            serde_json::to_string_pretty(&recs)?,
                        )?;
                    }
                    Err(e) => {
                        eprintln!("scenario {} failed: {e}", sc.name());
                        failed.push(format!("{}: {e}", sc.name()));
                    }
                }
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&ctx.records)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let report_path = report_path.unwrap_or_else(|| default_report(&out_dir));
            report::assemble(&report_path, &out_dir, scenario::NAMES)
                .with_context(|| format!("writing {}", report_path.display()))?;
            eprintln!("report: {}", report_path.display());
            anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join("; "));
            Ok(())
        }
        Command::Report {
            report: report_path,
            out_dir,
        } => {
            let report_path = report_path.unwrap_or_else(|| default_report(&out_dir));
            report::assemble(&report_path, &out_dir, scenario::NAMES)
                .with_context(|| format!("writing {}", report_path.display()))
        }
        Command::Load {
            url,
            path,
            conns,
            duration,
            proto,
            rate,
            seed,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let target = Target::parse(&url, proto)?;
            let r = rt.block_on(async {
                match rate {
                    None => {
                        let p = path.clone();
                        load::closed_loop(
                            &target,
                            conns,
                            1,
                            Duration::from_secs_f64(duration),
                            Arc::new(move |_| RequestSpec::get(p.clone())),
                            "load",
                        )
                        .await
                    }
                    Some(rate) => {
                        let trace = Trace::poisson(
                            rate,
                            duration,
                            ServiceDist::Fixed { ms: 0.0 },
                            seed,
                            true,
                        );
                        let p = path.clone();
                        load::open_loop(
                            &target,
                            &trace,
                            conns,
                            Arc::new(move |_| RequestSpec::get(p.clone())),
                            "load",
                        )
                        .await
                    }
                }
            })?;
            println!(
                "{}",
                serde_json::json!({
                    "req_per_s": r.req_per_s(), "ok": r.ok, "errors": r.errors,
                    "p50_ms": r.quantile_ms(0.5), "p90_ms": r.quantile_ms(0.9),
                    "p99_ms": r.quantile_ms(0.99), "p999_ms": r.quantile_ms(0.999),
                })
            );
            Ok(())
        }
        Command::Sim {
            workers,
            utilisation,
            mean_ms,
            sigma,
            duration,
            seed,
        } => {
            let dist = ServiceDist::LogNormal { mean_ms, sigma };
            let rate = Trace::rate_for(utilisation, workers, dist);
            let trace = Trace::poisson(rate, duration, dist, seed, true);
            for policy in Policy::ALL {
                let mut h = load::new_histogram();
                for s in sim::simulate(&trace, workers, policy) {
                    h.saturating_record(((s * 1000.0) as u64).max(1));
                }
                println!(
                    "{}",
                    serde_json::json!({
                        "policy": policy, "requests": trace.jobs.len(),
                        "p50_ms": load::quantile_ms(&h, 0.5), "p90_ms": load::quantile_ms(&h, 0.9),
                        "p99_ms": load::quantile_ms(&h, 0.99), "p999_ms": load::quantile_ms(&h, 0.999),
                    })
                );
            }
            Ok(())
        }
        Command::Server {
            count,
            concurrency,
            threads,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()?;
            rt.block_on(server::run(count, concurrency))?;
            Ok(())
        }
        Command::Link {
            transport,
            body,
            duration,
        } => {
            let transport = match transport {
                LinkArg::Tcp => LinkTransport::Tcp,
                LinkArg::Unix => LinkTransport::Unix,
                LinkArg::Shm => LinkTransport::Shm,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let env = Env::discover()?;
            let result = rt.block_on(async {
                let hub = LinkHub::start(&env, transport).await?;
                let body = bytes::Bytes::from(vec![7u8; body]);
                hub.run(&body, Duration::from_secs_f64(duration), 200).await
            })?;
            println!(
                "{} round trips/s p50 {:.1} us p99 {:.1} us",
                result.req_per_s() as u64,
                result.quantile_ms(0.5) * 1000.0,
                result.quantile_ms(0.99) * 1000.0
            );
            Ok(())
        }
        Command::Direct { listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                println!("direct listening http://{}", listener.local_addr()?);
                server::Worker::new("direct".into(), None)
                    .serve(listener)
                    .await;
                anyhow::Ok(())
            })
        }
    }
}
