//! `/status`: the running plan as JSON — listeners and routes, pools with
//! their balancer, and every backend with its health and live stats.

use serde_json::{Value, json};

use crate::plan::{ListenerPlan, ListenerRoutes, Plan};
use crate::upstream::PluginFailurePolicy;
use crate::upstream::{BackendPool, Health};

/// The plan as a JSON document.
pub fn render(plan: &Plan) -> Value {
    json!({
        "generation": plan.generation(),
        "listeners": plan.listeners().iter().map(render_listener).collect::<Vec<_>>(),
        "pools": plan.pools().iter().map(|pool| render_pool(pool)).collect::<Vec<_>>(),
    })
}

fn render_listener(listener: &ListenerPlan) -> Value {
    let (mode, routes) = match &listener.routes {
        ListenerRoutes::Http(table, _) => (
            "http",
            table
                .routes()
                .iter()
                .map(|route| {
                    json!({
                        "host": route.host.as_ref().map(ToString::to_string),
                        "path-prefix": route.path_prefix,
                        "pool": &**route.pool.name(),
                        "filters": route.filters.iter().map(|f| json!({
                            "name": f.name(),
                            "plugin": f.plugin(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        ListenerRoutes::Tcp(tcp) => (
            "tcp",
            tcp.routes
                .iter()
                .map(|route| {
                    json!({
                        "sni": route.sni.as_ref().map(ToString::to_string),
                        "pool": &**route.pool.name(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
    };
    json!({
        "name": &*listener.name,
        "address": listener.address.to_string(),
        "mode": mode,
        "routes": routes,
    })
}

fn render_pool(pool: &BackendPool) -> Value {
    let backends = pool.backends();
    json!({
        "name": &**pool.name(),
        "balancer": pool.balancer_name(),
        "on-plugin-failure": match pool.settings().on_balancer_failure {
            PluginFailurePolicy::RoundRobin => "round-robin",
            PluginFailurePolicy::FailClosed => "fail-closed",
        },
        "backend-generation": backends.generation,
        "backends": backends.backends.iter().map(|backend| {
            let stats = backend.stats.snapshot();
            json!({
                "id": backend.id,
                "address": backend.address,
                "weight": backend.weight,
                "ramp-permille": backend.ramp_permille,
                "health": match stats.health {
                    Health::Healthy => "healthy",
                    Health::Degraded => "degraded",
                    Health::Unhealthy => "unhealthy",
                    Health::Draining => "draining",
                },
                "active": stats.active,
                "ewma-latency-us": stats.ewma_latency_us,
                "consecutive-failures": stats.consecutive_failures,
            })
        }).collect::<Vec<_>>(),
    })
}
