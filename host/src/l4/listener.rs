//! A TCP listener compiled: its SNI routes with their pools, and how its
//! connections are read and forwarded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::host_pattern::HostPattern;
use crate::tls::ServerTls;
use crate::upstream::BackendPool;

/// What a `mode = "tcp"` listener does with a connection.
pub struct TcpListenerPlan {
    /// Routes in config order; the first match wins.
    pub routes: Vec<TcpRoute>,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Splice bulk transfers on Linux.
    pub zero_copy: bool,
    /// Sources that must open with a PROXY header.
    pub accept_proxy_protocol_from: Vec<IpNet>,
    /// The certificates routes with `terminate_tls` decrypt with.
    pub tls: Option<Arc<ServerTls>>,
    /// Where connections are logged, when they are.
    pub access_log: Option<crate::access_log::AccessLog>,
}

/// One route: connections whose SNI matches go to `pool`.
pub struct TcpRoute {
    /// Server name to match; `None` matches every connection.
    pub sni: Option<HostPattern>,
    /// Decrypt with the listener's certificates and forward plaintext;
    /// otherwise the bytes pass through as they came.
    pub terminate_tls: bool,
    /// Where matching connections go.
    pub pool: Arc<BackendPool>,
}

// === impl TcpListenerPlan ===

impl TcpListenerPlan {
    /// Whether connections must be read up to the end of their ClientHello
    /// before a route can be chosen.
    pub fn routes_by_sni(&self) -> bool {
        self.routes.iter().any(|route| route.sni.is_some())
    }

    /// Whether `source` is a downstream balancer that must send a PROXY
    /// header.
    pub fn trusts(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        self.accept_proxy_protocol_from
            .iter()
            .any(|network| network.contains(&source))
    }

    /// Whether this listener accepts PROXY headers from anyone at all.
    pub fn accepts_proxy_protocol(&self) -> bool {
        !self.accept_proxy_protocol_from.is_empty()
    }

    /// The route of a connection with server name `sni` (lowercase), if
    /// one matches; a connection without SNI matches only routes without
    /// `sni`.
    pub fn route(&self, sni: Option<&str>) -> Option<&TcpRoute> {
        self.routes
            .iter()
            .find(|route| HostPattern::accepts(route.sni.as_ref(), sni))
    }
}
