//! The metrics one plugin use (a pool's balancer or health interpreter, a
//! `[filters.NAME]`) defines through the `metrics` import: shared by all
//! its instances, bounded in series, exported as
//! `bascule_plugin_<name>{plugin, pool|filter, <its labels>}`.
//!
//! Handles are indices: a declared metric's into the metric list, a
//! series' into the series list. An update reads the list under a read
//! lock and adds to the series' own atomic; no name is formatted or
//! looked up after the series was first asked for.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::instances::PluginUse;
use crate::metrics::histogram::{Family, Histogram, RESPONSE_BUCKETS};

/// The handle of a series past the use's limit: its updates are dropped.
pub(super) const DROPPED_SERIES: u32 = u32::MAX;

/// Metrics one plugin may declare.
const MAX_METRICS: usize = 64;
/// Labels one metric may declare.
const MAX_LABELS: usize = 8;
/// Buckets one histogram may declare.
const MAX_BUCKETS: usize = 32;
/// Bytes of one label value.
const MAX_LABEL_VALUE: usize = 128;
/// Characters of a metric or label name.
const MAX_NAME: usize = 64;
/// Label names the host sets on every plugin series.
const HOST_LABELS: [&str; 4] = ["plugin", "pool", "filter", "le"];

/// What a metric counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One plugin use's metrics and series.
pub(super) struct MetricRegistry {
    plugin: Arc<str>,
    used_by: PluginUse,
    max_series: usize,
    defined: RwLock<Defined>,
    dropped: metrics::Counter,
}

#[derive(Default)]
struct Defined {
    metrics: Vec<Declared>,
    series: Vec<Series>,
    /// A series' handle by metric and label values.
    index: HashMap<(u32, Vec<String>), u32>,
}

struct Declared {
    /// The exported name (`bascule_plugin_NAME`, `_total` for counters).
    name: String,
    /// As the plugin declared it, to find a second declaration.
    short: String,
    kind: MetricKind,
    labels: Vec<String>,
    histogram: Option<Arc<Family>>,
}

enum Series {
    Counter(metrics::Counter),
    Gauge(metrics::Gauge),
    Histogram(Arc<Histogram>),
}

// === impl MetricRegistry ===

impl MetricRegistry {
    pub(super) fn new(plugin: Arc<str>, used_by: PluginUse, max_series: usize) -> Self {
        MetricRegistry {
            dropped: metrics::counter!(crate::metrics::PLUGIN_METRIC_SERIES_DROPPED, "plugin" => plugin.to_string()),
            plugin,
            used_by,
            max_series,
            defined: RwLock::default(),
        }
    }

    /// Declares a metric (again: the same handle).
    pub(super) fn declare(
        &self,
        name: &str,
        help: &str,
        kind: MetricKind,
        labels: Vec<String>,
        buckets: Vec<f64>,
    ) -> Result<u32, String> {
        check_name("metric", name)?;
        if labels.len() > MAX_LABELS {
            return Err(format!("`{name}` declares over {MAX_LABELS} labels"));
        }
        for label in &labels {
            check_name("label", label)?;
            if HOST_LABELS.contains(&label.as_str()) {
                return Err(format!("label `{label}` is the host's"));
            }
        }
        let buckets = match (kind, buckets.is_empty()) {
            (MetricKind::Histogram, true) => RESPONSE_BUCKETS.to_vec(),
            (MetricKind::Histogram, false) => check_buckets(name, buckets)?,
            (_, true) => Vec::new(),
            (_, false) => return Err(format!("`{name}` is not a histogram: it takes no buckets")),
        };
        let mut defined = self.write();
        if let Some(position) = defined.metrics.iter().position(|m| m.short == name) {
            let known = defined
                .metrics
                .get(position)
                .filter(|m| m.kind == kind && m.labels == labels);
            return match known {
                Some(_) => u32::try_from(position).map_err(|_| "too many metrics".to_owned()),
                None => Err(format!(
                    "`{name}` is already declared with another kind or labels"
                )),
            };
        }
        if defined.metrics.len() >= MAX_METRICS {
            return Err(format!("a plugin declares at most {MAX_METRICS} metrics"));
        }
        let exported = match kind {
            MetricKind::Counter => format!("bascule_plugin_{name}_total"),
            _ => format!("bascule_plugin_{name}"),
        };
        let help = help.lines().next().unwrap_or_default().to_owned();
        let histogram = match kind {
            MetricKind::Histogram => Some(crate::metrics::plugin_histograms::family(
                &exported, &help, &buckets,
            )?),
            MetricKind::Counter => {
                metrics::describe_counter!(exported.clone(), help);
                None
            }
            MetricKind::Gauge => {
                metrics::describe_gauge!(exported.clone(), help);
                None
            }
        };
        defined.metrics.push(Declared {
            name: exported,
            short: name.to_owned(),
            kind,
            labels,
            histogram,
        });
        u32::try_from(defined.metrics.len() - 1).map_err(|_| "too many metrics".to_owned())
    }

    /// The series of `metric` with `values`; [`DROPPED_SERIES`] (counted)
    /// past the limit.
    pub(super) fn series(&self, metric: u32, values: Vec<String>) -> Result<u32, String> {
        if let Some(value) = values.iter().find(|value| value.len() > MAX_LABEL_VALUE) {
            return Err(format!(
                "label value of {} bytes, over {MAX_LABEL_VALUE}",
                value.len()
            ));
        }
        let key = (metric, values);
        if let Some(&series) = self.read().index.get(&key) {
            return Ok(series);
        }
        let mut defined = self.write();
        if let Some(&series) = defined.index.get(&key) {
            return Ok(series);
        }
        let declared = declared(&defined, metric, &key.1)?;
        if defined.series.len() >= self.max_series {
            self.dropped.increment(1);
            return Ok(DROPPED_SERIES);
        }
        let series = self.new_series(declared, &key.1);
        defined.series.push(series);
        let handle =
            u32::try_from(defined.series.len() - 1).map_err(|_| "too many series".to_owned())?;
        defined.index.insert(key, handle);
        Ok(handle)
    }

    /// The series of `declared` with `values`, registered with the
    /// exporter.
    fn new_series(&self, declared: &Declared, values: &[String]) -> Series {
        let (use_label, user) = self.used_by.label();
        let mut labels: Vec<(String, String)> = vec![
            ("plugin".to_owned(), self.plugin.to_string()),
            (use_label.to_owned(), user.to_string()),
        ];
        labels.extend(declared.labels.iter().cloned().zip(values.iter().cloned()));
        match (&declared.kind, &declared.histogram) {
            (MetricKind::Histogram, Some(family)) => {
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                Series::Histogram(family.series(&pairs))
            }
            (MetricKind::Gauge, _) => {
                Series::Gauge(metrics::gauge!(declared.name.clone(), to_labels(&labels)))
            }
            _ => Series::Counter(metrics::counter!(declared.name.clone(), to_labels(&labels))),
        }
    }

    /// Adds to a counter series.
    pub(super) fn inc(&self, series: u32, by: u64) {
        if let Some(Series::Counter(counter)) = self.read().series.get(index(series)) {
            counter.increment(by);
        }
    }

    /// Sets a gauge series.
    pub(super) fn set(&self, series: u32, value: f64) {
        if let Some(Series::Gauge(gauge)) = self.read().series.get(index(series)) {
            gauge.set(value);
        }
    }

    /// Observes a value in a histogram series.
    pub(super) fn observe(&self, series: u32, value: f64) {
        if let Some(Series::Histogram(histogram)) = self.read().series.get(index(series)) {
            histogram.observe(value);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Defined> {
        self.defined.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Defined> {
        self.defined.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The metric `metric` names, when `values` fit its labels.
fn declared<'a>(
    defined: &'a Defined,
    metric: u32,
    values: &[String],
) -> Result<&'a Declared, String> {
    let Some(declared) = usize::try_from(metric)
        .ok()
        .and_then(|m| defined.metrics.get(m))
    else {
        return Err(format!("no metric with handle {metric}"));
    };
    if values.len() != declared.labels.len() {
        return Err(format!(
            "`{}` has {} labels, given {} values",
            declared.short,
            declared.labels.len(),
            values.len()
        ));
    }
    Ok(declared)
}

/// A series handle as an index ([`DROPPED_SERIES`] finds nothing).
fn index(series: u32) -> usize {
    usize::try_from(series).unwrap_or(usize::MAX)
}

fn to_labels(labels: &[(String, String)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(key, value)| metrics::Label::new(key.clone(), value.clone()))
        .collect()
}

/// `a-z`, `0-9` and `_`, starting with a letter, at most [`MAX_NAME`].
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = (1..=MAX_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name `{name}`: 1-{MAX_NAME} of a-z, 0-9 and _, starting with a letter"
        ))
    }
}

fn check_buckets(name: &str, buckets: Vec<f64>) -> Result<Vec<f64>, String> {
    let increasing = buckets
        .windows(2)
        .all(|pair| matches!(pair, [a, b] if a < b));
    if buckets.len() > MAX_BUCKETS || !increasing || buckets.iter().any(|b| !b.is_finite()) {
        return Err(format!(
            "`{name}`: buckets must be at most {MAX_BUCKETS} finite, increasing bounds"
        ));
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_series: usize) -> MetricRegistry {
        MetricRegistry::new(
            "test-plugin".into(),
            PluginUse::Pool("web".into()),
            max_series,
        )
    }

    #[test]
    fn declarations_are_checked_and_repeatable() {
        let registry = registry(10);
        let hits = registry
            .declare(
                "hits",
                "hits",
                MetricKind::Counter,
                vec!["backend".into()],
                vec![],
            )
            .unwrap();
        assert_eq!(
            registry.declare(
                "hits",
                "again",
                MetricKind::Counter,
                vec!["backend".into()],
                vec![]
            ),
            Ok(hits)
        );
        assert!(
            registry
                .declare("hits", "", MetricKind::Gauge, vec![], vec![])
                .is_err()
        );
        assert!(
            registry
                .declare("Hits", "", MetricKind::Counter, vec![], vec![])
                .is_err()
        );
        assert!(
            registry
                .declare("x", "", MetricKind::Counter, vec!["pool".into()], vec![])
                .is_err()
        );
        assert!(
            registry
                .declare("x", "", MetricKind::Gauge, vec![], vec![1.0])
                .is_err()
        );
        assert!(
            registry
                .declare("h", "", MetricKind::Histogram, vec![], vec![2.0, 1.0])
                .is_err()
        );
        assert!(
            registry.series(hits, vec![]).is_err(),
            "one value per label"
        );
        assert!(registry.series(99, vec![]).is_err());
    }

    #[test]
    fn series_are_found_again_and_bounded() {
        let registry = registry(2);
        let hits = registry
            .declare(
                "bounded_hits",
                "",
                MetricKind::Counter,
                vec!["key".into()],
                vec![],
            )
            .unwrap();
        let a = registry.series(hits, vec!["a".into()]).unwrap();
        assert_eq!(registry.series(hits, vec!["a".into()]), Ok(a));
        let b = registry.series(hits, vec!["b".into()]).unwrap();
        assert_ne!(a, b);
        assert_eq!(registry.series(hits, vec!["c".into()]), Ok(DROPPED_SERIES));
        // Updates through the dropped handle go nowhere, and do not fail.
        registry.inc(DROPPED_SERIES, 1);
        registry.set(DROPPED_SERIES, 1.0);
    }
}
