//! Bascule: a load balancer whose decisions are sandboxed WebAssembly
//! components.
//!
//! Data flows one way: [`config`] (TOML → validated types) → [`plan`]
//! (compiled routes, pools, plugin instances; committed only once it will
//! serve) → the request path ([`l7`], [`l4`], reaching backends through
//! [`upstream`]). The request path never parses config, compiles WASM,
//! resolves a name or rebuilds a backend set: long-lived work (slow-start
//! steps, re-resolution, idle-connection reaping and eviction) has one
//! owner, the [`supervisor`], handed every new plan by [`server`]. A running
//! server has one owner too, the [`control`] task: signals (and later the
//! admin API) reach it through a [`control::ServerHandle`].
//! Everything that names wasmtime lives in [`plugin`]; header rules both
//! `l7` and `plugin` apply live in [`header_rules`].

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod config;
pub mod control;
pub mod demo;
pub mod header_rules;
pub mod health;
pub mod host_pattern;
pub mod http1;
pub mod l4;
pub mod l7;
pub mod logging;
pub mod metrics;
pub mod offline;
pub mod plan;
pub mod plugin;
pub mod rewind;
pub mod scaffold;
pub mod server;
pub mod supervisor;
pub mod tls;
pub mod upstream;

/// Formats an error with its chain of causes: `a: b: c`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
