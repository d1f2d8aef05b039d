//! `builtin:ip-hash`: the client's IP address picks the backend, so a
//! client keeps its backend while the pool is unchanged (NGINX `ip_hash`,
//! HAProxy `balance source`). Works for TCP and HTTP pools alike.
//!
//! The address is hashed with XXH3 and mapped with jump consistent hashing
//! (Lamping & Veach): growing or shrinking the pool at its end moves only
//! the clients that must move. For minimal movement under any change, with
//! weights and other keys, use `builtin:consistent-hash`.

use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, Options, Request, hash_key, with_successors,
};

/// Client address hashing.
#[derive(Debug, Default, Clone)]
pub struct IpHash {
    len: u32,
}

// === impl IpHash ===

impl IpHash {
    /// Sets the number of backends.
    pub fn resize(&mut self, len: usize) {
        self.len = u32::try_from(len).unwrap_or(u32::MAX);
    }

    /// The backend for `client_ip`, then its successors.
    pub fn pick(&self, client_ip: &str) -> Candidates {
        if self.len == 0 {
            return Vec::new();
        }
        with_successors(
            jump_hash(hash_key(client_ip.as_bytes()), self.len),
            self.len,
        )
    }
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`, such that going
/// from `n` to `n + 1` buckets moves only `1 / (n + 1)` of the keys.
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut bucket, mut next) = (-1i64, 0i64);
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    u32::try_from(bucket).unwrap_or(0)
}

impl Balancer for IpHash {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(IpHash::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.resize(backends.len());
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        Ok(self.pick(&request.client_ip()))
    }
}

bascule_guest_sdk::export_balancer!(IpHash);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> String {
        format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
    }

    #[test]
    fn same_client_same_backend() {
        let mut hash = IpHash::default();
        hash.resize(5);
        assert_eq!(hash.pick("192.0.2.1"), hash.pick("192.0.2.1"));
        assert_eq!(hash.pick("192.0.2.1").len(), 3);
        assert!(IpHash::default().pick("192.0.2.1").is_empty());
    }

    #[test]
    fn clients_spread_evenly() {
        let mut hash = IpHash::default();
        hash.resize(8);
        let mut counts = [0u32; 8];
        for i in 0..80_000 {
            counts[hash.pick(&ip(i))[0] as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 500),
            "{counts:?}"
        );
    }

    #[test]
    fn adding_a_backend_moves_only_clients_that_go_to_it() {
        let (mut small, mut large) = (IpHash::default(), IpHash::default());
        small.resize(9);
        large.resize(10);
        for i in 0..20_000 {
            let (before, after) = (small.pick(&ip(i))[0], large.pick(&ip(i))[0]);
            assert!(
                before == after || after == 9,
                "client {i}: {before} -> {after}"
            );
        }
    }
}
