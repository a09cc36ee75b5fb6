//! Prometheus metrics: per-pool counters recorded on the request path, gauges read when
//! scraped, and the text exposition format (0.0.4) written by hand.
//!
//! `/metrics` is rendered from a list of [`Source`]s, each writing whole metric families:
//! the hub's pools are one source; a supervisor adds its programs as another.

mod histogram;
mod programs;
mod requests;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

pub(crate) use histogram::{HistogramSnapshot, BUCKETS};
pub(crate) use requests::{outcome_index, RequestMetrics, OUTCOMES};

use crate::hub::HubShared;
use crate::pool::PoolStatus;

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that writes metric families at scrape time.
pub(crate) trait Source: Send + Sync {
    fn render(&self, out: &mut Exposition);
}

/// The kind on a family's `# TYPE` line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The text being written. Each family is announced once with [`Exposition::family`] and
/// its samples follow it.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.text.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.text, " {}", value.into());
    }

    /// The `_bucket`, `_sum` and `_count` series of one histogram.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in BUCKETS.iter().zip(h.cumulative) {
            let _ = write!(self.text, "{name}_bucket");
            self.labels(labels, Some(&bound.to_string()));
            let _ = writeln!(self.text, " {count}");
        }
        let _ = write!(self.text, "{name}_bucket");
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", h.count);
        let _ = write!(self.text, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.text, " {}", h.sum_seconds);
        let _ = write!(self.text, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.text, " {}", h.count);
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.text.push('{');
        let mut first = true;
        for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.text.push(',');
            }
            first = false;
            let _ = write!(self.text, "{name}=\"{}\"", escape_label(value));
        }
        self.text.push('}');
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The pools' families: request outcomes and latencies, and the queue, worker and credit
/// gauges read from each pool's state at scrape time.
impl Source for HubShared {
    fn render(&self, out: &mut Exposition) {
        let routing = self.routing.load();
        let mut pools: Vec<_> = routing.pools.values().cloned().collect();
        pools.sort_by(|a, b| a.name().cmp(b.name()));

        out.family(
            "pullman_requests_total",
            Kind::Counter,
            "Requests by pool and how they ended (ok: the worker answered).",
        );
        for pool in &pools {
            let counts = pool.metrics.outcomes();
            for (outcome, count) in OUTCOMES.iter().zip(counts) {
                if *outcome != "no_route" {
                    out.sample(
                        "pullman_requests_total",
                        &[("pool", pool.name()), ("outcome", outcome)],
                        count as f64,
                    );
                }
            }
        }
        out.sample(
            "pullman_requests_total",
            &[("pool", ""), ("outcome", "no_route")],
            self.unrouted.load(Ordering::Relaxed) as f64,
        );

        out.family(
            "pullman_filter_total",
            Kind::Counter,
            "Decisions of a filter pool's filters, and requests no filter decided on (failed_open, failed_closed).",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            for (outcome, count) in pool.filter_stats.counts() {
                out.sample(
                    "pullman_filter_total",
                    &[("pool", pool.name()), ("outcome", outcome)],
                    count as f64,
                );
            }
        }

        out.family(
            "pullman_queue_wait_seconds",
            Kind::Histogram,
            "Time from arrival until a worker's credit was taken, for requests that got one.",
        );
        for pool in &pools {
            let h = pool.metrics.queue_wait.snapshot();
            out.histogram("pullman_queue_wait_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_service_seconds",
            Kind::Histogram,
            "Time from handing a request to a worker until its response head or verdict (or failure).",
        );
        for pool in &pools {
            let h = pool.metrics.service.snapshot();
            out.histogram("pullman_service_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_upstream_seconds",
            Kind::Histogram,
            "Filter pools: time from sending a request upstream until its response head (or failure).",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            let h = pool.metrics.upstream.snapshot();
            out.histogram("pullman_upstream_seconds", &[("pool", pool.name())], &h);
        }
        out.family(
            "pullman_upstream_stalls_total",
            Kind::Counter,
            "Filter pools: upstream response bodies cut off because nothing of them came for upstream_timeout.",
        );
        for pool in pools.iter().filter(|p| p.upstream().is_some()) {
            out.sample(
                "pullman_upstream_stalls_total",
                &[("pool", pool.name())],
                pool.metrics.upstream_stalls.load(Ordering::Relaxed) as f64,
            );
        }

        let status: Vec<_> = pools.iter().map(|p| (p.name(), p.status())).collect();
        let gauges: [Gauge; 4] = [
            (
                "pullman_queue_depth",
                "Requests waiting for a worker.",
                |s| s.queued as u64,
            ),
            (
                "pullman_workers",
                "Worker links connected (draining ones included).",
                |s| s.workers as u64,
            ),
            (
                "pullman_credits_free",
                "Credits workers granted that no request has taken yet.",
                |s| s.credits_free,
            ),
            (
                "pullman_in_flight",
                "Requests handed to workers and not yet answered in full.",
                |s| s.in_flight,
            ),
        ];
        for (name, help, read) in gauges {
            out.family(name, Kind::Gauge, help);
            for (pool, s) in &status {
                out.sample(name, &[("pool", pool)], read(s) as f64);
            }
        }
    }
}

/// A gauge read from a pool's status: name, help, reader.
type Gauge = (&'static str, &'static str, fn(&PoolStatus) -> u64);

/// Renders every source into one exposition.
pub(crate) fn render(sources: &[&dyn Source]) -> String {
    let mut out = Exposition::default();
    for source in sources {
        source.render(&mut out);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::histogram::Histogram;

    #[test]
    fn exposition_text_has_the_expected_shape() {
        let mut out = Exposition::default();
        out.family("x_total", Kind::Counter, "Things.\nMore.");
        out.sample("x_total", &[("pool", "a\"b\\c")], 3.0);
        out.sample("up", &[], 1.0);
        let h = Histogram::default();
        h.observe(Duration::from_millis(2));
        out.histogram("lat_seconds", &[("pool", "p")], &h.snapshot());
        let text = out.finish();
        assert!(text.starts_with("# HELP x_total Things.\\nMore.\n# TYPE x_total counter\n"));
        assert!(text.contains("x_total{pool=\"a\\\"b\\\\c\"} 3\n"), "{text}");
        assert!(text.contains("\nup 1\n"), "{text}");
        assert!(text.contains("lat_seconds_bucket{pool=\"p\",le=\"0.001\"} 0\n"));
        assert!(text.contains("lat_seconds_bucket{pool=\"p\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{pool=\"p\",le=\"+Inf\"} 1\n"));
        assert!(
            text.contains("lat_seconds_sum{pool=\"p\"} 0.002\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count{pool=\"p\"} 1\n"));
    }
}
