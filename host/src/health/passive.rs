//! Passive health (Envoy's outlier detection, NGINX's `max_fails`): live
//! traffic's consecutive 5xx answers, failed connects and timeouts eject a
//! backend for `base-ejection-time` × the times it was ejected, capped at
//! `max-ejection-time`, never more than `max-ejection-percent` of a pool
//! at once. Ejections end on their own (the supervisor's
//! [`end_due_ejections`]), or early when an active probe passes.

use tokio::time::Instant;

use crate::upstream::{Backend, BackendPool, EjectionReason, TrafficEvent, Transition};

/// Counts one event of live traffic against `backend` of `pool`, and
/// ejects the backend when a threshold is crossed and the pool's
/// `max-ejection-percent` allows. Called on the request path: without
/// outlier detection it returns at once, and below a threshold it costs
/// one atomic add.
pub fn observe(pool: &BackendPool, backend: &Backend, event: TrafficEvent) -> Option<Transition> {
    let outlier = pool.settings().outlier_detection.as_ref()?;
    let (reason, count) = backend.stats.count(event)?;
    let threshold = match reason {
        EjectionReason::Consecutive5xx => outlier.consecutive_5xx,
        EjectionReason::ConsecutiveConnectFailures => outlier.consecutive_connect_failures,
        EjectionReason::ConsecutiveTimeouts => outlier.consecutive_timeouts,
    };
    if threshold == 0 || count < threshold {
        return None;
    }
    let backends = pool.backends();
    let ejected = backends
        .backends
        .iter()
        .filter(|other| other.stats.signals().is_ejected())
        .count();
    let allowed = backends.len() * outlier.max_ejection_percent as usize / 100;
    if ejected >= allowed {
        return None;
    }
    let times = backend.stats.signals().ejections().saturating_add(1);
    let duration = outlier
        .base_ejection_time
        .saturating_mul(times)
        .min(outlier.max_ejection_time);
    let transition = backend.stats.eject(Instant::now() + duration)?;
    metrics::counter!(crate::metrics::OUTLIER_EJECTIONS, "pool" => pool.name().to_string(), "backend" => backend.id.clone(), "reason" => reason.label()).increment(1);
    tracing::warn!(
        pool = %pool.name(),
        backend = %backend.id,
        reason = reason.label(),
        consecutive = count,
        for_seconds = duration.as_secs_f64(),
        "backend ejected by outlier detection"
    );
    crate::metrics::health_transition(pool.name(), &backend.id, transition.to);
    pool.health_changed();
    pool.notify_ejected();
    Some(transition)
}

/// Ends `pool`'s ejections that are due at `now`; returns when the next
/// one is.
pub fn end_due_ejections(pool: &BackendPool, now: Instant) -> Option<Instant> {
    let backends = pool.backends();
    let mut next: Option<Instant> = None;
    let mut ended = false;
    for backend in &backends.backends {
        let Some(until) = backend.stats.signals().ejected_until() else {
            continue;
        };
        if until > now {
            next = Some(next.map_or(until, |next| next.min(until)));
            continue;
        }
        if let Some(transition) = backend.stats.uneject() {
            super::report(
                pool,
                &backend.id,
                transition.from,
                transition.to,
                "ejection ended",
            );
        }
        ended = true;
    }
    if ended {
        // Once for all the ejections that ended: it looks at every backend.
        pool.health_changed();
    }
    next
}

#[cfg(test)]
mod tests;
