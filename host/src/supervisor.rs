//! The supervisor: the one owner of long-lived background work.
//!
//! It runs per-pool work for the plan being served (slow-start steps, one
//! health prober per backend of a checked pool, the end of outlier
//! ejections), closes idle connections to backends that stop taking
//! work, re-resolves
//! backend names, and keeps the upstream connection pool clean (idle
//! reaping, eviction of endpoints no backend uses). Every reload hands it
//! the new plan ([`Supervisor::watch`]): the old plan's tasks stop, the new
//! plan's start. A pool with nothing to do has no task, so an idle process
//! is never woken.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::plan::Plan;
use crate::upstream::{BackendPool, ConnectionPool, Resolver};

/// How often idle upstream connections are checked: an expired or closed
/// one is gone within this long.
pub const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Owns the background tasks; dropping it stops them all.
pub struct Supervisor {
    connections: Arc<ConnectionPool>,
    plan_tasks: JoinSet<()>,
    _reaper: JoinSet<()>,
}

// === impl Supervisor ===

impl Supervisor {
    /// Starts the process-wide work (the idle reaper) for `connections`.
    pub fn start(connections: Arc<ConnectionPool>) -> Self {
        let mut reaper = JoinSet::new();
        let reaped = Arc::clone(&connections);
        reaper.spawn(async move {
            let mut interval = tokio::time::interval(REAP_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                reaped.reap();
            }
        });
        Supervisor {
            connections,
            plan_tasks: JoinSet::new(),
            _reaper: reaper,
        }
    }

    /// Takes over the work of `plan`, now being served: the previous plan's
    /// tasks stop, idle connections to endpoints it no longer uses close.
    pub fn watch(&mut self, plan: &Plan) {
        self.watch_pools(plan.pools(), plan.resolver());
        for (pool, check) in plan.health_checks() {
            for backend in 0..pool.backends().len() {
                self.plan_tasks.spawn(crate::health::probe_backend(
                    Arc::clone(check),
                    Arc::clone(pool),
                    backend,
                ));
            }
        }
        let pools = plan.pools().to_vec();
        self.plan_tasks
            .spawn(close_idle_to_leaving(pools, Arc::clone(&self.connections)));
    }

    fn watch_pools(&mut self, pools: &[Arc<BackendPool>], resolver: &Arc<Resolver>) {
        self.plan_tasks.abort_all();
        let endpoints: HashSet<SocketAddr> = pools
            .iter()
            .flat_map(|pool| {
                pool.backends()
                    .endpoints()
                    .flat_map(|endpoints| endpoints.all().to_vec())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.connections
            .retain(|endpoint| endpoints.contains(&endpoint));
        for pool in pools {
            if let Some(step) = pool.ramp_step() {
                self.plan_tasks.spawn(step_ramps(Arc::clone(pool), step));
            }
            if pool.settings().outlier_detection.is_some() {
                self.plan_tasks.spawn(end_ejections(Arc::clone(pool)));
            }
            if pool
                .backends()
                .endpoints()
                .any(|endpoints| endpoints.configured().is_name())
            {
                self.plan_tasks
                    .spawn(resolve(Arc::clone(pool), Arc::clone(resolver)));
            }
        }
    }
}

/// Publishes `pool`'s backends with fresh slow-start progress every
/// `step` while any of them ramps; its balancer learns each step off the
/// request path (on the blocking pool: a table rebuild may take ms).
async fn step_ramps(pool: Arc<BackendPool>, step: Duration) {
    loop {
        let started = crate::upstream::ramp_started();
        tokio::pin!(started);
        started.as_mut().enable();
        let ramping = pool
            .backends()
            .backends
            .iter()
            .any(|b| b.stats.is_ramping());
        if !ramping {
            started.await;
        }
        let publishing = Arc::clone(&pool);
        let _ = tokio::task::spawn_blocking(move || publishing.refresh()).await;
        tokio::time::sleep(step).await;
    }
}

/// Ends `pool`'s outlier ejections when they are due; sleeps until the
/// next one, or until a backend is ejected.
async fn end_ejections(pool: Arc<BackendPool>) {
    loop {
        let ejected = pool.ejected();
        tokio::pin!(ejected);
        ejected.as_mut().enable();
        match crate::health::end_due_ejections(&pool, tokio::time::Instant::now()) {
            Some(next) => {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = ejected => {}
                }
            }
            None => ejected.await,
        }
    }
}

/// How long the supervisor gathers backends that start leaving before it
/// closes their idle connections: one scan of every pool for a burst of
/// departures (a flapping fleet), not one per backend.
const LEAVING_BATCH: Duration = Duration::from_millis(20);

/// Closes the idle pooled connections of every backend that stops taking
/// new work (ejected, failing its checks, drained), within
/// [`LEAVING_BATCH`]: its busy connections are not pooled again when their
/// request ends.
async fn close_idle_to_leaving(pools: Vec<Arc<BackendPool>>, connections: Arc<ConnectionPool>) {
    let mut first = true;
    loop {
        let left = crate::upstream::backend_left();
        tokio::pin!(left);
        left.as_mut().enable();
        if !first {
            tokio::time::sleep(LEAVING_BATCH).await;
        }
        first = false;
        let leaving: HashSet<SocketAddr> = pools
            .iter()
            .flat_map(|pool| {
                pool.backends()
                    .backends
                    .iter()
                    .filter(|backend| backend.stats.is_leaving())
                    .flat_map(|backend| backend.endpoints.all().to_vec())
                    .collect::<Vec<_>>()
            })
            .collect();
        if !leaving.is_empty() {
            connections.retain(|endpoint| !leaving.contains(&endpoint));
        }
        left.await;
    }
}

/// Re-resolves `pool`'s named backends every [`Resolver::refresh`], all
/// at once (each lookup bounded, so a dead DNS server costs one timeout a
/// round, not one per backend); a failed lookup keeps the old addresses.
async fn resolve(pool: Arc<BackendPool>, resolver: Arc<Resolver>) {
    loop {
        tokio::time::sleep(resolver.refresh()).await;
        let backends = pool.backends();
        resolver.refresh_all(backends.endpoints().cloned()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::upstream::{
        Backend, BackendSelection, BackendSet, BackendStats, PoolSettings, RequestView, Selection,
        SelectionError, fixed_endpoints,
    };

    /// Counts what the supervisor and the request path ask of it.
    #[derive(Default)]
    struct Counting {
        selects: AtomicUsize,
        prepares: AtomicUsize,
    }

    impl BackendSelection for Arc<Counting> {
        fn name(&self) -> &str {
            "counting"
        }

        fn select(
            &self,
            _: &Arc<BackendSet>,
            _: &RequestView,
        ) -> Result<Selection, SelectionError> {
            self.selects.fetch_add(1, Ordering::SeqCst);
            Ok(Selection::default())
        }

        fn prepare(&self, _: &Arc<BackendSet>) -> usize {
            self.prepares.fetch_add(1, Ordering::SeqCst);
            1
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_steps_and_pushes_generations_with_no_request() {
        let counting = Arc::new(Counting::default());
        let backends = (0..2)
            .map(|i| {
                Backend::new(
                    format!("b{i}"),
                    fixed_endpoints(format!("127.0.0.1:{}", 9100 + i).parse().unwrap()),
                    1,
                    Vec::new(),
                    Arc::new(BackendStats::default()),
                )
            })
            .collect();
        let settings = PoolSettings {
            slow_start: Some(Duration::from_secs(20)),
            ..PoolSettings::for_tests()
        };
        let pool = Arc::new(BackendPool::new(
            "p",
            Arc::new(BackendSet::new(backends)),
            Box::new(Arc::clone(&counting)),
            settings,
        ));
        let mut supervisor = Supervisor::start(Arc::new(ConnectionPool::default()));
        let resolver = Arc::new(Resolver::new(&crate::config::ResolverConfig::default()));
        supervisor.watch_pools(std::slice::from_ref(&pool), &resolver);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            counting.prepares.load(Ordering::SeqCst),
            0,
            "nothing ramps: no work"
        );

        pool.backends().backends[1].stats.start_ramp();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let pushed = counting.prepares.load(Ordering::SeqCst);
        assert!(
            pushed >= 5,
            "{pushed} generations pushed in half the window"
        );
        let ramp = pool.backends().backends[1].ramp_permille;
        assert!((400..=600).contains(&ramp), "{ramp}");
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(
            pool.backends().backends[1].ramp_permille,
            crate::upstream::FULL_RAMP
        );
        let done = counting.prepares.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            counting.prepares.load(Ordering::SeqCst),
            done,
            "a finished ramp stops stepping"
        );
        assert_eq!(
            counting.selects.load(Ordering::SeqCst),
            0,
            "no request was involved"
        );
    }
}
