//! `builtin:bounded-load-hash`: consistent hashing with bounded loads
//! (Mirrokni, Thorup & Zadimoghaddam, 2018; HAProxy's `hash-balance-factor`).
//!
//! A key goes to its ring owner unless that backend already carries more
//! than `c ×` the average active load; then it walks clockwise to the first
//! backend under the bound. Keys stay put while loads are even, and a hot
//! key cannot pile onto one backend.
//!
//! Options: `key` and `vnodes` as for `builtin:consistent-hash`, and `c`
//! (the balance factor, default 1.25, at least 1).

use bascule_guest_sdk::ring::{HashRing, vnodes_option};
use bascule_guest_sdk::{
    Backend, BackendStats, Balancer, Candidates, Error, KeySource, Options, Request, RequestNeeds,
    hash_key,
};
use serde::Deserialize;

const DEFAULT_FACTOR: f64 = 1.25;
const RANKED: usize = 3;

/// A ring whose lookups respect a load bound.
#[derive(Debug, Clone)]
pub struct BoundedLoadHash {
    key: KeySource,
    vnodes: u32,
    factor: f64,
    ring: HashRing,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    key: KeySource,
    vnodes: Option<u32>,
    c: Option<f64>,
}

// === impl BoundedLoadHash ===

impl BoundedLoadHash {
    /// A bounded ring with balance factor `factor` (≥ 1).
    pub fn new(key: KeySource, vnodes: u32, factor: f64) -> Self {
        BoundedLoadHash {
            key,
            vnodes,
            factor,
            ring: HashRing::default(),
        }
    }

    /// Rebuilds the ring.
    pub fn update(&mut self, backends: &[Backend]) {
        self.ring = HashRing::build(backends, self.vnodes);
    }

    /// The most load one backend may carry once this request is placed:
    /// `ceil(c × (active + 1) / backends)` over backends taking work.
    pub fn bound(&self, stats: &[BackendStats]) -> u64 {
        let usable = stats.iter().filter(|s| s.health.accepts_new_work());
        let (count, active) =
            usable.fold((0u64, 0u64), |(n, a), s| (n + 1, a + u64::from(s.active)));
        if count == 0 {
            return 0;
        }
        (self.factor * (active + 1) as f64 / count as f64).ceil() as u64
    }

    /// Ring order from `key`, keeping only backends under the bound; then,
    /// as a last resort, the owner itself.
    pub fn pick(&self, key: &str, stats: &[BackendStats]) -> Candidates {
        let bound = self.bound(stats);
        let fits = |index: u32| {
            stats
                .get(index as usize)
                .is_some_and(|s| s.health.accepts_new_work() && u64::from(s.active) < bound)
        };
        let owners = self.ring.owners(hash_key(key.as_bytes()));
        let mut ranked: Candidates = owners.filter(|&i| fits(i)).take(RANKED).collect();
        if ranked.is_empty() {
            ranked.extend(self.ring.owners(hash_key(key.as_bytes())).take(RANKED));
        }
        ranked
    }
}

impl Balancer for BoundedLoadHash {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        settings.key.check_supported(options)?;
        let vnodes = vnodes_option(settings.vnodes)?;
        let factor = settings.c.unwrap_or(DEFAULT_FACTOR);
        if !(factor >= 1.0 && factor.is_finite()) {
            return Err(Error::new(format!(
                "`c` must be a number of at least 1, got {factor}"
            )));
        }
        Ok(BoundedLoadHash::new(settings.key, vnodes, factor))
    }

    fn needs(&self) -> RequestNeeds {
        self.key.needs()
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let key = self.key.read(request);
        Ok(self.pick(&key, &request.all_backend_stats()))
    }
}

bascule_guest_sdk::export_balancer!(BoundedLoadHash);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::ring::DEFAULT_VNODES;

    fn balancer(count: usize, factor: f64) -> BoundedLoadHash {
        let mut hash = BoundedLoadHash::new(KeySource::ClientIp, DEFAULT_VNODES, factor);
        hash.update(
            &(0..count)
                .map(|i| Backend::named(format!("b{i}")))
                .collect::<Vec<_>>(),
        );
        hash
    }

    #[test]
    fn idle_pool_behaves_as_a_ring() {
        let hash = balancer(5, 1.25);
        let idle = vec![BackendStats::default(); 5];
        let ring: Vec<u32> = hash.ring.owners(hash_key(b"k")).take(3).collect();
        assert_eq!(hash.pick("k", &idle), ring);
    }

    #[test]
    fn no_backend_exceeds_the_bound_under_skewed_keys() {
        // Requests arrive with few distinct keys (hot keys) and complete in
        // random order; every placement leaves the chosen backend within
        // ceil(c × average), the guarantee of the paper.
        for factor in [1.0, 1.25, 2.0] {
            let hash = balancer(8, factor);
            let mut active = vec![0u32; 8];
            let mut placed: Vec<u32> = Vec::new();
            let mut rng = fastrand_like(42);
            for step in 0..20_000u32 {
                if !placed.is_empty() && rng() % 3 == 0 {
                    let done = placed.swap_remove((rng() as usize) % placed.len());
                    active[done as usize] -= 1;
                    continue;
                }
                let stats: Vec<BackendStats> = active
                    .iter()
                    .map(|&a| BackendStats {
                        active: a,
                        ..BackendStats::default()
                    })
                    .collect();
                let key = format!("hot-{}", rng() % 5);
                let chosen = hash.pick(&key, &stats)[0];
                active[chosen as usize] += 1;
                placed.push(chosen);
                let total: u32 = active.iter().sum();
                let limit = (factor * f64::from(total) / 8.0).ceil() as u32;
                assert!(
                    active[chosen as usize] <= limit,
                    "c={factor} step {step}: {active:?} > {limit}"
                );
            }
        }
    }

    fn fastrand_like(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn factor_below_one_is_rejected() {
        assert!(BoundedLoadHash::configure(&Options::from_json(r#"{"c": 0.9}"#)).is_err());
        assert!(
            BoundedLoadHash::configure(&Options::from_json(r#"{"c": 1.5, "key": "path"}"#)).is_ok()
        );
    }
}
