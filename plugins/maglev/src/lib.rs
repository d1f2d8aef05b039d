//! `builtin:maglev`: Google's Maglev consistent hashing (Eisenbud et al.,
//! NSDI 2016), as Envoy's `MAGLEV` policy.
//!
//! Every backend derives a permutation of the table's slots from two hashes
//! of its id; backends take turns claiming their next free preferred slot
//! (a backend of weight `w` takes `w` turns per round) until the table is
//! full. A lookup is one hash and one array read. Loads are even to within
//! one slot, and a change of membership moves few keys besides those of
//! the backend that left.
//!
//! Options: `key` as for `builtin:consistent-hash`, and `table-size` (a
//! prime, 65,537 by default, at most 5,000,011; it should be at least 100 ×
//! the number of backends).

use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, KeySource, Options, Request, RequestNeeds, hash_key,
    hash_key_seeded,
};
use serde::Deserialize;

/// Table size unless configured: the smallest size the paper recommends.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
const MAX_TABLE_SIZE: u32 = 5_000_011;
const RANKED: usize = 3;
/// Slots examined after the owner's when collecting fallbacks.
const FALLBACK_SCAN: usize = 32;

/// A Maglev lookup table.
#[derive(Debug, Clone)]
pub struct Maglev {
    key: KeySource,
    size: u32,
    table: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    key: KeySource,
    table_size: Option<u32>,
}

// === impl Maglev ===

impl Maglev {
    /// An empty table of `size` slots (a prime).
    pub fn new(key: KeySource, size: u32) -> Self {
        Maglev {
            key,
            size,
            table: Vec::new(),
        }
    }

    /// Populates the table for `backends` (the paper's algorithm 1).
    pub fn update(&mut self, backends: &[Backend]) {
        self.table = populate(backends, self.size);
    }

    /// The backend owning `key`'s slot, then the next distinct backends of
    /// the following slots.
    pub fn pick(&self, key: &str) -> Candidates {
        let len = self.table.len();
        if len == 0 {
            return Vec::new();
        }
        let slot = (hash_key(key.as_bytes()) % len as u64) as usize;
        let mut ranked: Candidates = Vec::with_capacity(RANKED);
        for step in 0..FALLBACK_SCAN.min(len) {
            if let Some(&backend) = self.table.get((slot + step) % len)
                && !ranked.contains(&backend)
            {
                ranked.push(backend);
                if ranked.len() == RANKED {
                    break;
                }
            }
        }
        ranked
    }
}

/// Fills a table of `size` slots with backend indices.
fn populate(backends: &[Backend], size: u32) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    if backends.is_empty() || size == 0 {
        return Vec::new();
    }
    let size64 = u64::from(size);
    let permutations: Vec<(u64, u64)> = backends
        .iter()
        .map(|b| {
            let offset = hash_key_seeded(b.id.as_bytes(), 0x6d61_676c) % size64;
            let skip = hash_key_seeded(b.id.as_bytes(), 0x6576_2121) % (size64 - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut table = vec![EMPTY; size as usize];
    let mut filled = 0usize;
    'fill: loop {
        for (index, ((backend, &(offset, skip)), cursor)) in backends
            .iter()
            .zip(&permutations)
            .zip(next.iter_mut())
            .enumerate()
        {
            for _turn in 0..backend.weight.max(1) {
                loop {
                    let slot = ((offset + *cursor * skip) % size64) as usize;
                    *cursor += 1;
                    if let Some(entry) = table.get_mut(slot)
                        && *entry == EMPTY
                    {
                        *entry = u32::try_from(index).unwrap_or(EMPTY);
                        filled += 1;
                        break;
                    }
                }
                if filled == table.len() {
                    break 'fill;
                }
            }
        }
    }
    table
}

/// Whether `n` is prime (trial division; table sizes are small).
pub fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d: &u32| d.saturating_mul(*d) <= n)
            .all(|d| !n.is_multiple_of(d))
}

impl Balancer for Maglev {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        settings.key.check_supported(options)?;
        let size = settings.table_size.unwrap_or(DEFAULT_TABLE_SIZE);
        if !(DEFAULT_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) || !is_prime(size) {
            return Err(Error::new(format!(
                "`table-size` must be a prime from {DEFAULT_TABLE_SIZE} to {MAX_TABLE_SIZE}, got {size}"
            )));
        }
        Ok(Maglev::new(settings.key, size))
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

bascule_guest_sdk::export_balancer!(Maglev);

#[cfg(test)]
mod tests {
    use super::*;

    fn table(backends: &[Backend]) -> Maglev {
        let mut maglev = Maglev::new(KeySource::ClientIp, DEFAULT_TABLE_SIZE);
        maglev.update(backends);
        maglev
    }

    #[test]
    fn slots_are_shared_to_within_one() {
        let maglev = table(&Backend::numbered(10));
        let mut counts = [0u32; 10];
        maglev.table.iter().for_each(|&b| counts[b as usize] += 1);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn load_within_two_percent_of_the_mean() {
        // A million keys: with 100,000 the sampling noise alone is ±1% (one
        // standard deviation), which would hide what the table does.
        let maglev = table(&Backend::numbered(10));
        let mut counts = [0u32; 10];
        for i in 0..1_000_000 {
            counts[maglev.pick(&format!("key-{i}"))[0] as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(100_000) <= 2_000),
            "{counts:?}"
        );
    }

    #[test]
    fn removal_moves_few_keys_besides_the_removed_backends() {
        // The paper (figure 9) measures under 2% of slots changing owner
        // for a 65,537-slot table when a backend fails; here: keys that
        // were not on the removed backend.
        let all = Backend::numbered(10);
        let mut fewer = all.clone();
        fewer.remove(3);
        let (before, after) = (table(&all), table(&fewer));
        let (mut stayed_elsewhere, mut moved) = (0, 0);
        for i in 0..100_000 {
            let key = format!("key-{i}");
            let was = &all[before.pick(&key)[0] as usize].id;
            let now = &fewer[after.pick(&key)[0] as usize].id;
            if was != "backend-3" {
                stayed_elsewhere += 1;
                moved += usize::from(was != now);
            }
        }
        assert!(
            moved * 100 < stayed_elsewhere * 2,
            "{moved} of {stayed_elsewhere} moved"
        );
    }

    #[test]
    fn weights_claim_proportional_slots() {
        let mut backends = Backend::numbered(2);
        backends[1].weight = 3;
        let maglev = table(&backends);
        let heavy = maglev.table.iter().filter(|&&b| b == 1).count();
        assert!(
            (heavy as f64 / f64::from(DEFAULT_TABLE_SIZE) - 0.75).abs() < 0.001,
            "{heavy}"
        );
    }

    #[test]
    fn table_size_must_be_a_large_prime() {
        assert!(is_prime(65_537) && !is_prime(65_541) && is_prime(5_000_011));
        assert!(Maglev::configure(&Options::from_json(r#"{"table-size": 65541}"#)).is_err());
        assert!(Maglev::configure(&Options::from_json(r#"{"table-size": 131}"#)).is_err());
        assert!(Maglev::configure(&Options::from_json(r#"{"table-size": 131071}"#)).is_ok());
        assert!(table(&[]).pick("k").is_empty());
    }
}
