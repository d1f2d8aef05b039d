//! Live per-backend statistics kept by the host.

use crate::bindings::bascule::plugin::backend_stats as host;

/// The host's view of a backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Passing health checks, or not checked.
    Healthy,
    /// Passing with reduced capacity.
    Degraded,
    /// Failing health checks.
    Unhealthy,
    /// Leaving the pool: no new work.
    Draining,
}

/// A snapshot of one backend's live counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests or connections in flight.
    pub active: u32,
    /// Moving average response time in microseconds; 0 before any sample.
    pub ewma_latency_us: u64,
    /// Failures since the last successful exchange.
    pub recent_failures: u32,
    /// Current health.
    pub health: Health,
}

// === impl BackendStats ===

impl BackendStats {
    /// Reads the stats of backend `index` (one host call).
    pub fn of(index: u32) -> Option<Self> {
        host::stats(index).map(|s| BackendStats {
            active: s.active,
            ewma_latency_us: s.ewma_latency_us,
            recent_failures: s.recent_failures,
            health: match s.health {
                host::Health::Healthy => Health::Healthy,
                host::Health::Degraded => Health::Degraded,
                host::Health::Unhealthy => Health::Unhealthy,
                host::Health::Draining => Health::Draining,
            },
        })
    }
}
