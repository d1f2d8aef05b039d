//! `builtin:least-connections`: the backend with the fewest requests (L7) or
//! connections (L4) in flight per unit of effective weight, as HAProxy's
//! `leastconn` and NGINX's `least_conn` do.
//!
//! Ties are broken in turn: each pick starts its scan one backend further,
//! so an idle pool is served round robin rather than always by the first
//! backend. The active counts are the host's, shared by every worker and
//! read in one host call.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, algorithms};

/// The plugin: [`algorithms::LeastLoaded`] behind the [`Balancer`] interface.
#[derive(Debug, Default, Clone)]
pub struct LeastConnections(algorithms::LeastLoaded);

impl std::ops::Deref for LeastConnections {
    type Target = algorithms::LeastLoaded;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for LeastConnections {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Balancer for LeastConnections {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(LeastConnections::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick(&request.all_backend_stats()))
    }
}

bascule_guest_sdk::export_balancer!(LeastConnections);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::{BackendStats, Health};

    fn pool(weights: &[u32]) -> LeastConnections {
        let mut lc = LeastConnections::default();
        lc.update(
            &weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| Backend {
                    weight,
                    ..Backend::named(format!("b{i}"))
                })
                .collect::<Vec<_>>(),
        );
        lc
    }

    fn active(counts: &[u32]) -> Vec<BackendStats> {
        counts
            .iter()
            .map(|&active| BackendStats {
                active,
                ..BackendStats::default()
            })
            .collect()
    }

    #[test]
    fn fewest_active_first_then_next_least() {
        let mut lc = pool(&[1, 1, 1, 1]);
        assert_eq!(lc.pick(&active(&[5, 1, 3, 2])), [1, 3, 2]);
    }

    #[test]
    fn weights_scale_the_load() {
        // 4 on weight 4 is lighter than 2 on weight 1.
        let mut lc = pool(&[1, 4]);
        assert_eq!(lc.pick(&active(&[2, 4])), [1, 0]);
    }

    #[test]
    fn ties_rotate_instead_of_favouring_the_first() {
        let mut lc = pool(&[1, 1, 1]);
        let idle = active(&[0, 0, 0]);
        let firsts: Vec<u32> = (0..6).map(|_| lc.pick(&idle)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_backends_that_take_no_work() {
        let mut lc = pool(&[1, 1, 1]);
        let mut stats = active(&[0, 9, 9]);
        stats[0].health = Health::Draining;
        assert_eq!(lc.pick(&stats), [1, 2]);
        assert!(pool(&[]).pick(&[]).is_empty());
    }
}
