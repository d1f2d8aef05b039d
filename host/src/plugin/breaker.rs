//! Suspends a plugin that keeps failing, with exponential backoff.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// After this many instance-poisoning failures in a row the plugin is
/// suspended and requests go straight to the fallback.
const FAILURES_BEFORE_SUSPENSION: u32 = 5;
/// First suspension; doubles with each further failure, up to the max.
const FIRST_SUSPENSION: Duration = Duration::from_millis(100);
/// Longest suspension: a fixed plugin is back in service within seconds.
const MAX_SUSPENSION: Duration = Duration::from_secs(5);

/// Counts consecutive poisoning failures and suspends the plugin with
/// exponential backoff, so that a plugin that always loops does not cost
/// every request its full time budget.
#[derive(Debug)]
pub(super) struct Breaker {
    epoch: Instant,
    consecutive_failures: AtomicU32,
    suspended_until_ms: AtomicU64,
}

// === impl Breaker ===

impl Breaker {
    pub(super) fn new() -> Self {
        Breaker {
            epoch: Instant::now(),
            consecutive_failures: AtomicU32::new(0),
            suspended_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn is_open(&self) -> bool {
        // Zero means never suspended: the common case reads no clock.
        match self.suspended_until_ms.load(Ordering::Relaxed) {
            0 => false,
            until => self.now_ms() < until,
        }
    }

    pub(super) fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn record_failure(&self, plugin: &str) {
        let failures = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if let Some(excess) = failures.checked_sub(FAILURES_BEFORE_SUSPENSION) {
            let factor = 1u32.checked_shl(excess.min(16)).unwrap_or(u32::MAX);
            let suspension = FIRST_SUSPENSION.saturating_mul(factor).min(MAX_SUSPENSION);
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(suspension.as_millis()).unwrap_or(u64::MAX));
            self.suspended_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(plugin, failures, suspension = ?suspension, "plugin suspended after repeated failures");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn suspension_ends_and_doubles_under_paused_time() {
        let breaker = Breaker::new();
        for _ in 0..FAILURES_BEFORE_SUSPENSION {
            breaker.record_failure("p");
        }
        assert!(breaker.is_open());
        tokio::time::advance(FIRST_SUSPENSION + Duration::from_millis(1)).await;
        assert!(
            !breaker.is_open(),
            "the first suspension lasts {FIRST_SUSPENSION:?}"
        );
        breaker.record_failure("p");
        tokio::time::advance(FIRST_SUSPENSION + Duration::from_millis(1)).await;
        assert!(breaker.is_open(), "the next one lasts twice as long");
        tokio::time::advance(FIRST_SUSPENSION).await;
        assert!(!breaker.is_open());
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let breaker = Breaker::new();
        for _ in 0..FAILURES_BEFORE_SUSPENSION - 1 {
            breaker.record_failure("p");
        }
        assert!(!breaker.is_open());
        breaker.record_success();
        for _ in 0..FAILURES_BEFORE_SUSPENSION - 1 {
            breaker.record_failure("p");
        }
        assert!(!breaker.is_open(), "a success must reset the count");
        breaker.record_failure("p");
        assert!(breaker.is_open());
    }
}
