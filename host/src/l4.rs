//! The TCP (L4) proxy: connections forwarded byte for byte to a backend a
//! balancer plugin chooses, optionally routed by the TLS server name; and
//! the UDP proxy ([`udp`]): datagrams balanced in flows.
//!
//! A connection goes through [`connection::serve_connection`]: read what
//! must be read before choosing (a PROXY header from a trusted downstream
//! balancer, a ClientHello for SNI routing), choose through the pool,
//! connect (the next candidate on failure), write a PROXY header if the
//! pool sends one, then [`forward::bridge`] until both sides are done.

pub mod client_hello;
mod connection;
mod connection_log;
pub mod forward;
mod listener;
mod metrics;
pub mod proxy_protocol;
pub mod udp;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use listener::{TcpListenerPlan, TcpRoute};
pub use proxy_protocol::ProxyProtocolVersion;

use crate::l7::next_connection;
use crate::plan::Plan;

/// Accepts connections on `socket` for the listener named `name` until
/// `stop` fires; then waits for its open connections, which end on their
/// own (their peers close, they idle out, or their backend drains).
pub async fn serve(
    socket: Arc<TcpListener>,
    name: Arc<str>,
    plan: Arc<ArcSwap<Plan>>,
    mut stop: watch::Receiver<()>,
) {
    let metrics = Arc::new(metrics::TcpMetrics::new(&name));
    let mut connections = JoinSet::new();
    while let Some((stream, client)) = next_connection(&socket, &mut stop).await {
        while connections.try_join_next().is_some() {}
        // The routes current now serve this connection to its end.
        let routes = plan
            .load()
            .listener(&name)
            .and_then(|listener| listener.routes.tcp())
            .cloned();
        let context = connection::Context {
            listener: Arc::clone(&name),
            metrics: Arc::clone(&metrics),
        };
        connections.spawn(connection::serve_connection(
            stream, client, routes, context,
        ));
    }
    drop(socket);
    while connections.join_next().await.is_some() {}
}
