//! Selection building blocks that several built-in plugins share, kept
//! here so that a plugin can embed another's algorithm (the sticky-cookie
//! plugin balances new clients with any of them): round robin, smooth
//! weighted round robin and least loaded.
//!
//! Each is plain state with a `pick`; the plugins wrap them in a
//! [`Balancer`](crate::Balancer) and carry their documentation and tests.

use std::collections::HashMap;

use crate::{Backend, BackendStats, Candidates, with_successors};

/// How many candidates a least-loaded pick ranks.
const RANKED: usize = 3;

/// Round-robin position over a backend list of known length.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: u32,
    len: u32,
}

// === impl RoundRobin ===

impl RoundRobin {
    /// Sets the number of backends. The position is kept (modulo the new
    /// length) so that a membership change does not restart the rotation.
    pub fn resize(&mut self, len: u32) {
        self.len = len;
        self.next = if len == 0 { 0 } else { self.next % len };
    }

    /// The next backend in turn followed by its successors, empty when
    /// there are no backends.
    pub fn pick(&mut self) -> Candidates {
        if self.len == 0 {
            return Vec::new();
        }
        let first = self.next;
        self.next = (first + 1) % self.len;
        with_successors(first, self.len)
    }
}

/// Smooth weighted round robin over the current backends.
#[derive(Debug, Default, Clone)]
pub struct SmoothWeightedRoundRobin {
    entries: Vec<Entry>,
    total: i128,
}

#[derive(Debug, Clone)]
struct Entry {
    id: String,
    weight: i128,
    score: i128,
}

// === impl SmoothWeightedRoundRobin ===

impl SmoothWeightedRoundRobin {
    /// Learns a backend list, keeping the scores of backends that stay.
    pub fn update(&mut self, backends: &[Backend]) {
        let mut kept: HashMap<String, i128> = self
            .entries
            .drain(..)
            .map(|entry| (entry.id, entry.score))
            .collect();
        let total: i128 = backends
            .iter()
            .map(|b| i128::from(b.effective_weight()))
            .sum();
        self.entries = (0u64..)
            .zip(backends)
            .map(|(position, backend)| Entry {
                score: kept
                    .remove(&backend.id)
                    .unwrap_or_else(|| golden_phase(position, total)),
                weight: i128::from(backend.effective_weight()),
                id: backend.id.clone(),
            })
            .collect();
        self.total = total;
    }

    /// The next backend, then its successors in list order as fallbacks.
    pub fn pick(&mut self) -> Candidates {
        let mut best: Option<(usize, i128)> = None;
        for (index, entry) in self.entries.iter_mut().enumerate() {
            entry.score += entry.weight;
            if best.is_none_or(|(_, score)| entry.score > score) {
                best = Some((index, entry.score));
            }
        }
        let Some((winner, _)) = best else {
            return Vec::new();
        };
        if let Some(entry) = self.entries.get_mut(winner) {
            entry.score -= self.total;
        }
        let len = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        with_successors(u32::try_from(winner).unwrap_or(0), len)
    }
}

/// A starting score in `[0, total)` spread by the golden ratio, so that no
/// two backends start in phase.
fn golden_phase(position: u64, total: i128) -> i128 {
    let fraction = position.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32; // frac(i·φ) in 1/2^32
    (i128::from(fraction) * total) >> 32
}

/// Least outstanding work per unit of weight.
#[derive(Debug, Default, Clone)]
pub struct LeastLoaded {
    weights: Vec<u64>,
    turn: usize,
}

// === impl LeastLoaded ===

impl LeastLoaded {
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
