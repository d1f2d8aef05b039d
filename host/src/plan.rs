//! A validated config compiled into what serves: route tables, pools with
//! their backends and live stats, balancer plugins instantiated and
//! configured. Built off the request path; published whole.
//!
//! This file drives the build and owns the [`Plan`]; each section has a
//! builder of its own (`pools`, `filters`, `listeners`), and whatever
//! cannot be built comes back as a [`PlanError`] naming the config field.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::access_log::AccessLog;

use crate::config::{Config, ConfigErrors, FieldLocation};
use crate::health::HealthCheck;
use crate::l4::TcpListenerPlan;
use crate::l7::{ConnectionLimits, HeaderFilter, RateLimits, RouteTable};
use crate::plugin::{self, PluginRuntime};
use crate::tls::ServerTls;
use crate::upstream::{BackendPool, Endpoints, Resolver, StatsRegistry};

mod filters;
mod health;
mod listeners;
mod pools;

use pools::JoinedBackend;

/// Everything the request path needs, immutable once built.
pub struct Plan {
    generation: u64,
    listeners: Vec<ListenerPlan>,
    pools: Vec<Arc<BackendPool>>,
    /// The active health checks of the pools that have one.
    health_checks: Vec<(Arc<BackendPool>, Arc<HealthCheck>)>,
    /// How this plan's backend names are resolved.
    resolver: Arc<Resolver>,
    /// Backends new to their pool: registered, and their slow start begun,
    /// only by [`Plan::commit`], so a rejected reload leaves no trace.
    joined: Vec<JoinedBackend>,
    /// The config file this plan was built from, as it was read.
    source: crate::config::ConfigSource,
    /// The bearer token admin requests must carry.
    admin_token: Option<Arc<str>>,
    /// Where requests and connections are logged, when they are.
    access_log: Option<AccessLog>,
}

/// One listener's address and routes.
pub struct ListenerPlan {
    /// The listener's name.
    pub name: Arc<str>,
    /// Where it binds.
    pub address: SocketAddr,
    /// Its routes, HTTP or TCP.
    pub routes: ListenerRoutes,
    /// TLS termination, with the certificates read for this plan.
    pub tls: Option<Arc<ServerTls>>,
}

/// A part of the config that could not be built (a plugin that failed to
/// load or rejected its options, a certificate that cannot be used), and
/// the field that asked for it.
#[derive(Debug, thiserror::Error)]
#[error("`{}` cannot be built", location.field)]
pub struct PlanError {
    /// The config field to report.
    pub location: FieldLocation,
    /// Why (boxed: plan errors travel in `Result`s that are otherwise
    /// small).
    #[source]
    pub source: Box<PlanCause>,
}

/// What could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanCause {
    /// A plugin.
    #[error(transparent)]
    Plugin(#[from] plugin::Error),
    /// A listener's certificate.
    #[error(transparent)]
    Certificate(#[from] crate::tls::CertificateError),
    /// The access log's file.
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::AccessLogError),
    /// A pool's TLS to its backends.
    #[error(transparent)]
    UpstreamTls(#[from] crate::tls::UpstreamTlsError),
}

/// What a listener serves.
pub enum ListenerRoutes {
    /// The HTTP reverse proxy's route table (boxed: it holds the host
    /// index) and connection limits.
    Http(Box<RouteTable>, ConnectionLimits),
    /// The TCP proxy's SNI routes and connection settings.
    Tcp(Arc<TcpListenerPlan>),
    /// The UDP proxy's pool and flow settings.
    Udp(Arc<crate::l4::udp::UdpListenerPlan>),
}

// === impl Plan ===

impl Plan {
    /// Compiles `config`. Plugins that fail to load or reject their options
    /// are reported at the config field that named them; every pool is
    /// tried, so all such errors come back together.
    pub fn build(
        config: &Config,
        plugins: &PluginRuntime,
        stats: &StatsRegistry,
        generation: u64,
    ) -> Result<Plan, ConfigErrors> {
        let mut errors = Vec::new();
        let mut pools = Vec::new();
        let mut health_checks = Vec::new();
        let mut joined = Vec::new();
        for pool in &config.pools {
            let built = pools::build_pool(config, pool, plugins, stats, generation, &mut joined)
                .and_then(|built| {
                    health::build_health_check(config, pool, plugins).map(|check| (built, check))
                });
            match built {
                Ok((built, check)) => {
                    let built = Arc::new(built);
                    if let Some(check) = check {
                        health_checks.push((Arc::clone(&built), Arc::new(check)));
                    }
                    pools.push(built);
                }
                Err(error) => errors.push(error.reported(config)),
            }
        }
        // Buckets start full at every reload.
        let rate_limits = Arc::new(RateLimits::new(&config.limits));
        let mut filters = Vec::new();
        for filter in &config.filters {
            match filters::build_filter(config, filter, plugins, &rate_limits) {
                Ok(built) => {
                    let built: Arc<dyn HeaderFilter> = Arc::new(built);
                    filters.push((filter.name.as_str(), built));
                }
                Err(error) => errors.push(error.reported(config)),
            }
        }
        let mut tls = Vec::new();
        for listener in &config.listeners {
            let Some(listener_tls) = &listener.tls else {
                tls.push(None);
                continue;
            };
            match ServerTls::load(listener_tls) {
                Ok(loaded) => tls.push(Some(Arc::new(loaded))),
                Err((index, error)) => {
                    if let Some(certificate) = listener_tls.certificates.get(index) {
                        errors.push(PlanError::at(&certificate.location, error).reported(config));
                    }
                }
            }
        }
        let access_log = match &config.access_log {
            Some(log) => match AccessLog::open(log) {
                Ok(opened) => Some(opened),
                Err(error) => {
                    errors.push(PlanError::at(&log.location, error).reported(config));
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let listeners = config
            .listeners
            .iter()
            .zip(tls)
            .filter_map(|(listener, tls)| {
                listeners::listener_plan(
                    listener,
                    &pools,
                    &filters,
                    &rate_limits,
                    tls,
                    access_log.as_ref(),
                )
            })
            .collect();
        Ok(Plan {
            generation,
            listeners,
            pools,
            health_checks,
            resolver: Arc::new(Resolver::new(&config.resolver)),
            joined,
            source: config.source.clone(),
            admin_token: config.admin.as_ref().and_then(|admin| admin.token.clone()),
            access_log,
        })
    }

    /// Resolves every backend name, all at once, each bounded by
    /// [`crate::upstream::LOOKUP_TIMEOUT`]: done before the plan serves,
    /// so that its first requests find addresses. A name that does not
    /// resolve leaves its backend without one; the reload goes on.
    pub async fn resolve_names(&self) {
        let endpoints: Vec<Arc<Endpoints>> = self
            .pools
            .iter()
            .flat_map(|pool| pool.backends().endpoints().cloned().collect::<Vec<_>>())
            .collect();
        self.resolver.refresh_all(endpoints).await;
    }

    /// How this plan's backend names are resolved.
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// Makes the plan's side effects real, once it is certain to be
    /// served: the stats of backends new to their pool are registered (so
    /// later reloads see them as present), and those a reload added begin
    /// their slow start, published to the balancers before any request
    /// sees the plan.
    pub fn commit(&self, registry: &StatsRegistry) {
        for joined in &self.joined {
            registry.register(&joined.pool, &joined.id, Arc::clone(&joined.stats));
            if joined.ramps {
                joined.stats.start_ramp();
            }
        }
        for pool in &self.pools {
            pool.refresh();
            for backend in &pool.backends().backends {
                crate::metrics::backend_health(pool.name(), &backend.id, backend.stats.health());
            }
            pool.health_changed();
        }
    }

    /// The config file this plan was built from, as it was read.
    pub fn source(&self) -> &crate::config::ConfigSource {
        &self.source
    }

    /// Where requests and connections are logged; `None`: they are not.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The bearer token admin requests must carry, when one is set.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Which config load this plan came from: 1 at start, then one more
    /// per successful reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The listener named `name`.
    pub fn listener(&self, name: &str) -> Option<&ListenerPlan> {
        self.listeners.iter().find(|l| &*l.name == name)
    }

    /// All listeners, in config order.
    pub fn listeners(&self) -> &[ListenerPlan] {
        &self.listeners
    }

    /// All pools, sorted by name.
    pub fn pools(&self) -> &[Arc<BackendPool>] {
        &self.pools
    }

    /// The pools with active health checks, and their checks.
    pub fn health_checks(&self) -> &[(Arc<BackendPool>, Arc<HealthCheck>)] {
        &self.health_checks
    }

    /// Whether the pool named `pool` has a backend with id `backend`.
    pub fn has_backend(&self, pool: &str, backend: &str) -> bool {
        self.pools
            .iter()
            .find(|p| &**p.name() == pool)
            .is_some_and(|p| p.backends().position(backend).is_some())
    }
}

// === impl Plan (UDP) ===

impl Plan {
    /// Takes over the open-flow counts and client pins of `previous`'s UDP
    /// listeners of the same names, so that flows opened before a reload
    /// still count against `max-flows` and show on `/status` until they
    /// end, and pinned clients keep their backends.
    pub fn adopt_flow_state(&mut self, previous: &Plan) {
        for listener in &mut self.listeners {
            let ListenerRoutes::Udp(udp) = &mut listener.routes else {
                continue;
            };
            let (Some(udp), Some(old)) = (
                Arc::get_mut(udp),
                previous
                    .listener(&listener.name)
                    .and_then(|old| old.routes.udp()),
            ) else {
                continue;
            };
            udp.open_flows = Arc::clone(&old.open_flows);
            if let (Some(pins), Some(old_pins)) = (&mut udp.affinity, &old.affinity) {
                *pins = Arc::clone(old_pins);
            }
        }
    }
}

// === impl ListenerRoutes ===

impl ListenerRoutes {
    /// The HTTP route table and limits, for an HTTP listener.
    pub fn http(&self) -> Option<(&RouteTable, &ConnectionLimits)> {
        match self {
            ListenerRoutes::Http(table, limits) => Some((table, limits)),
            ListenerRoutes::Tcp(_) | ListenerRoutes::Udp(_) => None,
        }
    }

    /// The TCP plan, for a TCP listener.
    pub fn tcp(&self) -> Option<&Arc<TcpListenerPlan>> {
        match self {
            ListenerRoutes::Tcp(plan) => Some(plan),
            ListenerRoutes::Http(..) | ListenerRoutes::Udp(_) => None,
        }
    }

    /// The UDP plan, for a UDP listener.
    pub fn udp(&self) -> Option<&Arc<crate::l4::udp::UdpListenerPlan>> {
        match self {
            ListenerRoutes::Udp(plan) => Some(plan),
            ListenerRoutes::Http(..) | ListenerRoutes::Tcp(_) => None,
        }
    }
}

// === impl PlanError ===

impl PlanError {
    fn at(location: &FieldLocation, source: impl Into<PlanCause>) -> Self {
        PlanError {
            location: location.clone(),
            source: Box::new(source.into()),
        }
    }

    /// The config error to report: the field's file, line and column, and
    /// the plugin's error with its causes.
    fn reported(&self, config: &Config) -> crate::config::ConfigError {
        config
            .source
            .error(&self.location, crate::error_chain(&self.source))
    }
}

#[cfg(test)]
mod tests;
