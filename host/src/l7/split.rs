//! Which of a route's pools serves a request: weighted, and optionally
//! sticky by a key so that a client stays on one side (A/B tests, canary
//! and blue/green releases; a weight change on reload is the flip).
//!
//! Without a key, requests are dealt out by a counter over `total` slots,
//! so that every `total` requests give each pool exactly its share (a
//! 90/10 split is 90/10 over any 100 requests, not on average); the slots
//! are visited in a stride coprime with `total`, which spreads a pool's
//! requests rather than sending them in a run. With a key, its hash picks
//! the slot, so a key lands on the same pool as long as the weights stay.
//! A request without the key (no such header or cookie) is dealt out like
//! one without a key.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::request::Parts;

use crate::config::SplitKey;
use crate::upstream::{BackendPool, cookie_value};

/// A route's pools and how requests are shared among them.
pub struct Split {
    /// Pools with a weight above 0 and their cumulative weight.
    pools: Vec<(Arc<BackendPool>, u64)>,
    /// Every pool with its configured weight (for the status page).
    configured: Vec<(Arc<BackendPool>, u32)>,
    total: u64,
    stride: u64,
    dealt: AtomicU64,
    sticky: Option<SplitKey>,
}

// === impl Split ===

impl Split {
    /// All requests to `pool`.
    pub fn single(pool: Arc<BackendPool>) -> Self {
        Split::new(vec![(pool, 1)], None)
    }

    /// `pools` by weight (validation made sure one weighs more than 0),
    /// sticky by `sticky`.
    pub fn new(pools: Vec<(Arc<BackendPool>, u32)>, sticky: Option<SplitKey>) -> Self {
        let mut total = 0u64;
        let mut cumulative = Vec::new();
        for (pool, weight) in &pools {
            if *weight > 0 {
                total += u64::from(*weight);
                cumulative.push((Arc::clone(pool), total));
            }
        }
        Split {
            pools: cumulative,
            configured: pools,
            stride: stride_for(total),
            total: total.max(1),
            dealt: AtomicU64::new(0),
            sticky,
        }
    }

    /// The pools as configured, with their weights.
    pub fn pools(&self) -> &[(Arc<BackendPool>, u32)] {
        &self.configured
    }

    /// The pool for a request with `head` from `client`.
    pub fn pick(&self, head: &Parts, client: IpAddr) -> Option<&Arc<BackendPool>> {
        if let [(only, _)] = self.pools.as_slice() {
            return Some(only);
        }
        let slot = match self.key_hash(head, client) {
            Some(hash) => hash % self.total,
            None => {
                let n = self.dealt.fetch_add(1, Ordering::Relaxed) % self.total;
                (n * self.stride) % self.total
            }
        };
        self.pools
            .iter()
            .find(|(_, cumulative)| slot < *cumulative)
            .map(|(pool, _)| pool)
    }

    fn key_hash(&self, head: &Parts, client: IpAddr) -> Option<u64> {
        let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64(bytes);
        match self.sticky.as_ref()? {
            SplitKey::ClientIp => Some(ip_hash(client)),
            SplitKey::Header(name) => head.headers.get(name.as_str()).map(|v| hash(v.as_bytes())),
            SplitKey::Cookie(name) => cookie_value(&head.headers, name).map(|v| hash(v.as_bytes())),
        }
    }
}

/// The XXH3 hash of a client address, an IPv4 client on a dual-stack
/// socket counted as its IPv4 address: what keys by client IP hash.
pub(super) fn ip_hash(client: IpAddr) -> u64 {
    match client.to_canonical() {
        IpAddr::V4(ip) => xxhash_rust::xxh3::xxh3_64(&ip.octets()),
        IpAddr::V6(ip) => xxhash_rust::xxh3::xxh3_64(&ip.octets()),
    }
}

/// A stride coprime with `total` near its golden section, so that the
/// slots are all visited once per `total` requests, spread out.
fn stride_for(total: u64) -> u64 {
    if total <= 2 {
        return 1;
    }
    let start = (total * 618 / 1000).max(1);
    (start..total)
        .chain(1..start)
        .find(|candidate| gcd(*candidate, total) == 1)
        .unwrap_or(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str) -> Arc<BackendPool> {
        BackendPool::empty_for_tests(name)
    }

    fn head(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().uri("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn picked(split: &Split, head: &Parts, client: IpAddr) -> String {
        split.pick(head, client).unwrap().name().to_string()
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn every_hundred_requests_split_exactly_and_spread() {
        let split = Split::new(vec![(pool("v1"), 90), (pool("v2"), 10)], None);
        let sides: Vec<String> = (0..100)
            .map(|_| picked(&split, &head(&[]), CLIENT))
            .collect();
        assert_eq!(sides.iter().filter(|side| *side == "v2").count(), 10);
        // Spread: no two v2 requests in a row.
        assert!(
            sides.windows(2).all(|pair| pair != ["v2", "v2"]),
            "{sides:?}"
        );
    }

    #[test]
    fn a_zero_weight_side_gets_nothing_and_keys_stick() {
        let off = Split::new(vec![(pool("blue"), 0), (pool("green"), 1)], None);
        assert!((0..50).all(|_| picked(&off, &head(&[]), CLIENT) == "green"));
        let sticky = Split::new(
            vec![(pool("a"), 50), (pool("b"), 50)],
            Some(SplitKey::Cookie("user".into())),
        );
        let mut seen = std::collections::HashSet::new();
        for user in 0..100 {
            let cookie = format!("theme=dark; user=u{user}");
            let first = picked(&sticky, &head(&[("cookie", &cookie)]), CLIENT);
            for _ in 0..5 {
                assert_eq!(
                    picked(&sticky, &head(&[("cookie", &cookie)]), CLIENT),
                    first
                );
            }
            seen.insert(first);
        }
        assert_eq!(seen.len(), 2, "100 users land on both sides");
    }

    #[test]
    fn strides_are_coprime() {
        for total in 1..500 {
            let stride = stride_for(total);
            assert_eq!(gcd(stride, total.max(1)), 1, "{total}");
        }
    }
}
