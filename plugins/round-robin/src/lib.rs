//! `builtin:round-robin`: every backend in turn, in config order.
//!
//! Each plugin instance keeps its own position, so the rotation is exact per
//! instance; the host keeps one instance per concurrent request slot, the
//! same per-thread exactness Envoy and HAProxy give. Besides the chosen
//! backend, `select` ranks the next few in rotation order so that the host
//! has somewhere to go when the first refuses the connection.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, algorithms};

/// The plugin: [`algorithms::RoundRobin`] behind the [`Balancer`] interface.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin(algorithms::RoundRobin);

impl std::ops::Deref for RoundRobin {
    type Target = algorithms::RoundRobin;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for RoundRobin {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
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
