//! Backends, pools, live statistics, and the trait that chooses a backend.
//!
//! This module never names wasmtime: a pool chooses through a
//! [`BackendSelection`], which the `plugin` module implements with a
//! sandboxed component and [`NativeRoundRobin`] implements natively (the
//! failure fallback, and the reference for benchmarks).

mod affinity;
mod backend;
mod pool;
mod request;
mod round_robin;
mod selection;
mod stats;

pub use affinity::{AffinityCookie, AffinityCookieError};
pub use backend::{Backend, BackendSet, FULL_RAMP, token_for};
pub use pool::{BackendPool, Choice, PoolError, PoolSettings};
pub use request::{Protocol, RequestInfo};
pub use round_robin::NativeRoundRobin;
pub use selection::{BackendSelection, Selection, SelectionError};
pub use stats::{ActiveRequest, BackendStats, Health, StatsRegistry, StatsSnapshot};
