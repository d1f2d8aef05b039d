//! Turning backend names into socket addresses: the system resolver, or
//! the DNS servers `[resolver]` names.
//!
//! Only the plan being committed and the supervisor's refresh call this;
//! the request path reads what they stored in [`Endpoints`]. Every A and
//! AAAA record is kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolverConfig as DnsConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use super::endpoint::{BackendAddress, Endpoints};
use crate::config::ResolverConfig;

/// How long one name may take, all servers and retries included: a
/// reload waits for its new names at most this long.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves backend names.
pub struct Resolver {
    servers: Servers,
    refresh: Duration,
}

enum Servers {
    /// `getaddrinfo` on tokio's blocking pool: `/etc/hosts`, then DNS as
    /// the system is configured.
    System,
    /// The configured DNS servers, asked directly.
    Dns(Box<TokioResolver>),
}

/// Why a backend's name could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve backend {address}")]
pub struct ResolveError {
    /// The configured address.
    pub address: BackendAddress,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

// === impl Resolver ===

impl Resolver {
    /// A resolver as `config` describes it. Nothing is asked yet.
    pub fn new(config: &ResolverConfig) -> Resolver {
        let servers = if config.nameservers.is_empty() {
            Servers::System
        } else {
            let mut dns = DnsConfig::new();
            for &server in &config.nameservers {
                dns.add_name_server(NameServerConfig::new(server, Protocol::Udp));
                dns.add_name_server(NameServerConfig::new(server, Protocol::Tcp));
            }
            let mut options = ResolverOpts::default();
            // Every record, so that connections spread over all of them.
            options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            options.timeout = LOOKUP_TIMEOUT / 2;
            options.attempts = 1;
            Servers::Dns(Box::new(
                TokioResolver::builder_with_config(dns, TokioConnectionProvider::default())
                    .with_options(options)
                    .build(),
            ))
        };
        Resolver {
            servers,
            refresh: config.refresh,
        }
    }

    /// How often the supervisor resolves names again.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// Every address `address` stands for, in the order the resolver gave
    /// them, without repeats; a socket address stands for itself.
    pub async fn lookup(&self, address: &BackendAddress) -> Result<Vec<SocketAddr>, ResolveError> {
        let (host, port) = match address {
            BackendAddress::Socket(socket) => return Ok(vec![*socket]),
            BackendAddress::Name { host, port } => (host, *port),
        };
        let error = |source: Box<dyn std::error::Error + Send + Sync>| ResolveError {
            address: address.clone(),
            source,
        };
        let found: Vec<SocketAddr> = match &self.servers {
            Servers::System => {
                let lookup = tokio::net::lookup_host((&**host, port));
                tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
                    .await
                    .map_err(|elapsed| error(elapsed.into()))?
                    .map_err(|e| error(e.into()))?
                    .collect()
            }
            Servers::Dns(dns) => dns
                .lookup_ip(&**host)
                .await
                .map_err(|e| error(e.into()))?
                .iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        };
        let mut addresses: Vec<SocketAddr> = Vec::with_capacity(found.len());
        for address in found {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        Ok(addresses)
    }

    /// Resolves `endpoints` and stores what was found; whether its
    /// addresses changed. A failure or an empty answer keeps the old
    /// addresses (none, the first time: the backend then fails over until
    /// a later refresh finds it, as HAProxy's `init-addr none` does), so a
    /// DNS hiccup can neither empty a pool nor reject a reload.
    pub async fn refresh_endpoints(&self, endpoints: &Endpoints) -> bool {
        match self.lookup(endpoints.configured()).await {
            Ok(resolved) if !resolved.is_empty() => {
                let changed = endpoints.update(resolved);
                if changed {
                    tracing::info!(backend = %endpoints.configured(), addresses = ?endpoints.all(), "backend addresses changed");
                }
                changed
            }
            Ok(_) => {
                tracing::warn!(backend = %endpoints.configured(), "name has no addresses, keeping the old ones");
                false
            }
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "resolving failed, keeping the old addresses");
                false
            }
        }
    }

    /// Resolves every named endpoint of `all` at once, each bounded by
    /// [`LOOKUP_TIMEOUT`].
    pub async fn refresh_all(self: &Arc<Self>, all: impl IntoIterator<Item = Arc<Endpoints>>) {
        let mut lookups = tokio::task::JoinSet::new();
        for endpoints in all {
            if endpoints.configured().is_name() {
                let resolver = Arc::clone(self);
                lookups.spawn(async move { resolver.refresh_endpoints(&endpoints).await });
            }
        }
        while lookups.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_system_resolver_reads_etc_hosts() {
        let resolver = Resolver::new(&ResolverConfig::default());
        let name = BackendAddress::parse("localhost:80").unwrap();
        let resolved = resolver.lookup(&name).await.unwrap();
        assert!(!resolved.is_empty());
        assert!(
            resolved
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 80),
            "{resolved:?}"
        );
        let socket = BackendAddress::parse("127.0.0.9:7").unwrap();
        assert_eq!(
            resolver.lookup(&socket).await.unwrap(),
            ["127.0.0.9:7".parse::<SocketAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_old_addresses() {
        // A DNS server that is not there: port 9 on loopback refuses.
        let config = ResolverConfig {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            ..ResolverConfig::default()
        };
        let resolver = Resolver::new(&config);
        let old: SocketAddr = "127.0.0.5:80".parse().unwrap();
        let endpoints = Endpoints::new(BackendAddress::parse("gone.test:80").unwrap(), vec![old]);
        assert!(!resolver.refresh_endpoints(&endpoints).await);
        assert_eq!(endpoints.pick(), Some(old));
    }
}
