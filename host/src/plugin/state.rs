//! The data every plugin `Store` holds, and the host imports served from it.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use http::HeaderMap;

use super::bindings::{affinity, backend_stats, headers, log, request_context, types};
use super::budget::CallBudget;
use super::limits::MemoryCap;
use super::log_gate::{LogGate, PLUGIN_LOG_BURST, PLUGIN_LOG_INTERVAL};
use super::metric_registry::MetricRegistry;
use crate::l7::RateLimits;
use crate::upstream::{
    AffinityCookie, AffinityCookieError, BackendSet, Protocol, RequestView, SameSite,
};

/// Log lines from plugins are cut to this many bytes so that a chatty
/// plugin cannot flood the host's log with one call.
const MAX_LOG_LINE: usize = 1024;

/// Store data of one plugin instance.
pub struct PluginState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: MemoryCap,
    /// The time accounting of the call in progress.
    pub(super) budget: CallBudget,
    /// Bounds the lines written through the `log` import.
    log_gate: LogGate,
    /// The request being balanced or filtered, for one call.
    pub(super) request: Option<RequestView>,
    /// The backends the instance last learned, for the stats import.
    pub(super) backends: Option<Arc<BackendSet>>,
    /// The affinity cookie asked for during the current `select`.
    pub(super) affinity: Option<Result<AffinityCookie, AffinityCookieError>>,
    /// The response headers lent for one `on-response` call; outside it,
    /// the `headers` import reads the shown request's headers.
    pub(super) response_headers: Option<HeaderMap>,
    /// The limits the `rate-limit` import takes tokens from (filters
    /// only; empty for other plugins).
    pub(super) rate_limits: Arc<RateLimits>,
    /// The metrics the plugin use defines, shared by its instances.
    pub(super) metrics: Arc<MetricRegistry>,
    /// Whether `configure` is running: the only time metrics may be
    /// declared.
    pub(super) configuring: bool,
}

// === impl PluginState ===

impl PluginState {
    /// Fresh state for an instance of `plugin` with a memory cap. WASI is
    /// linked with an empty context: no files, sockets, env or args.
    pub(super) fn new(
        plugin: Arc<str>,
        memory_limit_bytes: usize,
        metrics: Arc<MetricRegistry>,
    ) -> Self {
        PluginState {
            plugin,
            wasi: super::wasi::context(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_limit_bytes),
            budget: CallBudget::new(),
            log_gate: LogGate::new(PLUGIN_LOG_INTERVAL, PLUGIN_LOG_BURST),
            request: None,
            backends: None,
            affinity: None,
            response_headers: None,
            rate_limits: Arc::default(),
            metrics,
            configuring: false,
        }
    }

    /// Shows `request` to one call, for the lazy `request-context` and
    /// `headers` imports: the view is shared, nothing is copied. Hide it
    /// before editing the head, or the edit copies it.
    pub(super) fn show(&mut self, request: &RequestView) {
        self.request = Some(request.clone());
    }

    /// Ends what [`PluginState::show`] began.
    pub(super) fn hide(&mut self) {
        self.request = None;
    }

    fn http(&self) -> Option<&http::request::Parts> {
        self.request.as_ref()?.http.as_deref()
    }

    /// The headers the `headers` import reads.
    fn message_headers(&self) -> Option<&HeaderMap> {
        match &self.response_headers {
            Some(headers) => Some(headers),
            None => Some(&self.http()?.headers),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl request_context::Host for PluginState {
    fn request_protocol(&mut self) -> types::Protocol {
        self.request
            .as_ref()
            .map_or(Protocol::Http, |r| r.protocol)
            .into()
    }

    fn listener(&mut self) -> String {
        self.request
            .as_ref()
            .map(|r| r.listener.to_string())
            .unwrap_or_default()
    }

    fn client_ip(&mut self) -> String {
        self.request
            .as_ref()
            .map(|r| r.client.ip().to_string())
            .unwrap_or_default()
    }

    fn client_port(&mut self) -> u16 {
        self.request.as_ref().map_or(0, |r| r.client.port())
    }

    fn sni(&mut self) -> Option<String> {
        self.request.as_ref()?.sni.as_deref().map(str::to_owned)
    }

    fn method(&mut self) -> String {
        self.http()
            .map(|parts| parts.method.as_str().to_owned())
            .unwrap_or_default()
    }

    fn host(&mut self) -> Option<String> {
        self.request.as_ref()?.host()
    }

    fn path(&mut self) -> String {
        self.http()
            .map(|parts| parts.uri.path().to_owned())
            .unwrap_or_default()
    }

    fn query(&mut self) -> Option<String> {
        self.http()?.uri.query().map(str::to_owned)
    }

    fn header(&mut self, name: String) -> Option<String> {
        let value = self.http()?.headers.get(name.as_str())?;
        value.to_str().ok().map(str::to_owned)
    }

    fn cookie(&mut self, name: String) -> Option<String> {
        self.request.as_ref()?.cookie(&name)
    }
}

impl headers::Host for PluginState {
    fn get(&mut self, name: String) -> Option<String> {
        let value = self.message_headers()?.get(name.as_str())?;
        value.to_str().ok().map(str::to_owned)
    }

    fn get_all(&mut self, name: String) -> Vec<String> {
        self.message_headers().map_or_else(Vec::new, |headers| {
            headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|value| value.to_str().ok())
                .map(str::to_owned)
                .collect()
        })
    }

    fn names(&mut self) -> Vec<String> {
        self.message_headers().map_or_else(Vec::new, |headers| {
            headers
                .keys()
                .map(|name| name.as_str().to_owned())
                .collect()
        })
    }
}

impl backend_stats::Host for PluginState {
    fn stats(&mut self, index: u32) -> Option<backend_stats::BackendSnapshot> {
        let backends = self.backends.as_ref()?;
        let backend = backends.get(usize::try_from(index).ok()?)?;
        Some(backend.stats.snapshot().into())
    }

    fn all_stats(&mut self) -> Vec<backend_stats::BackendSnapshot> {
        self.backends.as_ref().map_or_else(Vec::new, |backends| {
            backends
                .backends
                .iter()
                .map(|backend| backend.stats.snapshot().into())
                .collect()
        })
    }
}

impl affinity::Host for PluginState {
    fn pin_with_cookie(&mut self, cookie: affinity::AffinityCookie) {
        if self.request.is_none() {
            return;
        }
        self.affinity = Some(affinity_cookie(cookie));
    }

    fn pin_with_cookie_same_site(
        &mut self,
        cookie: affinity::AffinityCookie,
        same_site: affinity::SameSite,
    ) {
        if self.request.is_none() {
            return;
        }
        let same_site = match same_site {
            affinity::SameSite::Strict => SameSite::Strict,
            affinity::SameSite::Lax => SameSite::Lax,
            affinity::SameSite::None => SameSite::None,
        };
        self.affinity =
            Some(affinity_cookie(cookie).and_then(|cookie| cookie.with_same_site(same_site)));
    }
}

fn affinity_cookie(
    cookie: affinity::AffinityCookie,
) -> Result<AffinityCookie, AffinityCookieError> {
    AffinityCookie::new(
        cookie.name,
        cookie.max_age_seconds,
        cookie.path,
        cookie.secure,
        cookie.http_only,
    )
}

impl log::Host for PluginState {
    fn write(&mut self, level: log::Level, message: String) {
        let Some(suppressed) = self.log_gate.admit() else {
            return;
        };
        if suppressed > 0 {
            tracing::warn!(
                plugin = &*self.plugin,
                suppressed,
                "plugin log lines dropped (rate limit)"
            );
        }
        let message = message
            .get(..message.floor_char_boundary(MAX_LOG_LINE))
            .unwrap_or_default();
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}
