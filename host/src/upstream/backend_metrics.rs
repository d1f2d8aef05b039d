//! The Prometheus series of one backend, registered once when the backend
//! first appears in its pool: the request path only increments handles,
//! never formats a label or looks a series up.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::metrics::StatusClasses;
use crate::metrics::histogram::Histogram;

/// Responses by status class and the time to their head, for one
/// (pool, backend).
#[derive(Debug)]
pub struct BackendMetrics {
    /// `bascule_upstream_responses_total{pool,backend,class}`.
    responses: StatusClasses,
    /// `bascule_upstream_response_time_seconds{pool,backend}`.
    response_time: Arc<Histogram>,
}

// === impl BackendMetrics ===

impl BackendMetrics {
    /// Registers the series of `backend` in `pool`.
    pub fn new(pool: &str, backend: &str) -> Self {
        let responses = StatusClasses::new(
            crate::metrics::UPSTREAM_RESPONSES,
            &[("pool", pool), ("backend", backend)],
        );
        let response_time =
            crate::metrics::UPSTREAM_RESPONSE_TIMES.series(&[("pool", pool), ("backend", backend)]);
        BackendMetrics {
            responses,
            response_time,
        }
    }

    /// Counts a response head with `status` that arrived `latency` after
    /// the request was sent.
    pub fn record(&self, status: StatusCode, latency: Duration) {
        self.responses.count(status);
        self.response_time.record(latency);
    }
}
