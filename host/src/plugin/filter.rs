//! A header filter plugin configured for the routes that list it: what it
//! declared at configure time decides what runs per message. Static edits
//! are applied by the host with no guest call; a phase the filter declared
//! is one call with the declared values, answered with edits as data that
//! are checked and applied all or nothing; an undeclared phase costs
//! nothing.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use wasmtime::{Engine, Store};

use super::Error;
use super::bindings::{HeaderFilter, HeaderFilterPre, filter, types};
use super::budget::{self, Limits};
use super::edits::{self, Edit, Values};
use super::hook_metrics::HookMetrics;
use super::instances::{Instances, PluginUse, classify, set_up};
use super::metric_registry::MetricRegistry;
use super::state::PluginState;
use crate::config::SandboxConfig;
use crate::l7::{self, FilterError, FilterVerdict, KeptRequest, LocalResponse, RateLimits};
use crate::upstream::{RequestNeeds, RequestView, header_pairs};

/// Largest local response body a filter may produce.
const MAX_LOCAL_BODY: usize = 64 * 1024;

/// A compiled header filter component, linked and ready to instantiate.
pub struct CompiledFilter {
    name: Arc<str>,
    /// SHA-256 of the component's bytes, hex.
    digest: String,
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
    /// The config's `[limits.NAME]`, for the `rate-limit` import.
    rate_limits: Arc<RateLimits>,
    declared: Declared,
    instances: Instances<FilterInstance>,
    /// `on-request`'s and `on-response`'s calls and their durations.
    calls: [HookMetrics; 2],
    /// The metrics the plugin defines, for every instance.
    metrics: Arc<MetricRegistry>,
}

/// What the filter declared at configure time, checked.
struct Declared {
    /// What `on-request` reads; `None`: never called.
    on_request: Option<RequestNeeds>,
    /// What `on-response` reads of the request, and which response headers.
    on_response: Option<(RequestNeeds, Vec<HeaderName>)>,
    request_edits: Vec<Edit>,
    response_edits: Vec<Edit>,
    /// The request fields the response edits' templates render.
    response_template_needs: RequestNeeds,
}

struct FilterInstance {
    store: Store<PluginState>,
    bindings: HeaderFilter,
}

// === impl CompiledFilter ===

impl CompiledFilter {
    pub(super) fn new(
        name: String,
        digest: String,
        engine: Engine,
        pre: HeaderFilterPre<PluginState>,
    ) -> Self {
        CompiledFilter {
            name: name.into(),
            digest,
            engine,
            pre,
        }
    }
}

// === impl WasmFilter ===

impl WasmFilter {
    /// Configures `compiled` with `options` (JSON). One instance is created
    /// and configured now, so that rejected options and bad declarations
    /// fail the config load.
    pub fn new(
        name: &str,
        compiled: Arc<CompiledFilter>,
        options: String,
        sandbox: SandboxConfig,
        rate_limits: Arc<RateLimits>,
    ) -> Result<Self, Error> {
        let used_by = PluginUse::Filter(name.into());
        let metrics = Arc::new(MetricRegistry::new(
            Arc::clone(&compiled.name),
            used_by.clone(),
            sandbox.max_metric_series,
        ));
        let (instance, needs) = instantiate(&compiled, &options, &sandbox, &rate_limits, &metrics)?;
        let declared = Declared::check(needs).map_err(|reason| Error::Rejected {
            plugin: compiled.name.to_string(),
            message: reason,
        })?;
        let calls =
            ["on-request", "on-response"].map(|hook| HookMetrics::new(&compiled.name, hook));
        let filter = WasmFilter {
            name: name.into(),
            calls,
            instances: Instances::new(Arc::clone(&compiled.name), used_by),
            metrics,
            compiled,
            options,
            sandbox,
            rate_limits,
            declared,
        };
        filter.instances.check_in(instance);
        Ok(filter)
    }

    /// Another instance; it declares what the first did (configure sees the
    /// same options), so its answer is not checked again.
    /// The linear memory of this thread's instance, in bytes (for `plugin
    /// run --bench`).
    pub fn instance_memory_bytes(&self) -> Result<usize, Error> {
        self.instances.call(
            || self.instantiate(),
            |instance| Ok(instance.store.data().memory.linear_bytes()),
        )
    }

    fn instantiate(&self) -> Result<FilterInstance, Error> {
        instantiate(
            &self.compiled,
            &self.options,
            &self.sandbox,
            &self.rate_limits,
            &self.metrics,
        )
        .map(|(instance, _)| instance)
    }

    fn invalid(&self, reason: String) -> FilterError {
        FilterError::new(Error::InvalidOutput {
            plugin: self.compiled.name.to_string(),
            reason,
        })
    }
}

fn instantiate(
    compiled: &CompiledFilter,
    options: &str,
    sandbox: &SandboxConfig,
    rate_limits: &Arc<RateLimits>,
    metrics: &Arc<MetricRegistry>,
) -> Result<(FilterInstance, filter::FilterNeeds), Error> {
    let (store, bindings, needs) = set_up(
        &compiled.engine,
        &compiled.name,
        sandbox.memory_limit_bytes,
        metrics,
        |store| {
            store.data_mut().rate_limits = Arc::clone(rate_limits);
            compiled.pre.instantiate(store)
        },
        |bindings, store| {
            bindings
                .bascule_plugin_filter()
                .call_configure(store, options)
        },
    )?;
    Ok((FilterInstance { store, bindings }, needs))
}

impl l7::HeaderFilter for WasmFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn plugin(&self) -> &str {
        &self.compiled.name
    }

    fn report(&self) -> Option<crate::upstream::PluginReport> {
        Some(crate::upstream::PluginReport {
            digest: self.compiled.digest.clone(),
            failures: self.instances.failures(),
        })
    }

    fn on_request(&self, request: &mut RequestView) -> Result<FilterVerdict, FilterError> {
        let declared = &self.declared;
        if !declared.request_edits.is_empty() {
            let mut headers = std::mem::take(&mut head_mut(request).headers);
            let applied = edits::apply(
                &declared.request_edits,
                &mut headers,
                &Values::Request(request),
            );
            head_mut(request).headers = headers;
            applied.map_err(|reason| self.invalid(reason))?;
        }
        let Some(needs) = &declared.on_request else {
            return Ok(FilterVerdict::Forward);
        };
        let limits = Limits::of(&self.sandbox);
        let plugin = self.instances.plugin();
        let invalid = |reason| Error::InvalidOutput {
            plugin: plugin.to_string(),
            reason,
        };
        // The answer is checked inside the call, so that a bad one counts
        // as the plugin's failure and replaces its instance.
        let [on_request, _] = &self.calls;
        let answer = on_request
            .measure(|| {
                self.instances.call(
                    || self.instantiate(),
                    |instance| match instance.on_request(request, needs, plugin, limits)? {
                        filter::Verdict::Forward(changes) => Changes::check(changes)
                            .map(Answer::Forward)
                            .map_err(invalid),
                        filter::Verdict::Respond(response) => local_response(response, plugin)
                            .map(Answer::Respond)
                            .map_err(invalid),
                    },
                )
            })
            .map_err(FilterError::new)?;
        match answer {
            Answer::Forward(changes) => {
                changes
                    .apply(request)
                    .map_err(|reason| self.invalid(reason))?;
                Ok(FilterVerdict::Forward)
            }
            Answer::Respond(response) => Ok(FilterVerdict::Respond(response)),
        }
    }

    fn keep_for_response(&self, request: &RequestView) -> Option<KeptRequest> {
        let declared = &self.declared;
        if declared.on_response.is_none() && declared.response_edits.is_empty() {
            return None;
        }
        let call = match &declared.on_response {
            Some((needs, _)) => needs.extract(request),
            None => RequestNeeds::default().extract(request),
        };
        Some(KeptRequest {
            call,
            templates: declared.response_template_needs.extract(request),
        })
    }

    fn on_response(
        &self,
        request: KeptRequest,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Result<(), FilterError> {
        let declared = &self.declared;
        // What the static edits' templates render; the edits a call returns
        // are literal and read nothing from it.
        let values = Values::Kept {
            facts: &request.templates,
            needs: &declared.response_template_needs,
            status,
        };
        if !declared.response_edits.is_empty() {
            edits::apply(&declared.response_edits, headers, &values)
                .map_err(|reason| self.invalid(reason))?;
        }
        let Some((_, names)) = &declared.on_response else {
            return Ok(());
        };
        let limits = Limits::of(&self.sandbox);
        let call = ResponseCall {
            request: request.call.into(),
            status,
            names,
        };
        let plugin = self.instances.plugin();
        let [_, on_response] = &self.calls;
        let checked = on_response
            .measure(|| {
                self.instances.call(
                    || self.instantiate(),
                    |instance| {
                        let returned = instance.on_response(&call, headers, plugin, limits)?;
                        edits::check_returned(returned).map_err(|reason| Error::InvalidOutput {
                            plugin: plugin.to_string(),
                            reason,
                        })
                    },
                )
            })
            .map_err(FilterError::new)?;
        edits::apply(&checked, headers, &values).map_err(|reason| self.invalid(reason))
    }
}

/// The request's head for an edit; the view is the only holder here, so
/// nothing is copied.
fn head_mut(request: &mut RequestView) -> &mut http::request::Parts {
    let head = request
        .http
        .get_or_insert_with(|| Arc::new(http::Request::new(()).into_parts().0));
    Arc::make_mut(head)
}

// === impl Declared ===

impl Declared {
    fn check(needs: filter::FilterNeeds) -> Result<Self, String> {
        let request_needs = |needs: types::RequestNeeds| {
            RequestNeeds::try_from(needs).map_err(|e| format!("declared {e}"))
        };
        let on_request = needs.on_request.map(request_needs).transpose()?;
        let on_response = match needs.on_response {
            Some(response) => {
                let names = super::declared_header_names(&response.headers)?;
                Some((request_needs(response.request)?, names))
            }
            None => None,
        };
        let declared_edits = |list: Vec<filter::HeaderEdit>, response: bool| {
            list.into_iter()
                .map(|edit| Edit::declared(edit, response))
                .collect::<Result<Vec<_>, _>>()
        };
        let request_edits = declared_edits(needs.request_edits, false)?;
        let response_edits = declared_edits(needs.response_edits, true)?;
        let response_template_needs = response_edits
            .iter()
            .flat_map(Edit::fields)
            .fold(RequestNeeds::default(), RequestNeeds::with);
        Ok(Declared {
            on_request,
            on_response,
            request_edits,
            response_edits,
            response_template_needs,
        })
    }
}

/// A checked `on-request` answer.
enum Answer {
    Forward(Changes),
    Respond(LocalResponse),
}

/// What `on-request` asked for besides answering, checked as a whole.
struct Changes {
    edits: Vec<Edit>,
    path: Option<String>,
}

impl Changes {
    fn check(changes: filter::RequestChanges) -> Result<Self, String> {
        let edits = edits::check_returned(changes.headers)?;
        if let Some(path) = &changes.path {
            let valid = path.starts_with('/')
                && !path.contains(['?', '#'])
                && http::uri::PathAndQuery::try_from(path.as_str()).is_ok();
            if !valid {
                return Err(format!(
                    "path `{path}` is not an absolute path without query or fragment"
                ));
            }
        }
        Ok(Changes {
            edits,
            path: changes.path,
        })
    }

    /// Applies the changes; the new URI is built before any header changes,
    /// so a failure leaves the request as it was.
    fn apply(self, request: &mut RequestView) -> Result<(), String> {
        let head = head_mut(request);
        let uri = match &self.path {
            Some(path) => Some(rewrite_path(&head.uri, path)?),
            None => None,
        };
        let mut headers = std::mem::take(&mut head.headers);
        let applied = edits::apply(&self.edits, &mut headers, &Values::Request(request));
        let head = head_mut(request);
        head.headers = headers;
        applied?;
        if let Some(uri) = uri {
            head.uri = uri;
        }
        Ok(())
    }
}

/// `uri` with its path replaced by `path`, its query kept.
fn rewrite_path(uri: &Uri, path: &str) -> Result<Uri, String> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| format!("path `{path}` is not valid"))?,
    );
    Uri::from_parts(parts).map_err(|_| format!("path `{path}` is not valid"))
}

/// One `on-response` call's arguments.
struct ResponseCall<'a> {
    request: types::RequestFacts,
    status: StatusCode,
    names: &'a [HeaderName],
}

// === impl FilterInstance ===

impl FilterInstance {
    fn on_request(
        &mut self,
        request: &RequestView,
        needs: &RequestNeeds,
        plugin: &str,
        limits: Limits,
    ) -> Result<filter::Verdict, Error> {
        let facts: types::RequestFacts = needs.extract(request).into();
        self.store.data_mut().show(request);
        let _in_call = budget::arm(&mut self.store, limits);
        let result = self
            .bindings
            .bascule_plugin_filter()
            .call_on_request(&mut self.store, &facts);
        self.store.data_mut().hide();
        guest_result(result, &self.store, plugin)
    }

    fn on_response(
        &mut self,
        call: &ResponseCall<'_>,
        headers: &mut HeaderMap,
        plugin: &str,
        limits: Limits,
    ) -> Result<Vec<filter::HeaderEdit>, Error> {
        let pairs = (!call.names.is_empty()).then(|| header_pairs(headers, call.names));
        self.store.data_mut().response_headers = Some(std::mem::take(headers));
        let _in_call = budget::arm(&mut self.store, limits);
        let result = self.bindings.bascule_plugin_filter().call_on_response(
            &mut self.store,
            &call.request,
            call.status.as_u16(),
            pairs.as_deref(),
        );
        *headers = self
            .store
            .data_mut()
            .response_headers
            .take()
            .unwrap_or_default();
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
