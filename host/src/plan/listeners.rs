//! Listener plans: a listener's routes bound to the built pools and
//! filters they name.

use std::sync::Arc;

use super::{ListenerPlan, ListenerRoutes};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::config::{ListenerConfig, ListenerMode, LocalAnswer, RouteConfig};
use crate::l4::{TcpListenerPlan, TcpRoute};
use crate::l7::{Conditions, HeaderFilter, RateLimits, Route, RouteTable, RouteTarget, Split};
use crate::metrics::ResponseSeries;
use crate::tls::ServerTls;
use crate::upstream::{BackendPool, RetryPolicy};

pub(super) fn listener_plan(
    listener: &ListenerConfig,
    pools: &[Arc<BackendPool>],
    filters: &[(&str, Arc<dyn HeaderFilter>)],
    limits: &RateLimits,
    tls: Option<Arc<ServerTls>>,
    access_log: Option<&crate::access_log::AccessLog>,
) -> Option<ListenerPlan> {
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
        ListenerMode::Http(http) => ListenerRoutes::Http(
            Box::new(
                RouteTable::new(
                    listener
                        .routes
                        .iter()
                        .filter_map(|route| {
                            Some(Route {
                                name: Arc::from(route.name.as_str()),
                                metrics: Arc::new(ResponseSeries::route(
                                    &listener.name,
                                    &route.name,
                                )),
                                host: route.host.clone(),
                                path_prefix: route.path_prefix.clone(),
                                conditions: Conditions::new(&route.conditions),
                                target: target(route, &pool_of)?,
                                rewrite: route.rewrite.clone(),
                                upgrades: route.upgrades.clone().into(),
                                retry: Arc::new(RetryPolicy::new(route.retry.clone())),
                                max_body_size: route.max_body_size,
                                timeout: route.timeout,
                                limit: route
                                    .limit
                                    .as_deref()
                                    .and_then(|name| limits.get(name).cloned()),
                                filters: filters_of(&route.filters).into(),
                            })
                        })
                        .collect(),
                    http.paths,
                )
                .with_forwarding(http.forwarding),
            ),
            http.limits,
        ),
        ListenerMode::Tcp(tcp) => ListenerRoutes::Tcp(Arc::new(TcpListenerPlan {
            routes: listener
                .routes
                .iter()
                .filter_map(|route| {
                    Some(TcpRoute {
                        sni: route.sni.clone(),
                        terminate_tls: route.terminate_tls,
                        pool: pool_of(&route.pools.first()?.pool)?,
                    })
                })
                .collect(),
            idle_timeout: tcp.idle_timeout,
            zero_copy: tcp.zero_copy,
            accept_proxy_protocol_from: tcp.accept_proxy_protocol_from.clone(),
            tls: tls.clone(),
            access_log: access_log.cloned(),
        })),
        ListenerMode::Udp(udp) => {
            // Validation made sure of the one route and its pool.
            let pool = listener
                .routes
                .first()
                .and_then(|route| route.pools.first())
                .and_then(|to| pool_of(&to.pool))?;
            ListenerRoutes::Udp(Arc::new(crate::l4::udp::UdpListenerPlan {
                pool,
                idle_timeout: udp.idle_timeout,
                responses: udp.responses,
                requests: udp.requests,
                per_datagram: udp.per_datagram,
                max_flows: udp.max_flows,
                proxy_header: udp.proxy_header,
                open_flows: Arc::default(),
                affinity: (udp.affinity == crate::config::UdpAffinity::ClientIp).then(Arc::default),
            }))
        }
    };
    Some(ListenerPlan {
        name: listener.name.as_str().into(),
        address: listener.address,
        routes,
        tls,
    })
}

/// What an HTTP route does: its pools (validation made sure they exist)
/// or its own answer.
fn target(
    route: &RouteConfig,
    pool_of: &impl Fn(&str) -> Option<Arc<BackendPool>>,
) -> Option<RouteTarget> {
    Some(match &route.answer {
        Some(LocalAnswer::Redirect { status, location }) => RouteTarget::Redirect {
            status: StatusCode::from_u16(*status).ok()?,
            location: location.clone(),
        },
        Some(LocalAnswer::Respond {
            status,
            body,
            content_type,
        }) => RouteTarget::Respond {
            status: StatusCode::from_u16(*status).ok()?,
            body: Bytes::from(body.clone()),
            content_type: HeaderValue::from_str(content_type).ok()?,
        },
        None => {
            let pools = route
                .pools
                .iter()
                .map(|to| Some((pool_of(&to.pool)?, to.weight)))
                .collect::<Option<Vec<_>>>()?;
            RouteTarget::Pools(Split::new(pools, route.sticky.clone()))
        }
    })
}
