//! The config file: TOML parsed into validated domain types.
//!
//! [`Config::load`] reads a file, deserializes it strictly (unknown keys are
//! errors) and validates every field in one pass, so that all problems are
//! reported together, each with file, line and field. What comes out is
//! plain data; [`crate::plan`] compiles it into something that serves.
//!
//! ```toml
//! [[listeners]]
//! name = "public"
//! address = "127.0.0.1:8080"
//!
//!   [[listeners.routes]]
//!   host = "api.example.com"
//!   path-prefix = "/v1"
//!   pool = "api"
//!
//! [pools.api]
//! balancer = "builtin:round-robin"
//! backends = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002" }]
//!
//! # L4: TLS passed through untouched, routed by the ClientHello's SNI.
//! [[listeners]]
//! name = "tls"
//! address = "127.0.0.1:8443"
//! mode = "tcp"
//!
//!   [[listeners.routes]]
//!   sni = "*.example.com"
//!   pool = "api"
//! ```

mod error;
mod raw;
mod route;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, ConfigSource, FieldLocation};
pub use route::{
    DEFAULT_RETRY_BUDGET_PERMILLE, DEFAULT_RETRY_BUFFER, DEFAULT_RETRY_MIN_PER_SECOND,
    FieldCondition, LimitConfig, LimitKey, LocalAnswer, PathRewrite, Pattern, RetryConfig, RetryOn,
    RouteConditions, SplitKey, ValueTest, WeightedPool,
};

use crate::host_pattern::HostPattern;
use crate::l4::ProxyProtocolVersion;
use crate::l7::{ConnectionLimits, EncodedSlashes, ForwardedHeader, Forwarding, PathPolicy};
use crate::upstream::{BackendAddress, PluginFailurePolicy};

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from, for error messages of later stages.
    pub source: ConfigSource,
    /// Listeners in config order.
    pub listeners: Vec<ListenerConfig>,
    /// Pools sorted by name.
    pub pools: Vec<PoolConfig>,
    /// Header filters, by name order.
    pub filters: Vec<FilterConfig>,
    /// Rate limits, by name order.
    pub limits: Vec<LimitConfig>,
    /// Limits for every plugin call.
    pub sandbox: SandboxConfig,
    /// Where `/metrics` is served, when configured.
    pub admin: Option<AdminConfig>,
    /// How backend host names are resolved.
    pub resolver: ResolverConfig,
    /// How long a stop waits for requests and connections in flight
    /// (`[shutdown] grace`).
    pub shutdown_grace: Duration,
    /// What reloads the config besides SIGHUP and `POST /reload`.
    pub reload: ReloadConfig,
    /// The process's own log.
    pub log: LogConfig,
    /// One line per request and connection; `None`: off.
    pub access_log: Option<AccessLogConfig>,
}

/// `[reload]`: reloading when files change on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Reload when the config file or a plugin it names changes.
    pub watch: bool,
    /// How long the files must stay unchanged before the reload: editors
    /// and `cp` write in bursts.
    pub debounce: Duration,
}

/// Changes settle for this long before a watched reload: long enough for
/// an editor's write-rename-chmod burst, short enough to feel immediate.
pub const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_millis(300);

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: false,
            debounce: DEFAULT_WATCH_DEBOUNCE,
        }
    }
}

/// `[log]`: level and format of the process's own log (stderr).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `bascule=debug,warn`); `RUST_LOG`, when
    /// set, wins. `None`: `info`.
    pub level: Option<String>,
    /// Text for people, JSON for log pipelines.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[access-log]`: one line per HTTP request and per TCP or WebSocket
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// How each line is written.
    pub format: AccessLogFormat,
    /// A file to append to; `None`: stdout.
    pub path: Option<PathBuf>,
    /// Lines held for the writer; past it lines are dropped and counted.
    pub buffer: usize,
    /// Where `path` was written (or the table), for open errors.
    pub location: FieldLocation,
}

/// The lines queued for the access-log writer by default: a second of a
/// busy proxy's requests, a few MiB at most.
pub const DEFAULT_ACCESS_LOG_BUFFER: usize = 16_384;

/// How access-log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// `key=value` pairs, values quoted where needed.
    Logfmt,
}

/// How long a stop waits for work in flight by default: systemd's and
/// Kubernetes' own grace periods are longer (90 s, 30 s), so the proxy
/// finishes first.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How backend host names are resolved, and how often again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// DNS servers to ask (UDP, then TCP for truncated answers); empty for
    /// the system resolver (`/etc/hosts`, then `/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// How often names are resolved again.
    pub refresh: Duration,
}

/// DNS changes reach new connections within this long (HAProxy's `hold
/// valid` default is 10 s; NGINX re-resolves at the record's TTL).
pub const DEFAULT_RESOLVER_REFRESH: Duration = Duration::from_secs(30);

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            refresh: DEFAULT_RESOLVER_REFRESH,
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Address to bind; port 0 picks a free port.
    pub address: SocketAddr,
    /// The bearer token every request must carry; required for a
    /// non-loopback address.
    pub token: Option<std::sync::Arc<str>>,
}

/// One listening socket and its routes.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Unique name, used in logs, metrics and the plugin request context.
    pub name: String,
    /// Address to bind; port 0 picks a free port.
    pub address: SocketAddr,
    /// HTTP (L7) or TCP (L4).
    pub mode: ListenerMode,
    /// Routes in config order; the first that matches wins.
    pub routes: Vec<RouteConfig>,
    /// TLS termination; `None`: plaintext.
    pub tls: Option<TlsConfig>,
}

/// `[listeners.tls]`: the certificates a listener serves and how it
/// negotiates. Files are read when the plan is built (at start and at
/// every reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// In config order; the first is the default certificate.
    pub certificates: Vec<CertificateConfig>,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<String>,
    /// The oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// What a client without SNI, or naming no certificate's name, gets.
    pub unknown_sni: UnknownSni,
    /// Stateless session resumption (tickets).
    pub session_tickets: bool,
}

/// One certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Server names it serves (exact or `*.example.com`); empty: the names
    /// in the certificate.
    pub sni: Vec<String>,
    /// Where the entry was written, for load errors.
    pub location: FieldLocation,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// What a client gets when no certificate is named for its SNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSni {
    /// The first certificate.
    Default,
    /// A handshake failure (rustls sends an `access_denied` alert).
    Refuse,
}

/// What a listener speaks.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerMode {
    /// `mode = "http"` (the default): the HTTP/1.1 and HTTP/2 reverse proxy.
    Http(HttpListenerConfig),
    /// `mode = "tcp"`: connections forwarded byte for byte.
    Tcp(TcpListenerConfig),
    /// `mode = "udp"`: datagrams forwarded in flows.
    Udp(UdpListenerConfig),
}

/// Settings of a `mode = "udp"` listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpListenerConfig {
    /// A flow with no datagram either way for this long ends.
    pub idle_timeout: Duration,
    /// The flow ends once the backend sent this many answers for each
    /// datagram of the client (`1` for DNS).
    pub responses: Option<u32>,
    /// A flow carries at most this many client datagrams; the next one
    /// starts a new flow, balanced again.
    pub requests: Option<u32>,
    /// Balance every datagram on its own, with no flow (one-way traffic
    /// such as syslog; answers are not relayed).
    pub per_datagram: bool,
    /// Flows open at once on the listener, at most; past it a new
    /// client's datagrams are dropped and counted.
    pub max_flows: usize,
    /// Which datagrams carry the PROXY v2 header, when the pool sends one.
    pub proxy_header: ProxyHeaderOn,
    /// What makes two flows one client's, bound to one backend.
    pub affinity: UdpAffinity,
}

/// Which flows of a UDP listener share a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpAffinity {
    /// Each client address (IP and port) is balanced on its own.
    #[default]
    ClientIpPort,
    /// Every flow from one client IP goes where its first open flow went
    /// (a game client's voice and game sockets reach one server); the pin
    /// outlives the IP's last flow by `idle-timeout`.
    ClientIp,
}

/// Which datagrams of a UDP flow carry the PROXY v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyHeaderOn {
    /// Every datagram: each is self-describing, whatever the backend
    /// loses or reorders.
    #[default]
    EveryDatagram,
    /// The flow's first datagram only (the backend keeps the flow's
    /// origin by its source address).
    FirstDatagram,
}

/// Settings of a `mode = "http"` listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpListenerConfig {
    /// How request paths are normalised before routing.
    pub paths: PathPolicy,
    /// Timeouts and the connection cap.
    pub limits: ConnectionLimits,
    /// What backends are told about the client.
    pub forwarding: Forwarding,
}

/// Settings of a `mode = "tcp"` listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpListenerConfig {
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Forward with `splice(2)` through a pipe on Linux instead of copying
    /// through userspace.
    pub zero_copy: bool,
    /// Sources allowed, and required, to open with a PROXY protocol header
    /// (v1 or v2); a header from anywhere else closes the connection.
    pub accept_proxy_protocol_from: Vec<IpNet>,
}

/// Which requests or connections go where.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// The route's name in metrics and on the status page: `name`, or
    /// `route-N` from its place in the listener (0-based).
    pub name: String,
    /// HTTP: host to match; `None` matches any.
    pub host: Option<HostPattern>,
    /// HTTP: path prefix to match, starting with `/`.
    pub path_prefix: String,
    /// HTTP: the other conditions (exact path, path regex, methods,
    /// headers, query parameters).
    pub conditions: RouteConditions,
    /// TCP: TLS server name (SNI) to match; `None` matches any connection,
    /// with or without a ClientHello.
    pub sni: Option<HostPattern>,
    /// TCP: decrypt the connection with the listener's certificates and
    /// forward plaintext (`tls = "terminate"`), rather than pass its bytes
    /// through as they are (`"passthrough"`).
    pub terminate_tls: bool,
    /// The pools matching requests or connections go to, with their
    /// weights (one, for `pool = "..."`); empty when the route answers
    /// itself (`redirect`, `respond`).
    pub pools: Vec<WeightedPool>,
    /// HTTP: what keeps a client on one side of a split; `None`: each
    /// request is placed on its own.
    pub sticky: Option<SplitKey>,
    /// HTTP: the path as forwarded.
    pub rewrite: Option<PathRewrite>,
    /// HTTP: the proxy's own answer instead of a pool's.
    pub answer: Option<LocalAnswer>,
    /// HTTP: what is retried, and within what budget.
    pub retry: RetryConfig,
    /// HTTP: the largest request body accepted (413 past it); `None`: no
    /// limit.
    pub max_body_size: Option<u64>,
    /// HTTP: the whole request's deadline, from routing to the response's
    /// last byte; `None`: none.
    pub timeout: Option<Duration>,
    /// HTTP: the rate limit (`[limits.NAME]`, known to exist) requests
    /// are counted against.
    pub limit: Option<String>,
    /// HTTP: the `Upgrade` protocols tunnelled after the backend's `101`
    /// (lowercase; `websocket` unless the route says otherwise).
    pub upgrades: Vec<String>,
    /// HTTP: names of the header filters, known to exist, in the order
    /// they see the request (responses see them in reverse).
    pub filters: Vec<String>,
}

/// A named header filter plugin with its options, listed by routes.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    /// Unique name.
    pub name: String,
    /// The plugin.
    pub plugin: PluginRef,
    /// Where `plugin` was written, for load errors.
    pub plugin_location: FieldLocation,
    /// `options` as a JSON object, handed to the plugin's `configure`.
    pub options: String,
    /// Where `options` was written (or the filter, when absent).
    pub options_location: FieldLocation,
}

/// A named group of backends and how to choose among them.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Unique name.
    pub name: String,
    /// The balancer.
    pub balancer: BalancerRef,
    /// Where `balancer` was written, for load errors.
    pub balancer_location: FieldLocation,
    /// `balancer-options` as a JSON object, handed to the plugin's `configure`.
    pub balancer_options: String,
    /// Where `balancer-options` was written (or the pool, when absent).
    pub balancer_options_location: FieldLocation,
    /// What to do when the plugin fails.
    pub on_plugin_failure: PluginFailurePolicy,
    /// How many candidates to try when connecting fails.
    pub max_attempts: u32,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a backend may take to start answering once the request is
    /// sent; past it the client gets 504.
    pub response_timeout: Duration,
    /// Window over which a backend that joins on reload or recovers ramps
    /// from a trickle to its full weight; `None` disables slow start.
    pub slow_start: Option<Duration>,
    /// PROXY protocol header sent to backends at the start of each TCP
    /// connection; `None` sends none.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// How long TCP connections to a backend that left the config or turned
    /// unhealthy may go on before they are closed.
    pub drain_timeout: Duration,
    /// Percent of healthy backends below which the pool ignores health and
    /// serves every backend (Envoy's panic mode); 0 turns it off.
    pub panic_threshold: u32,
    /// Active health checks; `None`: no probes.
    pub health: Option<HealthCheckConfig>,
    /// Passive health (outlier ejection); `None`: off.
    pub outlier_detection: Option<OutlierConfig>,
    /// TLS to the backends; `None`: plaintext.
    pub tls: Option<UpstreamTlsConfig>,
    /// The HTTP version requests reach the backends in.
    pub protocol: UpstreamProtocol,
    /// Requests (connections) one backend serves at once; `None`: no
    /// bound.
    pub max_active: Option<u32>,
    /// Backends in config order.
    pub backends: Vec<BackendConfig>,
}

/// `[pools.NAME.health]`: how and how often every backend is probed, and
/// how many verdicts in a row change its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// HTTP request or TCP connect; `None`: HTTP when an HTTP listener
    /// routes to the pool, TCP otherwise.
    pub protocol: Option<ProbeProtocol>,
    /// Time between the starts of two probes (jittered by ±10%).
    pub interval: Duration,
    /// Budget of one probe, connect to last byte.
    pub timeout: Duration,
    /// Good verdicts in a row that make an unhealthy backend healthy.
    pub healthy_threshold: u32,
    /// Bad verdicts in a row that make a healthy backend unhealthy.
    pub unhealthy_threshold: u32,
    /// HTTP probe path (with query, if any).
    pub path: String,
    /// HTTP probe method.
    pub method: String,
    /// HTTP probe `Host`; `None`: the backend's address.
    pub host: Option<String>,
    /// Port to probe instead of the backend's.
    pub port: Option<u16>,
    /// The interpreter; `None`: `builtin:http-status` or `builtin:tcp-connect`.
    pub interpreter: Option<PluginRef>,
    /// Where `interpreter` was written (or the table), for load errors.
    pub interpreter_location: FieldLocation,
    /// `interpreter-options` as JSON.
    pub interpreter_options: String,
    /// Where `interpreter-options` was written (or the table).
    pub interpreter_options_location: FieldLocation,
    /// Most body or answer bytes read and passed to the interpreter.
    pub body_limit: usize,
}

/// `protocol` of a pool: the HTTP version spoken to its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, one request per connection at a time (`"http1"`, the
    /// default).
    #[default]
    Http1,
    /// HTTP/2: by prior knowledge over plain TCP (h2c backends, gRPC), or
    /// required by ALPN over TLS (`"h2"`). Requests from many clients
    /// share a few connections as streams.
    Http2,
    /// HTTP/2 when the backend picks `h2` by ALPN, else HTTP/1.1
    /// (`"auto"`; TLS only).
    Auto,
}

/// `tls` of a pool: TLS from the proxy to its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of the roots to trust; `None`: the platform's.
    pub ca: Option<PathBuf>,
    /// The name to verify and send as SNI; `None`: each backend's host
    /// name.
    pub server_name: Option<String>,
    /// Verify the backend's certificate (`verify = false` turns it off,
    /// loudly).
    pub verify: bool,
    /// A client certificate chain and key, for backends that require
    /// mutual TLS.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// Where `tls` was written, for load errors.
    pub location: FieldLocation,
}

/// What an active probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeProtocol {
    /// An HTTP/1.1 request.
    Http,
    /// A TCP connect (and what the interpreter asks to send and read).
    Tcp,
    /// A UDP datagram (what the interpreter asks to send) and its answer.
    Udp,
}

/// `[pools.NAME.outlier-detection]`: ejection on consecutive failures of
/// live traffic. A threshold of 0 turns that trigger off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive 5xx responses that eject.
    pub consecutive_5xx: u32,
    /// Consecutive failed connects that eject.
    pub consecutive_connect_failures: u32,
    /// Consecutive response timeouts that eject.
    pub consecutive_timeouts: u32,
    /// An ejection lasts this times the number of times the backend was
    /// ejected.
    pub base_ejection_time: Duration,
    /// Longest ejection.
    pub max_ejection_time: Duration,
    /// Most of the pool's backends ejected at once, in percent.
    pub max_ejection_percent: u32,
}

/// One backend server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Unique within the pool: the `name`, or the address when unnamed.
    pub id: String,
    /// Where to connect: a socket address or a name the host resolves.
    pub address: BackendAddress,
    /// Relative weight, at least 1.
    pub weight: u32,
    /// Labels passed to plugins, sorted by key.
    pub metadata: Vec<(String, String)>,
}

/// What balances a pool: a plugin (the normal case), or a native reference
/// implementation that exists so benchmarks can price the plugin call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BalancerRef {
    /// A WebAssembly plugin.
    Plugin(PluginRef),
    /// `native:round-robin`: [`crate::upstream::NativeRoundRobin`].
    NativeRoundRobin,
}

/// A balancer plugin: embedded or loaded from a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// `builtin:<name>`.
    Builtin(String),
    /// A `.wasm` component; relative paths are resolved against the config
    /// file's directory.
    File(PathBuf),
}

/// Limits enforced on every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// CPU time budget of one call.
    pub call_timeout: Duration,
    /// Wall-clock limit of one call, however little CPU time it used.
    pub wall_clock_limit: Duration,
    /// Cap on one instance's linear memory.
    pub memory_limit_bytes: usize,
    /// Series one plugin use may define through the `metrics` import.
    pub max_metric_series: usize,
}

/// Series a plugin use may define by default: enough for a label per
/// backend of large pools, small enough that a plugin labelling by client
/// address cannot blow up the scrape.
pub const DEFAULT_MAX_METRIC_SERIES: usize = 1000;

/// Errors loading a config file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// A plugin gets this much CPU time per call unless the config says
/// otherwise: a balancing decision that needs more is a bug, and the budget
/// bounds how long a looping plugin can hold a worker thread.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(10);
/// However little CPU time a call used, it is stopped after this long: far
/// beyond any scheduling delay of a loaded machine, short enough that no
/// request waits for ever on a plugin.
pub const DEFAULT_WALL_CLOCK_LIMIT: Duration = Duration::from_millis(250);
/// Enough for a Maglev table of 65,537 entries per instance, with headroom.
pub const DEFAULT_MEMORY_LIMIT_MIB: usize = 64;
/// Try the plugin's first three choices before answering 502.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// A loopback or LAN backend that has not accepted within a second is down.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// NGINX's `proxy_read_timeout` default: generous for slow endpoints, yet a
/// hung backend does not hold a client forever.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// NGINX's `proxy_timeout` for streams: a silent TCP connection is closed
/// after ten minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Long enough for requests and transfers in progress to finish, short
/// enough that a removed backend is free within minutes.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// `health.interval`: ALB's default.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// `health.timeout`.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `health.healthy-threshold`.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;

/// `health.unhealthy-threshold`.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;

/// `health.body-limit`, bytes.
pub const DEFAULT_HEALTH_BODY_LIMIT: usize = 4096;

/// Outlier detection's default thresholds (Envoy's).
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;

/// `outlier-detection.base-ejection-time`.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);

/// `outlier-detection.max-ejection-time`.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// `outlier-detection.max-ejection-percent`.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 50;

// === impl Config ===

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Config::parse(ConfigSource::new(path, text))?)
    }

    /// Validates config text; `source` names the file for messages.
    pub fn parse(source: ConfigSource) -> Result<Config, ConfigErrors> {
        validate::validate(source)
    }

    /// Every file this config reads: itself, its plugins' `.wasm` files,
    /// its certificates and keys. A watched reload watches these.
    pub fn files(&self) -> Vec<PathBuf> {
        let plugin_file = |plugin: &PluginRef| match plugin {
            PluginRef::File(path) => Some(path.clone()),
            PluginRef::Builtin(_) => None,
        };
        let mut files = vec![self.source.path().to_owned()];
        for pool in &self.pools {
            if let BalancerRef::Plugin(plugin) = &pool.balancer {
                files.extend(plugin_file(plugin));
            }
            if let Some(interpreter) = pool.health.as_ref().and_then(|h| h.interpreter.as_ref()) {
                files.extend(plugin_file(interpreter));
            }
        }
        files.extend(self.filters.iter().filter_map(|f| plugin_file(&f.plugin)));
        for tls in self.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            for certificate in &tls.certificates {
                files.push(certificate.cert.clone());
                files.push(certificate.key.clone());
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|pool| pool.name == name)
    }

    /// The listeners with a route to the pool named `pool`.
    pub fn listeners_using<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a ListenerConfig> + 'a {
        self.listeners
            .iter()
            .filter(move |listener| listener.routes_to(pool))
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            wall_clock_limit: DEFAULT_WALL_CLOCK_LIMIT,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_MIB << 20,
            max_metric_series: DEFAULT_MAX_METRIC_SERIES,
        }
    }
}

// === impl ListenerConfig ===

impl ListenerConfig {
    /// Whether a route of this listener sends to the pool named `pool`.
    pub fn routes_to(&self, pool: &str) -> bool {
        self.routes
            .iter()
            .any(|route| route.pools.iter().any(|to| to.pool == pool))
    }
}

// === impl BalancerRef ===

impl std::fmt::Display for BalancerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BalancerRef::Plugin(plugin) => plugin.fmt(f),
            BalancerRef::NativeRoundRobin => f.write_str("native:round-robin"),
        }
    }
}

// === impl PluginRef ===

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginRef::Builtin(name) => write!(f, "builtin:{name}"),
            PluginRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests;
