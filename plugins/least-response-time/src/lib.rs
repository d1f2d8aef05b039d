//! `builtin:least-response-time`: the backend with the lowest expected
//! wait, peak-EWMA latency × (active requests + 1), as Finagle and Linkerd
//! balance.
//!
//! The host keeps a moving average of each backend's response time; this
//! plugin turns it into a *peak* estimate: a slower sample takes effect at
//! once, a faster one only gradually, and an estimate that receives no new
//! samples decays towards zero with time constant `decay` (default `10s`),
//! so a backend that was slow once is tried again later instead of being
//! shunned forever. A backend with no sample yet (cold) is scored as the
//! slowest known one, so it is avoided until the others are busier.
//!
//! Option `decay`: a duration such as `"10s"`.
//!
//! Metric: `bascule_plugin_least_response_time_estimate_seconds{backend}`,
//! the peak estimate each backend is ranked by (as one worker's instance
//! last saw it), published at most once a second.

use std::collections::HashMap;
use std::time::Duration;

use bascule_guest_sdk::metrics::{Gauge, GaugeSeries};
use bascule_guest_sdk::{
    Backend, BackendStats, Balancer, Candidates, DurationOption, Error, Options, Request,
};
use serde::Deserialize;

const DEFAULT_DECAY: Duration = Duration::from_secs(10);
/// How often the estimates are published as metrics: a host call per
/// backend is not worth making per request.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
const RANKED: usize = 3;

/// Peak-EWMA × outstanding requests.
#[derive(Debug, Clone)]
pub struct LeastResponseTime {
    decay_seconds: f64,
    estimates: Vec<Estimate>,
    turn: usize,
    #[cfg(target_arch = "wasm32")]
    started: std::time::Instant,
    /// The estimate gauge, when declared (in `configure`).
    published: Option<Gauge>,
    /// When the estimates were last published.
    published_at: Option<Duration>,
}

/// The latency estimate of one backend.
#[derive(Debug, Clone, Default)]
struct Estimate {
    id: String,
    /// Peak-EWMA latency in microseconds; 0 while cold.
    cost_us: f64,
    /// The host's average when last read: a change means new samples.
    seen_us: u64,
    /// When `cost_us` was last updated, since the plugin started.
    at: Duration,
    /// The backend's estimate gauge.
    gauge: Option<GaugeSeries>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    decay: Option<DurationOption>,
}

// === impl LeastResponseTime ===

impl LeastResponseTime {
    /// A balancer whose estimates decay with time constant `decay`.
    pub fn new(decay: Duration) -> Self {
        LeastResponseTime {
            decay_seconds: decay.as_secs_f64().max(0.001),
            estimates: Vec::new(),
            turn: 0,
            #[cfg(target_arch = "wasm32")]
            started: std::time::Instant::now(),
            published: None,
            published_at: None,
        }
    }

    /// Learns a backend list, keeping the estimates of backends that stay.
    pub fn update(&mut self, backends: &[Backend]) {
        let mut old: HashMap<String, Estimate> = std::mem::take(&mut self.estimates)
            .into_iter()
            .map(|estimate| (estimate.id.clone(), estimate))
            .collect();
        self.estimates = backends
            .iter()
            .map(|backend| {
                old.remove(&backend.id).unwrap_or_else(|| Estimate {
                    id: backend.id.clone(),
                    gauge: self
                        .published
                        .and_then(|gauge| gauge.series(&[&backend.id]).ok()),
                    ..Estimate::default()
                })
            })
            .collect();
    }

    /// Sets every backend's gauge, at most every [`PUBLISH_EVERY`].
    fn publish(&mut self, now: Duration) {
        if self
            .published_at
            .is_some_and(|at| now.saturating_sub(at) < PUBLISH_EVERY)
        {
            return;
        }
        self.published_at = Some(now);
        for estimate in &self.estimates {
            if let Some(gauge) = &estimate.gauge {
                gauge.set(estimate.cost_us / 1e6);
            }
        }
    }

    /// Ranks backends by expected wait at time `now` (since start), given
    /// every backend's stats by index.
    pub fn pick(&mut self, stats: &[BackendStats], now: Duration) -> Candidates {
        let decay_seconds = self.decay_seconds;
        for (estimate, stat) in self.estimates.iter_mut().zip(stats) {
            estimate.observe(stat.ewma_latency_us, now, decay_seconds);
        }
        let slowest = self.estimates.iter().map(|e| e.cost_us).fold(0.0, f64::max);
        let len = self.estimates.len().min(stats.len());
        if len == 0 {
            return Vec::new();
        }
        let start = self.turn % len;
        self.turn = self.turn.wrapping_add(1);
        let mut ranked: Vec<(u32, f64)> = Vec::with_capacity(RANKED + 1);
        for index in (start..len).chain(0..start) {
            let (Some(estimate), Some(stat)) = (self.estimates.get(index), stats.get(index)) else {
                continue;
            };
            if !stat.health.accepts_new_work() {
                continue;
            }
            let latency = if estimate.is_cold() {
                slowest
            } else {
                estimate.cost_us
            };
            let score = latency * (f64::from(stat.active) + 1.0);
            let position = ranked
                .iter()
                .position(|&(_, s)| score < s)
                .unwrap_or(ranked.len());
            if position < RANKED {
                ranked.insert(position, (u32::try_from(index).unwrap_or(u32::MAX), score));
                ranked.truncate(RANKED);
            }
        }
        ranked.into_iter().map(|(index, _)| index).collect()
    }

    #[cfg(target_arch = "wasm32")]
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

// === impl Estimate ===

impl Estimate {
    fn is_cold(&self) -> bool {
        self.seen_us == 0
    }

    /// Folds the host's current average in: a higher value is taken at
    /// once (the peak), a lower one blends in as time passes; without new
    /// samples the estimate decays towards zero.
    fn observe(&mut self, host_average_us: u64, now: Duration, decay_seconds: f64) {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        let keep = (-elapsed / decay_seconds).exp();
        let sample = host_average_us as f64;
        if host_average_us != 0 && host_average_us != self.seen_us {
            self.cost_us = if sample > self.cost_us {
                sample
            } else {
                self.cost_us * keep + sample * (1.0 - keep)
            };
            self.seen_us = host_average_us;
        } else {
            self.cost_us *= keep;
        }
        self.at = now;
    }
}

impl Balancer for LeastResponseTime {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        let decay = settings.decay.map_or(DEFAULT_DECAY, DurationOption::get);
        if decay.is_zero() {
            return Err(Error::new("`decay` must be longer than zero"));
        }
        let mut balancer = LeastResponseTime::new(decay);
        balancer.published = Some(Gauge::declare(
            "least_response_time_estimate_seconds",
            "the peak-EWMA latency each backend is ranked by",
            &["backend"],
        )?);
        Ok(balancer)
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let now = self.now();
        let picked = self.pick(&request.all_backend_stats(), now);
        self.publish(now);
        Ok(picked)
    }
}

bascule_guest_sdk::export_balancer!(LeastResponseTime);

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(size: usize) -> LeastResponseTime {
        let mut lrt = LeastResponseTime::new(Duration::from_secs(10));
        lrt.update(
            &(0..size)
                .map(|i| Backend::named(format!("b{i}")))
                .collect::<Vec<_>>(),
        );
        lrt
    }

    fn stats(latency_us: &[u64], active: &[u32]) -> Vec<BackendStats> {
        latency_us
            .iter()
            .zip(active)
            .map(|(&ewma_latency_us, &active)| BackendStats {
                active,
                ewma_latency_us,
                ..BackendStats::default()
            })
            .collect()
    }

    #[test]
    fn fastest_idle_backend_first() {
        let mut lrt = balancer(3);
        assert_eq!(
            lrt.pick(&stats(&[3000, 1000, 2000], &[0, 0, 0]), Duration::ZERO),
            [1, 2, 0]
        );
    }

    #[test]
    fn outstanding_requests_multiply_latency() {
        let mut lrt = balancer(2);
        // 1 ms with 4 in flight (5 ms) loses to 3 ms idle.
        assert_eq!(
            lrt.pick(&stats(&[1000, 3000], &[4, 0]), Duration::ZERO)[0],
            1
        );
    }

    #[test]
    fn slower_samples_count_at_once_faster_ones_gradually() {
        let mut lrt = balancer(2);
        lrt.pick(&stats(&[1000, 2000], &[0, 0]), Duration::ZERO);
        // Backend 0 turns slow: the peak takes over immediately.
        assert_eq!(
            lrt.pick(&stats(&[5000, 2000], &[0, 0]), Duration::from_millis(1))[0],
            1
        );
        // It turns fast again: it must prove it for a while.
        let t = Duration::from_millis(2);
        assert_eq!(lrt.pick(&stats(&[1000, 2000], &[0, 0]), t)[0], 1);
    }

    #[test]
    fn a_shunned_backend_is_retried_after_its_estimate_decays() {
        let mut lrt = balancer(2);
        lrt.pick(&stats(&[20_000, 2_000], &[0, 0]), Duration::ZERO);
        // Backend 1 keeps serving (its average moves); backend 0 gets no
        // samples, so its 20 ms estimate decays until it is worth a retry.
        assert_eq!(
            lrt.pick(&stats(&[20_000, 2_100], &[0, 0]), Duration::from_secs(1))[0],
            1
        );
        assert_eq!(
            lrt.pick(&stats(&[20_000, 2_000], &[0, 0]), Duration::from_secs(30))[0],
            0
        );
    }

    #[test]
    fn cold_backends_rank_as_the_slowest_known() {
        let mut lrt = balancer(3);
        // Backend 2 has no sample; it ranks with the slowest (3 ms).
        let ranked = lrt.pick(&stats(&[3000, 1000, 0], &[0, 0, 0]), Duration::ZERO);
        assert_eq!(ranked[0], 1);
        let none_warm = lrt
            .clone()
            .pick(&stats(&[0, 0, 0], &[0, 0, 0]), Duration::ZERO);
        assert_eq!(none_warm.len(), 3);
    }

    #[test]
    fn decay_must_be_positive() {
        assert!(LeastResponseTime::configure(&Options::from_json(r#"{"decay": "0s"}"#)).is_err());
        assert!(LeastResponseTime::configure(&Options::from_json(r#"{"decay": "2s"}"#)).is_ok());
        assert!(LeastResponseTime::configure(&Options::from_json(r#"{"decay": "soon"}"#)).is_err());
    }
}
