//! Ejection under paused time: thresholds, the percent cap, growing
//! ejection times and their end.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::OutlierConfig;
use crate::upstream::{
    Backend, BackendSet, BackendStats, Health, NativeRoundRobin, PoolSettings, fixed_endpoints,
};

fn pool(backends: usize, max_ejection_percent: u32) -> BackendPool {
    let set = (0..backends)
        .map(|i| {
            Backend::new(
                format!("b{i}"),
                fixed_endpoints(format!("127.0.0.1:{}", 9300 + i).parse().unwrap()),
                1,
                Vec::new(),
                Arc::new(BackendStats::default()),
            )
        })
        .collect();
    let settings = PoolSettings {
        outlier_detection: Some(OutlierConfig {
            consecutive_5xx: 3,
            consecutive_connect_failures: 2,
            consecutive_timeouts: 0,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(75),
            max_ejection_percent,
        }),
        ..PoolSettings::for_tests()
    };
    BackendPool::new(
        "p",
        Arc::new(BackendSet::new(set)),
        Box::new(NativeRoundRobin::default()),
        settings,
    )
}

fn health(pool: &BackendPool, index: usize) -> Health {
    pool.backends().backends[index].stats.health()
}

#[tokio::test(start_paused = true)]
async fn thresholds_eject_and_time_ends_the_ejection() {
    let pool = pool(4, 50);
    let set = pool.backends();
    let b0 = &set.backends[0];
    assert!(observe(&pool, b0, TrafficEvent::Response(503)).is_none());
    assert!(observe(&pool, b0, TrafficEvent::Response(502)).is_none());
    let ejected = observe(&pool, b0, TrafficEvent::Response(500)).unwrap();
    assert_eq!(
        (ejected.from, ejected.to),
        (Health::Healthy, Health::Unhealthy)
    );
    // Timeouts are off (threshold 0), however many.
    for _ in 0..10 {
        assert!(observe(&pool, &set.backends[1], TrafficEvent::Timeout).is_none());
    }
    assert_eq!(health(&pool, 1), Health::Healthy);

    let next = end_due_ejections(&pool, Instant::now()).unwrap();
    assert_eq!(
        next - Instant::now(),
        Duration::from_secs(30),
        "first ejection: base time"
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(end_due_ejections(&pool, Instant::now()), None);
    assert_eq!(health(&pool, 0), Health::Healthy);

    observe(&pool, b0, TrafficEvent::ConnectFailure);
    observe(&pool, b0, TrafficEvent::ConnectFailure).unwrap();
    let next = end_due_ejections(&pool, Instant::now()).unwrap();
    assert_eq!(
        next - Instant::now(),
        Duration::from_secs(60),
        "second: twice the base"
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    end_due_ejections(&pool, Instant::now());
    observe(&pool, b0, TrafficEvent::ConnectFailure);
    observe(&pool, b0, TrafficEvent::ConnectFailure).unwrap();
    let next = end_due_ejections(&pool, Instant::now()).unwrap();
    assert_eq!(
        next - Instant::now(),
        Duration::from_secs(75),
        "third: capped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_starts_the_count_over() {
    let pool = pool(4, 50);
    let set = pool.backends();
    observe(&pool, &set.backends[0], TrafficEvent::ConnectFailure);
    observe(&pool, &set.backends[0], TrafficEvent::Connected);
    assert!(observe(&pool, &set.backends[0], TrafficEvent::ConnectFailure).is_none());
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_keeps_the_pool_serving() {
    let pool = pool(4, 50);
    let set = pool.backends();
    for backend in &set.backends {
        observe(&pool, backend, TrafficEvent::ConnectFailure);
        observe(&pool, backend, TrafficEvent::ConnectFailure);
    }
    let ejected = set
        .backends
        .iter()
        .filter(|backend| backend.stats.signals().is_ejected())
        .count();
    assert_eq!(ejected, 2, "half of four");
    let single = super::tests::pool(1, 50);
    let only = &single.backends().backends[0];
    observe(&single, only, TrafficEvent::ConnectFailure);
    assert!(
        observe(&single, only, TrafficEvent::ConnectFailure).is_none(),
        "half of one is none"
    );
}
