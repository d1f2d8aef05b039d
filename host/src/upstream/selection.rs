//! The one trait every load-balancing algorithm implements.

use std::sync::Arc;

use super::{BackendSet, RequestInfo};

/// Chooses backends for a request or connection.
///
/// Implemented by the sandboxed plugin balancer and by native reference
/// algorithms. Implementations are shared by all workers of a pool.
pub trait BackendSelection: Send + Sync {
    /// What chooses, for status pages and logs (`builtin:round-robin`).
    fn name(&self) -> &str;

    /// Candidate indices into `backends`, best first.
    ///
    /// `request` is `&mut` only so that a sandboxed implementation can lend
    /// the request head to its sandbox without copying it; implementations
    /// must leave it as they found it. The caller validates the indices.
    fn select(
        &self,
        backends: &Arc<BackendSet>,
        request: &mut RequestInfo,
    ) -> Result<Vec<u32>, SelectionError>;
}

/// A balancer failed to choose. The pool falls back to its failure policy.
#[derive(Debug, thiserror::Error)]
#[error("balancer failed")]
pub struct SelectionError {
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
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
