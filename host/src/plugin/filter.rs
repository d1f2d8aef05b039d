//! A header filter plugin configured for the routes that list it: request
//! headers rewritten before balancing, response headers before they reach
//! the client, or a local answer instead of forwarding.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use wasmtime::{Engine, Store};

use super::Error;
use super::bindings::{HeaderFilter, HeaderFilterPre, filter};
use super::instances::{Instances, classify, new_store, ticks};
use super::state::PluginState;
use crate::config::SandboxConfig;
use crate::l7::{self, FilterError, FilterVerdict, LocalResponse};
use crate::upstream::RequestView;

/// Largest local response body a filter may produce.
const MAX_LOCAL_BODY: usize = 64 * 1024;

/// A compiled header filter component, linked and ready to instantiate.
pub struct CompiledFilter {
    name: Arc<str>,
    engine: Engine,
    pre: HeaderFilterPre<PluginState>,
}

/// A header filter with its options, shared by the routes that list it.
pub struct WasmFilter {
    /// The `[filters.NAME]` it was configured from.
    name: Arc<str>,
    compiled: Arc<CompiledFilter>,
    options: String,
    sandbox: SandboxConfig,
    instances: Instances<FilterInstance>,
}

struct FilterInstance {
    store: Store<PluginState>,
    bindings: HeaderFilter,
}

// === impl CompiledFilter ===

impl CompiledFilter {
    pub(super) fn new(name: String, engine: Engine, pre: HeaderFilterPre<PluginState>) -> Self {
        CompiledFilter {
            name: name.into(),
            engine,
            pre,
        }
    }
}

// === impl WasmFilter ===

impl WasmFilter {
    /// Configures `compiled` with `options` (JSON). One instance is created
    /// and configured now, so that rejected options fail the config load.
    pub fn new(
        name: &str,
        compiled: Arc<CompiledFilter>,
        options: String,
        sandbox: SandboxConfig,
    ) -> Result<Self, Error> {
        let filter = WasmFilter {
            name: name.into(),
            instances: Instances::new(Arc::clone(&compiled.name)),
            compiled,
            options,
            sandbox,
        };
        let instance = filter.instantiate()?;
        filter.instances.check_in(instance);
        Ok(filter)
    }

    fn instantiate(&self) -> Result<FilterInstance, Error> {
        let plugin = &self.compiled.name;
        let mut store = new_store(
            &self.compiled.engine,
            plugin,
            self.sandbox.memory_limit_bytes,
        );
        let bindings = self
            .compiled
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store, plugin))?;
        bindings
            .bascule_plugin_filter()
            .call_configure(&mut store, &self.options)
            .map_err(|e| classify(e, &store, plugin))?
            .map_err(|e| Error::Rejected {
                plugin: plugin.to_string(),
                message: e.message,
            })?;
        metrics::counter!(crate::metrics::PLUGIN_INSTANCES_CREATED, "plugin" => plugin.to_string())
            .increment(1);
        Ok(FilterInstance { store, bindings })
    }
}

impl l7::HeaderFilter for WasmFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn plugin(&self) -> &str {
        &self.compiled.name
    }

    fn on_request(&self, request: &mut RequestView) -> Result<FilterVerdict, FilterError> {
        let budget = self.sandbox.call_timeout;
        self.instances
            .call(
                || self.instantiate(),
                |instance| instance.on_request(request, self.instances.plugin(), budget),
            )
            .map_err(FilterError::new)
    }

    fn on_response(
        &self,
        request: &RequestView,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Result<(), FilterError> {
        let budget = self.sandbox.call_timeout;
        self.instances
            .call(
                || self.instantiate(),
                |instance| {
                    instance.on_response(request, status, headers, self.instances.plugin(), budget)
                },
            )
            .map_err(FilterError::new)
    }
}

// === impl FilterInstance ===

impl FilterInstance {
    fn on_request(
        &mut self,
        request: &mut RequestView,
        plugin: &str,
        budget: Duration,
    ) -> Result<FilterVerdict, Error> {
        self.store.data_mut().lend(request);
        self.store.set_epoch_deadline(ticks(budget));
        let result = self
            .bindings
            .bascule_plugin_filter()
            .call_on_request(&mut self.store);
        self.store.data_mut().give_back(request);
        match guest_result(result, &self.store, plugin)? {
            filter::Verdict::Forward => Ok(FilterVerdict::Forward),
            filter::Verdict::Respond(response) => local_response(response, plugin)
                .map(FilterVerdict::Respond)
                .map_err(|reason| Error::InvalidOutput {
                    plugin: plugin.to_owned(),
                    reason,
                }),
        }
    }

    fn on_response(
        &mut self,
        request: &RequestView,
        status: StatusCode,
        headers: &mut HeaderMap,
        plugin: &str,
        budget: Duration,
    ) -> Result<(), Error> {
        let state = self.store.data_mut();
        state.show(request);
        state.response_headers = Some(std::mem::take(headers));
        self.store.set_epoch_deadline(ticks(budget));
        let result = self
            .bindings
            .bascule_plugin_filter()
            .call_on_response(&mut self.store, status.as_u16());
        let state = self.store.data_mut();
        state.hide();
        *headers = state.response_headers.take().unwrap_or_default();
        guest_result(result, &self.store, plugin)
    }
}

/// Flattens a call's outcome: sandbox failures classified, the guest's own
/// error reported as such.
fn guest_result<T>(
    result: wasmtime::Result<Result<T, filter::PluginError>>,
    store: &Store<PluginState>,
    plugin: &str,
) -> Result<T, Error> {
    result
        .map_err(|e| classify(e, store, plugin))?
        .map_err(|e| Error::Guest {
            plugin: plugin.to_owned(),
            message: e.message,
        })
}

/// Checks what a plugin asked to send: a real status, valid headers that
/// are not the proxy's own, a bounded body.
fn local_response(response: filter::LocalResponse, plugin: &str) -> Result<LocalResponse, String> {
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|status| (200..=599).contains(&status.as_u16()))
        .ok_or_else(|| format!("status {} is not 200-599", response.status))?;
    if response.body.len() > MAX_LOCAL_BODY {
        return Err(format!(
            "a local response body of {} bytes is over the {MAX_LOCAL_BODY}-byte limit",
            response.body.len()
        ));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        if crate::header_rules::is_proxy_owned(&name) {
            return Err(format!("header `{name}` belongs to the proxy"));
        }
        let value = HeaderValue::try_from(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.append(name, value);
    }
    tracing::debug!(plugin, status = status.as_u16(), "filter answered locally");
    Ok(LocalResponse {
        status,
        headers,
        body: response.body,
    })
}
