//! A backend and the versioned set of them a pool balances over.

use std::sync::Arc;

use super::BackendStats;

/// One backend server of a pool.
#[derive(Debug)]
pub struct Backend {
    /// Stable identifier within the pool (configured name or address).
    pub id: String,
    /// `host:port` to connect to.
    pub address: String,
    /// Relative weight, at least 1.
    pub weight: u32,
    /// Operator labels, sorted by key.
    pub metadata: Vec<(String, String)>,
    /// Live counters, shared by every worker and kept across reloads.
    pub stats: Arc<BackendStats>,
}

/// An immutable list of backends with a generation number.
///
/// Balancers index into the list; the generation tells a long-lived
/// balancer instance that it must learn the list again.
#[derive(Debug)]
pub struct BackendSet {
    /// Grows with every change of membership, weights or metadata.
    pub generation: u64,
    /// The backends, in config order.
    pub backends: Vec<Backend>,
}

// === impl BackendSet ===

impl BackendSet {
    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The backend at `index`.
    pub fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }
}
