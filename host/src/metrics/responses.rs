//! The answers of one route or one backend: a counter per status class
//! and a histogram of how long they took, registered once (when the plan
//! is built, or the backend first appears) so that recording one is an
//! increment and a sample, with no label formatted or series looked up.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::StatusClasses;
use super::histogram::{Family, Histogram};

/// Answers by status class, and their durations.
#[derive(Debug)]
pub struct ResponseSeries {
    classes: StatusClasses,
    took: Arc<Histogram>,
}

// === impl ResponseSeries ===

impl ResponseSeries {
    /// `bascule_http_route_requests_total{listener,route,class}` and
    /// `bascule_http_request_duration_seconds{listener,route}`.
    pub fn route(listener: &str, route: &str) -> Self {
        Self::new(
            super::HTTP_ROUTE_REQUESTS,
            &super::REQUEST_DURATIONS,
            &[("listener", listener), ("route", route)],
        )
    }

    /// `bascule_upstream_responses_total{pool,backend,class}` and
    /// `bascule_upstream_response_time_seconds{pool,backend}`.
    pub fn backend(pool: &str, backend: &str) -> Self {
        Self::new(
            super::UPSTREAM_RESPONSES,
            &super::UPSTREAM_RESPONSE_TIMES,
            &[("pool", pool), ("backend", backend)],
        )
    }

    fn new(counter: &'static str, times: &Family, labels: &[(&'static str, &str)]) -> Self {
        ResponseSeries {
            classes: StatusClasses::new(counter, labels),
            took: times.series(labels),
        }
    }

    /// How long the answers took.
    pub fn durations(&self) -> &Arc<Histogram> {
        &self.took
    }

    /// Counts an answer with `status` that took `took`.
    pub fn record(&self, status: StatusCode, took: Duration) {
        self.classes.count(status);
        self.took.record(took);
    }
}
