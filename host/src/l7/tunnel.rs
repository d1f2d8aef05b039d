//! An upgraded connection (WebSocket, or another protocol the route
//! allows) after the backend's `101`: bytes tunnelled both ways between
//! the client and the backend connection until either side ends, nothing
//! moves for the listener's `idle-timeout`, or the backend leaves and its
//! pool's `drain-timeout` passes (as a TCP connection is drained). The
//! tunnel counts as an active request on its backend until it closes, so
//! least-connections sees it.

use std::time::Duration;

use bytes::Bytes;

use crate::l4::forward::{self, BridgeEnd, ByteMeter};
use crate::rewind::Rewind;
use crate::upstream::UpstreamTunnel;

/// Tunnels `client` (with `client_read`, what it sent after its request
/// head) to `upstream` until the tunnel ends; counts it on `listener`.
pub async fn run<C>(
    client: C,
    client_read: Bytes,
    upstream: UpstreamTunnel,
    idle: Duration,
    listener: &str,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let UpstreamTunnel {
        io,
        read,
        active,
        drain_timeout,
    } = upstream;
    let gauge =
        metrics::gauge!(crate::metrics::HTTP_TUNNELS_ACTIVE, "listener" => listener.to_owned());
    gauge.increment(1.0);
    let drained = crate::upstream::drained(active.stats().leaving(), drain_timeout);
    let end = forward::bridge_io(
        Rewind::new(client_read, client),
        Rewind::new(read, io),
        idle,
        &Unmetered,
        drained,
    )
    .await;
    gauge.decrement(1.0);
    let reason = match end {
        BridgeEnd::Closed => "done",
        BridgeEnd::Idle => {
            crate::metrics::timed_out("tunnel-idle");
            "idle-timeout"
        }
        BridgeEnd::Stopped => "drained",
        BridgeEnd::ProxyHeader | BridgeEnd::Failed(_) => "error",
    };
    metrics::counter!(crate::metrics::HTTP_TUNNELS_CLOSED, "listener" => listener.to_owned(), "reason" => reason)
        .increment(1);
    drop(active);
}

/// Tunnelled bytes are not counted per direction (yet).
struct Unmetered;

impl ByteMeter for Unmetered {
    fn client_to_backend(&self, _: u64) {}
    fn backend_to_client(&self, _: u64) {}
}
