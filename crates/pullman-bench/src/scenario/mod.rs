//! The scenarios and what they share: options, the load runtime, measuring a system's CPU
//! around a load run, records, plots.
//!
//! The scenarios, in report order (each file's doc says more):
//! 1. `overhead`: `/hello` through every system, one worker; the hop's cost.
//! 2. `expensive`: a seeded open-loop trace of lognormal jobs on k workers of concurrency 1,
//!    against the simulated central-queue floor.
//! 3. `hol`: fast requests behind slow ones on one worker.
//! 4. `bodies`: large downloads and uploads, MB/s and the middle process's memory.
//! 5. `scale`: a deep queue (memory per queued request) and many workers.
//! 6. `transport`: TCP, Unix socket and shared memory, with and without HTTP around them.
//! 7. `filter`: `/hello` through a pass-through filter pool.
//! 8. `pothead`: POTHEAD's worker processes behind POTHEAD's hub and behind pullman's PTTH
//!    port, beside pullman's own workers, with the same slots; GETs only.
//! 9. `capi`: `/hello` from a worker in C on pullman's C API beside the Rust SDK's
//!    `pullman worker`, same hub, same slots.
//! 10. `python`: a WSGI and an ASGI `/hello` through pullman's Python runners beside
//!     granian, gunicorn and uvicorn serving the same app directly, and POTHEAD.
//! 11. `https`: `/hello` over TLS (HTTP/1.1 and h2) through pullman and nginx serving the
//!     same certificate.
//!
//! Adding a scenario is one new file here (a `scenario()` returning a `Box<dyn Scenario>`)
//! and its name in the `scenarios!` list below.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::load::LoadResult;
use crate::peers::{Env, Layout, Running, System};
use crate::procstat::ProcessTree;
use crate::report::{self, Record};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*
        /// Every scenario, in report order.
        pub fn all() -> Vec<Box<dyn Scenario>> {
            vec![$($name::scenario()),*]
        }
        /// Their names, in report order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios![
    overhead, expensive, hol, bodies, scale, transport, filter, pothead, capi, python, https,
];

/// The systems of one round, starting one further along each round: no system is always
/// measured first or last, so a machine that warms up or gets busier during a round does not
/// favour one of them in every round.
pub(super) fn in_turn<T>(items: &[T], round: usize) -> impl Iterator<Item = &T> {
    let start = if items.is_empty() {
        0
    } else {
        round.saturating_sub(1) % items.len()
    };
    items[start..].iter().chain(&items[..start])
}

/// `systems`, each followed by its baseline twin when `baseline` is set (`run --baseline`):
/// the twin then runs in the same rounds and shows in the table next to its original.
pub(crate) fn with_baselines(systems: &[System], baseline: bool) -> Vec<System> {
    systems
        .iter()
        .flat_map(|&s| {
            let twin = s.baseline_twin().filter(|_| baseline);
            std::iter::once(s).chain(twin)
        })
        .collect()
}

/// One benchmark scenario: runs its systems and returns its markdown section.
pub trait Scenario {
    fn name(&self) -> &'static str;
    fn run(&self, ctx: &mut Ctx) -> Result<String, Error>;
}

/// Parameters of the expensive scenario (flags of `run`).
#[derive(Debug, Clone, clap::Args)]
pub struct ExpensiveParams {
    /// Workers (each of concurrency 1).
    #[arg(long = "expensive-workers", default_value_t = 8)]
    pub workers: usize,
    /// Offered load as a fraction of the workers' capacity.
    #[arg(long, default_value_t = 0.8)]
    pub utilisation: f64,
    /// Mean service time, ms (lognormal).
    #[arg(long, default_value_t = 20.0)]
    pub mean_ms: f64,
    /// Sigma of the lognormal's underlying normal.
    #[arg(long, default_value_t = 1.0)]
    pub sigma: f64,
    /// Length of the trace, seconds (the quick run uses a tenth, at least 5 s).
    #[arg(long, default_value_t = 60.0)]
    pub duration_s: f64,
    /// Seed of the trace.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOpts {
    pub quick: bool,
    /// Rounds per scenario; `None`: each scenario's default (1 when quick).
    pub rounds: Option<usize>,
    /// Where sections, per-scenario records and plots go (`docs/bench`).
    pub out_dir: PathBuf,
    pub expensive: ExpensiveParams,
    /// The command line, quoted in each section.
    pub command: String,
}

/// What a scenario works with.
pub struct Ctx {
    pub env: Env,
    pub opts: RunOpts,
    rt: tokio::runtime::Runtime,
    pub records: Vec<Record>,
}

/// A load run and the CPU the middle process spent during it.
#[derive(Debug)]
pub struct Measured {
    pub result: LoadResult,
    pub cpu_us_per_req: Option<f64>,
    /// The CPU per answered request of the system's other processes together (its workers),
    /// µs; `None` when nothing was answered.
    pub others_cpu_us_per_req: Option<f64>,
}

impl Ctx {
    /// `load_threads`: threads of the load generator's runtime.
    pub fn new(env: Env, opts: RunOpts, load_threads: usize) -> Result<Ctx, Error> {
        // One thread: a current-thread runtime, so requests never hop between threads.
        let rt = if load_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(load_threads)
                .enable_all()
                .build()?
        };
        Ok(Ctx {
            env,
            opts,
            rt,
            records: Vec::new(),
        })
    }

    pub fn rounds(&self, full: usize) -> usize {
        self.opts
            .rounds
            .unwrap_or(if self.opts.quick { 1 } else { full })
    }

    pub fn secs(&self, full: f64, quick: f64) -> Duration {
        Duration::from_secs_f64(if self.opts.quick { quick } else { full })
    }

    /// Starts `system`, saying so on stderr.
    pub fn start(&self, system: System, layout: &Layout) -> Result<Running, Error> {
        eprintln!(
            "  starting {} ({} worker(s) x {})",
            system.label(),
            layout.workers,
            layout.concurrency
        );
        system.start(&self.env, layout)
    }

    /// Warms each system up before it is measured (connections, handshakes, caches,
    /// allocators, Python's imports): `conns` HTTP/1.1 connections sending `/hello` for a
    /// second (0.3 s when quick). Failures are not counted: measuring comes after.
    pub fn warm_up(&self, systems: &[Running], conns: usize) -> Result<(), Error> {
        let spec: std::sync::Arc<dyn Fn(u64) -> crate::load::RequestSpec + Send + Sync> =
            std::sync::Arc::new(|_| crate::load::RequestSpec::get("/hello"));
        for s in systems {
            let target = s.target(crate::load::Proto::H1)?;
            let _ = self.block_on(crate::load::closed_loop(
                &target,
                conns,
                1,
                self.secs(1.0, 0.3),
                spec.clone(),
                "warm-up",
            ));
        }
        Ok(())
    }

    /// Runs a load future on the load runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs `load` against `running` and measures the middle process's CPU meanwhile, and
    /// that of the others together.
    pub fn measure<F>(&self, running: &Running, load: F) -> Result<Measured, Error>
    where
        F: Future<Output = Result<LoadResult, Error>>,
    {
        let others = running.others();
        let others_before = cpu_us(&others);
        let before = running.middle.map(|m| m.cpu());
        let result = self.rt.block_on(load)?;
        let others_spent = cpu_us(&others).saturating_sub(others_before);
        let others_cpu_us_per_req = (result.ok > 0).then(|| others_spent as f64 / result.ok as f64);
        let cpu_us_per_req = match (running.middle, before) {
            (Some(m), Some(b)) if result.ok > 0 => {
                Some((m.cpu().micros - b.micros) as f64 / result.ok as f64)
            }
            _ => None,
        };
        Ok(Measured {
            result,
            cpu_us_per_req,
            others_cpu_us_per_req,
        })
    }

    /// Keeps a record of `m`.
    pub fn record(
        &mut self,
        scenario: &str,
        system: &str,
        variant: &str,
        round: usize,
        m: &Measured,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Record {
        let r = &m.result;
        let rec = Record {
            scenario: scenario.into(),
            system: system.into(),
            variant: variant.into(),
            round,
            req_per_s: r.req_per_s(),
            p50_ms: r.quantile_ms(0.5),
            p90_ms: r.quantile_ms(0.9),
            p99_ms: r.quantile_ms(0.99),
            p999_ms: r.quantile_ms(0.999),
            errors: r.errors,
            cpu_us_per_req: m.cpu_us_per_req,
            extra,
        };
        eprintln!(
            "    {system} {variant} round {round}: {:.0} req/s p50 {:.2} ms p99 {:.2} ms errors {}{}",
            rec.req_per_s,
            rec.p50_ms,
            rec.p99_ms,
            rec.errors,
            rec.cpu_us_per_req
                .map(|c| format!(" cpu {c:.1} us/req"))
                .unwrap_or_default()
        );
        self.records.push(rec.clone());
        rec
    }

    /// Writes `docs/bench/FILE` and returns the markdown image link to it.
    pub fn plot(&self, file: &str, alt: &str, svg: &str) -> Result<String, Error> {
        std::fs::create_dir_all(&self.opts.out_dir)?;
        std::fs::write(self.opts.out_dir.join(file), svg)?;
        Ok(format!("![{alt}](bench/{file})\n"))
    }

    /// The lines every section starts with: title, command, machine.
    pub fn preamble(&self, title: &str, what: &str) -> String {
        format!(
            "## {title}\n\n{what}\n\nCommand: `{}`{}. Machine: {}.\n\n",
            self.opts.command,
            if self.opts.quick {
                " (**quick smoke run: short, one round; not for quoting**)"
            } else {
                ""
            },
            report::machine_line()
        )
    }
}

/// The records of `system` and `variant` in `recs`.
pub(crate) fn of<'a>(recs: &'a [Record], system: &str, variant: &str) -> Vec<&'a Record> {
    recs.iter()
        .filter(|r| r.system == system && r.variant == variant)
        .collect()
}

/// `f` of `system`'s record over the reference's, round by round (rounds where both ran).
pub(crate) fn round_ratios(
    recs: &[Record],
    system: &str,
    reference: &str,
    variant: &str,
    f: impl Fn(&Record) -> f64,
) -> Vec<(usize, f64)> {
    let refs = of(recs, reference, variant);
    of(recs, system, variant)
        .into_iter()
        .filter_map(|r| {
            let base = refs.iter().find(|b| b.round == r.round)?;
            let d = f(base);
            (d > 0.0).then(|| (r.round, f(r) / d))
        })
        .collect()
}

/// Median over rounds of `f` of `system`'s records over the reference's in the same round.
pub(crate) fn median_ratio(
    recs: &[Record],
    system: &str,
    reference: &str,
    variant: &str,
    f: impl Fn(&Record) -> f64,
) -> Option<f64> {
    let ratios: Vec<f64> = round_ratios(recs, system, reference, variant, f)
        .into_iter()
        .map(|(_, x)| x)
        .collect();
    (!ratios.is_empty()).then(|| report::median(ratios))
}

/// Median over rounds of `f` of `system`'s records.
pub(crate) fn median_of(
    recs: &[Record],
    system: &str,
    variant: &str,
    f: impl Fn(&Record) -> f64,
) -> f64 {
    report::median(of(recs, system, variant).into_iter().map(f).collect())
}

/// Records of one scenario from this run.
pub(crate) fn scenario_records(ctx: &Ctx, name: &str) -> Vec<Record> {
    ctx.records
        .iter()
        .filter(|r| r.scenario == name)
        .cloned()
        .collect()
}

/// Starts every system in `systems`; one that cannot start is reported, not fatal.
pub(crate) fn start_all(
    ctx: &Ctx,
    systems: &[System],
    layout: &Layout,
) -> (Vec<Running>, Vec<String>) {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for &s in systems {
        match ctx.start(s, layout) {
            Ok(r) => up.push(r),
            Err(e) => {
                eprintln!("  {} did not start: {e}", s.label());
                down.push(format!("- {} could not run: {e}\n", s.label()));
            }
        }
    }
    (up, down)
}

/// The median of what `f` gives for `recs` (records without it left out), to one decimal;
/// "-" when none has it: the tables' CPU columns.
pub(crate) fn median_cell<'a>(
    recs: impl IntoIterator<Item = &'a Record>,
    f: impl Fn(&Record) -> Option<f64>,
) -> String {
    let values: Vec<f64> = recs.into_iter().filter_map(f).collect();
    opt((!values.is_empty()).then(|| report::median(values)), |c| {
        format!("{c:.1}")
    })
}

/// `f` formatted with `fmt`, or "-" when absent.
pub(crate) fn opt(f: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    f.map(fmt).unwrap_or_else(|| "-".into())
}

/// CPU time of `procs` together, µs.
pub(crate) fn cpu_us(procs: &[ProcessTree]) -> u64 {
    procs.iter().map(|p| p.cpu().micros).sum()
}

/// A figure in a record's `extra`.
pub(crate) fn extra_f64(r: &Record, key: &str) -> Option<f64> {
    r.extra.get(key).and_then(|v| v.as_f64())
}

#[cfg(test)]
mod tests {
    use super::{in_turn, median_ratio, round_ratios, with_baselines};
    use crate::peers::System;
    use crate::report::Record;

    fn rec(system: &str, round: usize, req_per_s: f64) -> Record {
        Record {
            scenario: "t".into(),
            system: system.into(),
            variant: "v".into(),
            round,
            req_per_s,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            errors: 0,
            cpu_us_per_req: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn ratios_pair_each_round_with_the_references_same_round() {
        let recs = [
            rec("c", 2, 90.0),
            rec("rust", 1, 100.0),
            rec("c", 1, 80.0),
            rec("rust", 2, 100.0),
            // No reference in round 3, and a reference of nothing in round 4.
            rec("c", 3, 50.0),
            rec("rust", 4, 0.0),
            rec("c", 4, 10.0),
        ];
        let rps = |r: &Record| r.req_per_s;
        assert_eq!(
            round_ratios(&recs, "c", "rust", "v", rps),
            [(2, 0.9), (1, 0.8)]
        );
        let m = median_ratio(&recs, "c", "rust", "v", rps).unwrap();
        assert!((m - 0.85).abs() < 1e-9, "{m}");
        assert_eq!(median_ratio(&recs, "c", "rust", "other", rps), None);
    }

    #[test]
    fn each_scenario_is_registered_under_the_name_it_writes_its_section_as() {
        // `run --scenario NAME` selects by `name()` and writes `NAME.md`; the report
        // assembles `NAMES`: a mismatch would leave the section "Not run yet".
        let names: Vec<&str> = super::all().iter().map(|s| s.name()).collect();
        assert_eq!(names, super::NAMES);
    }

    #[test]
    fn each_round_starts_one_system_further_along() {
        let systems = ["tcp", "unix", "shm"];
        let order = |round| in_turn(&systems, round).copied().collect::<Vec<_>>();
        assert_eq!(order(1), ["tcp", "unix", "shm"]);
        assert_eq!(order(2), ["unix", "shm", "tcp"]);
        assert_eq!(order(3), ["shm", "tcp", "unix"]);
        assert_eq!(order(4), ["tcp", "unix", "shm"]);
        assert_eq!(in_turn(&[] as &[u8], 2).count(), 0);
    }

    #[test]
    fn baseline_twins_run_only_with_a_baseline_and_next_to_their_originals() {
        let systems = [System::Nginx, System::PullmanTcp, System::PullmanShm];
        assert_eq!(with_baselines(&systems, false), systems);
        assert_eq!(
            with_baselines(&systems, true),
            [
                System::Nginx,
                System::PullmanTcp,
                System::PullmanTcpBaseline,
                System::PullmanShm
            ]
        );
        assert_eq!(
            with_baselines(&[System::Direct, System::PullmanFilter], true),
            [
                System::Direct,
                System::PullmanFilter,
                System::PullmanFilterBaseline
            ]
        );
    }
}
