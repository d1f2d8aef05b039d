//! Every built-in balancer through its real `.wasm`, in the real sandbox,
//! against the same plugin crate compiled natively: differential tests over
//! random pools, requests and loads, and the properties each algorithm
//! promises (shares, runs, disruption, balance, load bounds).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod differential;
mod harness;
mod properties;
