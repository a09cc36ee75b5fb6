//! `pullman`: the hub, a worker, the demo, and the config checker, in one binary.

#![forbid(unsafe_code)]

mod demo_app;
mod demo_filter;
mod worker_flags;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use pullman_hub::{Config, Hub};
use pullman_worker::{CpuGate, HubAddr, MemoryGate, Redirect, TlsSettings, Worker};
use tokio::signal::unix::{signal, SignalKind};
use worker_flags::GateFlag;

/// mimalloc instead of glibc's allocator: a request allocates and frees a few dozen small
/// blocks across the hub and the worker, and tokio's tasks are 128-byte aligned, which glibc
/// serves through its slow `posix_memalign` path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config `pullman demo` runs.
const DEMO_CONFIG: &str = include_str!("demo.toml");

#[derive(Parser)]
#[command(
    name = "pullman",
    version,
    about = "An HTTP offload hub: workers dial in and pull requests."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub on a config file.
    Hub {
        #[command(flatten)]
        config: ConfigFile,
        /// Threads serving clients and workers (default: half the cores, at least one; the
        /// other half is left to the workers on the same host).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Run a worker that dials a hub.
    Worker {
        /// The hub's worker address: tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH
        /// [default: $PULLMAN_HUB].
        #[arg(long)]
        hub: Option<String>,
        /// The pool to serve [default: $PULLMAN_POOL].
        #[arg(long)]
        pool: Option<String>,
        /// The pool's token [default: $PULLMAN_TOKEN].
        #[arg(long)]
        token: Option<String>,
        /// Requests this worker runs at once.
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
        /// The app to run.
        #[arg(long, value_enum, default_value_t = App::Demo)]
        app: App,
        /// A name for logs and for the demo app's answers.
        #[arg(long)]
        name: Option<String>,
        /// Threads running the handler. The demo app waits more than it computes, and one
        /// thread leaves the cores to the hub and the real work.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Ask the hub for the shared-memory transport (a unix:// hub on this host only):
        /// requests are read where the hub wrote them, without socket copies.
        #[arg(long, env = "PULLMAN_SHM")]
        shm: bool,
        /// Take requests only while the gate is open; repeat for several (all must be open).
        /// cpu:SHARE: while the CPU (the host's, and the cgroup's quota if it has one) is at
        /// most SHARE busy, 0 < SHARE <= 1. mem:SIZE: while at least SIZE is available
        /// (MemAvailable, or less under a cgroup limit), as in mem:512MiB. A closed gate holds
        /// credits back; requests already taken run on.
        #[arg(long = "gate", value_name = "cpu:SHARE|mem:SIZE", value_parser = worker_flags::parse_gate)]
        gates: Vec<GateFlag>,
        /// Redirect mode: answer a 200 whose body is at least --redirect-min-bytes with
        /// 303 See Other to http://HOST:PORT/KEY, a single-use key on this worker's own HTTP
        /// server on PORT (0: any free port, logged), so that the body goes to the client
        /// without passing through the hub.
        #[arg(long, value_name = "PORT")]
        redirect_response: Option<u16>,
        /// The smallest body redirected (units B, KiB, MiB, GiB); 0 redirects every 200.
        #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = worker_flags::parse_size, requires = "redirect_response")]
        redirect_min_bytes: u64,
        /// How long a redirected response waits for its client before it is dropped.
        #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = worker_flags::parse_duration, requires = "redirect_response")]
        redirect_expiry: Duration,
        /// The host in Location [default: this worker's address on its link to the hub].
        #[arg(long, value_name = "HOST", requires = "redirect_response")]
        redirect_host: Option<String>,
        /// For a tls:// hub: a PEM file of the authorities that sign the hub's certificate
        /// [default: the system's roots].
        #[arg(long, value_name = "FILE")]
        tls_ca: Option<PathBuf>,
        /// For a tls:// hub whose pool names its workers (allowed_workers): this worker's
        /// certificate, a PEM chain, leaf first.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert, as PEM.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Run the hub on its embedded default config with demo workers.
    Demo {
        /// Where clients connect.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Parse and validate a config file, then exit.
    CheckConfig {
        #[command(flatten)]
        config: ConfigFile,
    },
}

/// The config file of `hub` and `check-config`, given either way: `pullman hub FILE` and
/// `pullman check-config --config FILE` both work.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ConfigFile {
    /// The TOML config.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// The TOML config (the same as FILE).
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigFile {
    fn path(self) -> anyhow::Result<PathBuf> {
        self.file
            .or(self.config)
            .context("a config file is required")
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum App {
    /// The demo app (/hello, /echo, /inspect, /sleep, /status, /bytes, /stats).
    Demo,
    /// The demo filter, for filter pools: blocks paths containing /admin with 403, marks
    /// passed requests with x-pullman-filtered: 1, gzips responses for gzip clients.
    DemoFilter,
}

/// Errors are printed as one chain of causes, without a backtrace: they are for operators.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pullman: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The hub's threads unless `--threads` says otherwise: half the cores, at least one. The
/// hub hands each request between tasks (client connection, worker link, upstream), and on a
/// host whose cores are also running the workers, every hand-off between two hub threads is a
/// cross-core wake-up: on 2 cores a filtered `/hello` costs the hub 36 to 45 µs of CPU with
/// one thread and 63 µs with two (docs/architecture.md, "Threads").
fn default_hub_threads() -> Option<usize> {
    let cores = std::thread::available_parallelism().ok()?.get();
    Some((cores / 2).max(1))
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PULLMAN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Hub { threads, .. } => threads.or_else(default_hub_threads),
        Command::Worker { threads, .. } => Some(*threads),
        Command::Demo { .. } => default_hub_threads(),
        _ => None,
    };
    // One thread runs everything on this one, without the work-stealing scheduler's
    // bookkeeping.
    let mut runtime = match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Hub { config, .. } => {
                let path = config.path()?;
                let config = load(&path)?;
                run_hub(config, path).await
            }
            Command::Worker {
                hub,
                pool,
                token,
                concurrency,
                app,
                name,
                shm,
                gates,
                redirect_response,
                redirect_min_bytes,
                redirect_expiry,
                redirect_host,
                tls_ca,
                tls_cert,
                tls_key,
                ..
            } => {
                let name = name.unwrap_or_else(|| format!("worker-{}", std::process::id()));
                // What the flags leave out, the SDK reads from the environment (the
                // hub's supervisor sets PULLMAN_HUB, PULLMAN_POOL and PULLMAN_TOKEN).
                let mut builder = Worker::builder();
                if let Some(hub) = hub {
                    builder = builder.hub(hub.parse::<HubAddr>()?);
                }
                if let Some(pool) = pool {
                    builder = builder.pool(pool);
                }
                if let Some(token) = token {
                    builder = builder.token(token);
                }
                for gate in gates {
                    builder = match gate {
                        GateFlag::Cpu(share) => builder.gate(
                            CpuGate::new(share).with_context(|| format!("--gate cpu:{share}"))?,
                        ),
                        GateFlag::Mem(bytes) => builder.gate(
                            MemoryGate::new(bytes)
                                .with_context(|| format!("--gate mem:{bytes}"))?,
                        ),
                    };
                }
                if let Some(port) = redirect_response {
                    builder = builder.redirect(Redirect {
                        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                        host: redirect_host,
                        min_bytes: redirect_min_bytes,
                        expiry: redirect_expiry,
                    });
                }
                if tls_ca.is_some() || tls_cert.is_some() {
                    let mut tls = TlsSettings::default();
                    if let Some(ca) = tls_ca {
                        tls = tls.ca(ca);
                    }
                    if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                        tls = tls.identity(cert, key);
                    }
                    builder = builder.tls(tls);
                }
                let worker = builder
                    .concurrency(concurrency)
                    .name(name.clone())
                    .shm(shm)
                    .try_build()?;
                match app {
                    App::Demo => {
                        worker
                            .run(demo_app::DemoApp::new(name), terminated())
                            .await?
                    }
                    App::DemoFilter => {
                        worker
                            .run_filter(demo_filter::DemoFilter, terminated())
                            .await?
                    }
                }
                Ok(())
            }
            Command::Demo { listen } => demo(listen).await,
            Command::CheckConfig { config } => {
                let file = config.path()?;
                let config = load(&file)?;
                for warning in config.warnings() {
                    eprintln!("{}: warning: {warning}", file.display());
                }
                println!(
                    "{}: ok ({} pools, {} routes)",
                    file.display(),
                    config.pools.len(),
                    config.routes.len()
                );
                Ok(())
            }
        }
    })
}

/// Reads and validates a config file, and checks what the hub will need of this host that
/// the config alone cannot tell (each Unix listener's path: its directory exists, nothing
/// but a stale socket is in the way).
fn load(path: &Path) -> anyhow::Result<Config> {
    let config = Config::from_file(path)?;
    pullman_hub::Hub::check(&config).with_context(|| format!("{}", path.display()))?;
    Ok(config)
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Binds, prints where it listens (one line on stdout, for people and scripts), serves;
/// SIGHUP reloads the config file.
async fn run_hub(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let mut hub = Hub::bind(config).await?;
    hub.set_config_file(path);
    let reload = hub.reload_handle();
    let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config file");
            if let Err(e) = reload.reload() {
                tracing::error!(error = %e, "the running configuration stays");
            }
        }
    });
    announce(&hub);
    hub.run(terminated()).await;
    Ok(())
}

fn announce(hub: &Hub) {
    let workers: Vec<String> = hub.worker_addrs().iter().map(ToString::to_string).collect();
    let admin = hub
        .admin_addr()
        .map(|a| {
            let scheme = if hub.admin_tls() { "https" } else { "http" };
            format!(" admin={scheme}://{a}")
        })
        .unwrap_or_default();
    let tls = hub
        .tls_addr()
        .map(|a| format!(" tls=https://{a}"))
        .unwrap_or_default();
    println!(
        "pullman listening front=http://{}{tls}{admin} workers={}",
        hub.front_addr(),
        workers.join(",")
    );
}

async fn demo(listen: SocketAddr) -> anyhow::Result<()> {
    let admin_token = made_up_token()?;
    let config = demo_config(listen, &admin_token)?;
    let workers: u32 = config.programs.iter().map(|p| p.instances).sum();
    let hub = Hub::bind(config).await?;
    let url = format!("http://{}", hub.front_addr());
    println!("pullman demo: {workers} supervised workers; try  curl {url}/hello");
    println!("  also {url}/inspect, {url}/sleep?ms=200, {url}/bytes?n=1000, {url}/status?code=418; Ctrl-C stops");
    if let Some(admin) = hub.admin_addr() {
        println!("  admin API and /metrics at http://{admin} (token made up for this run); try");
        println!("  curl -H 'Authorization: Bearer {admin_token}' http://{admin}/pools");
    }
    hub.run(terminated()).await;
    Ok(())
}

/// The embedded demo config, its clients' listener moved to `listen` and its admin token
/// replaced, edited as a document so that the admin API's edits start from what runs.
fn demo_config(listen: SocketAddr, admin_token: &str) -> anyhow::Result<Config> {
    let mut doc: toml::Table = DEMO_CONFIG.parse().context("the embedded demo config")?;
    for (table, key, value) in [
        ("hub", "listen", listen.to_string()),
        ("admin", "token", admin_token.to_string()),
    ] {
        doc.get_mut(table)
            .and_then(toml::Value::as_table_mut)
            .with_context(|| format!("the embedded demo config has no [{table}]"))?
            .insert(key.into(), value.into());
    }
    Ok(Config::from_str(
        &toml::to_string(&doc)?,
        "embedded demo config",
    )?)
}

/// 128 random bits as hex: an admin token nobody else can know, for one run of the demo.
fn made_up_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
