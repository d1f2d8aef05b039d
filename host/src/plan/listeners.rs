//! Listener plans: a listener's routes bound to the built pools and
//! filters they name.

use std::sync::Arc;

use super::{ListenerPlan, ListenerRoutes};
use crate::config::{ListenerConfig, ListenerMode};
use crate::l4::{TcpListenerPlan, TcpRoute};
use crate::l7::{HeaderFilter, Route, RouteTable};
use crate::tls::ServerTls;
use crate::upstream::BackendPool;

pub(super) fn listener_plan(
    listener: &ListenerConfig,
    pools: &[Arc<BackendPool>],
    filters: &[(&str, Arc<dyn HeaderFilter>)],
    tls: Option<Arc<ServerTls>>,
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
        ListenerMode::Http(http) => ListenerRoutes::Http(
            RouteTable::new(
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
                http.paths,
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
                        pool: pool_of(&route.pool)?,
                    })
                })
                .collect(),
            idle_timeout: tcp.idle_timeout,
            zero_copy: tcp.zero_copy,
            accept_proxy_protocol_from: tcp.accept_proxy_protocol_from.clone(),
            tls: tls.clone(),
        })),
    };
    ListenerPlan {
        name: listener.name.as_str().into(),
        address: listener.address,
        routes,
        tls,
    }
}
