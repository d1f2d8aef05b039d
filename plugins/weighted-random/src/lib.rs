//! `builtin:weighted-random`: a random backend with probability
//! proportional to its effective weight (configured weight × slow-start
//! progress). A pick is a binary search over cumulative weights.
//!
//! Option `seed` (integer) makes the sequence repeatable.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, with_successors};
use serde::Deserialize;

/// Weight-proportional random choice.
#[derive(Debug, Clone)]
pub struct WeightedRandom {
    rng: fastrand::Rng,
    /// Running sums of effective weights: entry `i` is the total weight of
    /// backends `0..=i`.
    cumulative: Vec<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    seed: Option<u64>,
}

// === impl WeightedRandom ===

impl WeightedRandom {
    /// A chooser with a fixed seed, or seeded from entropy.
    pub fn new(seed: Option<u64>) -> Self {
        WeightedRandom {
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            cumulative: Vec::new(),
        }
    }

    /// Learns the backends' effective weights.
    pub fn update(&mut self, backends: &[Backend]) {
        let mut sum = 0u64;
        self.cumulative = backends
            .iter()
            .map(|backend| {
                sum = sum.saturating_add(backend.effective_weight());
                sum
            })
            .collect();
    }

    /// A weighted random backend and its successors.
    pub fn pick(&mut self) -> Candidates {
        let Some(&total) = self.cumulative.last() else {
            return Vec::new();
        };
        let ticket = self.rng.u64(..total);
        let first = self.cumulative.partition_point(|&sum| sum <= ticket);
        let len = u32::try_from(self.cumulative.len()).unwrap_or(u32::MAX);
        with_successors(u32::try_from(first).unwrap_or(0), len)
    }
}

impl Balancer for WeightedRandom {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        Ok(WeightedRandom::new(settings.seed))
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick())
    }
}

bascule_guest_sdk::export_balancer!(WeightedRandom);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_weights() {
        let backends: Vec<Backend> = [1, 3, 6]
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                weight,
                ..Backend::named(format!("b{i}"))
            })
            .collect();
        let mut random = WeightedRandom::new(Some(11));
        random.update(&backends);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[random.pick()[0] as usize] += 1;
        }
        for (count, expected) in counts.iter().zip([10_000, 30_000, 60_000]) {
            assert!(count.abs_diff(expected) < 1_000, "{counts:?}");
        }
    }

    #[test]
    fn empty_pool_and_options() {
        assert!(WeightedRandom::new(Some(1)).pick().is_empty());
        assert!(WeightedRandom::configure(&Options::from_json(r#"{"weights": 1}"#)).is_err());
    }
}
