//! Live per-backend counters, updated by the request path and read by
//! balancers. Lock-free: every field is an atomic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::backend::FULL_RAMP;
use super::health_signals::{CheckState, EjectionReason, HealthSignals, TrafficEvent};
use crate::metrics::{ByteCounters, ResponseSeries};

/// The weight of a new latency sample in the moving average (1/8, as TCP's
/// smoothed RTT): one slow response moves the average, a few dominate it.
const EWMA_SHIFT: u32 = 3;

/// Health of a backend as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Passing health checks, or unchecked.
    Healthy = 0,
    /// Passing with reduced capacity.
    Degraded = 1,
    /// Failing: gets no traffic.
    Unhealthy = 2,
    /// Leaving: existing work finishes, no new work.
    Draining = 3,
}

/// Counters of one backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    active: AtomicU32,
    ewma_latency_us: AtomicU64,
    consecutive_failures: AtomicU32,
    /// The effective health, computed from `signals` at every change.
    health: AtomicU8,
    signals: HealthSignals,
    /// When slow start began (joined or recovered); `None` when fully
    /// ramped. Read by the supervisor and the status page, never per
    /// request, so a lock is fine; tokio's clock lets tests pause time.
    ramp_since: Mutex<Option<Instant>>,
    /// Whether a reload removed the backend from its pool.
    retired: AtomicBool,
    /// True while the backend takes no new work (retired, failing or
    /// draining): its open TCP connections count down their drain timeout.
    leaving: watch::Sender<bool>,
    /// Its Prometheus series; `None` for stats not registered under a
    /// pool (tests, placeholders).
    metrics: Option<ResponseSeries>,
    /// Its body byte counters; `None` like `metrics`.
    bytes: Option<ByteCounters>,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests or connections in flight.
    pub active: u32,
    /// Moving average response time, microseconds; 0 before any sample.
    pub ewma_latency_us: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Current health.
    pub health: Health,
}

/// A change of a backend's effective health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: Health,
    /// After.
    pub to: Health,
}

/// Counts one in-flight request on a backend until dropped.
#[derive(Debug)]
pub struct ActiveRequest {
    stats: Arc<BackendStats>,
}

/// Stats by (pool, backend id), so that a backend that survives a config
/// reload keeps its counters.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    by_backend: Mutex<HashMap<(String, String), Arc<BackendStats>>>,
}

// === impl Health ===

impl Health {
    /// Whether new work may be sent.
    pub fn accepts_new_work(self) -> bool {
        matches!(self, Health::Healthy | Health::Degraded)
    }

    /// The label in metrics and on the status page.
    pub fn label(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Draining => "draining",
        }
    }

    /// Every state, for gauges that show one of them as 1.
    pub const ALL: [Health; 4] = [
        Health::Healthy,
        Health::Degraded,
        Health::Unhealthy,
        Health::Draining,
    ];

    fn from_u8(value: u8) -> Health {
        match value {
            1 => Health::Degraded,
            2 => Health::Unhealthy,
            3 => Health::Draining,
            _ => Health::Healthy,
        }
    }
}

// === impl BackendStats ===

impl BackendStats {
    /// Starts counting a request; the count drops with the guard.
    pub fn start(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest {
            stats: Arc::clone(self),
        }
    }

    /// Stats of `backend` in `pool`, with its Prometheus series.
    pub fn labelled(pool: &str, backend: &str) -> Self {
        BackendStats {
            metrics: Some(ResponseSeries::backend(pool, backend)),
            bytes: Some(ByteCounters::backend(pool, backend)),
            ..BackendStats::default()
        }
    }

    /// Records a response head with `status`, `latency` after the request
    /// was sent: a successful exchange, whatever the status says.
    pub fn record_response(&self, status: http::StatusCode, latency: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.record(status, latency);
        }
        self.record_success(latency);
    }

    /// Records a successful exchange and its latency.
    pub fn record_success(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Relaxed is enough: the average is advisory, a lost race costs one sample.
        let _ = self
            .ewma_latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    let old = old as i128;
                    (old + ((sample as i128 - old) >> EWMA_SHIFT)) as u64
                })
            });
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Records a failed exchange (connect error, reset).
    pub fn record_failure(&self) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Its body bytes sent and received; `None` for stats not registered
    /// under a pool.
    pub fn bytes(&self) -> Option<&ByteCounters> {
        self.bytes.as_ref()
    }

    /// Its answers by status class and how long they took; `None` for
    /// stats not registered under a pool.
    pub fn responses(&self) -> Option<&ResponseSeries> {
        self.metrics.as_ref()
    }

    /// What active and passive health say of the backend.
    pub fn signals(&self) -> &HealthSignals {
        &self.signals
    }

    /// Records what active checks concluded (`permille`: the degraded
    /// weight factor in thousandths).
    pub fn set_checked(&self, state: CheckState, permille: u32) -> Option<Transition> {
        self.signals.set_checked(state, permille);
        self.refresh_health()
    }

    /// Ejects the backend until `until`; `None` when it was already.
    pub fn eject(&self, until: Instant) -> Option<Transition> {
        if !self.signals.eject(until) {
            return None;
        }
        self.refresh_health()
    }

    /// Ends an ejection.
    pub fn uneject(&self) -> Option<Transition> {
        if !self.signals.uneject() {
            return None;
        }
        self.refresh_health()
    }

    /// Drains (`true`) or restores (`false`) the backend by hand.
    pub fn set_drained(&self, drained: bool) -> Option<Transition> {
        self.signals.set_drained(drained);
        self.refresh_health()
    }

    /// Counts one event of live traffic for passive health; returns the
    /// consecutive count it raised.
    pub fn count(&self, event: TrafficEvent) -> Option<(EjectionReason, u32)> {
        self.signals.count(event)
    }

    /// Recomputes the effective health. A backend that starts taking work
    /// again after failing or draining begins its slow start.
    fn refresh_health(&self) -> Option<Transition> {
        let health = self.signals.health();
        let old = Health::from_u8(self.health.swap(health as u8, Ordering::Relaxed));
        if !old.accepts_new_work() && health.accepts_new_work() {
            self.start_ramp();
        }
        self.update_leaving();
        (old != health).then_some(Transition {
            from: old,
            to: health,
        })
    }

    /// Marks the backend removed from (`true`) or back in (`false`) its
    /// pool's config.
    pub fn set_retired(&self, retired: bool) {
        self.retired.store(retired, Ordering::Relaxed);
        self.update_leaving();
    }

    /// Watches whether the backend is leaving: removed from the config or
    /// no longer taking new work. Long-lived connections drain on it.
    pub fn leaving(&self) -> watch::Receiver<bool> {
        self.leaving.subscribe()
    }

    fn update_leaving(&self) {
        let leaving = self.retired.load(Ordering::Relaxed) || !self.health().accepts_new_work();
        let changed = self.leaving.send_if_modified(|current| {
            let changed = *current != leaving;
            *current = leaving;
            changed
        });
        if changed && leaving {
            BACKEND_LEFT.notify_waiters();
        }
    }

    /// Whether the backend takes no new work (retired, failing or
    /// draining): connections to it are not pooled again.
    pub fn is_leaving(&self) -> bool {
        *self.leaving.borrow()
    }

    /// Begins slow start now: the backend just joined or recovered.
    pub fn start_ramp(&self) {
        *self.ramp_since() = Some(Instant::now());
        RAMP_STARTED.notify_waiters();
    }

    /// Whether a slow start is in progress (of any window).
    pub fn is_ramping(&self) -> bool {
        self.ramp_since().is_some()
    }

    /// Slow-start progress over `window`, in thousandths (1 to 1000).
    pub fn ramp_permille(&self, window: Duration) -> u32 {
        let mut since = self.ramp_since();
        let Some(started) = *since else {
            return FULL_RAMP;
        };
        let elapsed = started.elapsed().as_millis();
        let window = window.as_millis().max(1);
        if elapsed >= window {
            // Done: later reads skip the arithmetic.
            *since = None;
            return FULL_RAMP;
        }
        let permille = elapsed.saturating_mul(u128::from(FULL_RAMP)) / window;
        u32::try_from(permille)
            .unwrap_or(FULL_RAMP)
            .clamp(1, FULL_RAMP - 1)
    }

    fn ramp_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.ramp_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Current health.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Relaxed))
    }

    /// Requests (or connections, or tunnels) in flight on the backend now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            active: self.active.load(Ordering::Relaxed),
            ewma_latency_us: self.ewma_latency_us.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            health: self.health(),
        }
    }
}

/// Woken whenever any backend starts leaving.
static BACKEND_LEFT: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Completes when some backend next starts leaving: the supervisor closes
/// its idle connections. `enable` it before looking.
pub fn backend_left() -> tokio::sync::futures::Notified<'static> {
    BACKEND_LEFT.notified()
}

/// Woken whenever any backend starts a slow start.
static RAMP_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Completes when some backend next starts a slow start: the supervisor
/// waits here instead of polling pools with nothing ramping. `enable` it
/// before checking, so that a start in between is not missed.
pub fn ramp_started() -> tokio::sync::futures::Notified<'static> {
    RAMP_STARTED.notified()
}

// === impl ActiveRequest ===

impl ActiveRequest {
    /// The stats of the backend the request is on.
    pub fn stats(&self) -> &Arc<BackendStats> {
        &self.stats
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl StatsRegistry ===

impl StatsRegistry {
    /// The stats of `backend` in `pool`, created on first use.
    pub fn get(&self, pool: &str, backend: &str) -> Arc<BackendStats> {
        self.get_or_create(pool, backend).0
    }

    /// The stats of `backend` in `pool`, and whether they were created by
    /// this call (the backend is new to the pool).
    pub fn get_or_create(&self, pool: &str, backend: &str) -> (Arc<BackendStats>, bool) {
        let mut map = self
            .by_backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (pool.to_owned(), backend.to_owned());
        match map.get(&key) {
            Some(stats) => (Arc::clone(stats), false),
            None => {
                let stats = Arc::new(BackendStats::labelled(pool, backend));
                map.insert(key, Arc::clone(&stats));
                (stats, true)
            }
        }
    }

    /// The registered stats of `backend` in `pool`, or fresh ones that are
    /// not registered (and whether they are fresh): building a plan must
    /// not change the registry before the plan is certain to serve.
    pub fn lookup(&self, pool: &str, backend: &str) -> (Arc<BackendStats>, bool) {
        let map = self
            .by_backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&(pool.to_owned(), backend.to_owned())) {
            Some(stats) => (Arc::clone(stats), false),
            None => (Arc::new(BackendStats::labelled(pool, backend)), true),
        }
    }

    /// Registers `stats` as those of `backend` in `pool`, unless some are
    /// registered already.
    pub fn register(&self, pool: &str, backend: &str, stats: Arc<BackendStats>) {
        let mut map = self
            .by_backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((pool.to_owned(), backend.to_owned()))
            .or_insert(stats);
    }

    /// After a reload: every backend `in_config` says is in the new config
    /// (by pool and id) is current again, every other one is retired. The
    /// stats of retired backends nothing refers to any more (no plan, no
    /// open connection) are forgotten, so removed backends do not pile up.
    pub fn retire_all_but(&self, in_config: impl Fn(&str, &str) -> bool) {
        let mut map = self
            .by_backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|(pool, backend), stats| {
            let current = in_config(pool, backend);
            stats.set_retired(!current);
            current || Arc::strong_count(stats) > 1
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_count_follows_guards() {
        let stats = Arc::new(BackendStats::default());
        let a = stats.start();
        let b = stats.start();
        assert_eq!(stats.snapshot().active, 2);
        drop(a);
        drop(b);
        assert_eq!(stats.snapshot().active, 0);
    }

    #[test]
    fn ewma_starts_at_first_sample_and_moves_an_eighth() {
        let stats = BackendStats::default();
        stats.record_success(Duration::from_micros(800));
        assert_eq!(stats.snapshot().ewma_latency_us, 800);
        stats.record_success(Duration::from_micros(1600));
        assert_eq!(stats.snapshot().ewma_latency_us, 900);
        stats.record_success(Duration::from_micros(100));
        assert_eq!(stats.snapshot().ewma_latency_us, 800);
    }

    #[test]
    fn failures_reset_on_success() {
        let stats = BackendStats::default();
        stats.record_failure();
        stats.record_failure();
        assert_eq!(stats.snapshot().consecutive_failures, 2);
        stats.record_success(Duration::from_millis(1));
        assert_eq!(stats.snapshot().consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ramp_climbs_and_recovery_restarts_it() {
        let stats = BackendStats::default();
        assert_eq!(stats.ramp_permille(Duration::from_secs(60)), FULL_RAMP);
        stats.start_ramp();
        let early = stats.ramp_permille(Duration::from_secs(3600));
        assert!((1..10).contains(&early), "{early}");
        tokio::time::advance(Duration::from_secs(900)).await;
        assert_eq!(stats.ramp_permille(Duration::from_secs(3600)), 250);
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(
            stats.ramp_permille(Duration::from_millis(1)),
            FULL_RAMP,
            "a window that passed"
        );
        assert_eq!(
            stats.ramp_permille(Duration::from_secs(3600)),
            FULL_RAMP,
            "finished ramps stay finished"
        );
        stats.set_checked(CheckState::Unhealthy, 0);
        stats.set_checked(CheckState::Healthy, 0);
        assert!(stats.ramp_permille(Duration::from_secs(3600)) < 10);
    }

    #[test]
    fn leaving_follows_retirement_and_health() {
        let registry = StatsRegistry::default();
        let (a, b) = (registry.get("web", "a"), registry.get("web", "b"));
        let (leaving_a, leaving_b) = (a.leaving(), b.leaving());
        registry.retire_all_but(|pool, id| pool == "web" && id == "a");
        assert!(!*leaving_a.borrow());
        assert!(*leaving_b.borrow());
        registry.retire_all_but(|_, _| true);
        assert!(!*leaving_b.borrow());
        a.set_checked(CheckState::Unhealthy, 0);
        assert!(*leaving_a.borrow());
        a.set_checked(CheckState::Degraded, 500);
        assert!(!*leaving_a.borrow());
    }

    #[test]
    fn retired_stats_are_forgotten_once_unused() {
        let registry = StatsRegistry::default();
        let held = registry.get("web", "held");
        drop(registry.get("web", "dropped"));
        registry.retire_all_but(|_, _| false);
        // Still referenced (an open connection): kept, and retired.
        assert!(!registry.get_or_create("web", "held").1);
        assert!(*held.leaving().borrow());
        // Referenced by nothing: forgotten; coming back, it is new.
        assert!(registry.get_or_create("web", "dropped").1);
    }

    #[test]
    fn registry_keeps_stats_per_backend() {
        let registry = StatsRegistry::default();
        let a = registry.get("web", "a");
        a.record_failure();
        assert_eq!(registry.get("web", "a").snapshot().consecutive_failures, 1);
        assert_eq!(registry.get("api", "a").snapshot().consecutive_failures, 0);
        assert!(!registry.get_or_create("web", "a").1);
        assert!(registry.get_or_create("web", "b").1);
    }
}
