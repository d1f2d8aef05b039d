//! `affinity = "client-ip"`: every flow from one client IP goes to the
//! backend the IP's first flow went to.
//!
//! A client with several sockets (a game's voice and game channels, a
//! resolver's randomised source ports) is one client to the backend. The
//! kernel hashes each socket's address to a shard of its own, so the pins
//! are the listener's, shared by its shards: touched when a flow opens or
//! ends, never per datagram. A pin outlives the IP's last flow by the
//! listener's `idle-timeout` (IPVS persistence), so a client that pauses
//! between short flows (DNS with `responses = 1`) keeps its backend.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The listener's pins: client IP to backend.
#[derive(Debug, Default)]
pub struct ClientAffinity {
    pins: Mutex<HashMap<IpAddr, Pin>>,
}

/// One client IP's backend.
#[derive(Debug)]
struct Pin {
    /// The backend's id.
    backend: String,
    /// Flows of the IP open now.
    flows: u32,
    /// With no flow open: when the pin lapses.
    lapses: Option<Instant>,
}

// === impl ClientAffinity ===

impl ClientAffinity {
    /// The backend `client` is pinned to, if its pin has not lapsed.
    pub(super) fn pinned(&self, client: IpAddr) -> Option<String> {
        let now = Instant::now();
        self.lock()
            .get(&client)
            .filter(|pin| pin.lapses.is_none_or(|at| at > now))
            .map(|pin| pin.backend.clone())
    }

    /// A flow of `client` opened to `backend`: the IP is pinned there.
    pub(super) fn opened(&self, client: IpAddr, backend: &str) {
        let mut pins = self.lock();
        let pin = pins.entry(client).or_insert_with(|| Pin {
            backend: backend.to_owned(),
            flows: 0,
            lapses: None,
        });
        if pin.backend != backend {
            // The old backend left or was full: the client moves.
            backend.clone_into(&mut pin.backend);
        }
        pin.flows = pin.flows.saturating_add(1);
        pin.lapses = None;
    }

    /// A flow of `client` ended; with its last one the pin starts to lapse
    /// after `linger`.
    pub(super) fn closed(&self, client: IpAddr, linger: Duration) {
        if let Some(pin) = self.lock().get_mut(&client) {
            pin.flows = pin.flows.saturating_sub(1);
            if pin.flows == 0 {
                pin.lapses = Some(Instant::now() + linger);
            }
        }
    }

    /// Forgets lapsed pins.
    pub(super) fn sweep(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|_, pin| pin.lapses.is_none_or(|at| at > now));
    }

    /// Client IPs pinned now (lapsed pins not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is pinned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Pin>> {
        // A panic while holding the lock cannot leave a pin half-written.
        self.pins.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test(start_paused = true)]
    async fn a_pin_lasts_while_flows_are_open_and_lingers_after_the_last() {
        let affinity = ClientAffinity::default();
        assert_eq!(affinity.pinned(CLIENT), None);
        affinity.opened(CLIENT, "b2");
        affinity.opened(CLIENT, "b2");
        affinity.closed(CLIENT, Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            affinity.pinned(CLIENT).as_deref(),
            Some("b2"),
            "one flow still open"
        );
        affinity.closed(CLIENT, Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(affinity.pinned(CLIENT).as_deref(), Some("b2"), "lingering");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(affinity.pinned(CLIENT), None, "lapsed");
        affinity.sweep();
        assert!(affinity.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_opened_elsewhere_moves_the_pin() {
        let affinity = ClientAffinity::default();
        affinity.opened(CLIENT, "b1");
        affinity.opened(CLIENT, "b3");
        assert_eq!(affinity.pinned(CLIENT).as_deref(), Some("b3"));
    }
}
