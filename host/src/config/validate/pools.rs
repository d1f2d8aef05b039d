//! `[pools.NAME]`: the balancer and its options, failure policy, attempts,
//! timeouts, slow start, PROXY protocol, draining, panic threshold, the
//! backend protocol and the backends (health checks are in `health.rs`).

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::fields::plugin_options;
use super::raw::{RawBackend, RawPool};
use crate::config::*;

/// Weights are relative; the cap keeps their sum far from overflow.
const MAX_WEIGHT: i64 = 1_000_000;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn pool(&mut self, name: &Spanned<String>, raw: &RawPool) -> Option<PoolConfig> {
        let field = |key: &str| format!("pools.{}.{key}", name.get_ref());
        let pool_name = self.name(format!("pools.{}", name.get_ref()), name);
        let balancer_location = FieldLocation::new(field("balancer"), raw.balancer.span());
        let balancer = self.balancer_ref(field("balancer"), &raw.balancer);
        let (balancer_options, balancer_options_location) = plugin_options(
            field("balancer-options"),
            raw.balancer_options.as_ref(),
            name,
        );
        let on_plugin_failure = match &raw.on_plugin_failure {
            None => Some(PluginFailurePolicy::RoundRobin),
            Some(policy) => self.keyword(
                field("on-plugin-failure"),
                policy,
                "policy",
                &[
                    ("round-robin", PluginFailurePolicy::RoundRobin),
                    ("fail-closed", PluginFailurePolicy::FailClosed),
                ],
            ),
        };
        let max_attempts = match &raw.max_attempts {
            None => Some(DEFAULT_MAX_ATTEMPTS),
            Some(n) => self.bounded(field("max-attempts"), n, 1, 16),
        };
        let connect_timeout = self.duration_or(
            field("connect-timeout"),
            raw.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
            Duration::from_millis(1)..=Duration::from_secs(60),
        );
        let response_timeout = self.duration_or(
            field("response-timeout"),
            raw.response_timeout.as_ref(),
            DEFAULT_RESPONSE_TIMEOUT,
            Duration::from_millis(1)..=Duration::from_secs(3600),
        );
        let slow_start = self.optional_duration(
            field("slow-start"),
            raw.slow_start.as_ref(),
            Duration::from_millis(100)..=Duration::from_secs(3600),
        );
        let proxy_protocol = match &raw.proxy_protocol {
            None => Some(None),
            Some(version) => self
                .keyword(
                    field("proxy-protocol"),
                    version,
                    "PROXY protocol version",
                    &[
                        ("v1", ProxyProtocolVersion::V1),
                        ("v2", ProxyProtocolVersion::V2),
                    ],
                )
                .map(Some),
        };
        let drain_timeout = self.duration_or(
            field("drain-timeout"),
            raw.drain_timeout.as_ref(),
            DEFAULT_DRAIN_TIMEOUT,
            Duration::ZERO..=Duration::from_secs(24 * 3600),
        );
        let panic_threshold = match &raw.panic_threshold {
            None => Some(0),
            Some(percent) => self.bounded(field("panic-threshold"), percent, 0, 100),
        };
        let health = match &raw.health {
            None => Some(None),
            Some(health) => self.health(name.get_ref(), health).map(Some),
        };
        let outlier_detection = match &raw.outlier_detection {
            None => Some(None),
            Some(outlier) => self.outlier_detection(name.get_ref(), outlier).map(Some),
        };
        let backends = self.backends(name.get_ref(), &raw.backends);
        let tls = match (&raw.tls, &backends) {
            (None, _) => Some(None),
            (Some(tls), Some(backends)) => self.upstream_tls(name.get_ref(), tls, backends),
            (Some(_), None) => None,
        };
        let protocol = self.upstream_protocol(name.get_ref(), raw, tls.as_ref());
        let max_active = match &raw.max_active {
            None => Some(None),
            Some(max) => self
                .bounded(field("max-active"), max, 1, 1_000_000)
                .map(Some),
        };
        Some(PoolConfig {
            name: pool_name?,
            balancer: balancer?,
            balancer_location,
            balancer_options,
            balancer_options_location,
            on_plugin_failure: on_plugin_failure?,
            max_attempts: max_attempts?,
            connect_timeout: connect_timeout?,
            response_timeout: response_timeout?,
            slow_start: slow_start?,
            proxy_protocol: proxy_protocol?,
            drain_timeout: drain_timeout?,
            panic_threshold: panic_threshold?,
            health: health?,
            outlier_detection: outlier_detection?,
            tls: tls?,
            protocol: protocol?,
            max_active: max_active?,
            backends: backends?,
        })
    }

    /// `protocol`: `auto` chooses by ALPN, so it needs TLS.
    fn upstream_protocol(
        &mut self,
        pool: &str,
        raw: &RawPool,
        tls: Option<&Option<UpstreamTlsConfig>>,
    ) -> Option<UpstreamProtocol> {
        let Some(protocol) = &raw.protocol else {
            return Some(UpstreamProtocol::Http1);
        };
        let field = format!("pools.{pool}.protocol");
        let protocol = self.keyword(
            field.clone(),
            protocol,
            "backend protocol",
            &[
                ("http1", UpstreamProtocol::Http1),
                ("h2", UpstreamProtocol::Http2),
                ("auto", UpstreamProtocol::Auto),
            ],
        )?;
        if protocol == UpstreamProtocol::Auto && matches!(tls, Some(None)) {
            let span = raw.protocol.as_ref().map(Spanned::span).unwrap_or_default();
            return self.fail(
                field,
                span,
                "`auto` picks HTTP/2 or HTTP/1.1 by ALPN, which needs `tls`: use `h2` for h2c backends",
            );
        }
        Some(protocol)
    }

    fn backends(&mut self, pool: &str, raw: &[RawBackend]) -> Option<Vec<BackendConfig>> {
        let mut ids = HashSet::new();
        let mut backends = Vec::new();
        let mut ok = true;
        for (i, backend) in raw.iter().enumerate() {
            let field = |key: &str| format!("pools.{pool}.backends[{i}].{key}");
            let address = self.host_port(field("address"), &backend.address);
            let id = match &backend.name {
                Some(name) => self.name(field("name"), name),
                None => address.as_ref().map(|_| backend.address.get_ref().clone()),
            };
            let weight = match &backend.weight {
                None => Some(1),
                Some(w) => self.bounded(field("weight"), w, 1, MAX_WEIGHT),
            };
            if let Some(id) = &id
                && !ids.insert(id.clone())
            {
                let span = backend
                    .name
                    .as_ref()
                    .map_or(backend.address.span(), Spanned::span);
                self.fail::<()>(
                    field("name"),
                    span,
                    format!(
                        "duplicate backend `{id}` in pool `{pool}`; give each a distinct `name`"
                    ),
                );
            }
            match (id, address, weight) {
                (Some(id), Some(address), Some(weight)) => backends.push(BackendConfig {
                    id,
                    address,
                    weight,
                    metadata: backend
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }),
                _ => ok = false,
            }
        }
        ok.then_some(backends)
    }
}
