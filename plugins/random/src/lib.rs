//! `builtin:random`: a uniformly random backend, the next two in list order
//! as fallbacks.
//!
//! Option `seed` (integer) makes the sequence repeatable, for tests; without
//! it each instance seeds itself from the host's entropy (WASI random).

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, with_successors};
use serde::Deserialize;

/// Uniform random choice.
#[derive(Debug, Clone)]
pub struct Random {
    rng: fastrand::Rng,
    len: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    seed: Option<u64>,
}

// === impl Random ===

impl Random {
    /// A chooser with a fixed seed, or seeded from entropy.
    pub fn new(seed: Option<u64>) -> Self {
        Random {
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            len: 0,
        }
    }

    /// Sets the number of backends.
    pub fn resize(&mut self, len: usize) {
        self.len = u32::try_from(len).unwrap_or(u32::MAX);
    }

    /// A random backend and its successors.
    pub fn pick(&mut self) -> Candidates {
        if self.len == 0 {
            return Vec::new();
        }
        with_successors(self.rng.u32(..self.len), self.len)
    }
}

impl Balancer for Random {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        Ok(Random::new(settings.seed))
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.resize(backends.len());
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick())
    }
}

bascule_guest_sdk::export_balancer!(Random);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_within_two_percent() {
        let mut random = Random::new(Some(7));
        random.resize(4);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[random.pick()[0] as usize] += 1;
        }
        for count in counts {
            assert!((9_800..=10_200).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn a_seed_repeats_the_sequence() {
        let run = |seed| {
            let mut random = Random::new(Some(seed));
            random.resize(10);
            (0..20).map(|_| random.pick()[0]).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn options_and_empty_pool() {
        assert!(Random::configure(&Options::from_json(r#"{"seed": 3}"#)).is_ok());
        assert!(Random::configure(&Options::from_json(r#"{"sead": 3}"#)).is_err());
        assert!(Random::new(None).pick().is_empty());
    }
}
