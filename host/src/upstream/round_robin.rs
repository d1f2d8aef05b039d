//! Native round robin: the fallback when a plugin fails, and the reference
//! the plugin benchmarks compare against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{BackendSelection, BackendSet, RequestView, Selection, SelectionError};

/// How many candidates are ranked per call: the chosen backend and two
/// fallbacks, as the round-robin plugin does.
const CANDIDATES: u32 = 3;

/// Round robin over a pool, shared by all workers through one atomic.
#[derive(Debug, Default)]
pub struct NativeRoundRobin {
    next: AtomicU32,
}

impl BackendSelection for NativeRoundRobin {
    fn name(&self) -> &str {
        "native:round-robin"
    }

    fn select(
        &self,
        backends: &Arc<BackendSet>,
        _request: &RequestView,
    ) -> Result<Selection, SelectionError> {
        let len = u32::try_from(backends.len()).unwrap_or(u32::MAX);
        if len == 0 {
            return Ok(Selection::default());
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % len;
        Ok((0..CANDIDATES.min(len))
            .map(|offset| (first + offset) % len)
            .collect::<Vec<_>>()
            .into())
    }
}
