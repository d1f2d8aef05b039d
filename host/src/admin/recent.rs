//! The last minute of traffic, for `/status` and the status page: request
//! rates, each backend's share of its pool, and p50/p99 latencies.
//!
//! Nothing is counted for it on the request path. The histograms every
//! route and backend already keep for `/metrics` are cumulative; a sample
//! of their bucket counts every few seconds, subtracted from the counts
//! now, gives the window's requests and their latency distribution.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::histogram::Histogram;
use crate::plan::Plan;

/// How far back the window reaches.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often the counts are sampled: the window's start is at most this
/// much older than [`WINDOW`].
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Whose traffic a series is: a route of a listener or a backend of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `(listener, route)`.
    Route(String, String),
    /// `(pool, backend)`.
    Backend(String, String),
}

/// The samples of the last minute, oldest first.
pub struct RecentTraffic {
    samples: Mutex<VecDeque<Sample>>,
}

/// Every series' bucket counts at one instant.
struct Sample {
    at: Instant,
    /// Each series' bucket bounds and counts.
    counts: HashMap<Subject, (Arc<[f64]>, Vec<u64>)>,
}

/// One series over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Answers in the window.
    pub requests: u64,
    /// Answers per second.
    pub rate: f64,
    /// Median latency, seconds; `None` without answers.
    pub p50: Option<f64>,
    /// 99th percentile latency, seconds; `None` without answers.
    pub p99: Option<f64>,
}

// === impl RecentTraffic ===

impl RecentTraffic {
    /// Starts with every count at zero: until the first minute is over,
    /// the window holds everything since the admin listener started
    /// (which is when the process started).
    pub fn new() -> Self {
        RecentTraffic {
            samples: Mutex::new(VecDeque::from([Sample {
                at: Instant::now(),
                counts: HashMap::new(),
            }])),
        }
    }

    /// Samples `plan`'s series every [`SAMPLE_EVERY`], forever; the admin
    /// listener's task owns it and drops it with the listener.
    pub async fn sample_forever(&self, plan: &arc_swap::ArcSwap<Plan>) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            every.tick().await;
            self.sample(&plan.load());
        }
    }

    /// Records the counts of `plan`'s series now, and forgets samples
    /// older than the window needs.
    pub fn sample(&self, plan: &Plan) {
        let sample = Sample::of(plan);
        let mut samples = self.lock();
        samples.push_back(sample);
        while samples
            .get(1)
            .is_some_and(|second| second.at.elapsed() >= WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Each series of `plan` over the last minute (or since the first
    /// sample, when younger).
    pub fn windows(&self, plan: &Plan) -> HashMap<Subject, Window> {
        let now = Sample::of(plan);
        let samples = self.lock();
        let Some(start) = samples.front() else {
            return HashMap::new();
        };
        let seconds = now.at.duration_since(start.at).as_secs_f64().max(1.0);
        now.counts
            .iter()
            .map(|(subject, (bounds, counts))| {
                let before = start.counts.get(subject).map(|(_, counts)| counts);
                let in_window: Vec<u64> = counts
                    .iter()
                    .enumerate()
                    .map(|(n, count)| {
                        count.saturating_sub(before.and_then(|b| b.get(n)).copied().unwrap_or(0))
                    })
                    .collect();
                let requests = in_window.iter().sum();
                #[allow(clippy::cast_precision_loss)]
                let window = Window {
                    requests,
                    rate: requests as f64 / seconds,
                    p50: quantile(&in_window, bounds, 0.5),
                    p99: quantile(&in_window, bounds, 0.99),
                };
                (subject.clone(), window)
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Sample ===

impl Sample {
    fn of(plan: &Plan) -> Self {
        let mut counts = HashMap::new();
        let mut add = |subject: Subject, histogram: &Histogram| {
            counts.insert(
                subject,
                (Arc::clone(histogram.bounds()), histogram.counts()),
            );
        };
        for listener in plan.listeners() {
            if let Some((table, _)) = listener.routes.http() {
                for route in table.routes() {
                    add(
                        Subject::Route(listener.name.to_string(), route.name.to_string()),
                        route.metrics.durations(),
                    );
                }
            }
        }
        for pool in plan.pools() {
            for backend in &pool.backends().backends {
                if let Some(responses) = backend.stats.responses() {
                    add(
                        Subject::Backend(pool.name().to_string(), backend.id.clone()),
                        responses.durations(),
                    );
                }
            }
        }
        Sample {
            at: Instant::now(),
            counts,
        }
    }
}

/// The `q` quantile of samples counted per bucket, interpolated linearly
/// within its bucket (as Prometheus's `histogram_quantile` does); the
/// last bound for samples past it.
fn quantile(counts: &[u64], bounds: &[f64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let rank = q * total as f64;
    let mut below = 0u64;
    for (n, &count) in counts.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        if count > 0 && (below + count) as f64 >= rank {
            let Some(&upper) = bounds.get(n) else {
                return bounds.last().copied();
            };
            let lower = n
                .checked_sub(1)
                .and_then(|m| bounds.get(m))
                .copied()
                .unwrap_or(0.0);
            #[allow(clippy::cast_precision_loss)]
            let within = (rank - below as f64) / count as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += count;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let bounds = [0.001, 0.01, 0.1];
        // 100 samples: 50 under 1 ms, 49 in 1-10 ms, 1 in 10-100 ms.
        let counts = [50, 49, 1, 0];
        assert_eq!(quantile(&counts, &bounds, 0.5), Some(0.001));
        let p99 = quantile(&counts, &bounds, 0.99).unwrap();
        assert!((p99 - 0.01).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(&[0, 0, 0, 0], &bounds, 0.5), None);
        assert_eq!(quantile(&[0, 0, 0, 3], &bounds, 0.5), Some(0.1));
        let p25 = quantile(&[4, 0, 0, 0], &bounds, 0.25).unwrap();
        assert!((p25 - 0.00025).abs() < 1e-9, "{p25}");
    }
}
