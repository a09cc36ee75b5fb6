//! The load generator: closed loop (N connections as fast as they go) and open loop (a
//! seeded trace of intended send times).
//!
//! In the open loop, a request's latency runs from its *intended* send time, not from when
//! a connection became free to send it: if the system stalls, every request planned during
//! the stall shows the stall (no coordinated omission).

pub mod client;
mod h1;
mod progress;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

pub use client::{Answer, Conn, Proto, RequestSpec, Target, TrustedCa};
use progress::Progress;

use crate::error::Error;
use crate::trace::{Job, Trace};

/// Longest latency the histograms hold (1 hour, in µs): anything longer is clamped, and no
/// benchmark request is meant to take more than its scenario's timeout.
const HIST_MAX_US: u64 = 3_600_000_000;
/// Significant digits of the histograms: 0.1 % resolution.
const HIST_DIGITS: u8 = 3;
/// How long the open loop waits, after the last intended send, for answers still out,
/// before counting them as errors: a hang guard, far above any scenario's latencies.
const OPEN_LOOP_DRAIN: Duration = Duration::from_secs(120);
/// How long the closed loop waits for a connection's requests once its I/O has ended (they
/// end at once, failed or answered; a hang guard).
const CLOSED_GRACE: Duration = Duration::from_secs(1);

/// Lead time between opening the connections and the trace's time zero.
const OPEN_LOOP_LEAD: Duration = Duration::from_millis(20);

/// An empty latency histogram (µs, 1 µs to 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, HIST_DIGITS).expect("static histogram bounds")
}

/// One open-loop request as it went.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Intended send time from the run's start, ms.
    pub at_ms: f64,
    /// From intended send time to the end of the answer's body, ms.
    pub latency_ms: f64,
    pub class: u8,
    pub ok: bool,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub elapsed: Duration,
    pub ok: u64,
    pub errors: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Latencies of the answered requests, µs.
    pub hist: Histogram<u64>,
    /// Same, per trace class (open loop).
    pub by_class: Vec<Histogram<u64>>,
    /// Every request (open loop only).
    pub samples: Vec<Sample>,
    /// When the trace's time zero was (open loop), to line up with server-side events.
    pub epoch: Instant,
    /// Open loop: how late the generator itself started each request, µs (its own
    /// scheduling delay; counted in the latencies, as it must be, and reported so that a
    /// busy machine shows as such rather than as the system's fault).
    pub late: Histogram<u64>,
}

impl LoadResult {
    fn new(epoch: Instant) -> LoadResult {
        LoadResult {
            elapsed: Duration::ZERO,
            ok: 0,
            errors: 0,
            bytes: 0,
            hist: new_histogram(),
            by_class: Vec::new(),
            samples: Vec::new(),
            epoch,
            late: new_histogram(),
        }
    }

    fn record(&mut self, latency: Duration, class: u8, answer: &Result<Answer, Error>) {
        let ok = matches!(answer, Ok(a) if a.status.is_success());
        if let Ok(a) = answer {
            self.bytes += a.body_bytes;
        }
        if ok {
            self.ok += 1;
            let us = (latency.as_micros() as u64).clamp(1, HIST_MAX_US);
            self.hist.saturating_record(us);
            let c = class as usize;
            while self.by_class.len() <= c {
                self.by_class.push(new_histogram());
            }
            self.by_class[c].saturating_record(us);
        } else {
            self.errors += 1;
        }
    }

    /// A result made from latencies measured elsewhere (the simulator's), over `secs`.
    pub fn from_histogram(hist: Histogram<u64>, secs: f64) -> LoadResult {
        let mut r = LoadResult::new(Instant::now());
        r.ok = hist.len();
        r.hist = hist;
        r.elapsed = Duration::from_secs_f64(secs.max(1e-3));
        r
    }

    pub fn req_per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Quantile of the answered requests' latency, ms (0 when none).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.hist, q)
    }
}

pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `conns` connections, each sending `spec(i)` back to back for `duration`. For HTTP/2,
/// `streams` loops share each connection.
pub async fn closed_loop(
    target: &Target,
    conns: usize,
    streams: usize,
    duration: Duration,
    spec: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync>,
    label: &str,
) -> Result<LoadResult, Error> {
    let start = Instant::now();
    let deadline = start + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(label, Some(duration), counter.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns.max(1) {
        let (target, spec, counter) = (target.clone(), spec.clone(), counter.clone());
        tasks.spawn(async move {
            let mut result = LoadResult::new(start);
            // One task per connection drives the connection's I/O and its requests
            // together; a connection the server closes is replaced.
            while Instant::now() < deadline {
                let Ok((conn, driver)) = Conn::open_inline(&target).await else {
                    result.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let mut handles: Vec<Conn> =
                    (1..streams.max(1)).filter_map(|_| conn.share()).collect();
                handles.push(conn);
                let loops = handles.into_iter().map(|mut conn| {
                    let (target, spec, counter) = (&target, &spec, &counter);
                    async move {
                        let mut part = LoadResult::new(start);
                        while Instant::now() < deadline && !conn.is_closed() {
                            let i = counter.fetch_add(1, Ordering::Relaxed);
                            let sent = Instant::now();
                            let answer = conn.send(target, &spec(i)).await;
                            part.record(sent.elapsed(), 0, &answer);
                        }
                        part
                    }
                });
                let all = futures_util::future::join_all(loops);
                futures_util::pin_mut!(all);
                let parts = match futures_util::future::select(driver, all).await {
                    futures_util::future::Either::Right((parts, _)) => parts,
                    // The connection ended, as a server that closes after each answer ends
                    // it as soon as the answer is out: the loops see it closed and stop, an
                    // answer that came before counts, a request in flight fails.
                    futures_util::future::Either::Left(((), all)) => {
                        match tokio::time::timeout(CLOSED_GRACE, all).await {
                            Ok(parts) => parts,
                            Err(_) => {
                                result.errors += 1;
                                Vec::new()
                            }
                        }
                    }
                };
                for p in parts {
                    merge(&mut result, p);
                }
            }
            result
        });
    }
    let mut total = LoadResult::new(start);
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            merge(&mut total, part);
        }
    }
    total.elapsed = start.elapsed();
    progress.finish();
    Ok(total)
}

fn merge(total: &mut LoadResult, part: LoadResult) {
    total.ok += part.ok;
    total.errors += part.errors;
    total.bytes += part.bytes;
    let _ = total.hist.add(&part.hist);
    for (c, h) in part.by_class.iter().enumerate() {
        while total.by_class.len() <= c {
            total.by_class.push(new_histogram());
        }
        let _ = total.by_class[c].add(h);
    }
    total.samples.extend(part.samples);
}

/// Idle connections of the open loop. HTTP/1.1 connections carry one request at a time and
/// are taken in turn; HTTP/2 ones are shared.
enum Pool {
    H1(
        Mutex<tokio::sync::mpsc::Receiver<Conn>>,
        tokio::sync::mpsc::Sender<Conn>,
    ),
    H2(Vec<Conn>, AtomicU64),
}

impl Pool {
    async fn take(&self) -> Option<Conn> {
        match self {
            Pool::H1(rx, _) => rx.lock().await.recv().await,
            Pool::H2(conns, next) => {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % conns.len();
                conns[i].share()
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        if let Pool::H1(_, tx) = self {
            let _ = tx.try_send(conn);
        }
    }
}

/// Replays `trace`: job j is due at `jobs[j].at_ms` from the start, whether or not the
/// previous answers have come. `conns` connections (HTTP/1.1: at most that many requests in
/// flight; later ones wait for a connection, and that wait counts in their latency).
pub async fn open_loop(
    target: &Target,
    trace: &Trace,
    conns: usize,
    spec: Arc<dyn Fn(&Job) -> RequestSpec + Send + Sync>,
    label: &str,
) -> Result<LoadResult, Error> {
    let conns = conns.max(1);
    let pool = match target.proto {
        Proto::H1 => {
            let (tx, rx) = tokio::sync::mpsc::channel(conns);
            for _ in 0..conns {
                let _ = tx.try_send(Conn::open(target).await?);
            }
            Pool::H1(Mutex::new(rx), tx)
        }
        Proto::H2 => {
            let mut v = Vec::with_capacity(conns);
            for _ in 0..conns {
                v.push(Conn::open(target).await?);
            }
            Pool::H2(v, AtomicU64::new(0))
        }
    };
    let pool = Arc::new(pool);
    let epoch = Instant::now() + OPEN_LOOP_LEAD;
    let total_ms = trace.jobs.last().map(|j| j.at_ms).unwrap_or(0.0);
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        label,
        Some(Duration::from_secs_f64(total_ms / 1000.0)),
        counter.clone(),
    );
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for job in trace.jobs.iter().copied() {
        let due = epoch + Duration::from_secs_f64(job.at_ms / 1000.0);
        tokio::time::sleep_until(due.into()).await;
        let (pool, target, spec, done_tx, counter) = (
            pool.clone(),
            target.clone(),
            spec.clone(),
            done_tx.clone(),
            counter.clone(),
        );
        tokio::spawn(async move {
            let late = due.elapsed();
            let req = spec(&job);
            let answer = match pool.take().await {
                Some(mut conn) => {
                    let answer = conn.send(&target, &req).await;
                    if conn.is_closed() {
                        if let Ok(c) = Conn::open(&target).await {
                            conn = c;
                        }
                    }
                    // Latency ends when the answer is in, before the connection is handed on.
                    let latency = due.elapsed();
                    pool.give_back(conn);
                    (answer, latency)
                }
                None => (Err(Error::peer("load", "no connection")), due.elapsed()),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = done_tx.send((job, answer.0, answer.1, late));
        });
    }
    drop(done_tx);
    let mut result = LoadResult::new(epoch);
    let drain_until = tokio::time::Instant::now() + OPEN_LOOP_DRAIN;
    let mut answered = 0usize;
    while answered < trace.jobs.len() {
        match tokio::time::timeout_at(drain_until, done_rx.recv()).await {
            Ok(Some((job, answer, latency, late))) => {
                answered += 1;
                result
                    .late
                    .saturating_record((late.as_micros() as u64).clamp(1, HIST_MAX_US));
                result.record(latency, job.class, &answer);
                result.samples.push(Sample {
                    at_ms: job.at_ms,
                    latency_ms: latency.as_secs_f64() * 1000.0,
                    class: job.class,
                    ok: matches!(&answer, Ok(a) if a.status.is_success()),
                });
            }
            Ok(None) | Err(_) => break,
        }
    }
    result.errors += (trace.jobs.len() - answered) as u64;
    result.elapsed = Duration::from_secs_f64(total_ms / 1000.0).max(Duration::from_millis(1));
    progress.finish();
    Ok(result)
}

#[cfg(test)]
mod tests;
