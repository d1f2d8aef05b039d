//! Where a backend is reached: its configured address, and the socket
//! addresses the host resolved it to.
//!
//! Names are resolved by the host's [`Resolver`](super::Resolver), never on
//! the request path: before a plan is committed, and again on a schedule by
//! the supervisor. Every A/AAAA record is kept and new connections rotate
//! over them. A connect only ever picks an already resolved [`SocketAddr`].

use std::fmt;
use std::net::SocketAddr;
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
    /// Endpoints for `configured`: a socket address as is, a name with no
    /// address until the resolver stores some.
    pub fn unresolved(configured: BackendAddress) -> Endpoints {
        let resolved = match &configured {
            BackendAddress::Socket(socket) => vec![*socket],
            BackendAddress::Name { .. } => Vec::new(),
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
    fn only_names_wait_for_the_resolver() {
        let socket = Endpoints::unresolved(BackendAddress::parse("127.0.0.9:7").unwrap());
        assert_eq!(socket.pick(), "127.0.0.9:7".parse().ok());
        let name = Endpoints::unresolved(BackendAddress::parse("localhost:7").unwrap());
        assert_eq!(name.pick(), None);
    }
}
