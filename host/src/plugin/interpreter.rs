//! A health interpreter plugin as a [`health::Interpreter`]: configured once
//! per pool, what it declared checked, one guarded call per probe. A trap,
//! timeout or invalid verdict is a plugin failure (counted, instance
//! replaced) and a failed probe.

use std::sync::Arc;

use wasmtime::{Engine, Store};

use super::Error;
use super::bindings::{HealthInterpreter, HealthInterpreterPre, health};
use super::budget::{self, Limits};
use super::hook_metrics::HookMetrics;
use super::instances::{Instances, PluginUse, classify, set_up};
use super::metric_registry::MetricRegistry;
use super::state::PluginState;
use crate::config::SandboxConfig;
use crate::health::{self as checks, InterpretError, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};

/// Longest reason kept from a verdict: it is logged and shown.
const MAX_REASON: usize = 256;

/// A compiled health interpreter component, linked and ready to
/// instantiate.
pub struct CompiledInterpreter {
    name: Arc<str>,
    /// SHA-256 of the component's bytes, hex.
    digest: String,
    engine: Engine,
    pre: HealthInterpreterPre<PluginState>,
}

/// An interpreter configured for one pool.
pub struct WasmInterpreter {
    compiled: Arc<CompiledInterpreter>,
    options: String,
    kind: ProbeKind,
    sandbox: SandboxConfig,
    needs: ProbeNeeds,
    instances: Instances<InterpreterInstance>,
    /// `interpret`'s calls and their durations.
    calls: HookMetrics,
    /// The metrics the plugin defines, for every instance.
    metrics: Arc<MetricRegistry>,
}

struct InterpreterInstance {
    store: Store<PluginState>,
    bindings: HealthInterpreter,
}

// === impl CompiledInterpreter ===

impl CompiledInterpreter {
    pub(super) fn new(
        name: String,
        digest: String,
        engine: Engine,
        pre: HealthInterpreterPre<PluginState>,
    ) -> Self {
        CompiledInterpreter {
            name: name.into(),
            digest,
            engine,
            pre,
        }
    }
}

// === impl WasmInterpreter ===

impl WasmInterpreter {
    /// Configures `compiled` for a pool probed as `kind`; rejected options
    /// or a bad declaration fail the config load.
    pub fn new(
        pool: &str,
        compiled: Arc<CompiledInterpreter>,
        options: String,
        kind: ProbeKind,
        sandbox: SandboxConfig,
    ) -> Result<Self, Error> {
        let used_by = PluginUse::Pool(pool.into());
        let metrics = Arc::new(MetricRegistry::new(
            Arc::clone(&compiled.name),
            used_by.clone(),
            sandbox.max_metric_series,
        ));
        let (instance, declared) = instantiate(&compiled, &options, kind, &sandbox, &metrics)?;
        let needs = check_needs(declared, kind).map_err(|message| Error::Rejected {
            plugin: compiled.name.to_string(),
            message,
        })?;
        let calls = HookMetrics::new(&compiled.name, "interpret");
        let interpreter = WasmInterpreter {
            instances: Instances::new(Arc::clone(&compiled.name), used_by),
            metrics,
            compiled,
            options,
            kind,
            sandbox,
            needs,
            calls,
        };
        interpreter.instances.check_in(instance);
        Ok(interpreter)
    }

    /// The linear memory of this thread's instance, in bytes (for `plugin
    /// run --bench`).
    pub fn instance_memory_bytes(&self) -> Result<usize, Error> {
        self.instances.call(
            || {
                let made = instantiate(
                    &self.compiled,
                    &self.options,
                    self.kind,
                    &self.sandbox,
                    &self.metrics,
                );
                made.map(|(instance, _)| instance)
            },
            |instance| Ok(instance.store.data().memory.linear_bytes()),
        )
    }
}

fn instantiate(
    compiled: &CompiledInterpreter,
    options: &str,
    kind: ProbeKind,
    sandbox: &SandboxConfig,
    metrics: &Arc<MetricRegistry>,
) -> Result<(InterpreterInstance, health::ProbeNeeds), Error> {
    let (store, bindings, needs) = set_up(
        &compiled.engine,
        &compiled.name,
        sandbox.memory_limit_bytes,
        metrics,
        |store| compiled.pre.instantiate(store),
        |bindings, store| {
            bindings
                .bascule_plugin_health()
                .call_configure(store, options, kind.into())
        },
    )?;
    Ok((InterpreterInstance { store, bindings }, needs))
}

/// The declaration, checked: valid header names, TCP-only fields only on
/// TCP probes.
fn check_needs(needs: health::ProbeNeeds, kind: ProbeKind) -> Result<ProbeNeeds, String> {
    let headers = super::declared_header_names(&needs.headers)?;
    if kind == ProbeKind::Http && (needs.send.is_some() || needs.until.is_some()) {
        return Err("declared `send` or `until` for an HTTP probe".to_owned());
    }
    if needs.until.as_ref().is_some_and(Vec::is_empty) {
        return Err("declared an empty `until`".to_owned());
    }
    if kind == ProbeKind::Udp && needs.send.as_ref().is_none_or(Vec::is_empty) {
        return Err(
            "declared no `send` for a UDP probe: a UDP server says nothing unasked".to_owned(),
        );
    }
    Ok(ProbeNeeds {
        headers,
        body: needs.body,
        send: needs.send,
        until: needs.until,
    })
}

impl checks::Interpreter for WasmInterpreter {
    fn name(&self) -> &str {
        &self.compiled.name
    }

    fn needs(&self) -> &ProbeNeeds {
        &self.needs
    }

    fn report(&self) -> Option<crate::upstream::PluginReport> {
        Some(crate::upstream::PluginReport {
            digest: self.compiled.digest.clone(),
            failures: self.instances.failures(),
        })
    }

    fn interpret(&self, outcome: &ProbeOutcome) -> Result<Verdict, InterpretError> {
        let limits = Limits::of(&self.sandbox);
        let plugin = self.instances.plugin();
        let outcome = health::ProbeOutcome::from(outcome);
        self.calls
            .measure(|| {
                self.instances.call(
                    || {
                        instantiate(
                            &self.compiled,
                            &self.options,
                            self.kind,
                            &self.sandbox,
                            &self.metrics,
                        )
                        .map(|(instance, _)| instance)
                    },
                    |instance| {
                        let _in_call = budget::arm(&mut instance.store, limits);
                        let verdict = instance
                            .bindings
                            .bascule_plugin_health()
                            .call_interpret(&mut instance.store, &outcome)
                            .map_err(|e| classify(e, &instance.store, plugin))?;
                        checked_verdict(verdict).map_err(|reason| Error::InvalidOutput {
                            plugin: plugin.to_string(),
                            reason,
                        })
                    },
                )
            })
            .map_err(InterpretError::new)
    }
}

/// The verdict, with a weight factor in (0, 1] as thousandths and a
/// bounded reason.
fn checked_verdict(verdict: health::Verdict) -> Result<Verdict, String> {
    let bounded = |mut reason: String| {
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        reason
    };
    Ok(match verdict {
        health::Verdict::Healthy(reason) => Verdict::Healthy(bounded(reason)),
        health::Verdict::Unhealthy(reason) => Verdict::Unhealthy(bounded(reason)),
        health::Verdict::Degraded(degraded) => {
            let factor = degraded.weight_factor;
            if !(factor > 0.0 && factor <= 1.0) {
                return Err(format!("degraded weight factor {factor} is not in (0, 1]"));
            }
            // In (0, 1], so the product is in (0, 1000].
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let permille = ((factor * 1000.0).round() as u32).clamp(1, 1000);
            Verdict::Degraded {
                permille,
                reason: bounded(degraded.reason),
            }
        }
    })
}

// === impl conversions ===

impl From<ProbeKind> for health::ProbeKind {
    fn from(kind: ProbeKind) -> Self {
        match kind {
            ProbeKind::Http => health::ProbeKind::Http,
            ProbeKind::Tcp => health::ProbeKind::Tcp,
            ProbeKind::Udp => health::ProbeKind::Udp,
        }
    }
}

impl From<&ProbeOutcome> for health::ProbeOutcome {
    fn from(outcome: &ProbeOutcome) -> Self {
        health::ProbeOutcome {
            kind: outcome.kind.into(),
            status: outcome.status,
            headers: outcome.headers.clone(),
            body: outcome.body.clone(),
            latency_us: u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX),
            error: outcome.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
