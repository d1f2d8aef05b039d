//! The Prometheus series of one route, registered when the plan is built:
//! answering a request increments a handle and records one sample, with
//! no label formatted or series looked up.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::metrics::StatusClasses;
use crate::metrics::histogram::Histogram;

/// Requests a route answered by status class, and how long they took.
#[derive(Debug)]
pub struct RouteMetrics {
    /// `bascule_http_route_requests_total{listener,route,class}`.
    requests: StatusClasses,
    /// `bascule_http_request_duration_seconds{listener,route}`.
    duration: Arc<Histogram>,
}

// === impl RouteMetrics ===

impl RouteMetrics {
    /// Registers the series of route `route` of `listener`.
    pub fn new(listener: &str, route: &str) -> Self {
        let requests = StatusClasses::new(
            crate::metrics::HTTP_ROUTE_REQUESTS,
            &[("listener", listener), ("route", route)],
        );
        let duration =
            crate::metrics::REQUEST_DURATIONS.series(&[("listener", listener), ("route", route)]);
        RouteMetrics { requests, duration }
    }

    /// Counts a request answered with `status`, `took` after its head was
    /// read.
    pub fn record(&self, status: StatusCode, took: Duration) {
        self.requests.count(status);
        self.duration.record(took);
    }
}
