//! Pools: backends resolved and given their live stats, the balancer
//! compiled, configured and handed the first backend set.

use std::sync::Arc;

use super::PlanError;
use crate::config::{BalancerRef, Config, ListenerMode, PoolConfig};
use crate::plugin::{self, PluginRuntime, WasmBalancer};
use rustls::pki_types::ServerName;

use crate::tls::{TlsTarget, UpstreamTls};
use crate::upstream::{
    Backend, BackendAddress, BackendPool, BackendSelection, BackendSet, BackendStats, Endpoints,
    NativeRoundRobin, PoolSettings, Protocol, StatsRegistry,
};

/// A backend this plan adds to its pool.
pub(super) struct JoinedBackend {
    pub(super) pool: String,
    pub(super) id: String,
    pub(super) stats: Arc<BackendStats>,
    pub(super) ramps: bool,
}

pub(super) fn build_pool(
    config: &Config,
    pool: &PoolConfig,
    plugins: &PluginRuntime,
    stats: &StatsRegistry,
    generation: u64,
    joined: &mut Vec<JoinedBackend>,
) -> Result<BackendPool, PlanError> {
    let tls = pool
        .tls
        .as_ref()
        .map(|config| {
            UpstreamTls::load(config, pool.protocol)
                .map(Arc::new)
                .map_err(|e| PlanError::at(&config.location, e))
        })
        .transpose()?;
    let backends = pool
        .backends
        .iter()
        .map(|backend| {
            let (stats, new) = stats.lookup(&pool.name, &backend.id);
            if new {
                joined.push(JoinedBackend {
                    pool: pool.name.clone(),
                    id: backend.id.clone(),
                    stats: Arc::clone(&stats),
                    // Backends present at start-up take full load at once,
                    // as in HAProxy; those a reload adds ramp up.
                    ramps: generation > 1 && pool.slow_start.is_some(),
                });
            }
            // Names are resolved before the plan is committed
            // (`Plan::resolve_names`), and again by the supervisor.
            let target = tls.as_ref().map(|tls| {
                Arc::new(TlsTarget::new(
                    Arc::clone(tls),
                    server_name(pool, &backend.address),
                ))
            });
            Backend::new(
                backend.id.clone(),
                Arc::new(Endpoints::unresolved(backend.address.clone())),
                backend.weight,
                backend.metadata.clone(),
                stats,
            )
            .with_tls(target)
            .with_protocol(pool.protocol)
        })
        .collect();
    let mut backends = BackendSet::new(backends);
    if let Some(ramped) = backends.refreshed(pool.slow_start) {
        backends = ramped;
    }
    let backends = Arc::new(backends);
    let balancer: Box<dyn BackendSelection> = match &pool.balancer {
        BalancerRef::NativeRoundRobin => Box::new(NativeRoundRobin::default()),
        BalancerRef::Plugin(plugin) => {
            let compiled = plugins
                .compile_balancer(plugin)
                .map_err(|e| PlanError::at(&pool.balancer_location, e))?;
            let balancer = WasmBalancer::new(
                &pool.name,
                compiled,
                pool.balancer_options.clone(),
                protocols_of(config, pool),
                config.sandbox,
                &backends,
            )
            .map_err(|e| match e {
                plugin::Error::Rejected { .. } => PlanError::at(&pool.balancer_options_location, e),
                other => PlanError::at(&pool.balancer_location, other),
            })?;
            Box::new(balancer)
        }
    };
    let settings = PoolSettings {
        on_balancer_failure: pool.on_plugin_failure,
        max_attempts: pool.max_attempts,
        connect_timeout: pool.connect_timeout,
        response_timeout: pool.response_timeout,
        slow_start: pool.slow_start,
        proxy_protocol: pool.proxy_protocol,
        drain_timeout: pool.drain_timeout,
        panic_threshold: pool.panic_threshold,
        outlier_detection: pool.outlier_detection,
        protocol: pool.protocol,
        max_active: pool.max_active,
    };
    Ok(BackendPool::new(
        pool.name.as_str(),
        backends,
        balancer,
        settings,
    ))
}

/// The name a backend's certificate must carry: the pool's `server-name`,
/// else the backend's host name, else its IP address (validation allows
/// that only with `verify = false`).
fn server_name(pool: &PoolConfig, address: &BackendAddress) -> ServerName<'static> {
    let configured = pool
        .tls
        .as_ref()
        .and_then(|tls| tls.server_name.as_deref())
        .and_then(|name| ServerName::try_from(name.to_owned()).ok());
    configured.unwrap_or_else(|| match address {
        BackendAddress::Name { host, .. } => ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())),
        BackendAddress::Socket(socket) => ServerName::IpAddress(socket.ip().into()),
    })
}

/// What the pool's balancer will place: HTTP requests, TCP connections,
/// UDP flows, depending on the listeners that route to it.
pub(super) fn protocols_of(config: &Config, pool: &PoolConfig) -> Vec<Protocol> {
    let mut protocols = Vec::new();
    for listener in config.listeners_using(&pool.name) {
        let protocol = match listener.mode {
            ListenerMode::Http(_) => Protocol::Http,
            ListenerMode::Tcp(_) => Protocol::Tcp,
            ListenerMode::Udp(_) => Protocol::Udp,
        };
        if !protocols.contains(&protocol) {
            protocols.push(protocol);
        }
    }
    protocols
}
