//! The one trait every load-balancing algorithm implements.

use std::sync::Arc;

use super::{AffinityCookie, BackendSet, RequestView};

/// Chooses backends for a request or connection.
///
/// Implemented by the sandboxed plugin balancer and by native reference
/// algorithms. Implementations are shared by all workers of a pool.
/// `select` runs on the request path; [`BackendSelection::prepare`] runs
/// off it, in the supervisor.
pub trait BackendSelection: Send + Sync {
    /// What chooses, for status pages and logs (`builtin:round-robin`).
    fn name(&self) -> &str;

    /// Candidate indices into `backends`, best first, and any affinity the
    /// response should carry.
    ///
    /// The caller validates the indices.
    fn select(
        &self,
        backends: &Arc<BackendSet>,
        request: &RequestView,
    ) -> Result<Selection, SelectionError>;

    /// Learns a new generation of backends ahead of the next `select`, so
    /// that building tables (a hash ring, a Maglev table) happens here and
    /// not inside a request. Called by the supervisor when the pool's
    /// backends change; returns how many instances learned it. The default
    /// learns nothing: stateless implementations read the set per call.
    fn prepare(&self, backends: &Arc<BackendSet>) -> usize {
        let _ = backends;
        0
    }

    /// What `/status` shows of the plugin that chooses; `None` for native
    /// algorithms.
    fn report(&self) -> Option<PluginReport> {
        None
    }
}

/// A plugin in use, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReport {
    /// SHA-256 of its `.wasm`, hex: which build is running.
    pub digest: String,
    /// Its calls that failed (trap, timeout, memory, bad output, ...).
    pub failures: u64,
}

/// What a balancer decided for one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Backend indices, best first.
    pub candidates: Vec<u32>,
    /// A cookie to set on the response, naming the backend that serves.
    pub affinity: Option<AffinityCookie>,
}

/// A balancer failed to choose. The pool falls back to its failure policy.
#[derive(Debug, thiserror::Error)]
#[error("balancer failed")]
pub struct SelectionError {
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
}

// === impl Selection ===

impl From<Vec<u32>> for Selection {
    fn from(candidates: Vec<u32>) -> Self {
        Selection {
            candidates,
            affinity: None,
        }
    }
}

// === impl SelectionError ===

impl SelectionError {
    /// Wraps the cause.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        SelectionError {
            cause: Box::new(cause),
        }
    }
}
