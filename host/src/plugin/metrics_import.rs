//! The `metrics` import: a plugin's own metrics, declared in `configure`
//! and updated by handle (see [`super::metric_registry`]).

use super::bindings::metrics::{self, MetricKind};
use super::metric_registry;
use super::state::PluginState;

impl metrics::Host for PluginState {
    fn declare(
        &mut self,
        name: String,
        help: String,
        kind: MetricKind,
        labels: Vec<String>,
        buckets: Vec<f64>,
    ) -> Result<u32, String> {
        if !self.configuring {
            return Err("metrics are declared in `configure` only".to_owned());
        }
        let kind = match kind {
            MetricKind::Counter => metric_registry::MetricKind::Counter,
            MetricKind::Gauge => metric_registry::MetricKind::Gauge,
            MetricKind::Histogram => metric_registry::MetricKind::Histogram,
        };
        self.metrics.declare(&name, &help, kind, labels, buckets)
    }

    fn series(&mut self, metric: u32, values: Vec<String>) -> Result<u32, String> {
        self.metrics.series(metric, values)
    }

    fn inc(&mut self, series: u32, by: u64) {
        self.metrics.inc(series, by);
    }

    fn set(&mut self, series: u32, value: f64) {
        self.metrics.set(series, value);
    }

    fn observe(&mut self, series: u32, value: f64) {
        self.metrics.observe(series, value);
    }
}
