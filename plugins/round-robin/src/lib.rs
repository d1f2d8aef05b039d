//! `builtin:round-robin`: every backend in turn, in config order.
//!
//! Each plugin instance keeps its own position, so the rotation is exact per
//! instance; the host keeps one instance per concurrent request slot, the
//! same per-thread exactness Envoy and HAProxy give. Besides the chosen
//! backend, `select` ranks the next few in rotation order so that the host
//! has somewhere to go when the first refuses the connection.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request};

/// How many candidates `select` ranks: the chosen backend plus fallbacks.
/// A few are enough to ride over a dead backend; listing every backend would
/// make each call cost O(backends).
pub const CANDIDATES: u32 = 3;

/// Round-robin position over a backend list of known length.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: u32,
    len: u32,
}

// === impl RoundRobin ===

impl RoundRobin {
    /// Sets the number of backends. The position is kept (modulo the new
    /// length) so that a membership change does not restart the rotation.
    pub fn resize(&mut self, len: u32) {
        self.len = len;
        self.next = if len == 0 { 0 } else { self.next % len };
    }

    /// The next backend in turn followed by its successors: at most
    /// [`CANDIDATES`] distinct indices, empty when there are no backends.
    pub fn pick(&mut self) -> Candidates {
        if self.len == 0 {
            return Vec::new();
        }
        let first = self.next;
        self.next = (first + 1) % self.len;
        (0..CANDIDATES.min(self.len))
            .map(|offset| (first + offset) % self.len)
            .collect()
    }
}

impl Balancer for RoundRobin {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(RoundRobin::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.resize(u32::try_from(backends.len()).unwrap_or(u32::MAX));
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick())
    }
}

#[cfg(feature = "export")]
bascule_guest_sdk::export_balancer!(RoundRobin);

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(rr: &mut RoundRobin, n: usize) -> Vec<u32> {
        (0..n).map(|_| rr.pick()[0]).collect()
    }

    #[test]
    fn visits_each_backend_in_turn() {
        let mut rr = RoundRobin::default();
        rr.resize(3);
        assert_eq!(firsts(&mut rr, 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn ranks_successors_as_fallbacks() {
        let mut rr = RoundRobin::default();
        rr.resize(5);
        rr.pick();
        assert_eq!(rr.pick(), [1, 2, 3]);
        rr.resize(2);
        assert_eq!(rr.pick(), [0, 1], "never more candidates than backends");
    }

    #[test]
    fn empty_pool_yields_no_candidates() {
        let mut rr = RoundRobin::default();
        assert!(rr.pick().is_empty());
        rr.resize(0);
        assert!(rr.pick().is_empty());
    }

    #[test]
    fn shrinking_keeps_position_in_range() {
        let mut rr = RoundRobin::default();
        rr.resize(10);
        firsts(&mut rr, 8);
        rr.resize(3);
        assert_eq!(firsts(&mut rr, 3), [2, 0, 1]);
    }

    #[test]
    fn options_are_rejected() {
        assert!(RoundRobin::configure(&Options::from_json("{}")).is_ok());
        assert!(RoundRobin::configure(&Options::from_json(r#"{"weight": 2}"#)).is_err());
    }

    #[test]
    fn even_share_over_many_picks() {
        let mut rr = RoundRobin::default();
        rr.resize(4);
        let mut counts = [0u32; 4];
        for first in firsts(&mut rr, 4000) {
            counts[first as usize] += 1;
        }
        assert_eq!(counts, [1000; 4]);
    }
}
