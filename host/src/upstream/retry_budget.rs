//! A retry budget (Finagle's, Linkerd's): retries may add at most a
//! fraction of the requests of the last ten seconds, plus a small floor
//! per second, so that when every backend fails, retries cannot multiply
//! the load on them (each request would otherwise become `max-attempts`).
//!
//! Requests and retries are counted in one-second buckets of a ten-second
//! ring, lock-free: a bucket is reset by the first count of a new second
//! that lands on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The window the budget looks back over.
const WINDOW_SECONDS: u64 = 10;

/// Requests and retries of the last ten seconds, and what retries they
/// allow.
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries allowed per request, in thousandths (200: 20%).
    ratio_permille: u64,
    /// Retries allowed per second whatever the traffic.
    min_per_second: u64,
    requests: Ring,
    retries: Ring,
    start: Instant,
}

/// Counts per second over the window; each slot holds its second in the
/// high bits and its count in the low 32.
#[derive(Debug, Default)]
struct Ring([AtomicU64; WINDOW_SECONDS as usize]);

// === impl RetryBudget ===

impl RetryBudget {
    /// A budget of `ratio_permille` retries per thousand requests plus
    /// `min_per_second`.
    pub fn new(ratio_permille: u32, min_per_second: u32) -> Self {
        RetryBudget {
            ratio_permille: u64::from(ratio_permille),
            min_per_second: u64::from(min_per_second),
            requests: Ring::default(),
            retries: Ring::default(),
            start: Instant::now(),
        }
    }

    /// Counts a request (its first attempt): what retries are paid from.
    pub fn deposit(&self) {
        self.requests.add(self.second(), 1);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        let now = self.second();
        let allowed = self.min_per_second * WINDOW_SECONDS
            + self.requests.sum(now) * self.ratio_permille / 1000;
        if self.retries.sum(now) >= allowed {
            return false;
        }
        self.retries.add(now, 1);
        true
    }

    fn second(&self) -> u64 {
        self.start.elapsed().as_secs()
    }
}

// === impl Ring ===

impl Ring {
    fn add(&self, second: u64, count: u64) {
        let Some(slot) = self.0.get((second % WINDOW_SECONDS) as usize) else {
            return;
        };
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 == second {
                current + count
            } else {
                (second << 32) | count
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The counts of the window ending at `second`.
    fn sum(&self, second: u64) -> u64 {
        self.0
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|value| second.saturating_sub(value >> 32) < WINDOW_SECONDS)
            .map(|value| value & 0xffff_ffff)
            .sum()
    }
}

/// How long the budget looks back.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(WINDOW_SECONDS);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_ratio_plus_the_floor() {
        // 20% and 1 per second: 10 retries from the floor over the window.
        let budget = RetryBudget::new(200, 1);
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 10 + 20, "floor of 10, plus 20% of 100");
        // Past the window the old requests and retries no longer count.
        tokio::time::advance(BUDGET_WINDOW + Duration::from_secs(1)).await;
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn no_traffic_and_no_floor_allows_no_retry() {
        let budget = RetryBudget::new(200, 0);
        assert!(!budget.withdraw());
        for _ in 0..5 {
            budget.deposit();
        }
        assert!(budget.withdraw(), "20% of 5 is one retry");
        assert!(!budget.withdraw());
    }
}
