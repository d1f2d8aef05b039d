//! A pool: backends plus the balancer that chooses among them, and the
//! host-side checks applied to every choice.
//!
//! The request path only reads the current backend set. New sets (slow
//! start steps, later health and discovery changes) are published by the
//! supervisor, which also lets the balancer learn them off the request
//! path ([`BackendPool::publish`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use super::{
    AffinityCookie, Backend, BackendSelection, BackendSet, Health, NativeRoundRobin, RequestView,
    Selection, SelectionError,
};
use crate::config::{OutlierConfig, UpstreamProtocol};
use crate::l4::ProxyProtocolVersion;

/// A named group of backends and how to choose among them.
pub struct BackendPool {
    name: Arc<str>,
    backends: ArcSwap<BackendSet>,
    balancer: Box<dyn BackendSelection>,
    fallback: NativeRoundRobin,
    settings: PoolSettings,
    /// Whether too few backends are healthy and health is ignored
    /// (`panic-threshold`); recomputed at every health change.
    panicking: AtomicBool,
    /// Woken when outlier detection ejects a backend, so that the
    /// supervisor schedules its return.
    ejected: Notify,
    /// Held from reading the backends to publishing a changed copy, so
    /// that a slow-start step and a weight set by hand do not undo each
    /// other.
    changing: std::sync::Mutex<()>,
}

/// How a request is served when its pool's plugin traps, times out, runs out
/// of memory or returns nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginFailurePolicy {
    /// A native round robin over the pool's backends (the default: a broken
    /// plugin degrades balancing quality, not availability).
    RoundRobin,
    /// Answer 503.
    FailClosed,
}

/// The backends to try for one request, in order: validated, de-duplicated,
/// healthy, and at most the pool's `max-attempts`.
#[derive(Debug)]
pub struct Choice {
    backends: Arc<BackendSet>,
    candidates: Vec<usize>,
    affinity: Option<AffinityCookie>,
}

/// Why a pool could not offer a backend.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Nothing to try: the pool is empty, every candidate is unhealthy, or
    /// the balancer chose none.
    #[error("pool `{pool}` has no usable backend")]
    NoUsableBackend {
        /// The pool.
        pool: Arc<str>,
    },
    /// The balancer failed and the pool is configured to fail closed.
    #[error("balancer of pool `{pool}` failed and the pool fails closed")]
    BalancerFailed {
        /// The pool.
        pool: Arc<str>,
        /// What went wrong.
        #[source]
        source: SelectionError,
    },
}

/// Settings of a pool other than its backends and balancer.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Behaviour when the balancer fails.
    pub on_balancer_failure: PluginFailurePolicy,
    /// Most candidates tried per request.
    pub max_attempts: u32,
    /// Budget of one connection attempt.
    pub connect_timeout: Duration,
    /// Budget from sending the request to receiving the response head.
    pub response_timeout: Duration,
    /// Window over which a joining or recovering backend's weight ramps up.
    pub slow_start: Option<Duration>,
    /// PROXY header written to backends on TCP connections.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// How long TCP connections to a leaving backend may go on.
    pub drain_timeout: Duration,
    /// Percent of healthy backends below which health is ignored; 0: off.
    pub panic_threshold: u32,
    /// Passive health; `None`: off.
    pub outlier_detection: Option<OutlierConfig>,
    /// The HTTP version spoken to the backends.
    pub protocol: UpstreamProtocol,
    /// Requests (connections, tunnels) one backend serves at once; a
    /// backend at it is passed over. `None`: no bound.
    pub max_active: Option<u32>,
}

// === impl PoolSettings ===

impl PoolSettings {
    /// Settings for tests and benchmarks: one attempt, round-robin
    /// fallback, 1 s budgets, and nothing else on (no slow start, PROXY
    /// header, health).
    #[doc(hidden)]
    pub fn for_tests() -> Self {
        PoolSettings {
            on_balancer_failure: PluginFailurePolicy::RoundRobin,
            max_attempts: 1,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            slow_start: None,
            proxy_protocol: None,
            drain_timeout: Duration::from_secs(1),
            panic_threshold: 0,
            outlier_detection: None,
            protocol: UpstreamProtocol::Http1,
            max_active: None,
        }
    }
}

// === impl BackendPool ===

impl BackendPool {
    /// A pool named `name` with no backends, native round robin and
    /// [`PoolSettings::for_tests`]: what route and split tests and
    /// benchmarks send requests to.
    #[doc(hidden)]
    pub fn empty_for_tests(name: &str) -> Arc<BackendPool> {
        Arc::new(BackendPool::new(
            name,
            Arc::new(BackendSet::new(Vec::new())),
            Box::new(super::NativeRoundRobin::default()),
            PoolSettings::for_tests(),
        ))
    }

    /// A pool over `backends` choosing with `balancer`.
    pub fn new(
        name: impl Into<Arc<str>>,
        backends: Arc<BackendSet>,
        balancer: Box<dyn BackendSelection>,
        settings: PoolSettings,
    ) -> Self {
        BackendPool {
            name: name.into(),
            backends: ArcSwap::new(backends),
            balancer,
            fallback: NativeRoundRobin::default(),
            settings,
            panicking: AtomicBool::new(false),
            ejected: Notify::new(),
            changing: std::sync::Mutex::default(),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The balancer's name.
    pub fn balancer_name(&self) -> &str {
        self.balancer.name()
    }

    /// The balancer plugin's digest and failures; `None` when native.
    pub fn balancer_report(&self) -> Option<super::PluginReport> {
        self.balancer.report()
    }

    /// Whether requests may reach the backends over HTTP/2 (`h2`, or
    /// `auto`): an upgrade needs an HTTP/1.1 connection of its own.
    pub fn speaks_http2(&self) -> bool {
        self.settings().protocol != UpstreamProtocol::Http1
    }

    /// Timeouts, attempts and failure policy.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The current backends.
    pub fn backends(&self) -> Arc<BackendSet> {
        self.backends.load_full()
    }

    /// Asks the balancer, applies the failure policy, and keeps only
    /// candidates that are in range, distinct and accepting new work.
    pub fn choose(&self, request: &RequestView) -> Result<Choice, PoolError> {
        let backends = self.backends.load_full();
        let selection = match self.balancer.select(&backends, request) {
            Ok(ranked) => ranked,
            Err(error) => {
                // Logged, at a bounded rate, where the plugin failed.
                tracing::debug!(pool = %self.name, error = %crate::error_chain(&error), "balancer failed");
                match self.settings.on_balancer_failure {
                    PluginFailurePolicy::FailClosed => {
                        return Err(PoolError::BalancerFailed {
                            pool: Arc::clone(&self.name),
                            source: error,
                        });
                    }
                    PluginFailurePolicy::RoundRobin => {
                        self.fallback.select(&backends, request).unwrap_or_default()
                    }
                }
            }
        };
        let Selection {
            candidates: ranked,
            affinity,
        } = selection;
        let panicking = self.panicking.load(Ordering::Relaxed);
        let mut candidates = self.usable(&backends, ranked, panicking);
        if candidates.is_empty() && panicking {
            // The plugin itself may skip unhealthy backends; in panic every
            // backend but a draining one is fair game.
            let ranked = self.fallback.select(&backends, request).unwrap_or_default();
            candidates = self.usable(&backends, ranked.candidates, true);
        }
        if candidates.is_empty() {
            return Err(PoolError::NoUsableBackend {
                pool: Arc::clone(&self.name),
            });
        }
        Ok(Choice {
            backends,
            candidates,
            affinity,
        })
    }

    /// The backend named `id` alone, without asking the balancer, when it
    /// is in the pool and takes new work: a client pinned to its backend
    /// by the host (UDP `affinity = "client-ip"`). `None` sends the caller
    /// to [`choose`](Self::choose).
    pub fn choose_pinned(&self, id: &str) -> Option<Choice> {
        let backends = self.backends.load_full();
        let index = backends.position(id)?;
        let panicking = self.panicking.load(Ordering::Relaxed);
        let candidates = self.usable(&backends, vec![u32::try_from(index).ok()?], panicking);
        (!candidates.is_empty()).then_some(Choice {
            backends,
            candidates,
            affinity: None,
        })
    }

    /// How often the supervisor recomputes slow-start progress: a
    /// twentieth of the window (a ramp climbs in steps of about 5%), at
    /// least every 50 ms. `None` without slow start.
    pub fn ramp_step(&self) -> Option<Duration> {
        let window = self.settings.slow_start?;
        Some((window / 20).max(Duration::from_millis(50)))
    }

    /// The backends with their slow-start progress and degraded weights
    /// as they are now, as a new generation, when any of it changed.
    /// Called by the supervisor.
    fn refreshed_backends(&self) -> Option<BackendSet> {
        self.backends.load().refreshed(self.settings.slow_start)
    }

    /// Publishes the backends with fresh slow-start progress and degraded
    /// weights, when any of it changed (see [`Self::refreshed_backends`]).
    /// Blocks while the balancer learns them: call it off the request
    /// path.
    pub fn refresh(&self) {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(refreshed) = self.refreshed_backends() {
            self.publish(refreshed);
        }
    }

    /// Sets `backend`'s weight until the next reload (its configured weight
    /// again when `None`) and publishes it; `false` when the pool has no
    /// such backend. Blocks while the balancer learns it.
    pub fn reweigh(&self, backend: &str, weight: Option<u32>) -> bool {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.backends.load().reweighed(backend, weight) {
            Some(reweighed) => {
                self.publish(reweighed);
                true
            }
            None => false,
        }
    }

    /// Makes `backends` current: the balancer learns them first (off the
    /// request path: the caller is the supervisor), then requests see
    /// them. Returns how many balancer instances learned them ahead.
    pub fn publish(&self, backends: BackendSet) -> usize {
        let backends = Arc::new(backends);
        let prepared = self.balancer.prepare(&backends);
        self.backends.store(backends);
        prepared
    }

    /// Whether the pool is in panic: fewer than `panic-threshold` percent
    /// of its backends healthy, so that health is ignored.
    pub fn is_panicking(&self) -> bool {
        self.panicking.load(Ordering::Relaxed)
    }

    /// Recomputes what depends on the health of all backends (panic mode).
    /// Called by whoever changed a backend's health.
    pub fn health_changed(&self) {
        let threshold = self.settings.panic_threshold;
        if threshold == 0 {
            return;
        }
        let backends = self.backends.load();
        let healthy = backends
            .backends
            .iter()
            .filter(|backend| backend.stats.health().accepts_new_work())
            .count();
        let panicking = healthy * 100 < threshold as usize * backends.len();
        if self.panicking.swap(panicking, Ordering::Relaxed) != panicking {
            tracing::warn!(
                pool = %self.name,
                healthy,
                backends = backends.len(),
                panic_threshold = threshold,
                "{}",
                if panicking {
                    "pool in panic: too few healthy backends, health is ignored"
                } else {
                    "pool out of panic"
                }
            );
        }
    }

    /// Wakes the supervisor's task that ends `pool`'s ejections: one was
    /// just made.
    pub fn notify_ejected(&self) {
        self.ejected.notify_one();
    }

    /// Completes when a backend of the pool is next ejected.
    pub fn ejected(&self) -> tokio::sync::futures::Notified<'_> {
        self.ejected.notified()
    }

    fn usable(&self, backends: &BackendSet, ranked: Vec<u32>, panicking: bool) -> Vec<usize> {
        let max_attempts = usize::try_from(self.settings.max_attempts)
            .unwrap_or(1)
            .max(1);
        let mut candidates: Vec<usize> = Vec::with_capacity(max_attempts.min(ranked.len()));
        for index in ranked {
            if candidates.len() == max_attempts {
                break;
            }
            let Ok(index) = usize::try_from(index) else {
                continue;
            };
            let Some(backend) = backends.get(index) else {
                continue;
            };
            let health = backend.stats.health();
            let full = self
                .settings
                .max_active
                .is_some_and(|max| backend.stats.active() >= max);
            let takes_work =
                !full && (health.accepts_new_work() || (panicking && health == Health::Unhealthy));
            if takes_work && !candidates.contains(&index) {
                candidates.push(index);
            }
        }
        candidates
    }
}

// === impl Choice ===

impl Choice {
    /// The candidates, best first.
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.candidates
            .iter()
            .filter_map(|&index| self.backends.get(index))
    }

    /// The cookie the balancer wants set, naming the backend that serves.
    pub fn affinity(&self) -> Option<&AffinityCookie> {
        self.affinity.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{BackendStats, Protocol};

    /// Returns a fixed ranking, or fails.
    struct Fixed(Option<Vec<u32>>);

    #[derive(Debug, thiserror::Error)]
    #[error("fixed failure")]
    struct FixedFailure;

    impl BackendSelection for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }

        fn select(
            &self,
            _: &Arc<BackendSet>,
            _: &RequestView,
        ) -> Result<Selection, SelectionError> {
            self.0
                .clone()
                .map(Selection::from)
                .ok_or_else(|| SelectionError::new(FixedFailure))
        }
    }

    fn pool(
        ranking: Option<Vec<u32>>,
        policy: PluginFailurePolicy,
        max_attempts: u32,
    ) -> BackendPool {
        let backends = (0..4)
            .map(|i| {
                Backend::new(
                    format!("b{i}"),
                    crate::upstream::fixed_endpoints(
                        format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    ),
                    1,
                    Vec::new(),
                    Arc::new(BackendStats::default()),
                )
            })
            .collect();
        let settings = PoolSettings {
            on_balancer_failure: policy,
            max_attempts,
            slow_start: Some(Duration::from_secs(3600)),
            ..PoolSettings::for_tests()
        };
        BackendPool::new(
            "p",
            Arc::new(BackendSet::new(backends)),
            Box::new(Fixed(ranking)),
            settings,
        )
    }

    fn request() -> RequestView {
        RequestView {
            protocol: Protocol::Tcp,
            listener: "l".into(),
            client: "127.0.0.1:5".parse().unwrap(),
            sni: None,
            tls: None,
            http: None,
        }
    }

    fn ids(choice: &Choice) -> Vec<&str> {
        choice.backends().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn drops_out_of_range_duplicates_and_caps_attempts() {
        let pool = pool(
            Some(vec![9, 2, 2, 0, 1, 3]),
            PluginFailurePolicy::RoundRobin,
            3,
        );
        assert_eq!(ids(&pool.choose(&request()).unwrap()), ["b2", "b0", "b1"]);
    }

    #[test]
    fn skips_backends_that_take_no_new_work() {
        let pool = pool(Some(vec![0, 1, 2]), PluginFailurePolicy::RoundRobin, 3);
        let backends = pool.backends();
        backends.backends[0].stats.set_drained(true);
        backends.backends[2]
            .stats
            .set_checked(crate::upstream::CheckState::Unhealthy, 0);
        assert_eq!(ids(&pool.choose(&request()).unwrap()), ["b1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_publishes_ramped_weights() {
        let pool = pool(Some(vec![0]), PluginFailurePolicy::RoundRobin, 1);
        let before = pool.backends();
        assert!(pool.refreshed_backends().is_none(), "nothing ramps yet");
        before.backends[1].stats.start_ramp();
        pool.choose(&request()).unwrap();
        assert_eq!(
            pool.backends().generation,
            before.generation,
            "choosing never publishes"
        );
        pool.publish(pool.refreshed_backends().unwrap());
        let after = pool.backends();
        assert!(after.generation > before.generation);
        let ramps: Vec<u32> = after.backends.iter().map(|b| b.ramp_permille).collect();
        assert_eq!(ramps[0], crate::upstream::FULL_RAMP);
        assert!(ramps[1] < 10, "{ramps:?}");
        assert_eq!(pool.ramp_step(), Some(Duration::from_secs(180)));
        tokio::time::advance(Duration::from_secs(1800)).await;
        pool.publish(pool.refreshed_backends().unwrap());
        assert_eq!(pool.backends().backends[1].ramp_permille, 500);
    }

    #[test]
    fn empty_choice_is_no_usable_backend() {
        let pool = pool(Some(vec![]), PluginFailurePolicy::RoundRobin, 3);
        assert!(matches!(
            pool.choose(&request()),
            Err(PoolError::NoUsableBackend { .. })
        ));
    }

    #[test]
    fn failure_falls_back_to_round_robin_or_fails_closed() {
        let open = pool(None, PluginFailurePolicy::RoundRobin, 1);
        let firsts: Vec<String> = (0..5)
            .map(|_| ids(&open.choose(&request()).unwrap()).join(","))
            .collect();
        assert_eq!(firsts, ["b0", "b1", "b2", "b3", "b0"]);
        let closed = pool(None, PluginFailurePolicy::FailClosed, 1);
        assert!(matches!(
            closed.choose(&request()),
            Err(PoolError::BalancerFailed { .. })
        ));
    }
}
