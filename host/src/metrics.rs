//! The process-wide Prometheus recorder and the names of the host's metrics.
//!
//! Names follow `bascule_<area>_<what>_<unit>`. Plugin failures carry the
//! plugin's name and the kind of failure as labels.

mod byte_counters;
pub mod histogram;
pub mod plugin_histograms;
mod responses;
mod status_classes;

pub use byte_counters::ByteCounters;
pub use responses::ResponseSeries;
pub use status_classes::StatusClasses;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Always 1, labelled with the version that is running.
pub const BUILD_INFO: &str = "bascule_build_info";
/// The config generation serving (1 is the config started with).
pub const CONFIG_GENERATION: &str = "bascule_config_generation";
/// Reloads asked for, by result (`ok`, `invalid`, `failed`).
pub const CONFIG_RELOADS: &str = "bascule_config_reloads_total";
/// When the serving config was loaded, in seconds since the Unix epoch.
pub const CONFIG_LOADED_AT: &str = "bascule_config_last_reload_timestamp_seconds";
/// Requests answered, by listener, route and status class.
pub const HTTP_ROUTE_REQUESTS: &str = "bascule_http_route_requests_total";
/// Time from a request's head to its response head, by listener and route.
pub const HTTP_REQUEST_DURATION: &str = "bascule_http_request_duration_seconds";
/// HTTP body bytes, by listener and direction (`received` from clients,
/// `sent` to them).
pub const HTTP_BYTES: &str = "bascule_http_bytes_total";
/// Body bytes to and from backends (HTTP bodies, TCP streams), by pool,
/// backend and direction (`sent` to the backend, `received` from it).
pub const UPSTREAM_BYTES: &str = "bascule_upstream_bytes_total";
/// Requests or connections in flight, by pool and backend (read at
/// scrape).
pub const UPSTREAM_ACTIVE: &str = "bascule_upstream_active";
/// Backend responses, by pool, backend and status class.
pub const UPSTREAM_RESPONSES: &str = "bascule_upstream_responses_total";
/// Time from sending a request to its response head, by pool and backend.
pub const UPSTREAM_RESPONSE_TIME: &str = "bascule_upstream_response_time_seconds";
/// Requests answered, by listener and status class (`2xx`, `5xx`, ...).
pub const HTTP_REQUESTS: &str = "bascule_http_requests_total";
/// TCP connections accepted, by listener.
pub const TCP_CONNECTIONS_OPENED: &str = "bascule_tcp_connections_opened_total";
/// TCP connections open now, by listener.
pub const TCP_CONNECTIONS_ACTIVE: &str = "bascule_tcp_connections_active";
/// TCP connections closed, by listener and reason (`done`, `idle-timeout`,
/// `drained`, `connect-failed`, `untrusted-proxy-header`, ...).
pub const TCP_CONNECTIONS_CLOSED: &str = "bascule_tcp_connections_closed_total";
/// Bytes forwarded, by listener and direction (`client-to-backend`,
/// `backend-to-client`).
pub const TCP_BYTES: &str = "bascule_tcp_bytes_total";
/// How long TCP connections lasted, by listener.
pub const TCP_CONNECTION_DURATION: &str = "bascule_tcp_connection_duration_seconds";
/// UDP datagrams relayed, by listener and direction
/// (`client-to-backend`, `backend-to-client`).
pub const UDP_DATAGRAMS: &str = "bascule_udp_datagrams_total";
/// UDP payload bytes relayed, by listener and direction.
pub const UDP_BYTES: &str = "bascule_udp_bytes_total";
/// UDP flows opened, by listener.
pub const UDP_FLOWS_OPENED: &str = "bascule_udp_flows_opened_total";
/// UDP flows open now, by listener.
pub const UDP_FLOWS_ACTIVE: &str = "bascule_udp_flows_active";
/// UDP flows ended, by listener and reason (`idle-timeout`, `responses`,
/// `backend-unreachable`, `drained`, `error`, `stopped`).
pub const UDP_FLOWS_CLOSED: &str = "bascule_udp_flows_closed_total";
/// UDP datagrams dropped, by listener and reason (`max-flows`,
/// `no-backend`, `send-error`).
pub const UDP_DROPPED: &str = "bascule_udp_datagrams_dropped_total";
/// Malformed PROXY headers from trusted sources, by listener and kind.
pub const PROXY_PROTOCOL_ERRORS: &str = "bascule_proxy_protocol_errors_total";
/// Timeouts that fired, by kind: `header-read`, `keep-alive`,
/// `request-body`, `send` (client side); `connect`, `response`,
/// `deadline` (a route's `timeout` or a gRPC deadline cutting a body);
/// `tcp-idle`, `tunnel-idle`, `preamble`, `tls-handshake`.
pub const TIMEOUTS: &str = "bascule_timeouts_total";
/// Failed connection attempts to backends, by pool and backend.
pub const UPSTREAM_CONNECT_FAILURES: &str = "bascule_upstream_connect_failures_total";
/// Idle upstream connections closed by the pool, by reason
/// (`backend-closed`, `expired`, `unexpected-data`, `evicted`).
pub const UPSTREAM_IDLE_CLOSED: &str = "bascule_upstream_idle_closed_total";
/// Requests sent again on a new connection because a reused one was dead
/// before the request was written, by pool.
pub const UPSTREAM_RESENT: &str = "bascule_upstream_resent_requests_total";
/// Backend generations pushed to idle plugin instances by the supervisor,
/// by plugin.
pub const PLUGIN_GENERATIONS_PUSHED: &str = "bascule_plugin_generations_pushed_total";
/// Plugin calls that failed, by plugin, its use (`pool` for a balancer or
/// health interpreter, `filter` for a header filter) and kind (`timeout`,
/// `memory`, `trap`, `invalid-output`, `guest-error`, `suspended`).
pub const PLUGIN_FAILURES: &str = "bascule_plugin_failures_total";
/// Calls into plugins, by plugin and hook (`select`, `on-request`,
/// `on-response`): what a filter's declarations save shows here.
pub const PLUGIN_CALLS: &str = "bascule_plugin_calls_total";
/// Series a plugin asked for past its `max-metric-series`, by plugin.
pub const PLUGIN_METRIC_SERIES_DROPPED: &str = "bascule_plugin_metric_series_dropped_total";
/// How long plugin calls took, by plugin and hook.
pub const PLUGIN_CALL_DURATION: &str = "bascule_plugin_call_duration_seconds";
/// Plugin instances created (at load, on demand, and to replace a failed one).
pub const PLUGIN_INSTANCES_CREATED: &str = "bascule_plugin_instances_created_total";

/// HTTP client connections closed by a limit, by listener and reason
/// (`first-byte-timeout`, `keep-alive-timeout`).
pub const HTTP_CONNECTIONS_CLOSED: &str = "bascule_http_connections_closed_total";
/// HTTP client connections refused at the listener's `max-connections`,
/// by listener.
pub const HTTP_CONNECTIONS_REFUSED: &str = "bascule_http_connections_refused_total";

/// Backend health, by pool, backend and state (`healthy`, `degraded`,
/// `unhealthy`, `draining`): 1 for the current state, 0 for the others.
pub const BACKEND_HEALTH: &str = "bascule_backend_health";
/// Changes of a backend's effective health, by pool and new state.
pub const BACKEND_HEALTH_TRANSITIONS: &str = "bascule_backend_health_transitions_total";
/// Active health probes, by pool, backend and result (`healthy`,
/// `degraded`, `unhealthy`, `failed`: the interpreter failed).
pub const HEALTH_PROBES: &str = "bascule_health_probes_total";
/// How long probes took, connect to verdict, by pool.
pub const HEALTH_PROBE_DURATION: &str = "bascule_health_probe_duration_seconds";
/// Backends ejected by outlier detection, by pool, backend and reason
/// (`consecutive-5xx`, `consecutive-connect-failures`,
/// `consecutive-timeouts`).
pub const OUTLIER_EJECTIONS: &str = "bascule_outlier_ejections_total";

/// TLS handshakes completed on listeners, by listener, version and ALPN
/// protocol (`none` when the client offered none).
pub const TLS_HANDSHAKES: &str = "bascule_tls_handshakes_total";
/// TLS handshakes that failed on listeners, by listener and reason
/// (`timeout`, `failed`).
pub const TLS_HANDSHAKE_ERRORS: &str = "bascule_tls_handshake_errors_total";

/// Access-log lines dropped because the writer was behind.
pub const ACCESS_LOG_DROPPED: &str = "bascule_access_log_dropped_total";

/// `accept` calls that failed (out of file descriptors, ...).
pub const ACCEPT_FAILURES: &str = "bascule_accept_failures_total";

/// Requests tried again on another candidate, by pool and reason
/// (`connect-failure`, `reset`, `timeout`, or the status).
pub const HTTP_RETRIES: &str = "bascule_http_retries_total";
/// Retries a route's budget refused, by pool.
pub const HTTP_RETRY_BUDGET_EXHAUSTED: &str = "bascule_http_retry_budget_exhausted_total";
/// Requests a rate limit answered with 429, by limit.
pub const HTTP_RATE_LIMITED: &str = "bascule_http_rate_limited_total";
/// Upgraded connections (WebSocket) tunnelled, by how they ended:
/// `done`, `idle-timeout`, `drained`, `error`.
pub const HTTP_TUNNELS_CLOSED: &str = "bascule_http_tunnels_closed_total";
/// Upgraded connections (WebSocket) open now.
pub const HTTP_TUNNELS_ACTIVE: &str = "bascule_http_tunnels_active";

/// Shows `generation` as the serving config, loaded now.
pub fn config_serving(generation: u64) {
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(CONFIG_GENERATION).set(generation as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    metrics::gauge!(CONFIG_LOADED_AT).set(now);
}

/// Counts a reload that ended with `result` (`ok`, `invalid`, `failed`).
pub fn reload_finished(result: &'static str) {
    metrics::counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// Counts a client connection `listener` closed for `reason`.
pub fn http_connection_closed(listener: &str, reason: &'static str) {
    metrics::counter!(HTTP_CONNECTIONS_CLOSED, "listener" => listener.to_owned(), "reason" => reason)
        .increment(1);
}

/// Counts a client connection `listener` refused at its cap.
pub fn http_connection_refused(listener: &str) {
    metrics::counter!(HTTP_CONNECTIONS_REFUSED, "listener" => listener.to_owned()).increment(1);
}

/// Counts a timeout of `kind` (see [`TIMEOUTS`]). Timeouts are rare next
/// to requests: the series is looked up per event.
pub fn timed_out(kind: &'static str) {
    metrics::counter!(TIMEOUTS, "kind" => kind).increment(1);
}

/// Counts a failed connection attempt to `backend` of `pool`; `timed_out`
/// when it ran out of `connect-timeout`.
pub fn connect_failed(pool: &str, backend: &str, timed_out: bool) {
    if timed_out {
        self::timed_out("connect");
    }
    metrics::counter!(
        UPSTREAM_CONNECT_FAILURES,
        "pool" => pool.to_owned(),
        "backend" => backend.to_owned(),
    )
    .increment(1);
}

/// Shows `health` as the current state of `backend` in `pool`.
pub fn backend_health(pool: &str, backend: &str, health: crate::upstream::Health) {
    for state in crate::upstream::Health::ALL {
        metrics::gauge!(BACKEND_HEALTH, "pool" => pool.to_owned(), "backend" => backend.to_owned(), "state" => state.label())
            .set(if state == health { 1.0 } else { 0.0 });
    }
}

/// Counts a change of `backend`'s health in `pool` to `health`, and moves
/// its state gauge.
pub fn health_transition(pool: &str, backend: &str, health: crate::upstream::Health) {
    metrics::counter!(BACKEND_HEALTH_TRANSITIONS, "pool" => pool.to_owned(), "to" => health.label())
        .increment(1);
    backend_health(pool, backend, health);
}

/// `bascule_http_request_duration_seconds{listener,route}`.
pub static REQUEST_DURATIONS: histogram::Family = histogram::Family::new(
    HTTP_REQUEST_DURATION,
    "time from a request's head to its response head, by route",
    &histogram::RESPONSE_BUCKETS,
);

/// `bascule_upstream_response_time_seconds{pool,backend}`.
pub static UPSTREAM_RESPONSE_TIMES: histogram::Family = histogram::Family::new(
    UPSTREAM_RESPONSE_TIME,
    "time from sending a request to its response head",
    &histogram::RESPONSE_BUCKETS,
);

/// `bascule_plugin_call_duration_seconds{plugin,hook}`.
pub static PLUGIN_CALL_DURATIONS: histogram::Family = histogram::Family::new(
    PLUGIN_CALL_DURATION,
    "how long plugin calls took",
    &histogram::PLUGIN_CALL_BUCKETS,
);

/// `bascule_tcp_connection_duration_seconds{listener}`.
pub static TCP_LIFETIMES: histogram::Family = histogram::Family::new(
    TCP_CONNECTION_DURATION,
    "TCP connection lifetimes",
    &histogram::LIFETIME_BUCKETS,
);

/// `bascule_health_probe_duration_seconds{pool}`.
pub static PROBE_DURATIONS: histogram::Family = histogram::Family::new(
    HEALTH_PROBE_DURATION,
    "active health probe durations",
    &histogram::PROBE_BUCKETS,
);

/// Every histogram in the Prometheus text format, to follow the
/// recorder's output.
pub fn render_histograms() -> String {
    let mut out = String::new();
    for family in [
        &REQUEST_DURATIONS,
        &UPSTREAM_RESPONSE_TIMES,
        &TCP_LIFETIMES,
        &PROBE_DURATIONS,
        &PLUGIN_CALL_DURATIONS,
    ] {
        family.render(&mut out);
    }
    plugin_histograms::render(&mut out);
    out
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's own metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`,
/// `process_start_time_seconds`, ...), named as every Prometheus client
/// names them, read from `/proc` when scraped rather than on a timer.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Brings the process metrics up to date, before a scrape renders them.
pub fn collect_process() {
    PROCESS.get_or_init(process_collector).collect();
}

fn process_collector() -> metrics_process::Collector {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector
}

/// Installs the Prometheus recorder once per process and returns its
/// handle; `None` when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match builder().install_recorder() {
            Ok(handle) => {
                describe();
                metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                // Every result shows from the start, at 0.
                for result in ["ok", "invalid", "failed"] {
                    metrics::counter!(CONFIG_RELOADS, "result" => result).absolute(0);
                }
                for kind in [
                    "header-read",
                    "keep-alive",
                    "request-body",
                    "send",
                    "connect",
                    "response",
                    "deadline",
                    "tcp-idle",
                    "tunnel-idle",
                    "preamble",
                    "tls-handshake",
                ] {
                    metrics::counter!(TIMEOUTS, "kind" => kind).absolute(0);
                }
                Some(handle)
            }
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

/// Connection durations are rendered as a histogram (not a summary) so
/// they can be aggregated across instances.
/// The recorder. Histograms are not its own (see [`histogram`]).
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
}

fn describe() {
    metrics::describe_gauge!(BUILD_INFO, "always 1; the running version as a label");
    metrics::describe_gauge!(CONFIG_GENERATION, "the config generation serving");
    metrics::describe_counter!(CONFIG_RELOADS, "reloads asked for, by result");
    metrics::describe_gauge!(
        CONFIG_LOADED_AT,
        metrics::Unit::Seconds,
        "when the serving config was loaded (Unix time)"
    );
    metrics::describe_counter!(TCP_CONNECTIONS_OPENED, "TCP connections accepted");
    metrics::describe_gauge!(TCP_CONNECTIONS_ACTIVE, "TCP connections open");
    metrics::describe_counter!(TCP_CONNECTIONS_CLOSED, "TCP connections closed, by reason");
    metrics::describe_counter!(TCP_BYTES, "bytes forwarded by the TCP proxy");
    metrics::describe_counter!(UDP_DATAGRAMS, "datagrams relayed by the UDP proxy");
    metrics::describe_counter!(UDP_BYTES, "payload bytes relayed by the UDP proxy");
    metrics::describe_counter!(UDP_FLOWS_OPENED, "UDP flows opened");
    metrics::describe_gauge!(UDP_FLOWS_ACTIVE, "UDP flows open now");
    metrics::describe_counter!(UDP_FLOWS_CLOSED, "UDP flows ended, by reason");
    metrics::describe_counter!(UDP_DROPPED, "UDP datagrams dropped, by reason");
    metrics::describe_counter!(
        PROXY_PROTOCOL_ERRORS,
        "malformed PROXY headers from trusted sources"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    metrics::describe_counter!(
        HTTP_ROUTE_REQUESTS,
        "HTTP requests answered, by route and status class"
    );
    metrics::describe_counter!(UPSTREAM_RESPONSES, "backend responses, by status class");
    metrics::describe_counter!(HTTP_BYTES, "HTTP body bytes, by direction");
    metrics::describe_counter!(
        UPSTREAM_BYTES,
        "body bytes to and from backends, by direction"
    );
    metrics::describe_gauge!(
        UPSTREAM_ACTIVE,
        "requests or connections in flight on a backend"
    );
    metrics::describe_counter!(TIMEOUTS, "timeouts that fired, by kind");
    metrics::describe_counter!(
        UPSTREAM_CONNECT_FAILURES,
        "failed connection attempts to backends"
    );
    metrics::describe_counter!(
        UPSTREAM_IDLE_CLOSED,
        "idle upstream connections closed, by reason"
    );
    metrics::describe_counter!(
        UPSTREAM_RESENT,
        "requests re-sent after a reused connection was dead"
    );
    metrics::describe_counter!(
        PLUGIN_GENERATIONS_PUSHED,
        "backend lists pushed to idle plugin instances"
    );
    metrics::describe_counter!(PLUGIN_FAILURES, "plugin calls that failed");
    metrics::describe_counter!(PLUGIN_INSTANCES_CREATED, "plugin instances created");
    metrics::describe_gauge!(BACKEND_HEALTH, "backend health state (1 = current)");
    metrics::describe_counter!(TLS_HANDSHAKES, "TLS handshakes completed on listeners");
    metrics::describe_counter!(
        TLS_HANDSHAKE_ERRORS,
        "TLS handshakes that failed on listeners"
    );
    metrics::describe_counter!(BACKEND_HEALTH_TRANSITIONS, "changes of backend health");
    metrics::describe_counter!(HEALTH_PROBES, "active health probes, by result");
    metrics::describe_counter!(OUTLIER_EJECTIONS, "backends ejected by outlier detection");
    metrics::describe_counter!(PLUGIN_CALLS, "plugin calls, by hook");
    metrics::describe_counter!(
        PLUGIN_METRIC_SERIES_DROPPED,
        "plugin metric series refused past max-metric-series"
    );
    metrics::describe_counter!(
        HTTP_CONNECTIONS_CLOSED,
        "HTTP client connections closed by the proxy, by reason"
    );
    metrics::describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "HTTP client connections refused past max-connections"
    );
    metrics::describe_counter!(
        ACCESS_LOG_DROPPED,
        "access-log lines dropped because the writer was behind"
    );
    metrics::describe_counter!(ACCEPT_FAILURES, "failed accept() calls on listeners");
    metrics::describe_counter!(HTTP_RETRIES, "requests tried again, by reason");
    metrics::describe_counter!(
        HTTP_RETRY_BUDGET_EXHAUSTED,
        "retries not made because the retry budget was spent"
    );
    metrics::describe_counter!(HTTP_RATE_LIMITED, "requests refused by a rate limit (429)");
    metrics::describe_counter!(
        HTTP_TUNNELS_CLOSED,
        "upgraded connections closed, by reason"
    );
    metrics::describe_gauge!(HTTP_TUNNELS_ACTIVE, "upgraded connections open");
}
