//! End-to-end tests: the real `bascule` binary, real recording backends and
//! real plugins, all on 127.0.0.1.

// A failing test should stop loudly; the workspace lints are for code that
// input can reach.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod access_log;
mod admin;
mod admin_api;
mod algorithms;
mod balancing;
mod config_errors;
mod dashboard;
mod demo;
mod edge;
mod examples;
mod filters;
mod grpc;
mod health;
mod lifetime;
mod plugin_tools;
mod proxying;
mod reload;
mod request_context;
mod retries;
mod routing;
mod sandbox;
mod status_page;
mod support;
mod tcp;
mod tcp_backends;
mod tcp_proxy_protocol;
mod tcp_sni;
mod tcp_tls;
mod test_ca;
mod tls;
mod udp;
mod upstream;
mod vtc;
mod websocket;
