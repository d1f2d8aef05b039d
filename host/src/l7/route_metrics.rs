//! The Prometheus series of one route, registered when the plan is built:
//! answering a request increments a handle and records one sample, with
//! no label formatted or series looked up.

use http::StatusCode;

/// Requests a route answered by status class, and how long they took.
#[derive(Debug)]
pub struct RouteMetrics {
    /// `bascule_http_route_requests_total{listener,route,class}`, by class
    /// (`1xx` to `5xx`).
    requests: [metrics::Counter; 5],
    /// `bascule_http_request_duration_seconds{listener,route}`.
    duration: metrics::Histogram,
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
        let duration = metrics::histogram!(
            crate::metrics::HTTP_REQUEST_DURATION,
            "listener" => listener.to_owned(),
            "route" => route.to_owned(),
        );
        RouteMetrics { requests, duration }
    }

    /// Counts a request answered with `status`, `seconds` after its head
    /// was read.
    pub fn record(&self, status: StatusCode, seconds: f64) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(counter) = self.requests.get(class) {
            counter.increment(1);
        }
        self.duration.record(seconds);
    }
}
