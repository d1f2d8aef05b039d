//! `builtin:rendezvous`: highest random weight hashing (Thaler & Ravishankar,
//! 1998). Every backend scores the key with a hash of both; the highest
//! score wins, the next highest are the fallbacks. Removing a backend moves
//! exactly the keys it won, and no table is kept: a pick costs one cheap
//! mix per backend.
//!
//! Weights use the logarithmic method (Schindelhauer & Schomaker): score
//! `-w / ln(u)` with `u` uniform in (0, 1), so a backend wins a share of
//! keys proportional to its weight. Equal weights skip the logarithm.
//!
//! Option: `key` as for `builtin:consistent-hash`.

use bascule_guest_sdk::ring::mix;
use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, KeySource, Options, Request, RequestNeeds, hash_key,
};
use serde::Deserialize;

const RANKED: usize = 3;

/// Highest-random-weight choice.
#[derive(Debug, Clone, Default)]
pub struct Rendezvous {
    key: KeySource,
    /// Per backend: the hash of its id and its weight.
    seeds: Vec<(u64, u32)>,
    uniform_weights: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    key: KeySource,
}

// === impl Rendezvous ===

impl Rendezvous {
    /// A chooser reading `key`.
    pub fn new(key: KeySource) -> Self {
        Rendezvous {
            key,
            ..Rendezvous::default()
        }
    }

    /// Learns the backends' ids and configured weights.
    pub fn update(&mut self, backends: &[Backend]) {
        self.seeds = backends
            .iter()
            .map(|b| (hash_key(b.id.as_bytes()), b.weight.max(1)))
            .collect();
        let first = self.seeds.first().map(|&(_, w)| w);
        self.uniform_weights = self.seeds.iter().all(|&(_, w)| Some(w) == first);
    }

    /// The backends with the highest scores for `key`, best first.
    pub fn pick(&self, key: &str) -> Candidates {
        let key = hash_key(key.as_bytes());
        if self.uniform_weights {
            self.top(|seed, _| mix(seed, key) as f64)
        } else {
            self.top(|seed, weight| {
                // Uniform in (0, 1]: never 0, so ln is finite.
                let unit = ((mix(seed, key) >> 11) + 1) as f64 / (1u64 << 53) as f64;
                if unit >= 1.0 {
                    f64::INFINITY
                } else {
                    -f64::from(weight) / unit.ln()
                }
            })
        }
    }

    fn top(&self, score: impl Fn(u64, u32) -> f64) -> Candidates {
        let mut ranked: Vec<(u32, f64)> = Vec::with_capacity(RANKED + 1);
        for (index, &(seed, weight)) in (0u32..).zip(&self.seeds) {
            let s = score(seed, weight);
            if ranked.len() == RANKED && ranked.last().is_some_and(|&(_, low)| s <= low) {
                continue;
            }
            let position = ranked
                .iter()
                .position(|&(_, t)| s > t)
                .unwrap_or(ranked.len());
            ranked.insert(position, (index, s));
            ranked.truncate(RANKED);
        }
        ranked.into_iter().map(|(index, _)| index).collect()
    }
}

impl Balancer for Rendezvous {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        settings.key.check_supported(options)?;
        Ok(Rendezvous::new(settings.key))
    }

    fn needs(&self) -> RequestNeeds {
        self.key.needs()
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick(&self.key.read(request)))
    }
}

bascule_guest_sdk::export_balancer!(Rendezvous);

#[cfg(test)]
mod tests {
    use super::*;

    fn chooser(backends: &[Backend]) -> Rendezvous {
        let mut hrw = Rendezvous::new(KeySource::ClientIp);
        hrw.update(backends);
        hrw
    }

    #[test]
    fn removing_a_backend_moves_only_its_keys() {
        let all = Backend::numbered(10);
        let mut fewer = all.clone();
        fewer.remove(6);
        let (before, after) = (chooser(&all), chooser(&fewer));
        for i in 0..100_000 {
            let key = format!("key-{i}");
            let was = &all[before.pick(&key)[0] as usize].id;
            let now = &fewer[after.pick(&key)[0] as usize].id;
            assert!(was == now || was == "backend-6", "{key}: {was} -> {now}");
        }
    }

    #[test]
    fn load_within_ten_percent_of_the_mean() {
        let hrw = chooser(&Backend::numbered(10));
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[hrw.pick(&format!("key-{i}"))[0] as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) <= 1_000),
            "{counts:?}"
        );
    }

    #[test]
    fn weights_set_the_share_and_fallbacks_are_distinct() {
        let mut backends = Backend::numbered(3);
        backends[2].weight = 2;
        let hrw = chooser(&backends);
        let mut counts = [0u32; 3];
        for i in 0..100_000 {
            let ranked = hrw.pick(&format!("key-{i}"));
            assert_eq!(ranked.len(), 3);
            assert!(ranked[0] != ranked[1] && ranked[1] != ranked[2] && ranked[0] != ranked[2]);
            counts[ranked[0] as usize] += 1;
        }
        assert!(
            counts[0].abs_diff(25_000) < 1_000 && counts[2].abs_diff(50_000) < 1_000,
            "{counts:?}"
        );
        assert!(chooser(&[]).pick("k").is_empty());
    }
}
