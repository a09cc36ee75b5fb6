//! The `[metrics]` table.

use serde::Deserialize;

/// The `[metrics]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether requests are counted and timed. Default true; off only to measure what
    /// recording costs (the gauges at `/metrics` still work).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig { enabled: true }
    }
}

fn default_true() -> bool {
    true
}
