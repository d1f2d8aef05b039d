//! Where a backend is reached: its configured address, and the socket
//! addresses the host resolved it to.
//!
//! Names are resolved by the host, never on the request path: once when a
//! plan is built (off the serving threads) and again on a schedule by the
//! supervisor. Every A/AAAA record is kept and new connections rotate over
//! them. A connect only ever picks an already resolved [`SocketAddr`].

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

/// A backend address as configured: a socket address, or a host name and
/// port the host resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendAddress {
    /// `10.0.0.1:80`, `[::1]:80`: used as is.
    Socket(SocketAddr),
    /// `app.internal:80`: resolved by the host.
    Name {
        /// The host name.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
}

/// The resolved addresses of one backend, shared by every generation of
/// its pool's backend set and updated in place by re-resolution.
#[derive(Debug)]
pub struct Endpoints {
    configured: BackendAddress,
    resolved: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
}

/// Why a backend's name could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve backend {address}")]
pub struct ResolveError {
    /// The configured address.
    pub address: BackendAddress,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

// === impl BackendAddress ===

impl BackendAddress {
    /// Parses `ip:port`, `[ipv6]:port` or `name:port`; `None` when there is
    /// no port or no host.
    pub fn parse(text: &str) -> Option<BackendAddress> {
        if let Ok(socket) = text.parse::<SocketAddr>() {
            return Some(BackendAddress::Socket(socket));
        }
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        valid.then(|| BackendAddress::Name {
            host: host.to_ascii_lowercase().into(),
            port,
        })
    }

    /// Whether the host must resolve this address.
    pub fn is_name(&self) -> bool {
        matches!(self, BackendAddress::Name { .. })
    }

    /// Resolves with the system resolver (`getaddrinfo`), blocking: call it
    /// off the serving threads. Every record is returned, in resolver order.
    pub fn resolve_blocking(&self) -> Result<Vec<SocketAddr>, ResolveError> {
        match self {
            BackendAddress::Socket(socket) => Ok(vec![*socket]),
            BackendAddress::Name { host, port } => (&**host, *port)
                .to_socket_addrs()
                .map(dedup)
                .map_err(|source| self.error(source)),
        }
    }

    /// Resolves on tokio's blocking pool: the supervisor's re-resolution.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, ResolveError> {
        match self {
            BackendAddress::Socket(socket) => Ok(vec![*socket]),
            BackendAddress::Name { host, port } => tokio::net::lookup_host((&**host, *port))
                .await
                .map(dedup)
                .map_err(|source| self.error(source)),
        }
    }

    fn error(&self, source: std::io::Error) -> ResolveError {
        ResolveError {
            address: self.clone(),
            source,
        }
    }
}

fn dedup(found: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in found {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    addresses
}

impl fmt::Display for BackendAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddress::Socket(socket) => socket.fmt(f),
            BackendAddress::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

// === impl Endpoints ===

impl Endpoints {
    /// Endpoints for `configured`, resolved now (blocking). A name that does
    /// not resolve yet leaves the backend without addresses: its connects
    /// fail over to the next candidate until re-resolution finds it, as
    /// HAProxy's `init-addr none` does, so that a DNS hiccup cannot reject
    /// a reload.
    pub fn resolve_blocking(configured: BackendAddress) -> Endpoints {
        let resolved = match configured.resolve_blocking() {
            Ok(resolved) => resolved,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "backend has no address yet");
                Vec::new()
            }
        };
        Endpoints::new(configured, resolved)
    }

    /// Endpoints already resolved to `resolved`.
    pub fn new(configured: BackendAddress, resolved: Vec<SocketAddr>) -> Endpoints {
        Endpoints {
            configured,
            resolved: ArcSwap::from_pointee(resolved),
            next: AtomicUsize::new(0),
        }
    }

    /// The address as configured.
    pub fn configured(&self) -> &BackendAddress {
        &self.configured
    }

    /// The address for the next new connection: the resolved records in
    /// turn. `None` while the name has not resolved.
    pub fn pick(&self) -> Option<SocketAddr> {
        let resolved = self.resolved.load();
        match resolved.len() {
            0 => None,
            1 => resolved.first().copied(),
            len => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % len;
                resolved.get(turn).copied()
            }
        }
    }

    /// Every resolved address.
    pub fn all(&self) -> Arc<Vec<SocketAddr>> {
        self.resolved.load_full()
    }

    /// Replaces the resolved addresses; whether they changed.
    pub fn update(&self, resolved: Vec<SocketAddr>) -> bool {
        if **self.resolved.load() == resolved {
            return false;
        }
        self.resolved.store(Arc::new(resolved));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sockets_and_names() {
        assert_eq!(
            BackendAddress::parse("127.0.0.1:80"),
            Some(BackendAddress::Socket("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            BackendAddress::parse("[::1]:8080").map(|a| a.is_name()),
            Some(false)
        );
        let name = BackendAddress::parse("App.Internal:9000").unwrap();
        assert_eq!(name.to_string(), "app.internal:9000");
        assert!(name.is_name());
        for bad in ["nope", ":80", "a b:80", "host:port", "host:70000"] {
            assert_eq!(BackendAddress::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn connects_rotate_over_every_record() {
        let records: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.2:1".parse().unwrap(),
            "[::1]:1".parse().unwrap(),
        ];
        let name = BackendAddress::parse("multi.test:1").unwrap();
        let endpoints = Endpoints::new(name, records.clone());
        let picked: Vec<SocketAddr> = (0..6).filter_map(|_| endpoints.pick()).collect();
        assert_eq!(picked[..3], records[..]);
        assert_eq!(picked[3..], records[..]);
        assert!(!endpoints.update(records.clone()));
        assert!(endpoints.update(records[..1].to_vec()));
        assert_eq!(endpoints.pick(), records.first().copied());
        assert!(endpoints.update(Vec::new()));
        assert_eq!(endpoints.pick(), None);
    }

    #[test]
    fn localhost_resolves_without_the_network() {
        let name = BackendAddress::parse("localhost:80").unwrap();
        let resolved = name.resolve_blocking().unwrap();
        assert!(!resolved.is_empty());
        assert!(
            resolved
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 80)
        );
        let socket = BackendAddress::parse("127.0.0.9:7").unwrap();
        assert_eq!(
            socket.resolve_blocking().unwrap(),
            ["127.0.0.9:7".parse::<SocketAddr>().unwrap()]
        );
    }
}
