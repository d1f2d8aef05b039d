//! A backend connection switched to another protocol by its `101`
//! (WebSocket), on its way to the client connection that asked for it.
//!
//! The backend client hands the connection over in the response's
//! extensions; the client's HTTP/1 server takes it once the `101` is
//! written and tunnels bytes both ways until either side ends, the tunnel
//! idles out, or the backend drains.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::ActiveRequest;
use super::http1::Transport;

/// The tunnel's backend side, in a response's extensions (which must be
/// `Clone`: the first taker gets it).
#[derive(Clone)]
pub struct Upgraded(Arc<Mutex<Option<UpstreamTunnel>>>);

/// A backend connection in its new protocol.
pub struct UpstreamTunnel {
    /// The socket.
    pub io: Box<dyn Transport>,
    /// What the backend sent after its `101`, not yet delivered.
    pub read: Bytes,
    /// Counts the tunnel on its backend (least-connections sees it) until
    /// dropped.
    pub active: ActiveRequest,
    /// How long the tunnel may go on once its backend leaves.
    pub drain_timeout: Duration,
}

// === impl Upgraded ===

impl Upgraded {
    /// Wraps `tunnel` for a response's extensions.
    pub fn new(tunnel: UpstreamTunnel) -> Self {
        Upgraded(Arc::new(Mutex::new(Some(tunnel))))
    }

    /// The tunnel, once.
    pub fn take(&self) -> Option<UpstreamTunnel> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded").finish_non_exhaustive()
    }
}
