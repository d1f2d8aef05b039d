//! `/status`: the running plan as JSON — listeners and routes, pools with
//! their balancer, and every backend with its health and live stats.

use serde_json::{Value, json};

use crate::l7::RouteTarget;
use crate::plan::{ListenerPlan, ListenerRoutes, Plan};
use crate::upstream::PluginFailurePolicy;
use crate::upstream::{BackendPool, HealthSignals};

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
                    let (pool, pools, redirect, respond) = match &route.target {
                        RouteTarget::Pools(split) => (
                            split.pools().first().map(|(pool, _)| &**pool.name()),
                            Some(
                                split
                                    .pools()
                                    .iter()
                                    .map(|(pool, weight)| json!({ "pool": &**pool.name(), "weight": weight }))
                                    .collect::<Vec<_>>(),
                            ),
                            None,
                            None,
                        ),
                        RouteTarget::Redirect { status, location } => (
                            None,
                            None,
                            Some(json!({ "status": status.as_u16(), "location": location })),
                            None,
                        ),
                        RouteTarget::Respond { status, .. } => {
                            (None, None, None, Some(json!({ "status": status.as_u16() })))
                        }
                    };
                    json!({
                        "name": &*route.name,
                        "host": route.host.as_ref().map(ToString::to_string),
                        "path-prefix": route.path_prefix,
                        "pool": pool,
                        "pools": pools,
                        "redirect": redirect,
                        "respond": respond,
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
        "panic": pool.is_panicking(),
        "backends": backends.backends.iter().map(|backend| {
            let stats = backend.stats.snapshot();
            json!({
                "id": backend.id,
                "address": backend.address,
                "weight": backend.weight,
                "ramp-permille": backend.ramp_permille,
                "health-permille": backend.health_permille,
                "health": stats.health.label(),
                "check": render_check(backend.stats.signals()),
                "active": stats.active,
                "ewma-latency-us": stats.ewma_latency_us,
                "consecutive-failures": stats.consecutive_failures,
            })
        }).collect::<Vec<_>>(),
    })
}

/// What active and passive health say of one backend.
fn render_check(signals: &HealthSignals) -> Value {
    let last_probe = signals.last_probe().map(|probe| {
        json!({
            "result": probe.result,
            "reason": probe.reason,
            "seconds-ago": probe.at.elapsed().as_secs_f64(),
        })
    });
    json!({
        "state": signals.checked().label(),
        "last-probe": last_probe,
        "ejected": signals.is_ejected(),
        "ejected-for-seconds": signals
            .ejected_until()
            .map(|until| until.saturating_duration_since(tokio::time::Instant::now()).as_secs_f64()),
        "ejections": signals.ejections(),
        "drained": signals.is_drained(),
    })
}
