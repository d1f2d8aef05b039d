//! `builtin:least-connections`: the backend with the fewest requests (L7) or
//! connections (L4) in flight per unit of effective weight, as HAProxy's
//! `leastconn` and NGINX's `least_conn` do.
//!
//! Ties are broken in turn: each pick starts its scan one backend further,
//! so an idle pool is served round robin rather than always by the first
//! backend. The active counts are the host's, shared by every worker and
//! read in one host call.

use bascule_guest_sdk::{Backend, BackendStats, Balancer, Candidates, Error, Options, Request};

/// How many candidates a pick ranks.
const RANKED: usize = 3;

/// Least outstanding work per unit of weight.
#[derive(Debug, Default, Clone)]
pub struct LeastConnections {
    weights: Vec<u64>,
    turn: usize,
}

// === impl LeastConnections ===

impl LeastConnections {
    /// Learns the backends' effective weights.
    pub fn update(&mut self, backends: &[Backend]) {
        self.weights = backends.iter().map(Backend::effective_weight).collect();
    }

    /// The least loaded backends that take new work, best first, given
    /// every backend's stats by index.
    pub fn pick(&mut self, stats: &[BackendStats]) -> Candidates {
        let len = self.weights.len().min(stats.len());
        if len == 0 {
            return Vec::new();
        }
        let start = self.turn % len;
        self.turn = self.turn.wrapping_add(1);
        let mut ranked: Vec<(u32, u64, u64)> = Vec::with_capacity(RANKED + 1);
        for index in (start..len).chain(0..start) {
            let (Some(stat), Some(&weight)) = (stats.get(index), self.weights.get(index)) else {
                continue;
            };
            if !stat.health.accepts_new_work() {
                continue;
            }
            let entry = (
                u32::try_from(index).unwrap_or(u32::MAX),
                u64::from(stat.active),
                weight,
            );
            // Strictly less loaded moves ahead; equals keep scan order.
            let position = ranked
                .iter()
                .position(|&(_, active, w)| lighter(entry.1, entry.2, active, w))
                .unwrap_or(ranked.len());
            if position < RANKED {
                ranked.insert(position, entry);
                ranked.truncate(RANKED);
            }
        }
        ranked.into_iter().map(|(index, _, _)| index).collect()
    }
}

/// Whether `a_active / a_weight < b_active / b_weight`, without division.
pub fn lighter(a_active: u64, a_weight: u64, b_active: u64, b_weight: u64) -> bool {
    u128::from(a_active) * u128::from(b_weight) < u128::from(b_active) * u128::from(a_weight)
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

#[cfg(feature = "export")]
bascule_guest_sdk::export_balancer!(LeastConnections);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::Health;

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
