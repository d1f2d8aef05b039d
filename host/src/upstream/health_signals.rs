//! What a backend's health is made of: the verdict of active checks (after
//! thresholds), an outlier ejection, a drain asked for by hand, and the
//! consecutive failures of live traffic that passive health counts. The
//! effective [`Health`] the request path reads is computed from these by
//! [`super::BackendStats`] whenever one changes.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use super::Health;

/// What active health checks concluded, after thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CheckState {
    /// Not probed yet (or not checked at all): takes traffic.
    Unknown = 0,
    /// Passing.
    Healthy = 1,
    /// Passing at a fraction of its weight.
    Degraded = 2,
    /// Failing: no traffic.
    Unhealthy = 3,
}

/// One event of live traffic, as passive health counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficEvent {
    /// A response head arrived, with this status.
    Response(u16),
    /// A TCP connection was opened (L4: the only success there is).
    Connected,
    /// The connect failed.
    ConnectFailure,
    /// No response head within the response timeout.
    Timeout,
}

/// Why a backend was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionReason {
    /// `consecutive-5xx`.
    Consecutive5xx,
    /// `consecutive-connect-failures`.
    ConsecutiveConnectFailures,
    /// `consecutive-timeouts`.
    ConsecutiveTimeouts,
}

/// The last active probe, for the status page.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// `healthy`, `degraded`, `unhealthy` or `failed` (the interpreter
    /// failed).
    pub result: &'static str,
    /// The interpreter's reason, or the failure.
    pub reason: String,
    /// When the probe ended.
    pub at: Instant,
}

/// The inputs of one backend's health.
#[derive(Debug, Default)]
pub struct HealthSignals {
    checked: AtomicU8,
    /// The degraded weight factor in thousandths; 0 means full weight.
    degraded_permille: AtomicU32,
    ejected: AtomicBool,
    drained: AtomicBool,
    ejections: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    consecutive_5xx: AtomicU32,
    consecutive_connect_failures: AtomicU32,
    consecutive_timeouts: AtomicU32,
    last_probe: Mutex<Option<ProbeReport>>,
}

// === impl CheckState ===

impl CheckState {
    fn from_u8(value: u8) -> CheckState {
        match value {
            1 => CheckState::Healthy,
            2 => CheckState::Degraded,
            3 => CheckState::Unhealthy,
            _ => CheckState::Unknown,
        }
    }

    /// The label shown on the status page.
    pub fn label(self) -> &'static str {
        match self {
            CheckState::Unknown => "unknown",
            CheckState::Healthy => "healthy",
            CheckState::Degraded => "degraded",
            CheckState::Unhealthy => "unhealthy",
        }
    }
}

// === impl EjectionReason ===

impl EjectionReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            EjectionReason::Consecutive5xx => "consecutive-5xx",
            EjectionReason::ConsecutiveConnectFailures => "consecutive-connect-failures",
            EjectionReason::ConsecutiveTimeouts => "consecutive-timeouts",
        }
    }
}

// === impl HealthSignals ===

impl HealthSignals {
    /// The health these signals give.
    pub(super) fn health(&self) -> Health {
        if self.drained.load(Ordering::Relaxed) {
            return Health::Draining;
        }
        if self.ejected.load(Ordering::Relaxed) {
            return Health::Unhealthy;
        }
        match self.checked() {
            CheckState::Unhealthy => Health::Unhealthy,
            CheckState::Degraded => Health::Degraded,
            CheckState::Unknown | CheckState::Healthy => Health::Healthy,
        }
    }

    /// What active checks concluded.
    pub fn checked(&self) -> CheckState {
        CheckState::from_u8(self.checked.load(Ordering::Relaxed))
    }

    pub(super) fn set_checked(&self, state: CheckState, permille: u32) {
        self.checked.store(state as u8, Ordering::Relaxed);
        let permille = if state == CheckState::Degraded {
            permille.clamp(1, 1000)
        } else {
            0
        };
        self.degraded_permille.store(permille, Ordering::Relaxed);
    }

    /// The weight left by a degraded verdict, in thousandths (1000 unless
    /// degraded).
    pub fn health_permille(&self) -> u32 {
        match self.degraded_permille.load(Ordering::Relaxed) {
            0 => 1000,
            permille => permille,
        }
    }

    /// Whether outlier detection has ejected the backend.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// Until when, while ejected.
    pub fn ejected_until(&self) -> Option<Instant> {
        *lock(&self.ejected_until)
    }

    /// How many times the backend was ejected.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Ejects until `until`; false when already ejected.
    pub(super) fn eject(&self, until: Instant) -> bool {
        if self.ejected.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        *lock(&self.ejected_until) = Some(until);
        self.reset_counts();
        true
    }

    /// Ends an ejection; false when not ejected.
    pub(super) fn uneject(&self) -> bool {
        *lock(&self.ejected_until) = None;
        self.reset_counts();
        self.ejected.swap(false, Ordering::Relaxed)
    }

    /// Whether the backend was drained by hand.
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    pub(super) fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    /// Counts `event`; returns each consecutive count it raised, by reason,
    /// so that the caller can compare it with its thresholds.
    pub(super) fn count(&self, event: TrafficEvent) -> Option<(EjectionReason, u32)> {
        let bump = |counter: &AtomicU32| counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        match event {
            TrafficEvent::Response(status) if status >= 500 => {
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                self.consecutive_connect_failures
                    .store(0, Ordering::Relaxed);
                Some((EjectionReason::Consecutive5xx, bump(&self.consecutive_5xx)))
            }
            TrafficEvent::Response(_) => {
                self.reset_counts();
                None
            }
            TrafficEvent::Connected => {
                if self.consecutive_connect_failures.load(Ordering::Relaxed) != 0 {
                    self.consecutive_connect_failures
                        .store(0, Ordering::Relaxed);
                }
                None
            }
            TrafficEvent::ConnectFailure => Some((
                EjectionReason::ConsecutiveConnectFailures,
                bump(&self.consecutive_connect_failures),
            )),
            TrafficEvent::Timeout => Some((
                EjectionReason::ConsecutiveTimeouts,
                bump(&self.consecutive_timeouts),
            )),
        }
    }

    fn reset_counts(&self) {
        for counter in [
            &self.consecutive_5xx,
            &self.consecutive_connect_failures,
            &self.consecutive_timeouts,
        ] {
            // A load first: resetting counters already at 0 (every
            // successful response) must not dirty the cache line.
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The last probe's result, for the status page.
    pub fn last_probe(&self) -> Option<ProbeReport> {
        lock(&self.last_probe).clone()
    }

    /// Records the last probe's result.
    pub fn set_last_probe(&self, report: ProbeReport) {
        *lock(&self.last_probe) = Some(report);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_counts_reset_on_success_and_per_kind() {
        let signals = HealthSignals::default();
        assert_eq!(
            signals.count(TrafficEvent::Response(503)),
            Some((EjectionReason::Consecutive5xx, 1))
        );
        assert_eq!(
            signals.count(TrafficEvent::Response(502)),
            Some((EjectionReason::Consecutive5xx, 2))
        );
        assert_eq!(signals.count(TrafficEvent::Response(404)), None);
        assert_eq!(
            signals.count(TrafficEvent::Response(500)),
            Some((EjectionReason::Consecutive5xx, 1)),
            "a 4xx is an answer: the run starts over"
        );
        signals.count(TrafficEvent::Timeout);
        assert_eq!(
            signals.count(TrafficEvent::Timeout),
            Some((EjectionReason::ConsecutiveTimeouts, 2))
        );
        assert_eq!(
            signals.count(TrafficEvent::ConnectFailure),
            Some((EjectionReason::ConsecutiveConnectFailures, 1))
        );
    }

    #[test]
    fn health_combines_drain_ejection_and_checks() {
        let signals = HealthSignals::default();
        assert_eq!(signals.health(), Health::Healthy, "unknown takes traffic");
        signals.set_checked(CheckState::Degraded, 200);
        assert_eq!(
            (signals.health(), signals.health_permille()),
            (Health::Degraded, 200)
        );
        assert!(signals.eject(Instant::now()));
        assert!(!signals.eject(Instant::now()), "already ejected");
        assert_eq!(signals.health(), Health::Unhealthy);
        signals.set_drained(true);
        assert_eq!(signals.health(), Health::Draining);
        signals.set_drained(false);
        assert!(signals.uneject());
        signals.set_checked(CheckState::Healthy, 0);
        assert_eq!(
            (signals.health(), signals.health_permille()),
            (Health::Healthy, 1000)
        );
        assert_eq!(signals.ejections(), 1);
    }
}
