//! Which pool serves a request: host and path-prefix matching.

use std::sync::Arc;

use super::HeaderFilter;
use super::path::PathPolicy;
use crate::host_pattern::HostPattern;
use crate::upstream::BackendPool;

/// One route: a match and the pool it sends to.
pub struct Route {
    /// Host to match; `None` matches any host.
    pub host: Option<HostPattern>,
    /// Path prefix to match.
    pub path_prefix: String,
    /// Where matching requests go.
    pub pool: Arc<BackendPool>,
    /// Header filters, in the order they see requests.
    pub filters: Arc<[Arc<dyn HeaderFilter>]>,
}

/// A listener's routes, tried in config order; the first match wins (as in
/// Envoy's route tables), so put specific routes before catch-alls.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    paths: PathPolicy,
}

// === impl RouteTable ===

impl RouteTable {
    /// Routes in matching order, matched on paths normalised by `paths`.
    pub fn new(routes: Vec<Route>, paths: PathPolicy) -> Self {
        RouteTable { routes, paths }
    }

    /// How paths are normalised before [`RouteTable::find`] sees them.
    pub fn paths(&self) -> &PathPolicy {
        &self.paths
    }

    /// The routes in matching order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The pool for a request to `host` (lowercase, no port) and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| {
            HostPattern::accepts(route.host.as_ref(), host) && path.starts_with(&route.path_prefix)
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::upstream::{BackendSet, NativeRoundRobin, PoolSettings};

    fn pool(name: &str) -> Arc<BackendPool> {
        let settings = PoolSettings::for_tests();
        let backends = Arc::new(BackendSet::new(Vec::new()));
        Arc::new(BackendPool::new(
            name,
            backends,
            Box::new(NativeRoundRobin::default()),
            settings,
        ))
    }

    fn table() -> RouteTable {
        RouteTable::new(
            vec![
                Route {
                    host: Some(HostPattern::Exact("api.test".into())),
                    path_prefix: "/".into(),
                    pool: pool("api"),
                    filters: Arc::from(Vec::new()),
                },
                Route {
                    host: Some(HostPattern::Wildcard(".cdn.test".into())),
                    path_prefix: "/static".into(),
                    pool: pool("cdn"),
                    filters: Arc::from(Vec::new()),
                },
                Route {
                    host: None,
                    path_prefix: "/admin".into(),
                    pool: pool("admin"),
                    filters: Arc::from(Vec::new()),
                },
            ],
            PathPolicy::default(),
        )
    }

    fn found(table: &RouteTable, host: Option<&str>, path: &str) -> Option<String> {
        table
            .find(host, path)
            .map(|route| route.pool.name().to_string())
    }

    #[test]
    fn first_matching_route_wins() {
        let table = table();
        assert_eq!(
            found(&table, Some("api.test"), "/admin").as_deref(),
            Some("api")
        );
        assert_eq!(
            found(&table, Some("x.cdn.test"), "/static/a.css").as_deref(),
            Some("cdn")
        );
        assert_eq!(
            found(&table, Some("x.cdn.test"), "/admin").as_deref(),
            Some("admin")
        );
        assert_eq!(
            found(&table, None, "/admin/users").as_deref(),
            Some("admin")
        );
        assert_eq!(found(&table, Some("x.cdn.test"), "/other"), None);
        assert_eq!(found(&table, None, "/"), None);
    }
}
