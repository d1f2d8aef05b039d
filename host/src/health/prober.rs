//! The prober of one backend: probe, interpret, count, and act on the
//! tracker's decisions, forever, one probe at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Interpreter, ProbeSpec, Tracker, Verdict};
use crate::upstream::{Backend, BackendPool, CheckState, Health, ProbeReport};

/// A pool's active health check: what to send, how to judge, how often,
/// and how many verdicts in a row change a state.
pub struct HealthCheck {
    /// What a probe sends and reads.
    pub spec: ProbeSpec,
    /// Time between the starts of two probes of one backend.
    pub interval: Duration,
    /// Port probed instead of the backend's.
    pub port: Option<u16>,
    /// Good verdicts in a row that end an unhealthy state.
    pub healthy_threshold: u32,
    /// Bad verdicts in a row that end a passing state.
    pub unhealthy_threshold: u32,
    /// Judges each outcome.
    pub interpreter: Arc<dyn Interpreter>,
}

/// Jitter on every interval, in either direction: probers of many
/// backends started together spread out instead of probing in bursts.
const JITTER_PERCENT: u64 = 10;

/// Probes `pool`'s backend `backend` (by index in the pool's set when the
/// task started; the backend's endpoints and stats are shared by every
/// later generation) until the task is aborted by the supervisor.
pub async fn probe_backend(check: Arc<HealthCheck>, pool: Arc<BackendPool>, backend: usize) {
    let Some((id, address, endpoints, stats, tls)) =
        pool.backends().get(backend).map(|b: &Backend| {
            (
                b.id.clone(),
                b.address.clone(),
                Arc::clone(&b.endpoints),
                Arc::clone(&b.stats),
                b.tls.clone(),
            )
        })
    else {
        return;
    };
    let signals = stats.signals();
    let mut tracker = Tracker::new(
        signals.checked(),
        signals.health_permille(),
        check.healthy_threshold,
        check.unhealthy_threshold,
    );
    let mut jitter = Jitter::seeded(pool.name(), &id);
    let probes = ProbeMetrics::new(pool.name(), &id);
    // A backend nobody has judged yet is probed at once; one already known
    // (kept across a reload) at a random point of its interval.
    let mut delay = if tracker.state() == CheckState::Unknown {
        Duration::ZERO
    } else {
        jitter.within(check.interval)
    };
    loop {
        tokio::time::sleep(delay).await;
        let started = Instant::now();
        let outcome = match endpoints.pick() {
            Some(endpoint) => {
                let target = SocketAddr::new(endpoint.ip(), check.port.unwrap_or(endpoint.port()));
                check.spec.run(target, &address, tls.as_deref()).await
            }
            None => super::ProbeOutcome {
                kind: check.spec.kind,
                status: None,
                headers: Vec::new(),
                body: Vec::new(),
                latency: Duration::ZERO,
                error: Some(format!("`{address}` is not resolved")),
            },
        };
        let verdict = check.interpreter.interpret(&outcome);
        let (result, reason) = match &verdict {
            Ok(verdict) => (verdict.label(), verdict.reason().to_owned()),
            Err(error) => ("failed", crate::error_chain(error)),
        };
        probes.record(result, started.elapsed());
        signals.set_last_probe(ProbeReport {
            result,
            reason: reason.clone(),
            at: Instant::now(),
        });
        let good = verdict.as_ref().is_ok_and(Verdict::is_good);
        if let Some(decided) = tracker.observe(verdict.as_ref().ok()) {
            let weight_before = signals.health_permille();
            match stats.set_checked(decided.state, decided.permille) {
                Some(transition) => report(&pool, &id, transition.from, transition.to, &reason),
                // The check moved without moving the backend's health (a
                // new degraded weight; an ejected or drained backend whose
                // checks pass): one line all the same.
                None => tracing::info!(
                    pool = %pool.name(),
                    backend = %id,
                    check = decided.state.label(),
                    weight_permille = decided.permille,
                    reason = %reason,
                    "health check changed state"
                ),
            }
            pool.health_changed();
            if signals.health_permille() != weight_before {
                // Only a weight change concerns the balancer: the host
                // itself skips a backend that takes no traffic.
                republish(&pool).await;
            }
        }
        if good && signals.is_ejected() {
            // An active check that passes ends an ejection early (Envoy's
            // default): live traffic ejected it, a probe says it is back.
            if let Some(transition) = stats.uneject() {
                report(
                    &pool,
                    &id,
                    transition.from,
                    transition.to,
                    "passed its health check",
                );
                pool.health_changed();
            }
        }
        delay = jitter
            .around(check.interval)
            .saturating_sub(started.elapsed());
    }
}

/// Logs a change of effective health once, and moves the state gauge.
pub fn report(pool: &BackendPool, backend: &str, from: Health, to: Health, reason: &str) {
    tracing::warn!(
        pool = %pool.name(),
        backend,
        from = from.label(),
        to = to.label(),
        reason,
        "backend health changed"
    );
    crate::metrics::health_transition(pool.name(), backend, to);
}

/// Lets the balancer learn new degraded weights off the request path.
async fn republish(pool: &Arc<BackendPool>) {
    let publishing = Arc::clone(pool);
    let _ = tokio::task::spawn_blocking(move || publishing.refresh()).await;
}

/// The probe counters of one backend, registered once.
struct ProbeMetrics {
    results: [(&'static str, metrics::Counter); 4],
    duration: std::sync::Arc<crate::metrics::histogram::Histogram>,
}

impl ProbeMetrics {
    fn new(pool: &str, backend: &str) -> Self {
        let counter = |result: &'static str| {
            (
                result,
                metrics::counter!(crate::metrics::HEALTH_PROBES, "pool" => pool.to_owned(), "backend" => backend.to_owned(), "result" => result),
            )
        };
        ProbeMetrics {
            results: [
                counter("healthy"),
                counter("degraded"),
                counter("unhealthy"),
                counter("failed"),
            ],
            duration: crate::metrics::PROBE_DURATIONS.series(&[("pool", pool)]),
        }
    }

    fn record(&self, result: &str, took: Duration) {
        if let Some((_, counter)) = self.results.iter().find(|(name, _)| *name == result) {
            counter.increment(1);
        }
        self.duration.record(took);
    }
}

/// A small per-prober random source for jitter (xorshift64*), seeded from
/// the backend's identity so that probers of one pool spread apart.
struct Jitter(u64);

impl Jitter {
    fn seeded(pool: &str, backend: &str) -> Self {
        let seed = xxhash_rust::xxh3::xxh3_64(format!("{pool}/{backend}").as_bytes());
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `interval` ± [`JITTER_PERCENT`].
    fn around(&mut self, interval: Duration) -> Duration {
        let span = interval.as_micros() as u64 * JITTER_PERCENT / 100;
        if span == 0 {
            return interval;
        }
        let offset = self.next() % (2 * span + 1);
        (interval + Duration::from_micros(offset)).saturating_sub(Duration::from_micros(span))
    }

    /// A point in `[0, interval)`.
    fn within(&mut self, interval: Duration) -> Duration {
        let micros = (interval.as_micros() as u64).max(1);
        Duration::from_micros(self.next() % micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let mut jitter = Jitter::seeded("p", "b");
        let interval = Duration::from_secs(1);
        let delays: Vec<Duration> = (0..1000).map(|_| jitter.around(interval)).collect();
        assert!(
            delays.iter().all(|d| (900..=1100).contains(&d.as_millis())),
            "{delays:?}"
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 900);
        assert!((0..100).all(|_| jitter.within(interval) < interval));
    }
}
