//! The UDP (L4) proxy: datagrams balanced in flows by the same plugins as
//! TCP connections.
//!
//! Datagrams from one client address form a **flow**. The pool's balancer
//! chooses the backend for a flow's first datagram ([`shard`]); the flow
//! then owns a socket connected to that backend ([`flow`]), which carries
//! the client's later datagrams and brings the backend's answers back,
//! sent to the client from the listener's own address. A flow ends when
//! it idles for `idle-timeout`, when the backend has sent `responses`
//! answers per client datagram, or when the listener stops.
//!
//! The listener binds one `SO_REUSEPORT` socket per worker thread, each
//! read by a shard task of its own: the kernel hashes a client's address
//! to one socket, so a flow stays on one shard and its table is that
//! shard's alone; nothing is shared on the datagram path but the metric
//! counters. A shard reads its socket in batches ([`batch`], one
//! `recvmmsg` for up to 32 datagrams).

mod affinity;
mod batch;
mod flow;
mod metrics;
mod shard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::plan::Plan;
use crate::upstream::BackendPool;

pub use affinity::ClientAffinity;
pub use metrics::UdpMetrics;

/// A flow with no datagram either way for this long ends (NGINX's
/// `proxy_timeout` default is ten minutes; DNS and game traffic want far
/// less).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Flows open at once on one listener by default. Each holds a socket (a
/// file descriptor) to its backend.
pub const DEFAULT_MAX_FLOWS: usize = 10_000;

/// The largest datagram read: the UDP payload limit.
pub const MAX_DATAGRAM: usize = 65_535;

/// What a `mode = "udp"` listener does with datagrams.
pub struct UdpListenerPlan {
    /// Where flows go.
    pub pool: Arc<BackendPool>,
    /// A flow with no datagram either way for this long ends.
    pub idle_timeout: Duration,
    /// The flow ends once the backend sent this many answers for each
    /// client datagram.
    pub responses: Option<u32>,
    /// A flow carries at most this many client datagrams.
    pub requests: Option<u32>,
    /// Balance every datagram on its own, with no flow.
    pub per_datagram: bool,
    /// Flows open at once, at most.
    pub max_flows: usize,
    /// Which datagrams carry the PROXY v2 header, when the pool sends one.
    pub proxy_header: crate::config::ProxyHeaderOn,
    /// Flows open now on the listener, kept across reloads
    /// ([`Plan::adopt_flow_state`]): against `max-flows`, and for
    /// `/status`.
    pub open_flows: Arc<AtomicUsize>,
    /// With `affinity = "client-ip"`: which backend each client IP is
    /// pinned to, kept across reloads like `open_flows`.
    pub affinity: Option<Arc<ClientAffinity>>,
}

/// Where a socket sending to `address` binds: the wildcard address of its
/// family, any port.
pub fn any_port_for(address: SocketAddr) -> SocketAddr {
    if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    }
}

/// One listener's sockets, one per shard, all bound to the same address.
pub type UdpSockets = Arc<[Arc<UdpSocket>]>;

/// Binds `shards` sockets to `address` with `SO_REUSEPORT` (the first one
/// picks the port when `address` asks for port 0).
pub fn bind(address: SocketAddr, shards: usize) -> std::io::Result<UdpSockets> {
    let mut sockets = Vec::with_capacity(shards.max(1));
    let mut address = address;
    for _ in 0..shards.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        address = socket.local_addr()?;
        sockets.push(Arc::new(socket));
    }
    Ok(sockets.into())
}

/// Serves the listener named `name` on `sockets` until `stop` fires: one
/// shard task per socket. Flows open when it fires end with it.
pub async fn serve(
    sockets: UdpSockets,
    name: Arc<str>,
    plan: Arc<ArcSwap<Plan>>,
    stop: watch::Receiver<()>,
) {
    let metrics = Arc::new(UdpMetrics::new(&name));
    let mut shards = JoinSet::new();
    for (index, socket) in sockets.iter().enumerate() {
        shards.spawn(shard::run(shard::Shard {
            socket: Arc::clone(socket),
            local: socket.local_addr().ok(),
            sweeps_pins: index == 0,
            listener: Arc::clone(&name),
            plan: Arc::clone(&plan),
            metrics: Arc::clone(&metrics),
            stop: stop.clone(),
        }));
    }
    while shards.join_next().await.is_some() {}
}
