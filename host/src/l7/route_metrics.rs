//! The Prometheus series of one route, registered when the plan is built:
//! answering a request increments a handle and records one sample, with
//! no label formatted or series looked up.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::metrics::histogram::Histogram;

/// Requests a route answered by status class, and how long they took.
#[derive(Debug)]
pub struct RouteMetrics {
    /// `bascule_http_route_requests_total{listener,route,class}`, by class
    /// (`1xx` to `5xx`).
    requests: [metrics::Counter; 5],
    /// `bascule_http_request_duration_seconds{listener,route}`.
    duration: Arc<Histogram>,
}

// === impl RouteMetrics ===

impl RouteMetrics {
    /// Registers the series of route `route` of `listener`.
    pub fn new(listener: &str, route: &str) -> Self {
        let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            metrics::counter!(
                crate::metrics::HTTP_ROUTE_REQUESTS,
                "listener" => listener.to_owned(),
                "route" => route.to_owned(),
                "class" => class,
            )
        });
        let duration =
            crate::metrics::REQUEST_DURATIONS.series(&[("listener", listener), ("route", route)]);
        RouteMetrics { requests, duration }
    }

    /// Counts a request answered with `status`, `took` after its head was
    /// read.
    pub fn record(&self, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(counter) = self.requests.get(class) {
            counter.increment(1);
        }
        self.duration.record(took);
    }
}
