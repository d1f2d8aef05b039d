//! The process-wide Prometheus recorder and the names of the host's metrics.
//!
//! Names follow `bascule_<area>_<what>_<unit>`. Plugin failures carry the
//! plugin's name and the kind of failure as labels.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests answered, by listener and status class (`2xx`, `5xx`, ...).
pub const HTTP_REQUESTS: &str = "bascule_http_requests_total";
/// Failed connection attempts to backends, by pool.
pub const UPSTREAM_CONNECT_FAILURES: &str = "bascule_upstream_connect_failures_total";
/// Plugin calls that failed, by plugin and kind (`timeout`, `memory`, `trap`,
/// `invalid-output`, `guest-error`, `suspended`).
pub const PLUGIN_FAILURES: &str = "bascule_plugin_failures_total";
/// Plugin instances created (at load, on demand, and to replace a failed one).
pub const PLUGIN_INSTANCES_CREATED: &str = "bascule_plugin_instances_created_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its
/// handle; `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    metrics::describe_counter!(
        UPSTREAM_CONNECT_FAILURES,
        "failed connection attempts to backends"
    );
    metrics::describe_counter!(PLUGIN_FAILURES, "plugin calls that failed");
    metrics::describe_counter!(PLUGIN_INSTANCES_CREATED, "plugin instances created");
}
