//! A backend and the versioned set of them a pool balances over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{BackendAddress, BackendStats, Endpoints};
use crate::config::UpstreamProtocol;
use crate::tls::TlsTarget;

/// Full slow-start progress: the backend takes its whole weight.
pub const FULL_RAMP: u32 = 1000;

/// One backend server of a pool.
#[derive(Debug)]
pub struct Backend {
    /// Stable identifier within the pool (configured name or address).
    pub id: String,
    /// The address as configured (`host:port`), as plugins see it.
    pub address: String,
    /// The resolved addresses connections go to, shared by every
    /// generation of the pool's set and re-resolved by the supervisor.
    pub endpoints: Arc<Endpoints>,
    /// Relative weight, at least 1: as configured, or as the admin API
    /// set it until the next reload.
    pub weight: u32,
    /// The weight the config gave.
    pub configured_weight: u32,
    /// Slow-start progress in thousandths, 1 to [`FULL_RAMP`].
    pub ramp_permille: u32,
    /// The weight a degraded verdict leaves, in thousandths, 1 to 1000.
    pub health_permille: u32,
    /// Opaque token naming the backend to clients (affinity cookies).
    pub token: String,
    /// Operator labels, sorted by key.
    pub metadata: Vec<(String, String)>,
    /// Live counters, shared by every worker and kept across reloads.
    pub stats: Arc<BackendStats>,
    /// How HTTP connections to it run TLS; `None`: plaintext.
    pub tls: Option<Arc<TlsTarget>>,
    /// The HTTP version requests reach it in.
    pub protocol: UpstreamProtocol,
}

/// An immutable list of backends with a generation number.
///
/// Balancers index into the list; the generation tells a long-lived
/// balancer instance that it must learn the list again.
#[derive(Debug)]
pub struct BackendSet {
    /// Unique per list in this process: a new list (reload, slow-start
    /// step) always has a higher generation than every list before it.
    pub generation: u64,
    /// The backends, in config order.
    pub backends: Vec<Backend>,
}

// === impl Backend ===

impl Backend {
    /// A fully ramped backend; its token derives from `id`.
    pub fn new(
        id: String,
        endpoints: Arc<Endpoints>,
        weight: u32,
        metadata: Vec<(String, String)>,
        stats: Arc<BackendStats>,
    ) -> Self {
        Backend {
            token: token_for(&id),
            id,
            address: endpoints.configured().to_string(),
            endpoints,
            weight,
            configured_weight: weight,
            ramp_permille: FULL_RAMP,
            health_permille: FULL_RAMP,
            metadata,
            stats,
            tls: None,
            protocol: UpstreamProtocol::Http1,
        }
    }

    /// The same backend, reached over `tls`.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<Arc<TlsTarget>>) -> Self {
        self.tls = tls;
        self
    }

    /// The same backend, spoken to in `protocol`.
    #[must_use]
    pub fn with_protocol(mut self, protocol: UpstreamProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Whether the admin API set its weight.
    pub fn weight_overridden(&self) -> bool {
        self.weight != self.configured_weight
    }

    /// The share of its weight it takes now, in the units of `weight`:
    /// scaled down by slow start and a degraded verdict.
    pub fn effective_weight(&self) -> f64 {
        f64::from(self.weight) * f64::from(self.ramp_permille) * f64::from(self.health_permille)
            / f64::from(FULL_RAMP * FULL_RAMP)
    }

    /// The same backend at another slow-start progress and health weight.
    fn with_capacity(&self, (ramp_permille, health_permille): Capacity) -> Self {
        self.with(self.weight, (ramp_permille, health_permille))
    }

    /// The same backend with `weight` and `capacity`.
    fn with(&self, weight: u32, (ramp_permille, health_permille): Capacity) -> Self {
        Backend {
            id: self.id.clone(),
            address: self.address.clone(),
            endpoints: Arc::clone(&self.endpoints),
            weight,
            configured_weight: self.configured_weight,
            ramp_permille,
            health_permille,
            token: self.token.clone(),
            metadata: self.metadata.clone(),
            stats: Arc::clone(&self.stats),
            tls: self.tls.clone(),
            protocol: self.protocol,
        }
    }
}

/// A backend's affinity token: 16 hex digits of the XXH3 hash of its id.
/// It hides address and name, and every Bascule process computes the same
/// token, so a cookie keeps working behind several proxies and restarts.
pub fn token_for(id: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(id.as_bytes()))
}

/// Endpoints for a backend at a fixed socket address (tests, benches).
pub fn fixed_endpoints(address: std::net::SocketAddr) -> Arc<Endpoints> {
    Arc::new(Endpoints::new(
        BackendAddress::Socket(address),
        vec![address],
    ))
}

// === impl BackendSet ===

impl BackendSet {
    /// A set with a fresh generation.
    pub fn new(backends: Vec<Backend>) -> Self {
        BackendSet {
            generation: next_generation(),
            backends,
        }
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Every backend's endpoints, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoints>> {
        self.backends.iter().map(|backend| &backend.endpoints)
    }

    /// The backend at `index`.
    pub fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }

    /// Where the backend named `id` is in the set.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.backends.iter().position(|backend| backend.id == id)
    }

    /// The backend named `id`.
    pub fn by_id(&self, id: &str) -> Option<&Backend> {
        self.position(id).and_then(|index| self.get(index))
    }

    /// The same backends, `id` weighing `weight` (its configured weight
    /// when `None`), as a new generation; `None` when no backend is `id`.
    pub fn reweighed(&self, id: &str, weight: Option<u32>) -> Option<BackendSet> {
        let position = self.position(id)?;
        Some(BackendSet::new(
            self.backends
                .iter()
                .enumerate()
                .map(|(n, backend)| {
                    let weight = match weight {
                        Some(weight) if n == position => weight,
                        None if n == position => backend.configured_weight,
                        _ => backend.weight,
                    };
                    backend.with(weight, (backend.ramp_permille, backend.health_permille))
                })
                .collect(),
        ))
    }

    /// The same backends with their slow-start progress over `slow_start`
    /// and their degraded weight as they are now, as a new generation;
    /// `None` when nothing changed.
    pub fn refreshed(&self, slow_start: Option<Duration>) -> Option<BackendSet> {
        let capacities: Vec<Capacity> = self
            .backends
            .iter()
            .map(|backend| {
                let ramp =
                    slow_start.map_or(FULL_RAMP, |window| backend.stats.ramp_permille(window));
                (ramp, backend.stats.signals().health_permille())
            })
            .collect();
        self.with_capacities(&capacities)
    }

    /// The same backends with the given capacities, as a new generation;
    /// `None` when nothing changed.
    fn with_capacities(&self, capacities: &[Capacity]) -> Option<BackendSet> {
        let unchanged = self
            .backends
            .iter()
            .zip(capacities)
            .all(|(backend, &(ramp, health))| {
                backend.ramp_permille == ramp && backend.health_permille == health
            });
        if unchanged {
            return None;
        }
        Some(BackendSet::new(
            self.backends
                .iter()
                .zip(capacities)
                .map(|(backend, &capacity)| backend.with_capacity(capacity))
                .collect(),
        ))
    }
}

/// Slow-start progress and degraded weight, both in thousandths.
type Capacity = (u32, u32);

fn next_generation() -> u64 {
    static GENERATION: AtomicU64 = AtomicU64::new(1);
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_and_hide_the_id() {
        assert_eq!(token_for("web-1"), token_for("web-1"));
        assert_ne!(token_for("web-1"), token_for("web-2"));
        let token = token_for("10.0.0.1:80");
        assert_eq!(token.len(), 16);
        // Hex digits only: neither the address's dots nor its colon, so
        // no part of the id can show through.
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    }

    #[test]
    fn new_ramps_make_a_new_generation() {
        let set = BackendSet::new(vec![Backend::new(
            "a".into(),
            fixed_endpoints("127.0.0.1:1".parse().unwrap()),
            2,
            Vec::new(),
            Arc::default(),
        )]);
        assert!(set.with_capacities(&[(FULL_RAMP, FULL_RAMP)]).is_none());
        let ramped = set.with_capacities(&[(250, FULL_RAMP)]).unwrap();
        assert!(ramped.generation > set.generation);
        assert_eq!(
            (ramped.backends[0].ramp_permille, ramped.backends[0].weight),
            (250, 2)
        );
    }
}
