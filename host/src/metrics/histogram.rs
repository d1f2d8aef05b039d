//! Fixed-bucket histograms (requests, backend responses, TCP connection
//! lifetimes, probes), rendered by `/metrics` beside the recorder's
//! output.
//!
//! The Prometheus exporter's own histograms keep every sample until the
//! next scrape drains them: a few bytes per request that pile up (without
//! a scraper, forever) and churn the allocator. Two of them per request
//! cost 11% of a small request's CPU (`bench/compare.py --no-ramp`,
//! BENCHMARKS.md). These count into fixed atomic buckets instead:
//! recording is a binary search and two atomic adds, with no allocation,
//! whatever the scrape interval.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Upper bounds (seconds) of the request and response-time buckets:
/// 0.5 ms to 30 s.
pub const RESPONSE_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of TCP connection lifetimes: 1 ms to a day.
pub const LIFETIME_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 86400.0,
];

/// Upper bounds (seconds) of plugin calls: 1 µs (an empty call costs a
/// few hundred ns) to the sandbox's longest budget.
pub const PLUGIN_CALL_BUCKETS: [f64; 13] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.005,
    0.025,
    0.1,
];

/// Upper bounds (seconds) of health probe durations: 0.5 ms to 10 s.
pub const PROBE_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0, 10.0,
];

/// One metric name and its series, each a label set.
pub struct Family {
    name: Cow<'static, str>,
    help: Cow<'static, str>,
    bounds: Cow<'static, [f64]>,
    series: Mutex<Vec<(String, Weak<Histogram>)>>,
}

/// One series: counts per bucket, the sum and the count.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    /// Per bucket (not cumulative), plus one past the last bound.
    buckets: Box<[AtomicU64]>,
    /// The sum of samples, in nanoseconds.
    sum_nanos: AtomicU64,
}

// === impl Family ===

impl Family {
    /// A histogram metric named `name` with these bucket bounds.
    pub const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        Family {
            name: Cow::Borrowed(name),
            help: Cow::Borrowed(help),
            bounds: Cow::Borrowed(bounds),
            series: Mutex::new(Vec::new()),
        }
    }

    /// A histogram metric named at run time (a plugin's).
    pub fn named(name: String, help: String, bounds: Vec<f64>) -> Self {
        Family {
            name: Cow::Owned(name),
            help: Cow::Owned(help),
            bounds: Cow::Owned(bounds),
            series: Mutex::new(Vec::new()),
        }
    }

    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The buckets' upper bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The series with `labels` (name, value pairs), registered on first
    /// use; while it lives (a route or backend kept across reloads) the
    /// same one is returned, so its counts go on.
    pub fn series(&self, labels: &[(&str, &str)]) -> Arc<Histogram> {
        let mut rendered = String::new();
        for (n, (name, value)) in labels.iter().enumerate() {
            if n > 0 {
                rendered.push(',');
            }
            let _ = write!(rendered, "{name}=\"{}\"", escape(value));
        }
        let mut series = self.lock();
        series.retain(|(_, histogram)| histogram.strong_count() > 0);
        if let Some(live) = series
            .iter()
            .find(|(labels, _)| *labels == rendered)
            .and_then(|(_, histogram)| histogram.upgrade())
        {
            return live;
        }
        let histogram = Arc::new(Histogram::new(Arc::from(&*self.bounds)));
        series.push((rendered, Arc::downgrade(&histogram)));
        histogram
    }

    /// The family in the Prometheus text format; nothing when no series
    /// lives.
    pub fn render(&self, out: &mut String) {
        let series: Vec<(String, Arc<Histogram>)> = self
            .lock()
            .iter()
            .filter_map(|(labels, histogram)| Some((labels.clone(), histogram.upgrade()?)))
            .collect();
        if series.is_empty() {
            return;
        }
        let name = &self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, histogram) in series {
            let mut cumulative = 0;
            for (n, count) in histogram.buckets.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let bound = match self.bounds.get(n) {
                    Some(bound) => bound.to_string(),
                    None => "+Inf".to_owned(),
                };
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            #[allow(clippy::cast_precision_loss)]
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Weak<Histogram>)>> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Histogram ===

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Self {
        Histogram {
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// The count in each bucket now (not cumulative), the last past every
    /// bound.
    pub fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// The buckets' upper bounds, in seconds.
    pub fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// Counts one sample of `duration`.
    pub fn record(&self, duration: std::time::Duration) {
        self.count_in_bucket(duration.as_secs_f64());
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one observation of `value` (a plugin's histograms count any
    /// quantity); the sum keeps nine decimals. Negative, infinite and NaN
    /// values are not counted.
    pub fn observe(&self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        self.count_in_bucket(value);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nanos = (value * 1e9) as u64;
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn count_in_bucket(&self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = self.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A label value as the text format wants it: `\`, `"` and line feeds
/// escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    static FAMILY: Family = Family::new("test_seconds", "a test", &[0.001, 0.01]);

    #[test]
    fn counts_fall_in_their_bucket_and_render_cumulatively() {
        let series = FAMILY.series(&[("route", "a\"b")]);
        series.record(Duration::from_micros(500));
        series.record(Duration::from_millis(1));
        series.record(Duration::from_millis(5));
        series.record(Duration::from_secs(2));
        assert!(Arc::ptr_eq(&series, &FAMILY.series(&[("route", "a\"b")])));
        let mut out = String::new();
        FAMILY.render(&mut out);
        assert_eq!(
            out,
            "# HELP test_seconds a test\n# TYPE test_seconds histogram\n\
             test_seconds_bucket{route=\"a\\\"b\",le=\"0.001\"} 2\n\
             test_seconds_bucket{route=\"a\\\"b\",le=\"0.01\"} 3\n\
             test_seconds_bucket{route=\"a\\\"b\",le=\"+Inf\"} 4\n\
             test_seconds_sum{route=\"a\\\"b\"} 2.0065\n\
             test_seconds_count{route=\"a\\\"b\"} 4\n"
        );
        drop(series);
        let mut out = String::new();
        FAMILY.render(&mut out);
        assert_eq!(out, "", "a series nobody holds is gone");
    }
}
