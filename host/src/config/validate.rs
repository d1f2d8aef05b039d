//! Raw TOML → validated [`Config`], collecting every error in one pass.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    RawBackend, RawConfig, RawFilter, RawListener, RawPool, RawRoute, RawSandbox, RawTableNames,
};
use super::*;

/// Parses and validates `source`.
pub(super) fn validate(source: ConfigSource) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = deserialize(&source)?;
    // The first pass succeeded, so this one cannot fail on shape.
    let names: RawTableNames = deserialize(&source)?;
    let mut validator = Validator {
        source: &source,
        errors: Vec::new(),
    };
    let pools: Vec<PoolConfig> = raw
        .pools
        .iter()
        .filter_map(|(name, pool)| {
            let spanned = names.pools.keys().find(|k| k.get_ref() == name)?;
            validator.pool(spanned, pool)
        })
        .collect();
    let filters: Vec<FilterConfig> = raw
        .filters
        .iter()
        .filter_map(|(name, filter)| {
            let spanned = names.filters.keys().find(|k| k.get_ref() == name)?;
            validator.filter(spanned, filter)
        })
        .collect();
    let known = Known {
        pools: raw.pools.keys().map(String::as_str).collect(),
        filters: raw.filters.keys().map(String::as_str).collect(),
    };
    let listeners = validator.listeners(&raw.listeners, &known);
    validator.proxy_protocol_only_for_tcp(&raw, &pools, &listeners);
    let sandbox = validator.sandbox(raw.sandbox.as_ref());
    let admin = raw.admin.as_ref().and_then(|admin| {
        let address = validator.socket_addr("admin.address".to_owned(), &admin.address)?;
        Some(AdminConfig { address })
    });
    if validator.errors.is_empty() {
        Ok(Config {
            source,
            listeners,
            pools,
            filters,
            sandbox,
            admin,
        })
    } else {
        Err(ConfigErrors(validator.errors))
    }
}

/// TOML syntax and shape (types, unknown or missing keys). Serde stops at
/// the first such error, so this reports one.
/// A plugin's options table as the JSON its `configure` receives (`{}`
/// when absent), and where it was written (the owning table when absent).
fn plugin_options(
    field: String,
    raw: Option<&Spanned<toml::Table>>,
    owner: &Spanned<String>,
) -> (String, FieldLocation) {
    match raw {
        Some(options) => (
            serde_json::to_string(options.get_ref()).unwrap_or_else(|_| "{}".to_owned()),
            FieldLocation::new(field, options.span()),
        ),
        None => ("{}".to_owned(), FieldLocation::new(field, owner.span())),
    }
}

/// The names routes may refer to.
struct Known<'a> {
    pools: HashSet<&'a str>,
    filters: HashSet<&'a str>,
}

fn deserialize<T: serde::de::DeserializeOwned>(source: &ConfigSource) -> Result<T, ConfigErrors> {
    let to_error = |field: String, error: toml::de::Error| {
        let location = FieldLocation {
            span: error.span(),
            field,
        };
        ConfigErrors::one(source.error(&location, error.message().trim_end()))
    };
    let deserializer = toml::de::Deserializer::parse(source.text())
        .map_err(|e| to_error("(syntax)".to_owned(), e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "(file)".to_owned(),
            path => path,
        };
        to_error(field, e.into_inner())
    })
}

/// `mode` as written: `Some(true)` for `tcp`, `Some(false)` for `http` or
/// no key, `None` for anything else.
fn declares_tcp(raw: &RawListener) -> Option<bool> {
    match raw.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("http") => Some(false),
        Some("tcp") => Some(true),
        Some(_) => None,
    }
}

struct Validator<'a> {
    source: &'a ConfigSource,
    errors: Vec<ConfigError>,
}

// === impl Validator ===

impl Validator<'_> {
    fn fail<T>(
        &mut self,
        field: String,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Option<T> {
        let error = self.source.error(&FieldLocation::new(field, span), message);
        self.errors.push(error);
        None
    }

    fn listeners(&mut self, raw: &[RawListener], known: &Known<'_>) -> Vec<ListenerConfig> {
        if raw.is_empty() {
            let location = FieldLocation::unspanned("listeners");
            self.errors.push(
                self.source
                    .error(&location, "at least one listener is required"),
            );
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        let mut listeners = Vec::new();
        for (i, listener) in raw.iter().enumerate() {
            let field = |name: &str| format!("listeners[{i}].{name}");
            let name = self.name(field("name"), &listener.name);
            if let Some(name) = &name
                && !names.insert(name.clone())
            {
                self.fail::<()>(
                    field("name"),
                    listener.name.span(),
                    format!("duplicate listener name `{name}`"),
                );
            }
            let address = self.socket_addr(field("address"), &listener.address);
            if let Some(address) = address
                && address.port() != 0
                && !addresses.insert(address)
            {
                self.fail::<()>(
                    field("address"),
                    listener.address.span(),
                    format!("another listener already binds {address}"),
                );
            }
            let mode = self.listener_mode(i, listener);
            if listener.routes.is_empty() {
                self.fail::<()>(
                    field("name"),
                    listener.name.span(),
                    "a listener needs at least one route",
                );
            }
            // From the raw key: a TCP listener with a bad setting still has
            // its routes checked as TCP routes; an unknown mode, as neither.
            let tcp = declares_tcp(listener);
            let routes: Vec<RouteConfig> = listener
                .routes
                .iter()
                .enumerate()
                .filter_map(|(j, route)| {
                    self.route(format!("listeners[{i}].routes[{j}]"), route, known, tcp)
                })
                .collect();
            if let (Some(name), Some(address), Some(mode)) = (name, address, mode) {
                listeners.push(ListenerConfig {
                    name,
                    address,
                    mode,
                    routes,
                });
            }
        }
        listeners
    }

    /// `mode` and, for TCP, the listener's TCP settings; HTTP listeners
    /// reject TCP-only keys.
    fn listener_mode(&mut self, i: usize, raw: &RawListener) -> Option<ListenerMode> {
        let field = |name: &str| format!("listeners[{i}].{name}");
        let tcp = match (declares_tcp(raw), &raw.mode) {
            (Some(tcp), _) => tcp,
            (None, mode) => {
                let (other, span) = mode.as_ref().map(|m| (m.get_ref().as_str(), m.span()))?;
                return self.fail(
                    field("mode"),
                    span,
                    format!("unknown mode `{other}`, expected `http` or `tcp`"),
                );
            }
        };
        if !tcp {
            let tcp_only = [
                ("idle-timeout", raw.idle_timeout.as_ref().map(Spanned::span)),
                ("zero-copy", raw.zero_copy.as_ref().map(Spanned::span)),
                (
                    "accept-proxy-protocol-from",
                    raw.accept_proxy_protocol_from.as_ref().map(Spanned::span),
                ),
            ];
            let mut ok = true;
            for (key, span) in tcp_only {
                if let Some(span) = span {
                    ok = false;
                    self.fail::<()>(
                        field(key),
                        span,
                        "only `mode = \"tcp\"` listeners take this key",
                    );
                }
            }
            return ok.then_some(ListenerMode::Http);
        }
        let idle_timeout = match &raw.idle_timeout {
            None => Some(DEFAULT_IDLE_TIMEOUT),
            Some(text) => self.duration(
                field("idle-timeout"),
                text,
                Duration::from_millis(10),
                Duration::from_secs(7 * 24 * 3600),
            ),
        };
        let mut networks = Some(Vec::new());
        for (j, network) in raw
            .accept_proxy_protocol_from
            .iter()
            .flat_map(|list| list.get_ref())
            .enumerate()
        {
            let parsed = self.network(field(&format!("accept-proxy-protocol-from[{j}]")), network);
            match (&mut networks, parsed) {
                (Some(list), Some(net)) => list.push(net),
                _ => networks = None,
            }
        }
        Some(ListenerMode::Tcp(TcpListenerConfig {
            idle_timeout: idle_timeout?,
            zero_copy: raw.zero_copy.as_ref().is_none_or(|z| *z.get_ref()),
            accept_proxy_protocol_from: networks?,
        }))
    }

    /// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    fn network(&mut self, field: String, raw: &Spanned<String>) -> Option<IpNet> {
        let text = raw.get_ref();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => Some(net.trunc()),
            Err(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid network `{text}`, expected an address or CIDR such as `10.0.0.0/8`"
                ),
            ),
        }
    }

    /// The PROXY header is written once per TCP connection; the HTTP proxy
    /// shares backend connections between clients, so it cannot send one.
    fn proxy_protocol_only_for_tcp(
        &mut self,
        raw: &RawConfig,
        pools: &[PoolConfig],
        listeners: &[ListenerConfig],
    ) {
        for pool in pools.iter().filter(|p| p.proxy_protocol.is_some()) {
            let http_user = listeners
                .iter()
                .find(|l| l.mode == ListenerMode::Http && l.routes_to(&pool.name));
            let span = raw
                .pools
                .get(&pool.name)
                .and_then(|p| p.proxy_protocol.as_ref())
                .map(Spanned::span);
            if let (Some(listener), Some(span)) = (http_user, span) {
                self.fail::<()>(
                    format!("pools.{}.proxy-protocol", pool.name),
                    span,
                    format!(
                        "PROXY protocol is sent on TCP connections only, but HTTP listener `{}` routes to this pool",
                        listener.name
                    ),
                );
            }
        }
    }

    fn route(
        &mut self,
        field: String,
        raw: &RawRoute,
        known: &Known<'_>,
        tcp: Option<bool>,
    ) -> Option<RouteConfig> {
        if tcp == Some(true) {
            let http_only = [
                ("host", raw.host.as_ref().map(Spanned::span)),
                ("path-prefix", raw.path_prefix.as_ref().map(Spanned::span)),
            ];
            for (key, span) in http_only {
                if let Some(span) = span {
                    return self.fail(
                        format!("{field}.{key}"),
                        span,
                        "tcp listeners route by `sni`, not by HTTP host or path",
                    );
                }
            }
            if let Some(filters) = &raw.filters {
                return self.fail(
                    format!("{field}.filters"),
                    filters.span(),
                    "header filters apply to HTTP routes; tcp listeners forward bytes untouched",
                );
            }
        } else if let (Some(false), Some(sni)) = (tcp, &raw.sni) {
            return self.fail(
                format!("{field}.sni"),
                sni.span(),
                "only `mode = \"tcp\"` listeners route by `sni`; HTTP routes match `host`",
            );
        }
        let sni = match &raw.sni {
            Some(sni) => Some(self.host_pattern(format!("{field}.sni"), sni)?),
            None => None,
        };
        let host = match &raw.host {
            Some(host) => Some(self.host_pattern(format!("{field}.host"), host)?),
            None => None,
        };
        let path_prefix = match &raw.path_prefix {
            Some(prefix) if !prefix.get_ref().starts_with('/') => {
                return self.fail(
                    format!("{field}.path-prefix"),
                    prefix.span(),
                    "must start with `/`",
                );
            }
            Some(prefix) => prefix.get_ref().clone(),
            None => "/".to_owned(),
        };
        self.known(format!("{field}.pool"), &raw.pool, "pool", &known.pools)?;
        let mut filters = Vec::new();
        for (k, filter) in raw.filters.iter().flat_map(|f| f.get_ref()).enumerate() {
            let field = format!("{field}.filters[{k}]");
            self.known(field, filter, "filter", &known.filters)?;
            filters.push(filter.get_ref().clone());
        }
        Some(RouteConfig {
            host,
            path_prefix,
            sni,
            pool: raw.pool.get_ref().clone(),
            filters,
        })
    }

    /// Checks that `raw` names a declared pool or filter (`kind`).
    fn known(
        &mut self,
        field: String,
        raw: &Spanned<String>,
        kind: &str,
        declared: &HashSet<&str>,
    ) -> Option<()> {
        if declared.contains(raw.get_ref().as_str()) {
            return Some(());
        }
        let mut names: Vec<&str> = declared.iter().copied().collect();
        names.sort_unstable();
        let names = if names.is_empty() {
            "none declared".to_owned()
        } else {
            names.join(", ")
        };
        self.fail(
            field,
            raw.span(),
            format!("no {kind} named `{}` ({kind}s: {names})", raw.get_ref()),
        )
    }

    fn filter(&mut self, name: &Spanned<String>, raw: &RawFilter) -> Option<FilterConfig> {
        let field = |key: &str| format!("filters.{}.{key}", name.get_ref());
        let filter_name = self.name(format!("filters.{}", name.get_ref()), name);
        let plugin = self.plugin_ref(field("plugin"), &raw.plugin);
        let (options, options_location) =
            plugin_options(field("options"), raw.options.as_ref(), name);
        Some(FilterConfig {
            name: filter_name?,
            plugin_location: FieldLocation::new(field("plugin"), raw.plugin.span()),
            plugin: plugin?,
            options,
            options_location,
        })
    }

    fn pool(&mut self, name: &Spanned<String>, raw: &RawPool) -> Option<PoolConfig> {
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
            Some(policy) => match policy.get_ref().as_str() {
                "round-robin" => Some(PluginFailurePolicy::RoundRobin),
                "fail-closed" => Some(PluginFailurePolicy::FailClosed),
                other => self.fail(
                    field("on-plugin-failure"),
                    policy.span(),
                    format!("unknown policy `{other}`, expected `round-robin` or `fail-closed`"),
                ),
            },
        };
        let max_attempts = match &raw.max_attempts {
            None => Some(DEFAULT_MAX_ATTEMPTS),
            Some(n) => self.bounded(field("max-attempts"), n, 1, 16),
        };
        let connect_timeout = match &raw.connect_timeout {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(text) => self.duration(
                field("connect-timeout"),
                text,
                Duration::from_millis(1),
                Duration::from_secs(60),
            ),
        };
        let response_timeout = match &raw.response_timeout {
            None => Some(DEFAULT_RESPONSE_TIMEOUT),
            Some(text) => self.duration(
                field("response-timeout"),
                text,
                Duration::from_millis(1),
                Duration::from_secs(3600),
            ),
        };
        let slow_start = match &raw.slow_start {
            None => Some(None),
            Some(text) => self
                .duration(
                    field("slow-start"),
                    text,
                    Duration::from_millis(100),
                    Duration::from_secs(3600),
                )
                .map(Some),
        };
        let proxy_protocol = match &raw.proxy_protocol {
            None => Some(None),
            Some(version) => match version.get_ref().as_str() {
                "v1" => Some(Some(ProxyProtocolVersion::V1)),
                "v2" => Some(Some(ProxyProtocolVersion::V2)),
                other => self.fail(
                    field("proxy-protocol"),
                    version.span(),
                    format!("unknown PROXY protocol version `{other}`, expected `v1` or `v2`"),
                ),
            },
        };
        let drain_timeout = match &raw.drain_timeout {
            None => Some(DEFAULT_DRAIN_TIMEOUT),
            Some(text) => self.duration(
                field("drain-timeout"),
                text,
                Duration::ZERO,
                Duration::from_secs(24 * 3600),
            ),
        };
        let backends = self.backends(name.get_ref(), &raw.backends);
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
            backends: backends?,
        })
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
                Some(w) => self.bounded(field("weight"), w, 1, 1_000_000),
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

    fn sandbox(&mut self, raw: Option<&RawSandbox>) -> SandboxConfig {
        let mut sandbox = SandboxConfig::default();
        let Some(raw) = raw else { return sandbox };
        if let Some(text) = &raw.call_timeout
            && let Some(timeout) = self.duration(
                "sandbox.call-timeout".to_owned(),
                text,
                Duration::from_millis(1),
                Duration::from_secs(1),
            )
        {
            sandbox.call_timeout = timeout;
        }
        if let Some(mib) = &raw.memory_limit_mib
            && let Some(mib) = self.bounded("sandbox.memory-limit-mib".to_owned(), mib, 1, 4096)
        {
            sandbox.memory_limit_bytes = (mib as usize) << 20;
        }
        sandbox
    }

    /// A name for listeners, pools and backends: letters, digits, `-`, `_`, `.`.
    fn name(&mut self, field: String, raw: &Spanned<String>) -> Option<String> {
        let name = raw.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if valid {
            Some(name.clone())
        } else {
            self.fail(
                field,
                raw.span(),
                format!("invalid name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`"),
            )
        }
    }

    fn socket_addr(&mut self, field: String, raw: &Spanned<String>) -> Option<SocketAddr> {
        match raw.get_ref().parse() {
            Ok(address) => Some(address),
            Err(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid socket address `{}`, expected `ip:port` such as `127.0.0.1:8080`",
                    raw.get_ref()
                ),
            ),
        }
    }

    /// `ip:port` or `name:port` with a non-zero port.
    fn host_port(&mut self, field: String, raw: &Spanned<String>) -> Option<BackendAddress> {
        let text = raw.get_ref();
        let parsed = BackendAddress::parse(text).filter(|address| match address {
            BackendAddress::Socket(socket) => socket.port() != 0,
            BackendAddress::Name { port, .. } => *port != 0,
        });
        if let Some(address) = parsed {
            Some(address)
        } else {
            self.fail(
                field,
                raw.span(),
                format!("invalid backend address `{text}`, expected `host:port`"),
            )
        }
    }

    fn host_pattern(&mut self, field: String, raw: &Spanned<String>) -> Option<HostPattern> {
        let host = raw.get_ref().to_ascii_lowercase();
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return self.fail(
                field,
                raw.span(),
                format!(
                    "invalid host `{}`: expected a DNS name or `*.suffix`, without port",
                    raw.get_ref()
                ),
            );
        }
        Some(if wildcard {
            HostPattern::Wildcard(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    fn balancer_ref(&mut self, field: String, raw: &Spanned<String>) -> Option<BalancerRef> {
        let text = raw.get_ref();
        if let Some(name) = text.strip_prefix("native:") {
            return match name {
                "round-robin" => Some(BalancerRef::NativeRoundRobin),
                _ => self.fail(
                    field,
                    raw.span(),
                    format!("no native balancer `{name}` (native balancers: round-robin)"),
                ),
            };
        }
        self.plugin_ref(field, raw).map(BalancerRef::Plugin)
    }

    fn plugin_ref(&mut self, field: String, raw: &Spanned<String>) -> Option<PluginRef> {
        let text = raw.get_ref();
        match text.strip_prefix("builtin:") {
            Some(name) if !name.is_empty() => Some(PluginRef::Builtin(name.to_owned())),
            Some(_) => self.fail(
                field,
                raw.span(),
                "`builtin:` needs a plugin name, such as `builtin:round-robin`",
            ),
            None if text.ends_with(".wasm") => {
                let path = PathBuf::from(text);
                Some(PluginRef::File(if path.is_relative() {
                    self.source.dir().join(path)
                } else {
                    path
                }))
            }
            None => self.fail(
                field,
                raw.span(),
                format!("`{text}` is neither `builtin:<name>` nor a path to a `.wasm` file"),
            ),
        }
    }

    fn bounded(&mut self, field: String, raw: &Spanned<i64>, min: i64, max: i64) -> Option<u32> {
        let value = *raw.get_ref();
        match u32::try_from(value) {
            Ok(n) if (min..=max).contains(&value) => Some(n),
            _ => self.fail(
                field,
                raw.span(),
                format!("{value} is out of range {min}..={max}"),
            ),
        }
    }

    fn duration(
        &mut self,
        field: String,
        raw: &Spanned<String>,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "`{}` is out of range {}..={}",
                    raw.get_ref(),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ),
            Err(e) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid duration `{}` ({e}); use units such as `250ms` or `2s`",
                    raw.get_ref()
                ),
            ),
        }
    }
}
