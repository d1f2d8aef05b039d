//! A balancer plugin as a [`BackendSelection`]: one long-lived instance per
//! worker thread, every call bounded by the sandbox, new backend
//! generations pushed to idle instances by the supervisor
//! ([`BackendSelection::prepare`]).

use std::sync::Arc;

use wasmtime::{Engine, Store};

use super::Error;
use super::bindings::{Balancer, BalancerPre, balance, types};
use super::budget::{self, Limits};
use super::hook_metrics::HookMetrics;
use super::instances::{Instances, PluginUse, SETUP_LIMITS, classify, set_up};
use super::metric_registry::MetricRegistry;
use super::state::PluginState;
use crate::config::SandboxConfig;
use crate::upstream::{
    BackendSelection, BackendSet, PluginReport, Protocol, RequestNeeds, RequestView, Selection,
    SelectionError,
};

/// A compiled balancer component, linked and ready to instantiate.
pub struct CompiledBalancer {
    name: Arc<str>,
    /// SHA-256 of the component's bytes, hex.
    digest: String,
    engine: Engine,
    pre: BalancerPre<PluginState>,
}

/// A balancer plugin configured for one pool.
pub struct WasmBalancer {
    compiled: Arc<CompiledBalancer>,
    options: String,
    protocols: Vec<types::Protocol>,
    sandbox: SandboxConfig,
    /// What `select` reads of each request, as the first instance declared.
    needs: RequestNeeds,
    instances: Instances<BalancerInstance>,
    /// `select`'s calls and their durations.
    calls: HookMetrics,
    /// The metrics the plugin defines, for every instance.
    metrics: Arc<MetricRegistry>,
}

/// One instance and the backend generation it has learned.
struct BalancerInstance {
    store: Store<PluginState>,
    bindings: Balancer,
    generation: Option<u64>,
}

// === impl CompiledBalancer ===

impl CompiledBalancer {
    pub(super) fn new(
        name: String,
        digest: String,
        engine: Engine,
        pre: BalancerPre<PluginState>,
    ) -> Self {
        CompiledBalancer {
            name: name.into(),
            digest,
            engine,
            pre,
        }
    }

    /// The plugin's name (`builtin:round-robin`, or its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the compiled code lives: equal ranges mean one compilation.
    #[cfg(test)]
    pub(super) fn code(&self) -> std::ops::Range<*const u8> {
        self.pre.instance_pre().component().image_range()
    }
}

// === impl WasmBalancer ===

impl WasmBalancer {
    /// Configures `compiled` for a pool served over `protocols`. One
    /// instance is created, configured and given `backends` now, so that a
    /// plugin that rejects its options or traps on setup fails the config
    /// load, not a request.
    pub fn new(
        pool: &str,
        compiled: Arc<CompiledBalancer>,
        options: String,
        protocols: Vec<Protocol>,
        sandbox: SandboxConfig,
        backends: &Arc<BackendSet>,
    ) -> Result<Self, Error> {
        let used_by = PluginUse::Pool(pool.into());
        let mut balancer = WasmBalancer {
            calls: HookMetrics::new(&compiled.name, "select"),
            metrics: Arc::new(MetricRegistry::new(
                Arc::clone(&compiled.name),
                used_by.clone(),
                sandbox.max_metric_series,
            )),
            instances: Instances::new(Arc::clone(&compiled.name), used_by),
            compiled,
            options,
            protocols: protocols.into_iter().map(Into::into).collect(),
            sandbox,
            needs: RequestNeeds::default(),
        };
        let (mut instance, needs) = balancer.configured()?;
        balancer.needs = RequestNeeds::try_from(needs).map_err(|e| Error::Rejected {
            plugin: balancer.compiled.name.to_string(),
            message: format!("declared {e}"),
        })?;
        instance.learn(backends, &balancer.compiled.name)?;
        balancer.instances.check_in(instance);
        Ok(balancer)
    }

    /// The linear memory of this thread's instance, in bytes (for `plugin
    /// run --bench`).
    pub fn instance_memory_bytes(&self) -> Result<usize, Error> {
        self.instances.call(
            || self.instantiate(),
            |instance| Ok(instance.store.data().memory.linear_bytes()),
        )
    }

    /// Another instance; it declares what the first did (configure sees the
    /// same options), so its answer is not checked again.
    fn instantiate(&self) -> Result<BalancerInstance, Error> {
        self.configured().map(|(instance, _)| instance)
    }

    fn configured(&self) -> Result<(BalancerInstance, types::RequestNeeds), Error> {
        let (store, bindings, needs) = set_up(
            &self.compiled.engine,
            &self.compiled.name,
            self.sandbox.memory_limit_bytes,
            &self.metrics,
            |store| self.compiled.pre.instantiate(store),
            |bindings, store| {
                bindings.bascule_plugin_balance().call_configure(
                    store,
                    &self.options,
                    &self.protocols,
                )
            },
        )?;
        let instance = BalancerInstance {
            store,
            bindings,
            generation: None,
        };
        Ok((instance, needs))
    }
}

impl BackendSelection for WasmBalancer {
    fn name(&self) -> &str {
        self.compiled.name()
    }

    fn select(
        &self,
        backends: &Arc<BackendSet>,
        request: &RequestView,
    ) -> Result<Selection, SelectionError> {
        let limits = Limits::of(&self.sandbox);
        self.calls
            .measure(|| {
                self.instances.call(
                    || self.instantiate(),
                    |instance| {
                        instance.select(backends, request, &self.needs, &self.compiled.name, limits)
                    },
                )
            })
            .map_err(SelectionError::new)
    }

    fn report(&self) -> Option<PluginReport> {
        Some(PluginReport {
            digest: self.compiled.digest.clone(),
            failures: self.instances.failures(),
        })
    }

    fn prepare(&self, backends: &Arc<BackendSet>) -> usize {
        let plugin = &self.compiled.name;
        let pushed = self.instances.refresh(
            || self.instantiate(),
            |instance| instance.learn(backends, plugin),
        );
        metrics::counter!(crate::metrics::PLUGIN_GENERATIONS_PUSHED, "plugin" => plugin.to_string())
            .increment(pushed as u64);
        pushed
    }
}

// === impl BalancerInstance ===

impl BalancerInstance {
    /// Pushes `backends` if this instance has not seen their generation.
    fn learn(&mut self, backends: &Arc<BackendSet>, plugin: &str) -> Result<(), Error> {
        if self.generation == Some(backends.generation) {
            return Ok(());
        }
        let list: Vec<balance::Backend> = backends.backends.iter().map(Into::into).collect();
        let _in_call = budget::arm(&mut self.store, SETUP_LIMITS);
        self.bindings
            .bascule_plugin_balance()
            .call_set_backends(&mut self.store, backends.generation, &list)
            .map_err(|e| classify(e, &self.store, plugin))?;
        self.store.data_mut().backends = Some(Arc::clone(backends));
        self.generation = Some(backends.generation);
        Ok(())
    }

    fn select(
        &mut self,
        backends: &Arc<BackendSet>,
        request: &RequestView,
        needs: &RequestNeeds,
        plugin: &str,
        limits: Limits,
    ) -> Result<Selection, Error> {
        self.learn(backends, plugin)?;
        let facts: types::RequestFacts = needs.extract(request).into();
        self.store.data_mut().show(request);
        let _in_call = budget::arm(&mut self.store, limits);
        let result = self
            .bindings
            .bascule_plugin_balance()
            .call_select(&mut self.store, &facts);
        let state = self.store.data_mut();
        state.hide();
        let affinity = state.affinity.take();
        let answer = result
            .map_err(|e| classify(e, &self.store, plugin))?
            .map_err(|e| Error::Guest {
                plugin: plugin.to_owned(),
                message: match e {
                    balance::SelectError::Failed => "select failed (its log says why)".to_owned(),
                    balance::SelectError::NotConfigured => {
                        "select was called before configure".to_owned()
                    }
                },
            })?;
        let ranked = candidates(&answer).map_err(|reason| Error::InvalidOutput {
            plugin: plugin.to_owned(),
            reason,
        })?;
        let len = backends.len();
        if let Some(bad) = ranked
            .iter()
            .find(|&&i| usize::try_from(i).map_or(true, |i| i >= len))
        {
            return Err(Error::InvalidOutput {
                plugin: plugin.to_owned(),
                reason: format!("index {bad} is out of range for {len} backends"),
            });
        }
        let affinity = affinity
            .transpose()
            .map_err(|e| Error::InvalidOutput {
                plugin: plugin.to_owned(),
                reason: e.to_string(),
            })?
            .filter(|_| request.protocol == Protocol::Http);
        Ok(Selection {
            candidates: ranked,
            affinity,
        })
    }
}

/// The indices of a `candidates` record, best first.
fn candidates(answer: &balance::Candidates) -> Result<Vec<u32>, String> {
    let slots = [answer.first, answer.second, answer.third, answer.fourth];
    let count = usize::from(answer.count);
    slots
        .get(..count)
        .map(<[u32]>::to_vec)
        .ok_or_else(|| format!("count {count} is over the 4 candidates a record holds"))
}
