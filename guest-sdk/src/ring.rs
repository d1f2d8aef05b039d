//! A consistent-hash ring with virtual nodes (Karger et al.; the Ketama
//! layout NGINX and HAProxy use), shared by the hashing built-ins.
//!
//! Each backend owns `vnodes × weight` points placed by hashing its id, so
//! a backend keeps its points when others come and go: removing one moves
//! exactly the keys it held. A lookup is a binary search.
//!
//! ```
//! use bascule_guest_sdk::{Backend, hash_key, ring::HashRing};
//!
//! let backends = vec![Backend::named("a"), Backend::named("b"), Backend::named("c")];
//! let ring = HashRing::build(&backends, 160);
//! let owner = ring.owners(hash_key(b"user-42")).next();
//! assert!(owner.is_some());
//! ```

use crate::{Backend, Error};

/// Virtual nodes per unit of weight unless configured: Ketama's choice.
pub const DEFAULT_VNODES: u32 = 160;

/// The most virtual nodes per unit of weight an option may ask for.
pub const MAX_VNODES: u32 = 4096;

/// Validates a `vnodes` option, defaulting to [`DEFAULT_VNODES`].
pub fn vnodes_option(vnodes: Option<u32>) -> Result<u32, Error> {
    let vnodes = vnodes.unwrap_or(DEFAULT_VNODES);
    if (1..=MAX_VNODES).contains(&vnodes) {
        Ok(vnodes)
    } else {
        Err(Error::new(format!(
            "`vnodes` must be 1 to {MAX_VNODES}, got {vnodes}"
        )))
    }
}

/// Sorted ring points, each naming a backend index.
#[derive(Debug, Clone, Default)]
pub struct HashRing {
    points: Vec<(u64, u32)>,
    backends: u32,
}

/// Walks the ring clockwise from a key's position, yielding each backend
/// once. Built by [`HashRing::owners`].
#[derive(Debug)]
pub struct Owners<'r> {
    ring: &'r HashRing,
    start: usize,
    step: usize,
    seen: Vec<u32>,
}

// === impl HashRing ===

impl HashRing {
    /// Places `vnodes × weight` points per backend (configured weight, so
    /// that slow start does not reshuffle keys).
    pub fn build(backends: &[Backend], vnodes: u32) -> Self {
        let total: usize = backends
            .iter()
            .map(|b| vnodes as usize * b.weight.max(1) as usize)
            .sum();
        let mut points = Vec::with_capacity(total);
        for (index, backend) in (0u32..).zip(backends) {
            let base = crate::hash_key(backend.id.as_bytes());
            for replica in 0..u64::from(vnodes) * u64::from(backend.weight.max(1)) {
                points.push((mix(base, replica), index));
            }
        }
        points.sort_unstable();
        HashRing {
            points,
            backends: u32::try_from(backends.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether the ring has no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The backends in ring order from `hash`'s position: the owner first.
    pub fn owners(&self, hash: u64) -> Owners<'_> {
        let start = self.points.partition_point(|&(point, _)| point < hash);
        Owners {
            ring: self,
            start,
            step: 0,
            seen: Vec::new(),
        }
    }
}

impl Iterator for Owners<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let len = self.ring.points.len();
        while self.step < len && self.seen.len() < self.ring.backends as usize {
            let at = (self.start + self.step) % len;
            self.step += 1;
            let &(_, index) = self.ring.points.get(at)?;
            if !self.seen.contains(&index) {
                self.seen.push(index);
                return Some(index);
            }
        }
        None
    }
}

/// Point `replica` of a backend whose id hashes to `base`: splitmix64's
/// finaliser, so that building a ring hashes each id string once.
pub fn mix(base: u64, replica: u64) -> u64 {
    let mut z = base.wrapping_add(replica.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_key;

    fn named(ids: &[&str]) -> Vec<Backend> {
        ids.iter().map(|id| Backend::named(*id)).collect()
    }

    #[test]
    fn owners_visit_each_backend_once() {
        let ring = HashRing::build(&named(&["a", "b", "c"]), 10);
        let mut owners: Vec<u32> = ring.owners(hash_key(b"k")).collect();
        owners.sort_unstable();
        assert_eq!(owners, [0, 1, 2]);
        assert_eq!(HashRing::build(&[], 10).owners(1).next(), None);
    }

    #[test]
    fn weight_multiplies_points() {
        let mut backends = named(&["a", "b"]);
        if let Some(b) = backends.get_mut(1) {
            b.weight = 3;
        }
        let ring = HashRing::build(&backends, 10);
        let heavy = ring.points.iter().filter(|(_, i)| *i == 1).count();
        assert_eq!((ring.points.len(), heavy), (40, 30));
    }
}
