//! Host bindings generated from `wit/`, and conversions between generated
//! and core types. Generated types do not leave this module's parent.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "balancer",
});

/// The `header-filter` world, sharing the balancer world's interfaces.
mod header_filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "header-filter",
        with: {
            "bascule:plugin/types": super::bascule::plugin::types,
            "bascule:plugin/request-context": super::bascule::plugin::request_context,
            "bascule:plugin/log": super::bascule::plugin::log,
            "bascule:plugin/metrics": super::bascule::plugin::metrics,
        },
    });

    pub use self::bascule::plugin::{headers, rate_limit};
    pub use self::exports::bascule::plugin::filter;
}

/// The `health-interpreter` world, sharing the balancer world's interfaces.
mod health_interpreter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "health-interpreter",
        with: {
            "bascule:plugin/types": super::bascule::plugin::types,
            "bascule:plugin/log": super::bascule::plugin::log,
            "bascule:plugin/metrics": super::bascule::plugin::metrics,
        },
    });

    pub use self::exports::bascule::plugin::health;
}

pub use self::bascule::plugin::{affinity, backend_stats, log, metrics, request_context, types};
pub use self::exports::bascule::plugin::balance;
pub use header_filter::{HeaderFilter, HeaderFilterPre, filter, headers, rate_limit};
pub use health_interpreter::{HealthInterpreter, HealthInterpreterPre, health};

use std::net::IpAddr;

use crate::upstream::{self, Health, InvalidHeaderName, RequestFacts, RequestNeeds};

// === impl conversions ===

impl From<&upstream::Backend> for balance::Backend {
    fn from(backend: &upstream::Backend) -> Self {
        balance::Backend {
            id: backend.id.clone(),
            address: backend.address.clone(),
            weight: backend.weight,
            ramp_permille: backend.ramp_permille,
            health_permille: backend.health_permille,
            token: backend.token.clone(),
            metadata: backend.metadata.clone(),
        }
    }
}

impl From<upstream::StatsSnapshot> for backend_stats::BackendSnapshot {
    fn from(stats: upstream::StatsSnapshot) -> Self {
        backend_stats::BackendSnapshot {
            active: stats.active,
            ewma_latency_us: stats.ewma_latency_us,
            recent_failures: stats.consecutive_failures,
            health: stats.health.into(),
        }
    }
}

impl From<Health> for backend_stats::Health {
    fn from(health: Health) -> Self {
        match health {
            Health::Healthy => backend_stats::Health::Healthy,
            Health::Degraded => backend_stats::Health::Degraded,
            Health::Unhealthy => backend_stats::Health::Unhealthy,
            Health::Draining => backend_stats::Health::Draining,
        }
    }
}

impl From<upstream::Protocol> for types::Protocol {
    fn from(protocol: upstream::Protocol) -> Self {
        match protocol {
            upstream::Protocol::Http => types::Protocol::Http,
            upstream::Protocol::Tcp => types::Protocol::Tcp,
            upstream::Protocol::Udp => types::Protocol::Udp,
        }
    }
}

impl From<RequestFacts> for types::RequestFacts {
    fn from(facts: RequestFacts) -> Self {
        let ip = match facts.client.ip() {
            IpAddr::V4(v4) => types::IpAddress::V4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                // The two halves of the address, as the contract splits it.
                #[allow(clippy::cast_possible_truncation)]
                types::IpAddress::V6(((bits >> 64) as u64, bits as u64))
            }
        };
        types::RequestFacts {
            protocol: facts.protocol.into(),
            client: types::ClientAddress {
                ip,
                port: facts.client.port(),
            },
            values: facts.values,
            headers: facts.headers,
        }
    }
}

impl TryFrom<types::RequestNeeds> for RequestNeeds {
    type Error = InvalidHeaderName;

    fn try_from(needs: types::RequestNeeds) -> Result<Self, InvalidHeaderName> {
        let bits = needs.fields.as_array()[0] & 0xff;
        RequestNeeds::new(
            u8::try_from(bits).unwrap_or(u8::MAX),
            &needs.headers,
            needs.cookies,
        )
    }
}
