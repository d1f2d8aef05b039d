//! `builtin:power-of-two-choices`: two backends drawn at random, the less
//! loaded (active requests per unit of effective weight) wins (Mitzenmacher;
//! Envoy's `LEAST_REQUEST` default). It reads the stats of those two
//! backends only, so a pick costs the same for 3 backends or 3,000, and it
//! avoids the herd behaviour of a global least-connections under bursts.
//!
//! Option `seed` (integer) makes the draws repeatable.

use bascule_guest_sdk::{
    Backend, BackendStats, Balancer, Candidates, Error, Options, Request, algorithms,
};
use serde::Deserialize;

/// Power of two random choices.
#[derive(Debug, Clone)]
pub struct PowerOfTwoChoices {
    rng: fastrand::Rng,
    weights: Vec<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    seed: Option<u64>,
}

// === impl PowerOfTwoChoices ===

impl PowerOfTwoChoices {
    /// A chooser with a fixed seed, or seeded from entropy.
    pub fn new(seed: Option<u64>) -> Self {
        PowerOfTwoChoices {
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            weights: Vec::new(),
        }
    }

    /// Learns the backends' effective weights.
    pub fn update(&mut self, backends: &[Backend]) {
        self.weights = backends.iter().map(Backend::effective_weight).collect();
    }

    /// Draws two distinct backends.
    pub fn draw(&mut self) -> Option<(u32, u32)> {
        let len = u32::try_from(self.weights.len()).ok()?;
        match len {
            0 => None,
            1 => Some((0, 0)),
            _ => {
                let first = self.rng.u32(..len);
                let second = (first + self.rng.u32(1..len)) % len;
                Some((first, second))
            }
        }
    }

    /// Ranks the two drawn backends by load, given their stats.
    pub fn rank(
        &self,
        (a, b): (u32, u32),
        stats_a: Option<BackendStats>,
        stats_b: Option<BackendStats>,
    ) -> Candidates {
        if a == b {
            return vec![a];
        }
        let score = |index: u32, stats: Option<BackendStats>| {
            let weight = self.weights.get(index as usize).copied().unwrap_or(1);
            let stats = stats.unwrap_or_default();
            (
                !stats.health.accepts_new_work(),
                u64::from(stats.active),
                weight,
            )
        };
        let (down_a, active_a, weight_a) = score(a, stats_a);
        let (down_b, active_b, weight_b) = score(b, stats_b);
        let b_wins = (down_a && !down_b)
            || (down_a == down_b && algorithms::lighter(active_b, weight_b, active_a, weight_a));
        if b_wins { vec![b, a] } else { vec![a, b] }
    }
}

impl Balancer for PowerOfTwoChoices {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        Ok(PowerOfTwoChoices::new(settings.seed))
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let Some(pair) = self.draw() else {
            return Ok(Vec::new());
        };
        let (stats_a, stats_b) = (request.backend_stats(pair.0), request.backend_stats(pair.1));
        Ok(self.rank(pair, stats_a, stats_b))
    }
}

bascule_guest_sdk::export_balancer!(PowerOfTwoChoices);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::Health;

    fn chooser(size: usize) -> PowerOfTwoChoices {
        let mut p2c = PowerOfTwoChoices::new(Some(5));
        p2c.update(
            &(0..size)
                .map(|i| Backend::named(format!("b{i}")))
                .collect::<Vec<_>>(),
        );
        p2c
    }

    fn with_active(active: u32) -> Option<BackendStats> {
        Some(BackendStats {
            active,
            ..BackendStats::default()
        })
    }

    #[test]
    fn draws_are_distinct_and_cover_the_pool() {
        let mut p2c = chooser(5);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            let (a, b) = p2c.draw().unwrap();
            assert_ne!(a, b);
            seen[a as usize] += 1;
            seen[b as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 1_700), "{seen:?}");
        assert_eq!(chooser(1).draw(), Some((0, 0)));
        assert_eq!(chooser(0).draw(), None);
    }

    #[test]
    fn less_loaded_of_the_two_wins() {
        let p2c = chooser(4);
        assert_eq!(p2c.rank((1, 3), with_active(4), with_active(2)), [3, 1]);
        assert_eq!(p2c.rank((1, 3), with_active(2), with_active(2)), [1, 3]);
        let draining = Some(BackendStats {
            health: Health::Draining,
            ..BackendStats::default()
        });
        assert_eq!(p2c.rank((0, 2), draining, with_active(50)), [2, 0]);
    }

    #[test]
    fn a_loaded_backend_is_almost_never_chosen() {
        // Backend 0 holds long requests; the others are idle.
        let mut p2c = chooser(4);
        let stats = |i: u32| with_active(if i == 0 { 10 } else { 0 });
        let chose_loaded = (0..1_000)
            .filter(|_| {
                let pair = p2c.draw().unwrap();
                p2c.rank(pair, stats(pair.0), stats(pair.1))[0] == 0
            })
            .count();
        assert_eq!(chose_loaded, 0);
    }
}
