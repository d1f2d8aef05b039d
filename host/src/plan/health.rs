//! A pool's active health check: the probe kind chosen from its listeners
//! (or the table), the interpreter compiled and configured.

use std::sync::Arc;

use super::PlanError;
use crate::config::{Config, PluginRef, PoolConfig, ProbeProtocol};
use crate::health::{HealthCheck, ProbeKind, ProbeSpec};
use crate::plugin::{self, PluginRuntime, WasmInterpreter};
use crate::upstream::Protocol;

pub(super) fn build_health_check(
    config: &Config,
    pool: &PoolConfig,
    plugins: &PluginRuntime,
) -> Result<Option<HealthCheck>, PlanError> {
    let Some(health) = &pool.health else {
        return Ok(None);
    };
    let kind = match health.protocol {
        Some(ProbeProtocol::Http) => ProbeKind::Http,
        Some(ProbeProtocol::Tcp) => ProbeKind::Tcp,
        Some(ProbeProtocol::Udp) => ProbeKind::Udp,
        None => {
            let protocols = super::pools::protocols_of(config, pool);
            if protocols.contains(&Protocol::Http) {
                ProbeKind::Http
            } else if protocols.contains(&Protocol::Tcp) {
                ProbeKind::Tcp
            } else if protocols.contains(&Protocol::Udp) {
                ProbeKind::Udp
            } else {
                ProbeKind::Tcp
            }
        }
    };
    let interpreter = health.interpreter.clone().unwrap_or_else(|| {
        PluginRef::Builtin(
            match kind {
                ProbeKind::Http => "http-status",
                ProbeKind::Tcp => "tcp-connect",
                // Needs its `send` and `expect` options: without them the
                // load fails, naming `interpreter-options`.
                ProbeKind::Udp => "udp-expect",
            }
            .to_owned(),
        )
    });
    let compiled = plugins
        .compile_interpreter(&interpreter)
        .map_err(|e| PlanError::at(&health.interpreter_location, e))?;
    let interpreter = WasmInterpreter::new(
        &pool.name,
        compiled,
        health.interpreter_options.clone(),
        kind,
        config.sandbox,
    )
    .map_err(|e| match e {
        plugin::Error::Rejected { .. } => PlanError::at(&health.interpreter_options_location, e),
        other => PlanError::at(&health.interpreter_location, other),
    })?;
    let needs = crate::health::Interpreter::needs(&interpreter).clone();
    Ok(Some(HealthCheck {
        spec: ProbeSpec {
            kind,
            method: health.method.clone(),
            path: health.path.clone(),
            host: health.host.clone(),
            timeout: health.timeout,
            body_limit: health.body_limit,
            needs,
            protocol: pool.protocol,
        },
        interval: health.interval,
        port: health.port,
        healthy_threshold: health.healthy_threshold,
        unhealthy_threshold: health.unhealthy_threshold,
        interpreter: Arc::new(interpreter),
    }))
}
