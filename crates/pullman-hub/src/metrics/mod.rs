//! Prometheus metrics: per-pool counters recorded on the request path, gauges read when
//! scraped, and the text exposition format (0.0.4) written by hand.
//!
//! `/metrics` is rendered from a list of [`Source`]s, each writing whole metric families
//! (the admin API's `metrics` module has the hub's: its pools and its programs). This
//! module only records and writes: it knows no pool, so everything that counts can use it.

mod filter;
mod histogram;
mod requests;
mod worker_faults;

use std::fmt::Write as _;

pub(crate) use filter::{count, FilterStats};
pub(crate) use histogram::{HistogramSnapshot, BUCKETS};
pub(crate) use requests::{outcome_index, RequestMetrics, OUTCOMES};
pub(crate) use worker_faults::WorkerFault;

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
