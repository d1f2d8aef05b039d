//! A validated config compiled into what serves: route tables, pools with
//! their backends and live stats, balancer plugins instantiated and
//! configured. Built off the request path; published whole.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{
    BalancerRef, Config, ConfigErrors, FieldLocation, FilterConfig, ListenerConfig, ListenerMode,
    PoolConfig,
};
use crate::l4::{TcpListenerPlan, TcpRoute};
use crate::l7::{HeaderFilter, Route, RouteTable};
use crate::plugin::{self, PluginRuntime, WasmBalancer, WasmFilter};
use crate::upstream::{
    Backend, BackendPool, BackendSelection, BackendSet, Endpoints, NativeRoundRobin, PoolSettings,
    Protocol, StatsRegistry,
};

/// Everything the request path needs, immutable once built.
pub struct Plan {
    generation: u64,
    listeners: Vec<ListenerPlan>,
    pools: Vec<Arc<BackendPool>>,
    /// Backends new to their pool: registered, and their slow start begun,
    /// only by [`Plan::commit`], so a rejected reload leaves no trace.
    joined: Vec<JoinedBackend>,
}

/// A backend this plan adds to its pool.
struct JoinedBackend {
    pool: String,
    id: String,
    stats: Arc<crate::upstream::BackendStats>,
    ramps: bool,
}

/// One listener's address and routes.
pub struct ListenerPlan {
    /// The listener's name.
    pub name: Arc<str>,
    /// Where it binds.
    pub address: SocketAddr,
    /// Its routes, HTTP or TCP.
    pub routes: ListenerRoutes,
}

/// What a listener serves.
pub enum ListenerRoutes {
    /// The HTTP reverse proxy's route table.
    Http(RouteTable),
    /// The TCP proxy's SNI routes and connection settings.
    Tcp(Arc<TcpListenerPlan>),
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
        let mut joined = Vec::new();
        for pool in &config.pools {
            match build_pool(config, pool, plugins, stats, generation, &mut joined) {
                Ok(built) => pools.push(Arc::new(built)),
                Err((location, error)) => {
                    errors.push(config.source.error(&location, crate::error_chain(&error)))
                }
            }
        }
        let mut filters = Vec::new();
        for filter in &config.filters {
            match build_filter(config, filter, plugins) {
                Ok(built) => {
                    let built: Arc<dyn HeaderFilter> = Arc::new(built);
                    filters.push((filter.name.as_str(), built));
                }
                Err((location, error)) => {
                    errors.push(config.source.error(&location, crate::error_chain(&error)))
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let listeners = config
            .listeners
            .iter()
            .map(|listener| listener_plan(listener, &pools, &filters))
            .collect();
        Ok(Plan {
            generation,
            listeners,
            pools,
            joined,
        })
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
            if let Some(ramped) = pool.ramped_backends() {
                pool.publish(ramped);
            }
        }
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

    /// Whether the pool named `pool` has a backend with id `backend`.
    pub fn has_backend(&self, pool: &str, backend: &str) -> bool {
        self.pools
            .iter()
            .find(|p| &**p.name() == pool)
            .is_some_and(|p| p.backends().backends.iter().any(|b| b.id == backend))
    }
}

// === impl ListenerRoutes ===

impl ListenerRoutes {
    /// The HTTP route table, for an HTTP listener.
    pub fn http(&self) -> Option<&RouteTable> {
        match self {
            ListenerRoutes::Http(table) => Some(table),
            ListenerRoutes::Tcp(_) => None,
        }
    }

    /// The TCP plan, for a TCP listener.
    pub fn tcp(&self) -> Option<&Arc<TcpListenerPlan>> {
        match self {
            ListenerRoutes::Tcp(plan) => Some(plan),
            ListenerRoutes::Http(_) => None,
        }
    }
}

fn listener_plan(
    listener: &ListenerConfig,
    pools: &[Arc<BackendPool>],
    filters: &[(&str, Arc<dyn HeaderFilter>)],
) -> ListenerPlan {
    // Validation made sure every route names a pool and declared filters.
    let pool_of = |name: &str| pools.iter().find(|p| **p.name() == *name).cloned();
    let filters_of = |names: &[String]| -> Vec<Arc<dyn HeaderFilter>> {
        names
            .iter()
            .filter_map(|name| filters.iter().find(|(n, _)| n == name))
            .map(|(_, filter)| Arc::clone(filter))
            .collect()
    };
    let routes = match &listener.mode {
        ListenerMode::Http => ListenerRoutes::Http(RouteTable::new(
            listener
                .routes
                .iter()
                .filter_map(|route| {
                    Some(Route {
                        host: route.host.clone(),
                        path_prefix: route.path_prefix.clone(),
                        pool: pool_of(&route.pool)?,
                        filters: filters_of(&route.filters).into(),
                    })
                })
                .collect(),
        )),
        ListenerMode::Tcp(tcp) => ListenerRoutes::Tcp(Arc::new(TcpListenerPlan {
            routes: listener
                .routes
                .iter()
                .filter_map(|route| {
                    Some(TcpRoute {
                        sni: route.sni.clone(),
                        pool: pool_of(&route.pool)?,
                    })
                })
                .collect(),
            idle_timeout: tcp.idle_timeout,
            zero_copy: tcp.zero_copy,
            accept_proxy_protocol_from: tcp.accept_proxy_protocol_from.clone(),
        })),
    };
    ListenerPlan {
        name: listener.name.as_str().into(),
        address: listener.address,
        routes,
    }
}

/// What the pool's balancer will place: HTTP requests, TCP connections or
/// both, depending on the listeners that route to it.
fn protocols_of(config: &Config, pool: &PoolConfig) -> Vec<Protocol> {
    let mut protocols = Vec::new();
    for listener in config.listeners_using(&pool.name) {
        let protocol = match listener.mode {
            ListenerMode::Http => Protocol::Http,
            ListenerMode::Tcp(_) => Protocol::Tcp,
        };
        if !protocols.contains(&protocol) {
            protocols.push(protocol);
        }
    }
    protocols
}

fn build_filter(
    config: &Config,
    filter: &FilterConfig,
    plugins: &PluginRuntime,
) -> Result<WasmFilter, (FieldLocation, plugin::Error)> {
    let compiled = plugins
        .compile_filter(&filter.plugin)
        .map_err(|e| (filter.plugin_location.clone(), e))?;
    WasmFilter::new(
        &filter.name,
        compiled,
        filter.options.clone(),
        config.sandbox,
    )
    .map_err(|e| match e {
        plugin::Error::Rejected { .. } => (filter.options_location.clone(), e),
        other => (filter.plugin_location.clone(), other),
    })
}

fn build_pool(
    config: &Config,
    pool: &PoolConfig,
    plugins: &PluginRuntime,
    stats: &StatsRegistry,
    generation: u64,
    joined: &mut Vec<JoinedBackend>,
) -> Result<BackendPool, (FieldLocation, plugin::Error)> {
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
            // Resolved here, off the request path; the supervisor
            // re-resolves names on a schedule.
            Backend::new(
                backend.id.clone(),
                Arc::new(Endpoints::resolve_blocking(backend.address.clone())),
                backend.weight,
                backend.metadata.clone(),
                stats,
            )
        })
        .collect();
    let mut backends = BackendSet::new(backends);
    if let Some(ramped) = pool.slow_start.and_then(|window| backends.ramped(window)) {
        backends = ramped;
    }
    let backends = Arc::new(backends);
    let balancer: Box<dyn BackendSelection> = match &pool.balancer {
        BalancerRef::NativeRoundRobin => Box::new(NativeRoundRobin::default()),
        BalancerRef::Plugin(plugin) => {
            let compiled = plugins
                .compile_balancer(plugin)
                .map_err(|e| (pool.balancer_location.clone(), e))?;
            let balancer = WasmBalancer::new(
                compiled,
                pool.balancer_options.clone(),
                protocols_of(config, pool),
                config.sandbox,
                &backends,
            )
            .map_err(|e| match e {
                plugin::Error::Rejected { .. } => (pool.balancer_options_location.clone(), e),
                other => (pool.balancer_location.clone(), other),
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
    };
    Ok(BackendPool::new(
        pool.name.as_str(),
        backends,
        balancer,
        settings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n\n[pools.main]\nbalancer = \"builtin:round-robin\"\nslow-start = \"10m\"\nbackends = [{{ address = \"127.0.0.1:9001\" }}, {{ address = \"127.0.0.1:9002\" }}]\n{extra}"
        );
        Config::parse(ConfigSource::new(std::path::Path::new("t.toml"), text)).unwrap()
    }

    #[test]
    fn only_a_committed_plan_registers_backends_and_starts_ramps() {
        let plugins = PluginRuntime::new().unwrap();
        let stats = StatsRegistry::default();
        let rejected = config("\n[pools.main.balancer-options]\nbogus = 1\n");
        assert!(Plan::build(&rejected, &plugins, &stats, 2).is_err());
        assert!(
            stats.lookup("main", "127.0.0.1:9001").1,
            "a rejected plan registered stats"
        );

        let built = Plan::build(&config(""), &plugins, &stats, 2).unwrap();
        assert!(
            stats.lookup("main", "127.0.0.1:9001").1,
            "building alone registers nothing"
        );
        built.commit(&stats);
        let (registered, new) = stats.lookup("main", "127.0.0.1:9001");
        assert!(!new);
        assert!(registered.is_ramping(), "a backend a reload adds ramps up");
        let ramps: Vec<u32> = built.pools()[0]
            .backends()
            .backends
            .iter()
            .map(|b| b.ramp_permille)
            .collect();
        assert!(ramps.iter().all(|&r| r < 10), "published ramped: {ramps:?}");
    }
}
