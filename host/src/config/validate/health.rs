//! `[pools.NAME.health]` and `[pools.NAME.outlier-detection]`: active
//! probes and passive ejection.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::fields::plugin_options;
use super::raw::{RawHealth, RawOutlierDetection};
use crate::config::*;

/// Largest `body-limit`: what an interpreter may be handed per probe.
const MAX_BODY_LIMIT: i64 = 1024 * 1024;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn health(
        &mut self,
        pool: &str,
        raw: &Spanned<RawHealth>,
    ) -> Option<HealthCheckConfig> {
        let field = |key: &str| format!("pools.{pool}.health.{key}");
        let table = raw.get_ref();
        let protocol = match &table.protocol {
            None => Some(None),
            Some(protocol) => self
                .keyword(
                    field("protocol"),
                    protocol,
                    "probe protocol",
                    &[
                        ("http", ProbeProtocol::Http),
                        ("tcp", ProbeProtocol::Tcp),
                        ("udp", ProbeProtocol::Udp),
                    ],
                )
                .map(Some),
        };
        let interval = self.duration_or(
            field("interval"),
            table.interval.as_ref(),
            DEFAULT_HEALTH_INTERVAL,
            Duration::from_millis(10)..=Duration::from_secs(3600),
        );
        let timeout = self.duration_or(
            field("timeout"),
            table.timeout.as_ref(),
            DEFAULT_HEALTH_TIMEOUT,
            Duration::from_millis(1)..=Duration::from_secs(600),
        );
        let threshold =
            |validator: &mut Self, key: &str, raw: &Option<Spanned<i64>>, default| match raw {
                None => Some(default),
                Some(n) => validator.bounded(field(key), n, 1, 100),
            };
        let healthy_threshold = threshold(
            self,
            "healthy-threshold",
            &table.healthy_threshold,
            DEFAULT_HEALTHY_THRESHOLD,
        );
        let unhealthy_threshold = threshold(
            self,
            "unhealthy-threshold",
            &table.unhealthy_threshold,
            DEFAULT_UNHEALTHY_THRESHOLD,
        );
        let path = match &table.path {
            None => Some("/health".to_owned()),
            Some(path) => self.probe_path(field("path"), path),
        };
        let method = match &table.method {
            None => Some("GET".to_owned()),
            Some(method) => self.probe_method(field("method"), method),
        };
        let host = match &table.host {
            None => Some(None),
            Some(host)
                if http::HeaderValue::from_str(host.get_ref()).is_ok()
                    && !host.get_ref().is_empty() =>
            {
                Some(Some(host.get_ref().clone()))
            }
            Some(host) => self.fail(
                field("host"),
                host.span(),
                "not a valid Host header value".to_owned(),
            ),
        };
        let port = match &table.port {
            None => Some(None),
            Some(port) => self
                .bounded(field("port"), port, 1, i64::from(u16::MAX))
                .and_then(|port| u16::try_from(port).ok())
                .map(Some),
        };
        let interpreter = match &table.interpreter {
            None => Some(None),
            Some(plugin) => self.plugin_ref(field("interpreter"), plugin).map(Some),
        };
        let owner = Spanned::new(raw.span(), pool.to_owned());
        let interpreter_location = FieldLocation::new(
            field("interpreter"),
            table.interpreter.as_ref().map_or(raw.span(), Spanned::span),
        );
        let (interpreter_options, interpreter_options_location) = plugin_options(
            field("interpreter-options"),
            table.interpreter_options.as_ref(),
            &owner,
        );
        let body_limit = match &table.body_limit {
            None => Some(DEFAULT_HEALTH_BODY_LIMIT),
            Some(limit) => self
                .bounded(field("body-limit"), limit, 0, MAX_BODY_LIMIT)
                .map(|limit| limit as usize),
        };
        if let (Some(interval), Some(timeout)) = (interval, timeout)
            && timeout > interval
            && let Some(raw_timeout) = &table.timeout
        {
            self.fail::<()>(
                field("timeout"),
                raw_timeout.span(),
                format!(
                    "a timeout of {} is longer than the interval of {}: one probe would still run when the next is due",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
            return None;
        }
        Some(HealthCheckConfig {
            protocol: protocol?,
            interval: interval?,
            timeout: timeout?,
            healthy_threshold: healthy_threshold?,
            unhealthy_threshold: unhealthy_threshold?,
            path: path?,
            method: method?,
            host: host?,
            port: port?,
            interpreter: interpreter?,
            interpreter_location,
            interpreter_options,
            interpreter_options_location,
            body_limit: body_limit?,
        })
    }

    pub(super) fn outlier_detection(
        &mut self,
        pool: &str,
        raw: &RawOutlierDetection,
    ) -> Option<OutlierConfig> {
        let field = |key: &str| format!("pools.{pool}.outlier-detection.{key}");
        let threshold = |validator: &mut Self, key: &str, raw: &Option<Spanned<i64>>| match raw {
            None => Some(DEFAULT_CONSECUTIVE_FAILURES),
            Some(n) => validator.bounded(field(key), n, 0, 10_000),
        };
        let consecutive_5xx = threshold(self, "consecutive-5xx", &raw.consecutive_5xx);
        let consecutive_connect_failures = threshold(
            self,
            "consecutive-connect-failures",
            &raw.consecutive_connect_failures,
        );
        let consecutive_timeouts =
            threshold(self, "consecutive-timeouts", &raw.consecutive_timeouts);
        let base_ejection_time = self.duration_or(
            field("base-ejection-time"),
            raw.base_ejection_time.as_ref(),
            DEFAULT_BASE_EJECTION_TIME,
            Duration::from_millis(10)..=Duration::from_secs(24 * 3600),
        );
        let max_ejection_time = self.duration_or(
            field("max-ejection-time"),
            raw.max_ejection_time.as_ref(),
            DEFAULT_MAX_EJECTION_TIME,
            Duration::from_millis(10)..=Duration::from_secs(24 * 3600),
        );
        let max_ejection_percent = match &raw.max_ejection_percent {
            None => Some(DEFAULT_MAX_EJECTION_PERCENT),
            Some(n) => self.bounded(field("max-ejection-percent"), n, 0, 100),
        };
        Some(OutlierConfig {
            consecutive_5xx: consecutive_5xx?,
            consecutive_connect_failures: consecutive_connect_failures?,
            consecutive_timeouts: consecutive_timeouts?,
            base_ejection_time: base_ejection_time?,
            max_ejection_time: max_ejection_time?.max(base_ejection_time?),
            max_ejection_percent: max_ejection_percent?,
        })
    }

    fn probe_path(&mut self, field: String, raw: &Spanned<String>) -> Option<String> {
        let path = raw.get_ref();
        let valid =
            path.starts_with('/') && http::uri::PathAndQuery::try_from(path.as_str()).is_ok();
        if valid {
            Some(path.clone())
        } else {
            self.fail(
                field,
                raw.span(),
                format!("`{path}` is not an absolute request path"),
            )
        }
    }

    fn probe_method(&mut self, field: String, raw: &Spanned<String>) -> Option<String> {
        let method = raw.get_ref();
        match http::Method::from_bytes(method.as_bytes()) {
            Ok(_) if !method.is_empty() => Some(method.clone()),
            _ => self.fail(
                field,
                raw.span(),
                format!("`{method}` is not an HTTP method"),
            ),
        }
    }
}
