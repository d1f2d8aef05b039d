//! `builtin:consistent-hash`: a hash ring with virtual nodes (Ketama, as
//! NGINX `hash ... consistent` and HAProxy `hash-type consistent`). The key
//! is read from the request (client IP, a header, a cookie, the path or a
//! query parameter); a backend owns `vnodes × weight` points on the ring,
//! so removing one moves exactly the keys it held.
//!
//! Options: `key` (default `"client-ip"`; see the SDK's `KeySource`),
//! `vnodes` (default 160, 1 to 4096). TCP pools accept only `client-ip`.

use bascule_guest_sdk::ring::{HashRing, vnodes_option};
use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, KeySource, Options, Request, RequestNeeds, hash_key,
};
use serde::Deserialize;

const RANKED: usize = 3;

/// Ring lookup of a request key.
#[derive(Debug, Clone)]
pub struct ConsistentHash {
    key: KeySource,
    vnodes: u32,
    ring: HashRing,
}

/// `balancer-options` of `builtin:consistent-hash`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    key: KeySource,
    vnodes: Option<u32>,
}

// === impl ConsistentHash ===

impl ConsistentHash {
    /// A ring reading `key` with `vnodes` points per unit of weight.
    pub fn new(key: KeySource, vnodes: u32) -> Self {
        ConsistentHash {
            key,
            vnodes,
            ring: HashRing::default(),
        }
    }

    /// Rebuilds the ring.
    pub fn update(&mut self, backends: &[Backend]) {
        self.ring = HashRing::build(backends, self.vnodes);
    }

    /// The owner of `key` and the next backends clockwise.
    pub fn pick(&self, key: &str) -> Candidates {
        self.ring
            .owners(hash_key(key.as_bytes()))
            .take(RANKED)
            .collect()
    }
}

impl Balancer for ConsistentHash {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        settings.key.check_supported(options)?;
        let vnodes = vnodes_option(settings.vnodes)?;
        Ok(ConsistentHash::new(settings.key, vnodes))
    }

    fn needs(&self) -> RequestNeeds {
        self.key.needs()
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.update(&backends);
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick(&self.key.read(request)))
    }
}

bascule_guest_sdk::export_balancer!(ConsistentHash);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::Protocol;
    use bascule_guest_sdk::ring::DEFAULT_VNODES;

    fn ring(backends: &[Backend]) -> ConsistentHash {
        let mut hash = ConsistentHash::new(KeySource::ClientIp, DEFAULT_VNODES);
        hash.update(backends);
        hash
    }

    fn owner_id<'b>(hash: &ConsistentHash, backends: &'b [Backend], key: &str) -> &'b str {
        &backends[hash.pick(key)[0] as usize].id
    }

    #[test]
    fn removing_a_backend_moves_only_its_keys() {
        let all = Backend::numbered(10);
        let mut fewer = all.clone();
        fewer.remove(3);
        let (before, after) = (ring(&all), ring(&fewer));
        for i in 0..100_000 {
            let key = format!("key-{i}");
            let (was, now) = (
                owner_id(&before, &all, &key),
                owner_id(&after, &fewer, &key),
            );
            assert!(was == now || was == "backend-3", "{key}: {was} -> {now}");
        }
    }

    #[test]
    fn load_within_ten_percent_of_the_mean() {
        let backends = Backend::numbered(10);
        let hash = ring(&backends);
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[hash.pick(&format!("key-{i}"))[0] as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) <= 1_000),
            "{counts:?}"
        );
    }

    #[test]
    fn options_are_checked() {
        let tcp = |json: &str| Options::for_protocols(json, vec![Protocol::Tcp]);
        assert!(ConsistentHash::configure(&tcp(r#"{"key": "client-ip"}"#)).is_ok());
        let err = ConsistentHash::configure(&tcp(r#"{"key": "header:x-user"}"#)).unwrap_err();
        assert!(err.message().contains("TCP"), "{err}");
        assert!(ConsistentHash::configure(&Options::from_json(r#"{"vnodes": 0}"#)).is_err());
        assert!(ConsistentHash::configure(&Options::from_json(r#"{"key": "body"}"#)).is_err());
        assert!(ring(&[]).pick("k").is_empty());
    }
}
