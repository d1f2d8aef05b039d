//! The calls into one hook of one plugin: counted, and timed into
//! `bascule_plugin_call_duration_seconds`, with series registered once so
//! that a call adds no lookup.

use std::sync::Arc;

use crate::metrics::histogram::Histogram;

/// `bascule_plugin_calls_total{plugin,hook}` and its duration histogram.
pub(super) struct HookMetrics {
    calls: metrics::Counter,
    took: Arc<Histogram>,
}

// === impl HookMetrics ===

impl HookMetrics {
    pub(super) fn new(plugin: &str, hook: &'static str) -> Self {
        HookMetrics {
            calls: metrics::counter!(crate::metrics::PLUGIN_CALLS, "plugin" => plugin.to_owned(), "hook" => hook),
            took: crate::metrics::PLUGIN_CALL_DURATIONS
                .series(&[("plugin", plugin), ("hook", hook)]),
        }
    }

    /// Runs `call`, counted and timed (on the TSC, through `quanta`),
    /// failed or not.
    pub(super) fn measure<T>(&self, call: impl FnOnce() -> T) -> T {
        self.calls.increment(1);
        let started = quanta::Instant::now();
        let result = call();
        self.took.record(started.elapsed());
        result
    }
}
