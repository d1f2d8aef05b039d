//! Live per-backend statistics kept by the host, read through
//! [`Request::backend_stats`](crate::Request::backend_stats).

/// The host's view of a backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Passing health checks, or not checked.
    #[default]
    Healthy,
    /// Passing with reduced capacity.
    Degraded,
    /// Failing health checks.
    Unhealthy,
    /// Leaving the pool: no new work.
    Draining,
}

/// A snapshot of one backend's live counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

// === impl Health ===

impl Health {
    /// Whether the host sends new work to a backend in this state.
    pub fn accepts_new_work(self) -> bool {
        matches!(self, Health::Healthy | Health::Degraded)
    }
}

// === impl BackendStats ===

#[cfg(target_arch = "wasm32")]
impl BackendStats {
    pub(crate) fn from_wit(
        stats: crate::bindings::bascule::plugin::backend_stats::BackendSnapshot,
    ) -> Self {
        use crate::bindings::bascule::plugin::backend_stats::Health as Wit;
        BackendStats {
            active: stats.active,
            ewma_latency_us: stats.ewma_latency_us,
            recent_failures: stats.recent_failures,
            health: match stats.health {
                Wit::Healthy => Health::Healthy,
                Wit::Degraded => Health::Degraded,
                Wit::Unhealthy => Health::Unhealthy,
                Wit::Draining => Health::Draining,
            },
        }
    }
}
