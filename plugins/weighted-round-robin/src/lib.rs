//! `builtin:weighted-round-robin`: smooth weighted round robin, as NGINX
//! does it, with staggered starting phases.
//!
//! Every pick adds each backend's effective weight to its running score,
//! takes the highest score, and subtracts the total weight from the winner.
//! Picks interleave: with weights 5, 1, 1 the order is `a b a a c a a`,
//! never a burst of five. Starting every score at zero, as NGINX does,
//! makes backends of equal weight move in lockstep and lets the heavy one
//! run long at the cycle's seam; spreading the starting scores by the
//! golden ratio keeps runs within one of the shortest possible.
//!
//! Weights are the configured weight scaled by slow-start progress, so a
//! ramping backend gets its growing share without bursts. Scores survive a
//! new backend list for backends that stay.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, algorithms};

/// The plugin: [`algorithms::SmoothWeightedRoundRobin`] behind the [`Balancer`] interface.
#[derive(Debug, Default, Clone)]
pub struct WeightedRoundRobin(algorithms::SmoothWeightedRoundRobin);

impl std::ops::Deref for WeightedRoundRobin {
    type Target = algorithms::SmoothWeightedRoundRobin;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for WeightedRoundRobin {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Balancer for WeightedRoundRobin {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(WeightedRoundRobin::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick())
    }
}

bascule_guest_sdk::export_balancer!(WeightedRoundRobin);

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                weight,
                ..Backend::named(format!("b{i}"))
            })
            .collect()
    }

    fn picks(weights: &[u32], count: usize) -> Vec<u32> {
        let mut wrr = WeightedRoundRobin::default();
        wrr.update(&weighted(weights));
        (0..count).map(|_| wrr.pick()[0]).collect()
    }

    fn longest_runs(sequence: &[u32], backends: usize) -> Vec<usize> {
        let mut longest = vec![0; backends];
        let mut run = 0;
        for (i, &b) in sequence.iter().enumerate() {
            run = if i > 0 && sequence[i - 1] == b {
                run + 1
            } else {
                1
            };
            longest[b as usize] = longest[b as usize].max(run);
        }
        longest
    }

    /// The shortest possible longest run of a backend of weight `w` out of
    /// `total`: its picks spread over the gaps the others leave.
    fn shortest_possible_run(w: u32, total: u32) -> usize {
        w.div_ceil(total - w) as usize
    }

    #[test]
    fn five_one_one_interleaves() {
        let sequence = picks(&[5, 1, 1], 70);
        assert_eq!(longest_runs(&sequence, 3), [3, 1, 1]);
        let mut counts = [0; 3];
        sequence.iter().for_each(|&b| counts[b as usize] += 1);
        assert_eq!(counts, [50, 10, 10]);
    }

    #[test]
    fn common_weight_sets_reach_the_shortest_runs() {
        for weights in [
            &[5, 1, 1][..],
            &[3, 2, 1],
            &[10, 1, 1, 1],
            &[4, 4, 1],
            &[7, 3],
            &[1, 1, 1, 1],
        ] {
            let total: u32 = weights.iter().sum();
            let runs = longest_runs(&picks(weights, 10_000), weights.len());
            for (i, &w) in weights.iter().enumerate() {
                assert!(
                    runs[i] <= shortest_possible_run(w, total),
                    "{weights:?}: runs {runs:?}"
                );
            }
        }
    }

    #[test]
    fn shares_within_one_percent_and_runs_within_one_of_shortest() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |bound: u32| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % u64::from(bound)) as u32
        };
        for _ in 0..200 {
            let weights: Vec<u32> = (0..2 + next(7)).map(|_| 1 + next(10)).collect();
            let total: u32 = weights.iter().sum();
            let sequence = picks(&weights, 10_000);
            let runs = longest_runs(&sequence, weights.len());
            for (i, &w) in weights.iter().enumerate() {
                let share = sequence.iter().filter(|&&b| b as usize == i).count() as f64 / 10_000.0;
                let expected = f64::from(w) / f64::from(total);
                assert!(
                    (share - expected).abs() <= 0.01,
                    "{weights:?}: backend {i} got {share}"
                );
                assert!(
                    runs[i] <= shortest_possible_run(w, total) + 1,
                    "{weights:?}: runs {runs:?}"
                );
            }
        }
    }

    #[test]
    fn ramping_backend_gets_its_fraction() {
        let mut backends = weighted(&[1, 1]);
        backends[1].ramp_permille = 250;
        let mut wrr = WeightedRoundRobin::default();
        wrr.update(&backends);
        let ramping = (0..1000).filter(|_| wrr.pick()[0] == 1).count();
        assert_eq!(ramping, 200, "1 : 0.25 is a fifth of the picks");
    }

    #[test]
    fn scores_survive_a_new_list_and_empty_is_empty() {
        let mut wrr = WeightedRoundRobin::default();
        assert!(wrr.pick().is_empty());
        wrr.update(&weighted(&[2, 1]));
        let before: Vec<u32> = (0..3).map(|_| wrr.pick()[0]).collect();
        wrr.update(&weighted(&[2, 1, 1]));
        let after: Vec<u32> = (0..4).map(|_| wrr.pick()[0]).collect();
        assert_eq!(before.iter().filter(|&&b| b == 0).count(), 2);
        assert_eq!(after.iter().filter(|&&b| b == 0).count(), 2, "{after:?}");
        assert_eq!(wrr.pick().len(), 3);
    }
}
