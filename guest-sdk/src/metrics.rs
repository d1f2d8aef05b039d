//! Metrics of the plugin's own, exported on the proxy's `/metrics` as
//! `bascule_plugin_<name>` (counters `bascule_plugin_<name>_total`),
//! labelled with the plugin, the pool or filter it serves, and the labels
//! declared here.
//!
//! Declare in `configure` (only then is it allowed); ask for a series once
//! per label values and keep it: updating a series is one host call with
//! two numbers, no text.
//!
//! ```no_run
//! use bascule_guest_sdk::metrics::{Counter, CounterSeries};
//! use bascule_guest_sdk::Error;
//!
//! struct Hits {
//!     hit: CounterSeries,
//!     miss: CounterSeries,
//! }
//!
//! fn declare() -> Result<Hits, Error> {
//!     let lookups = Counter::declare("cookie_lookups", "affinity cookies looked up", &["result"])?;
//!     Ok(Hits { hit: lookups.series(&["hit"])?, miss: lookups.series(&["miss"])? })
//! }
//! ```
//!
//! Past the proxy's `[sandbox] max-metric-series` a series is still
//! returned, but its updates are dropped (and counted by the host). In
//! native builds (unit tests) values are kept on the thread and read with
//! [`native_value`].

use crate::Error;

/// A declared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(u32);

/// A counter with values for its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSeries(u32);

/// A declared gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(u32);

/// A gauge with values for its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeSeries(u32);

/// A declared histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram(u32);

/// A histogram with values for its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSeries(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Counter {
    /// Declares a counter named `name` (`a-z`, `0-9`, `_`) with `labels`.
    pub fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Counter, Error> {
        host::declare(name, help, Kind::Counter, labels, &[]).map(Counter)
    }

    /// The series with `values`, one per label.
    pub fn series(&self, values: &[&str]) -> Result<CounterSeries, Error> {
        host::series(self.0, values).map(CounterSeries)
    }
}

impl CounterSeries {
    /// Adds one.
    pub fn inc(&self) {
        host::inc(self.0, 1);
    }

    /// Adds `by`.
    pub fn add(&self, by: u64) {
        host::inc(self.0, by);
    }
}

impl Gauge {
    /// Declares a gauge named `name` with `labels`.
    pub fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Gauge, Error> {
        host::declare(name, help, Kind::Gauge, labels, &[]).map(Gauge)
    }

    /// The series with `values`, one per label.
    pub fn series(&self, values: &[&str]) -> Result<GaugeSeries, Error> {
        host::series(self.0, values).map(GaugeSeries)
    }
}

impl GaugeSeries {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        host::set(self.0, value);
    }
}

impl Histogram {
    /// Declares a histogram named `name` with `labels` and bucket upper
    /// bounds `buckets` (increasing; empty: 0.5 ms to 30 s in seconds).
    pub fn declare(
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Histogram, Error> {
        host::declare(name, help, Kind::Histogram, labels, buckets).map(Histogram)
    }

    /// The series with `values`, one per label.
    pub fn series(&self, values: &[&str]) -> Result<HistogramSeries, Error> {
        host::series(self.0, values).map(HistogramSeries)
    }
}

impl HistogramSeries {
    /// Counts one observation of `value`.
    pub fn observe(&self, value: f64) {
        host::observe(self.0, value);
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::Kind;
    use crate::Error;
    use crate::bindings::bascule::plugin::metrics::{self, MetricKind};

    fn owned(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    pub(super) fn declare(
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<u32, Error> {
        let kind = match kind {
            Kind::Counter => MetricKind::Counter,
            Kind::Gauge => MetricKind::Gauge,
            Kind::Histogram => MetricKind::Histogram,
        };
        metrics::declare(name, help, kind, &owned(labels), buckets).map_err(Error::new)
    }

    pub(super) fn series(metric: u32, values: &[&str]) -> Result<u32, Error> {
        metrics::series(metric, &owned(values)).map_err(Error::new)
    }

    pub(super) fn inc(series: u32, by: u64) {
        metrics::inc(series, by);
    }

    pub(super) fn set(series: u32, value: f64) {
        metrics::set(series, value);
    }

    pub(super) fn observe(series: u32, value: f64) {
        metrics::observe(series, value);
    }
}

/// Native builds: metrics and series on the thread, for unit tests.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use std::cell::RefCell;

    use super::Kind;
    use crate::Error;

    #[derive(Default)]
    struct Native {
        /// Name, kind and label count.
        metrics: Vec<(String, Kind, usize)>,
        /// Metric index, label values, value (a histogram's count).
        series: Vec<(usize, Vec<String>, f64)>,
    }

    thread_local! {
        static NATIVE: RefCell<Native> = RefCell::default();
    }

    pub(super) fn declare(
        name: &str,
        _help: &str,
        kind: Kind,
        labels: &[&str],
        _buckets: &[f64],
    ) -> Result<u32, Error> {
        NATIVE.with(|native| {
            let mut native = native.borrow_mut();
            if let Some(found) = native.metrics.iter().position(|(n, _, _)| n == name) {
                return u32::try_from(found).map_err(|_| Error::new("too many metrics"));
            }
            native.metrics.push((name.to_owned(), kind, labels.len()));
            u32::try_from(native.metrics.len() - 1).map_err(|_| Error::new("too many metrics"))
        })
    }

    pub(super) fn series(metric: u32, values: &[&str]) -> Result<u32, Error> {
        NATIVE.with(|native| {
            let mut native = native.borrow_mut();
            let metric = usize::try_from(metric).map_err(|_| Error::new("no such metric"))?;
            let Some((_, _, labels)) = native.metrics.get(metric) else {
                return Err(Error::new("no such metric"));
            };
            if *labels != values.len() {
                return Err(Error::new("one value per label"));
            }
            let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            if let Some(found) = native
                .series
                .iter()
                .position(|(m, v, _)| *m == metric && *v == values)
            {
                return u32::try_from(found).map_err(|_| Error::new("too many series"));
            }
            native.series.push((metric, values, 0.0));
            u32::try_from(native.series.len() - 1).map_err(|_| Error::new("too many series"))
        })
    }

    fn update(series: u32, change: impl FnOnce(&mut f64)) {
        NATIVE.with(|native| {
            let mut native = native.borrow_mut();
            if let Some((_, _, value)) = usize::try_from(series)
                .ok()
                .and_then(|series| native.series.get_mut(series))
            {
                change(value);
            }
        });
    }

    #[allow(clippy::cast_precision_loss)]
    pub(super) fn inc(series: u32, by: u64) {
        update(series, |value| *value += by as f64);
    }

    pub(super) fn set(series: u32, to: f64) {
        update(series, |value| *value = to);
    }

    pub(super) fn observe(series: u32, _value: f64) {
        update(series, |count| *count += 1.0);
    }

    pub(super) fn value(name: &str, values: &[&str]) -> Option<f64> {
        NATIVE.with(|native| {
            let native = native.borrow();
            let metric = native.metrics.iter().position(|(n, _, _)| n == name)?;
            native
                .series
                .iter()
                .find(|(m, v, _)| {
                    *m == metric && v.iter().map(String::as_str).eq(values.iter().copied())
                })
                .map(|(_, _, value)| *value)
        })
    }
}

/// In native builds, the value of `name`'s series with `values` on this
/// thread (a counter's total, a gauge's value, a histogram's count).
#[cfg(not(target_arch = "wasm32"))]
pub fn native_value(name: &str, values: &[&str]) -> Option<f64> {
    host::value(name, values)
}
