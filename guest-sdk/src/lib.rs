//! The crate a Rust author of a Bascule plugin depends on.
//!
//! Bascule asks a plugin, for every request or connection of a pool, which
//! backend should serve it. This crate hides the WebAssembly component
//! plumbing behind one trait, [`Balancer`], and one macro,
//! [`export_balancer!`]: implement the trait on a type that holds your
//! algorithm's state, export it, and build for `wasm32-wasip2`.
//!
//! ```no_run
//! use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request};
//!
//! /// Sends every request to the first backend, falling back in order.
//! struct FirstAvailable {
//!     count: u32,
//! }
//!
//! impl Balancer for FirstAvailable {
//!     fn configure(options: &Options) -> Result<Self, Error> {
//!         options.expect_none()?;
//!         Ok(FirstAvailable { count: 0 })
//!     }
//!
//!     fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
//!         self.count = u32::try_from(backends.len()).unwrap_or(u32::MAX);
//!     }
//!
//!     fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
//!         Ok((0..self.count.min(3)).collect())
//!     }
//! }
//!
//! bascule_guest_sdk::export_balancer!(FirstAvailable);
//! ```
//!
//! Header filters, the second kind of plugin, rewrite request and response
//! headers or answer requests themselves: implement [`HeaderFilter`] and
//! export it with [`export_header_filter!`] (see the [`filter`] module).
//! Health interpreters, the third, judge the outcome of an active health
//! probe: implement [`HealthInterpreter`] and export it with
//! [`export_health_interpreter!`] (see the [`health`] module). Filters may
//! take tokens from the proxy's rate limiters (see [`rate_limit`]). Every
//! kind may define metrics of its own (see [`metrics`]).
//!
//! What the host guarantees, and what it checks:
//! - `configure` runs once per instance, before anything else.
//! - `set_backends` runs again only when the pool's backends change.
//! - The indices `select` returns are validated by the host: out-of-range
//!   indices are an error, duplicates are dropped, unhealthy and draining
//!   backends are skipped, and the host tries at most a few candidates.
//! - A plugin instance lives long and serves many calls, but one instance
//!   is never called from two threads at once. The host keeps several
//!   instances per pool under load, each with its own state.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod algorithms;
mod balancer;
mod duration;
#[doc(hidden)]
pub mod export;
pub mod filter;
pub mod health;
pub mod key;
mod log;
pub mod metrics;
pub mod rate_limit;
mod request;
pub mod ring;
mod stats;

/// Raw bindings generated from the `bascule:plugin` WIT package.
///
/// Plugin authors rarely need these; the types re-exported at the crate
/// root are the supported surface.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "balancer",
        path: "../wit",
        default_bindings_module: "bascule_guest_sdk::bindings",
        pub_export_macro: true,
        export_macro_name: "export_balancer_world",
    });
}

/// Raw bindings of the `header-filter` world, sharing the balancer world's
/// `types`, `request-context` and `log`.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod filter_bindings {
    wit_bindgen::generate!({
        world: "header-filter",
        path: "../wit",
        default_bindings_module: "bascule_guest_sdk::filter_bindings",
        pub_export_macro: true,
        export_macro_name: "export_header_filter_world",
        with: {
            "bascule:plugin/types@0.4.2": crate::bindings::bascule::plugin::types,
            "bascule:plugin/request-context@0.4.2": crate::bindings::bascule::plugin::request_context,
            "bascule:plugin/log@0.4.2": crate::bindings::bascule::plugin::log,
            "bascule:plugin/metrics@0.4.2": crate::bindings::bascule::plugin::metrics,
        },
    });
}

/// Raw bindings of the `health-interpreter` world, sharing the balancer
/// world's `types` and `log`.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod health_bindings {
    wit_bindgen::generate!({
        world: "health-interpreter",
        path: "../wit",
        default_bindings_module: "bascule_guest_sdk::health_bindings",
        pub_export_macro: true,
        export_macro_name: "export_health_interpreter_world",
        with: {
            "bascule:plugin/types@0.4.2": crate::bindings::bascule::plugin::types,
            "bascule:plugin/log@0.4.2": crate::bindings::bascule::plugin::log,
            "bascule:plugin/metrics@0.4.2": crate::bindings::bascule::plugin::metrics,
        },
    });
}

pub use balancer::{
    AffinityCookie, Backend, Balancer, Candidates, Error, MAX_CANDIDATES, Options, SameSite,
    with_successors,
};
pub use duration::DurationOption;
pub use filter::{
    Edit, EditAction, FilterNeeds, HeaderFilter, Headers, LocalResponse, ResponseNeeds, Verdict,
};
pub use health::{
    HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict as HealthVerdict,
};
pub use key::{KeySource, hash_key, hash_key_seeded};
pub use log::{debug, error, info, warn};
#[cfg(not(target_arch = "wasm32"))]
pub use request::RequestFixture;
pub use request::{Field, Protocol, Request, RequestNeeds};
pub use stats::{BackendStats, Health};
