//! The config file exactly as written: serde structs that mirror the TOML,
//! with spans kept on every value that validation may reject.
//!
//! Nothing here is trusted; [`super::validate`] turns it into domain types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    #[serde(default)]
    pub filters: BTreeMap<String, RawFilter>,
    #[serde(default)]
    pub limits: BTreeMap<String, RawLimit>,
    #[serde(default)]
    pub sandbox: Option<RawSandbox>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub resolver: Option<RawResolver>,
    #[serde(default)]
    pub shutdown: Option<RawShutdown>,
    #[serde(default)]
    pub reload: Option<RawReload>,
    #[serde(default)]
    pub log: Option<RawLog>,
    #[serde(default)]
    pub access_log: Option<RawAccessLog>,
}

/// `[reload]`: what else than SIGHUP and `POST /reload` reloads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawReload {
    #[serde(default)]
    pub watch: Option<bool>,
    #[serde(default)]
    pub debounce: Option<Spanned<String>>,
}

/// `[log]`: the process's own log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLog {
    #[serde(default)]
    pub level: Option<Spanned<String>>,
    #[serde(default)]
    pub format: Option<Spanned<String>>,
}

/// `[access-log]`: one line per request or connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAccessLog {
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub buffer: Option<Spanned<i64>>,
}

/// `[shutdown]`: how a stop (SIGTERM, SIGINT) ends the process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawShutdown {
    #[serde(default)]
    pub grace: Option<Spanned<String>>,
}

/// `[resolver]`: how backend host names are resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawResolver {
    #[serde(default)]
    pub nameservers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub refresh: Option<Spanned<String>>,
}

/// `[admin]`: the metrics and health endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAdmin {
    pub address: Spanned<String>,
    #[serde(default)]
    pub token: Option<Spanned<String>>,
}

/// Only the pool and filter names, with their spans: read in a second pass
/// because `serde_path_to_error` cannot name a field under a non-string map
/// key.
#[derive(Debug, Deserialize)]
pub struct RawTableNames {
    #[serde(default)]
    pub pools: BTreeMap<Spanned<String>, serde::de::IgnoredAny>,
    #[serde(default)]
    pub filters: BTreeMap<Spanned<String>, serde::de::IgnoredAny>,
    #[serde(default)]
    pub limits: BTreeMap<Spanned<String>, serde::de::IgnoredAny>,
}

/// `[limits.NAME]`: a token bucket routes share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLimit {
    pub rate: Spanned<f64>,
    #[serde(default)]
    pub burst: Option<Spanned<i64>>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub max_keys: Option<Spanned<i64>>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawListener {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub zero_copy: Option<Spanned<bool>>,
    #[serde(default)]
    pub accept_proxy_protocol_from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub responses: Option<Spanned<i64>>,
    #[serde(default)]
    pub requests: Option<Spanned<i64>>,
    #[serde(default)]
    pub per_datagram: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_flows: Option<Spanned<i64>>,
    #[serde(default)]
    pub proxy_header: Option<Spanned<String>>,
    #[serde(default)]
    pub affinity: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<RawPathPolicy>>,
    #[serde(default)]
    pub first_byte_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub keep_alive_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub request_body_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub send_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub max_connections: Option<Spanned<i64>>,
    #[serde(default)]
    pub header_read_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub max_header_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_headers: Option<Spanned<i64>>,
    #[serde(default)]
    pub forwarded_header: Option<Spanned<String>>,
    #[serde(default)]
    pub via: Option<Spanned<bool>>,
    #[serde(default)]
    pub request_id: Option<Spanned<bool>>,
    #[serde(default)]
    pub tls: Option<Spanned<RawTls>>,
}

/// `[listeners.tls]`: TLS termination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTls {
    pub certificates: Spanned<Vec<RawCertificate>>,
    #[serde(default)]
    pub alpn: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub min_version: Option<Spanned<String>>,
    #[serde(default)]
    pub unknown_sni: Option<Spanned<String>>,
    #[serde(default)]
    pub session_tickets: Option<Spanned<bool>>,
}

/// One entry of `certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    #[serde(default)]
    pub sni: Option<Vec<Spanned<String>>>,
}

/// `[listeners.path]`: how an HTTP listener normalises request paths.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPathPolicy {
    #[serde(default)]
    pub decode_unreserved: Option<bool>,
    #[serde(default)]
    pub remove_dot_segments: Option<bool>,
    #[serde(default)]
    pub merge_slashes: Option<bool>,
    #[serde(default)]
    pub encoded_slashes: Option<Spanned<String>>,
}

/// `[[listeners.routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRoute {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub path_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub sni: Option<Spanned<String>>,
    #[serde(default)]
    pub tls: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub path_regex: Option<Spanned<String>>,
    #[serde(default)]
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub headers: Option<Spanned<Vec<Spanned<RawFieldCondition>>>>,
    #[serde(default)]
    pub query: Option<Spanned<Vec<Spanned<RawFieldCondition>>>>,
    #[serde(default)]
    pub pool: Option<Spanned<String>>,
    #[serde(default)]
    pub pools: Option<Spanned<Vec<Spanned<RawWeightedPool>>>>,
    #[serde(default)]
    pub sticky: Option<Spanned<String>>,
    #[serde(default)]
    pub strip_prefix: Option<Spanned<bool>>,
    #[serde(default)]
    pub rewrite_path: Option<Spanned<String>>,
    #[serde(default)]
    pub redirect: Option<Spanned<RawRedirect>>,
    #[serde(default)]
    pub respond: Option<Spanned<RawRespond>>,
    #[serde(default)]
    pub upgrades: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    pub max_body_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub limit: Option<Spanned<String>>,
    #[serde(default)]
    pub filters: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One of a route's `headers` or `query` tests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFieldCondition {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
}

/// One of a route's `pools`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawWeightedPool {
    pub pool: Spanned<String>,
    pub weight: Spanned<i64>,
}

/// A route's `retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRetry {
    #[serde(default)]
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub max_attempts: Option<Spanned<i64>>,
    #[serde(default)]
    pub per_try_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub budget_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    pub budget_min_per_second: Option<Spanned<i64>>,
    #[serde(default)]
    pub buffer: Option<Spanned<i64>>,
}

/// A route's `redirect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRedirect {
    #[serde(default)]
    pub status: Option<i64>,
    pub location: String,
}

/// A route's `respond`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRespond {
    pub status: i64,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// `[filters.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFilter {
    pub plugin: Spanned<String>,
    #[serde(default)]
    pub options: Option<Spanned<toml::Table>>,
}

/// `[pools.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPool {
    pub balancer: Spanned<String>,
    #[serde(default)]
    pub balancer_options: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub on_plugin_failure: Option<Spanned<String>>,
    #[serde(default)]
    pub max_attempts: Option<Spanned<i64>>,
    #[serde(default)]
    pub connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub response_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub slow_start: Option<Spanned<String>>,
    #[serde(default)]
    pub proxy_protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub panic_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    pub health: Option<Spanned<RawHealth>>,
    #[serde(default)]
    pub outlier_detection: Option<RawOutlierDetection>,
    /// `true`, `false` or a table ([`RawUpstreamTlsTable`]).
    #[serde(default)]
    pub tls: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub max_active: Option<Spanned<i64>>,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
}

/// `[pools.NAME.tls]`, read from the `tls` value (which may also be
/// `true` or `false`) once its kind is known. Its fields carry no spans:
/// errors point at the `tls` key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUpstreamTlsTable {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub verify: Option<bool>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

/// `[pools.NAME.health]`: active probes, in ALB's target-group vocabulary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHealth {
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub healthy_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    pub unhealthy_threshold: Option<Spanned<i64>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub interpreter: Option<Spanned<String>>,
    #[serde(default)]
    pub interpreter_options: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub body_limit: Option<Spanned<i64>>,
}

/// `[pools.NAME.outlier-detection]`: passive health from live traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOutlierDetection {
    #[serde(default, rename = "consecutive-5xx")]
    pub consecutive_5xx: Option<Spanned<i64>>,
    #[serde(default)]
    pub consecutive_connect_failures: Option<Spanned<i64>>,
    #[serde(default)]
    pub consecutive_timeouts: Option<Spanned<i64>>,
    #[serde(default)]
    pub base_ejection_time: Option<Spanned<String>>,
    #[serde(default)]
    pub max_ejection_time: Option<Spanned<String>>,
    #[serde(default)]
    pub max_ejection_percent: Option<Spanned<i64>>,
}

/// `[[pools.NAME.backends]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackend {
    pub address: Spanned<String>,
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub weight: Option<Spanned<i64>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `[sandbox]`: limits applied to every plugin call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSandbox {
    #[serde(default)]
    pub call_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub wall_clock_limit: Option<Spanned<String>>,
    #[serde(default)]
    pub memory_limit_mib: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_metric_series: Option<Spanned<i64>>,
}
