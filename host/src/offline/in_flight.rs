//! Requests still being served, in simulated time.
//!
//! With `plugin run --rate R`, request `i` arrives at `i / R` seconds and
//! holds its backend for the backend's simulated `latency`. Until then it
//! counts as in flight on that backend, the count least-connections and
//! the other least-loaded algorithms read, and its latency is recorded
//! only when it ends, as the proxy records a response. Without a rate,
//! each request ends before the next arrives.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use crate::upstream::{ActiveRequest, BackendStats};

/// The requests in flight, by when they end.
#[derive(Debug)]
pub struct InFlight {
    /// Time between arrivals; `None`: each request ends before the next.
    gap: Option<Duration>,
    /// Simulated time of the latest arrival.
    now: Duration,
    ends: BinaryHeap<Reverse<Ending>>,
    /// The most in flight at once, per backend index.
    peaks: Vec<u32>,
}

#[derive(Debug)]
struct Ending {
    at: Duration,
    /// Arrival order, so requests ending together end in order.
    seq: u64,
    latency: Duration,
    /// Holds the request in its backend's in-flight count until it ends.
    request: ActiveRequest,
}

// === impl InFlight ===

impl InFlight {
    /// Arrivals `rate` per second (or one after another without one), on
    /// `backends` backends.
    pub fn new(rate: Option<f64>, backends: usize) -> Self {
        InFlight {
            gap: rate
                .filter(|rate| rate.is_finite() && *rate > 0.0)
                .map(|rate| Duration::from_secs_f64(1.0 / rate)),
            now: Duration::ZERO,
            ends: BinaryHeap::new(),
            peaks: vec![0; backends],
        }
    }

    /// The next request arrives: what ended before it is recorded and
    /// leaves the in-flight counts.
    pub fn arrive(&mut self, seq: u64) {
        if let Some(gap) = self.gap {
            self.now = gap.saturating_mul(u32::try_from(seq).unwrap_or(u32::MAX));
        }
        while let Some(Reverse(ending)) = self.ends.peek() {
            if ending.at > self.now {
                break;
            }
            if let Some(Reverse(ending)) = self.ends.pop() {
                ending.request.stats().record_success(ending.latency);
            }
        }
    }

    /// Backend `index` (with `stats`) serves request `seq` for `latency`.
    pub fn serve(&mut self, seq: u64, index: usize, stats: &Arc<BackendStats>, latency: Duration) {
        let request = stats.start();
        if let Some(peak) = self.peaks.get_mut(index) {
            *peak = (*peak).max(stats.active());
        }
        if self.gap.is_some() {
            self.ends.push(Reverse(Ending {
                at: self.now.saturating_add(latency),
                seq,
                latency,
                request,
            }));
        } else {
            // It ends at once: recorded, and out of the count on return.
            stats.record_success(latency);
        }
    }

    /// The most requests each backend had in flight at once.
    pub fn peaks(&self) -> &[u32] {
        &self.peaks
    }
}

// === impl Ending ===

impl PartialEq for Ending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Ending {}

impl PartialOrd for Ending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_in_flight_until_its_latency_has_passed() {
        let stats = Arc::new(BackendStats::default());
        // 1,000 per second: one arrival a millisecond.
        let mut in_flight = InFlight::new(Some(1000.0), 1);
        for seq in 0..3 {
            in_flight.arrive(seq);
            in_flight.serve(seq, 0, &stats, Duration::from_micros(2500));
        }
        // Arrivals at 0, 1 and 2 ms, each 2.5 ms long: all three in flight.
        assert_eq!(stats.active(), 3);
        in_flight.arrive(3);
        // At 3 ms the first (ended at 2.5 ms) has left.
        assert_eq!(stats.active(), 2);
        assert_eq!(stats.snapshot().ewma_latency_us, 2500);
        assert_eq!(in_flight.peaks(), [3]);
    }

    #[test]
    fn without_a_rate_each_request_ends_before_the_next() {
        let stats = Arc::new(BackendStats::default());
        let mut in_flight = InFlight::new(None, 1);
        for seq in 0..3 {
            in_flight.arrive(seq);
            in_flight.serve(seq, 0, &stats, Duration::from_secs(1));
            assert_eq!(stats.active(), 0);
        }
        assert_eq!(in_flight.peaks(), [1]);
    }
}
