//! `/status`: the running plan as JSON — listeners and routes, pools with
//! their balancer, and every backend with its health, weights and live
//! stats, each route and backend with its last minute of traffic.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::recent::{Subject, Window};
use crate::l7::RouteTarget;
use crate::plan::{ListenerPlan, ListenerRoutes, Plan};
use crate::upstream::PluginFailurePolicy;
use crate::upstream::{BackendPool, HealthSignals};

/// Traffic of the last minute, by route and backend.
type Windows = HashMap<Subject, Window>;

/// The plan as a JSON document.
pub fn render(plan: &Plan, recent: &Windows) -> Value {
    let health_checks: HashMap<&str, Value> = plan
        .health_checks()
        .iter()
        .map(|(pool, check)| {
            let report = check.interpreter.report();
            (
                &**pool.name(),
                json!({
                    "interpreter": check.interpreter.name(),
                    "sha256": report.as_ref().map(|r| r.digest.clone()),
                    "failures": report.map_or(0, |r| r.failures),
                }),
            )
        })
        .collect();
    json!({
        "generation": plan.generation(),
        "window-seconds": super::recent::WINDOW.as_secs(),
        "listeners": plan.listeners().iter().map(|listener| render_listener(listener, recent)).collect::<Vec<_>>(),
        "pools": plan.pools().iter().map(|pool| {
            let check = health_checks.get(&**pool.name()).cloned().unwrap_or(Value::Null);
            render_pool(pool, recent, check)
        }).collect::<Vec<_>>(),
    })
}

/// One series' window; `share` of its group's requests when given.
fn render_window(window: Option<&Window>, share: Option<f64>) -> Value {
    let window = window.copied().unwrap_or(Window {
        requests: 0,
        rate: 0.0,
        p50: None,
        p99: None,
    });
    json!({
        "requests": window.requests,
        "rate": window.rate,
        "share": share,
        "p50-seconds": window.p50,
        "p99-seconds": window.p99,
    })
}

fn render_listener(listener: &ListenerPlan, recent: &Windows) -> Value {
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
                    let window = recent.get(&Subject::Route(
                        listener.name.to_string(),
                        route.name.to_string(),
                    ));
                    json!({
                        "name": &*route.name,
                        "recent": render_window(window, None),
                        "host": route.host.as_ref().map(ToString::to_string),
                        "path-prefix": route.path_prefix,
                        "pool": pool,
                        "pools": pools,
                        "redirect": redirect,
                        "respond": respond,
                        "filters": route.filters.iter().map(|f| {
                            let report = f.report();
                            json!({
                                "name": f.name(),
                                "plugin": f.plugin(),
                                "sha256": report.as_ref().map(|r| r.digest.clone()),
                                "failures": report.map_or(0, |r| r.failures),
                            })
                        }).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        ListenerRoutes::Udp(udp) => (
            "udp",
            vec![json!({
                "pool": &**udp.pool.name(),
                "flows": udp.open_flows.load(std::sync::atomic::Ordering::Relaxed),
                "max-flows": udp.max_flows,
                // With `affinity = "client-ip"`: client IPs pinned now.
                "pinned-clients": udp.affinity.as_ref().map(|pins| pins.len()),
            })],
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

fn render_pool(pool: &BackendPool, recent: &Windows, health_check: Value) -> Value {
    let backends = pool.backends();
    let window = |id: &str| recent.get(&Subject::Backend(pool.name().to_string(), id.to_owned()));
    let pool_requests: u64 = backends
        .backends
        .iter()
        .filter_map(|backend| window(&backend.id))
        .map(|window| window.requests)
        .sum();
    json!({
        "name": &**pool.name(),
        "balancer": pool.balancer_name(),
        "balancer-sha256": pool.balancer_report().map(|report| report.digest),
        "plugin-failures": pool.balancer_report().map_or(0, |report| report.failures),
        "health-check": health_check,
        "on-plugin-failure": match pool.settings().on_balancer_failure {
            PluginFailurePolicy::RoundRobin => "round-robin",
            PluginFailurePolicy::FailClosed => "fail-closed",
        },
        "backend-generation": backends.generation,
        "panic": pool.is_panicking(),
        "backends": backends.backends.iter().map(|backend| {
            let stats = backend.stats.snapshot();
            let window = window(&backend.id);
            #[allow(clippy::cast_precision_loss)]
            let share = (pool_requests > 0)
                .then(|| window.map_or(0, |w| w.requests) as f64 / pool_requests as f64);
            json!({
                "id": backend.id,
                "address": backend.address,
                "weight": backend.weight,
                "configured-weight": backend.configured_weight,
                "weight-overridden": backend.weight_overridden(),
                "effective-weight": backend.effective_weight(),
                "recent": render_window(window, share),
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
