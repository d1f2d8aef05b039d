//! The proxy's local rate limiters, for header filters: take a token from
//! a `[limits.NAME]` bucket for a key the filter computes (a tenant from an
//! API key, a user from a token, a path segment), and answer `429` when
//! there is none.
//!
//! The buckets are the host's: shared by every worker thread and plugin
//! instance, refilled at the limit's `rate` up to its `burst`, bounded by
//! its `max-keys`. Keys taken here never share a bucket with the keys the
//! routes' own `limit` takes.
//!
//! ```no_run
//! use bascule_guest_sdk::rate_limit::{self, Taken};
//! use bascule_guest_sdk::{Error, LocalResponse, Verdict};
//!
//! fn limit_tenant(tenant: &str) -> Result<Verdict, Error> {
//!     match rate_limit::take("per-tenant", tenant) {
//!         Taken::Allowed => Ok(Verdict::Forward),
//!         Taken::Limited { retry_after_ms } => Ok(Verdict::Respond(
//!             LocalResponse::new(429, "slow down")
//!                 .with_header("retry-after", retry_after_ms.div_ceil(1000).to_string()),
//!         )),
//!         Taken::UnknownLimit => Err(Error::new("no [limits.per-tenant] in the config")),
//!     }
//! }
//! ```

/// What [`take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A token was taken: let the request go on.
    Allowed,
    /// The bucket is empty; it holds a token again in `retry_after_ms`.
    Limited {
        /// Milliseconds until the next token (at least 1).
        retry_after_ms: u32,
    },
    /// The running config has no `[limits.NAME]` of that name.
    UnknownLimit,
}

/// Takes one token from the bucket of `key` in the limit named `limit`
/// (one host call). Compiled natively (unit tests) there is no host: the
/// answer is what [`answer_natively_with`] last set, [`Taken::Allowed`] by
/// default.
pub fn take(limit: &str, key: &str) -> Taken {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::filter_bindings::bascule::plugin::rate_limit::{TakeResult, take};
        match take(limit, key) {
            TakeResult::Allowed => Taken::Allowed,
            TakeResult::Limited(retry_after_ms) => Taken::Limited { retry_after_ms },
            TakeResult::UnknownLimit => Taken::UnknownLimit,
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (limit, key);
        NATIVE_ANSWER.with(std::cell::Cell::get)
    }
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static NATIVE_ANSWER: std::cell::Cell<Taken> = const { std::cell::Cell::new(Taken::Allowed) };
}

/// Sets what [`take`] answers on this thread in native builds, to unit-test
/// a filter's handling of each outcome.
#[cfg(not(target_arch = "wasm32"))]
pub fn answer_natively_with(answer: Taken) {
    NATIVE_ANSWER.with(|cell| cell.set(answer));
}
