//! The upstream layer: backends as resolved endpoints, pools and the trait
//! that chooses among their backends, live statistics, the connector and
//! connection pool that reach backends, and the retry rule.
//!
//! ```text
//! BackendPool ── choose(RequestView) ──▶ Choice (ranked, validated candidates)
//!     │ BackendSet (generation) of Backend { id, Endpoints, weight, stats }
//!     │
//! ConnectionPool<Connector> ── get(backend, endpoint) ──▶ Connection ── send ──▶ UpstreamBody
//!     HTTP/1.1: idle queues per (endpoint, kind); HTTP/2: a few shared
//!     connections per (endpoint, kind); reaped and evicted by the supervisor
//! RetryPolicy ── decide(AttemptFailure) ──▶ same backend / next candidate / stop
//! ```
//!
//! This module never names wasmtime: a pool chooses through a
//! [`BackendSelection`], which the `plugin` module implements with a
//! sandboxed component and [`NativeRoundRobin`] implements natively (the
//! failure fallback, and the reference for benchmarks).

mod affinity;
mod backend;
mod connection_pool;
mod connector;
mod drain;
mod endpoint;
mod exchange_error;
mod health_signals;
mod http1;
mod http2;
mod pool;
mod request;
mod request_body;
mod request_facts;
mod resolver;
mod retry;
mod retry_budget;
mod round_robin;
mod selection;
mod snapshot_map;
mod stats;
mod upgrade;
mod upstream_body;

pub use affinity::{AffinityCookie, AffinityCookieError, SameSite};
pub use backend::{Backend, BackendSet, FULL_RAMP, fixed_endpoints, token_for};
pub use connection_pool::{
    Connection, ConnectionKind, ConnectionPool, IDLE_TIMEOUT, MAX_IDLE_PER_ENDPOINT, PoolKey,
    SendError,
};
pub use connector::{ConnectError, Connector, TcpConnector, connect_within};
pub use drain::drained;
pub use endpoint::{BackendAddress, Endpoints};
pub use exchange_error::ExchangeError;
pub use health_signals::{CheckState, EjectionReason, HealthSignals, ProbeReport, TrafficEvent};
pub use http1::{Http1Connection, Http1Error, SendFailure, Transport, parse_response_head};
pub use http2::MAX_STREAMS_PER_CONNECTION;
pub use pool::{BackendPool, Choice, PluginFailurePolicy, PoolError, PoolSettings};
pub use request::{Protocol, RequestView, cookie_value};
pub use request_body::{
    ClientBody, ClientBodyError, KeptBody, RequestBody, RequestBodyError, is_body_timeout,
    is_body_too_large,
};
pub use request_facts::{
    InvalidHeaderName, RequestFacts, RequestField, RequestNeeds, header_pairs,
};
pub use resolver::{LOOKUP_TIMEOUT, ResolveError, Resolver};
pub use retry::{
    AttemptFailure, FailureKind, RetryContext, RetryDecision, RetryPolicy, RetryReason,
};
pub use retry_budget::{BUDGET_WINDOW, RetryBudget};
pub use round_robin::NativeRoundRobin;
pub use selection::{BackendSelection, PluginReport, Selection, SelectionError};
pub use stats::{
    ActiveRequest, BackendStats, Health, StatsRegistry, StatsSnapshot, Transition, backend_left,
    ramp_started,
};
pub use upgrade::{Upgraded, UpstreamTunnel};
pub use upstream_body::UpstreamBody;
