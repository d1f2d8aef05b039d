//! Local rate limiting: a token bucket per key (client address, a header,
//! or the route), shared by every worker thread and every route that names
//! the limit. Over the limit, a request gets `429` with `Retry-After`.
//!
//! Buckets sit in 16 shards, each a map behind its own lock held for a
//! few arithmetic operations. Memory is bounded: a shard past its share
//! of `max-keys` drops the buckets that are full again (a key idle long
//! enough is the same as a new one), then the least recently used.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::request::Parts;
use tokio::time::Instant;

use crate::config::{LimitConfig, LimitKey};

const SHARDS: usize = 16;

/// Seeds the hash of keys from plugins (see [`RateLimiter::check_plugin_key`]).
const PLUGIN_KEY_SEED: u64 = 0x6261_7363_756c_6531;

/// Every `[limits.NAME]` of one config, by name: what routes attach and
/// what the plugins' `rate-limit` import finds.
#[derive(Default)]
pub struct RateLimits {
    by_name: HashMap<String, Arc<RateLimiter>>,
}

/// One `[limits.NAME]`.
pub struct RateLimiter {
    name: String,
    /// Tokens per microsecond.
    rate: f64,
    burst: f64,
    key: LimitKey,
    max_per_shard: usize,
    shards: [Mutex<HashMap<u64, Bucket>>; SHARDS],
    start: Instant,
    limited: metrics::Counter,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date, in µs since `start`.
    at: u64,
}

// === impl RateLimits ===

impl RateLimits {
    /// A limiter for each of `configs`, every bucket full.
    pub fn new(configs: &[LimitConfig]) -> Self {
        RateLimits {
            by_name: configs
                .iter()
                .map(|config| (config.name.clone(), Arc::new(RateLimiter::new(config))))
                .collect(),
        }
    }

    /// The limit named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<RateLimiter>> {
        self.by_name.get(name)
    }
}

// === impl RateLimiter ===

impl RateLimiter {
    /// The limiter `config` describes, with every bucket full.
    pub fn new(config: &LimitConfig) -> Self {
        RateLimiter {
            name: config.name.clone(),
            rate: config.rate / 1_000_000.0,
            burst: f64::from(config.burst),
            key: config.key.clone(),
            max_per_shard: config.max_keys.div_ceil(SHARDS).max(1),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            start: Instant::now(),
            limited: metrics::counter!(crate::metrics::HTTP_RATE_LIMITED, "limit" => config.name.clone()),
        }
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes a token for a request with `head` from `client`; when the
    /// bucket is empty, how long until it holds one again.
    pub fn check(&self, head: &Parts, client: IpAddr) -> Result<(), Duration> {
        self.take(self.key_of(head, client))
    }

    /// Takes a token for a key a plugin computed. Plugin keys are hashed
    /// with their own seed, so they never share a bucket with the keys
    /// routes take.
    pub fn check_plugin_key(&self, key: &str) -> Result<(), Duration> {
        self.take(xxhash_rust::xxh3::xxh3_64_with_seed(
            key.as_bytes(),
            PLUGIN_KEY_SEED,
        ))
    }

    fn take(&self, key: u64) -> Result<(), Duration> {
        let now = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(shard) = self.shards.get((key % SHARDS as u64) as usize) else {
            return Ok(());
        };
        let mut buckets = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= self.max_per_shard {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at) as f64;
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        drop(buckets);
        self.limited.increment(1);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let wait = (missing / self.rate).ceil() as u64;
        Err(Duration::from_micros(wait))
    }

    fn key_of(&self, head: &Parts, client: IpAddr) -> u64 {
        let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64(bytes);
        match &self.key {
            LimitKey::ClientIp => super::split::ip_hash(client),
            LimitKey::Header(name) => head
                .headers
                .get(name.as_str())
                .map_or(0, |value| hash(value.as_bytes())),
            LimitKey::Route => 0,
        }
    }

    /// Makes room in a full shard: buckets full again go first, then the
    /// one used least recently.
    fn evict(&self, buckets: &mut HashMap<u64, Bucket>, now: u64) {
        buckets.retain(|_, bucket| {
            bucket.tokens + now.saturating_sub(bucket.at) as f64 * self.rate < self.burst
        });
        if buckets.len() >= self.max_per_shard
            && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
        {
            buckets.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32, key: LimitKey, max_keys: usize) -> RateLimiter {
        RateLimiter::new(&LimitConfig {
            name: "test".into(),
            rate,
            burst,
            key,
            max_keys,
        })
    }

    fn head() -> Parts {
        http::Request::get("/").body(()).unwrap().into_parts().0
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate_per_key() {
        let limit = limiter(10.0, 5, LimitKey::ClientIp, 1000);
        assert_eq!(
            (0..20).filter(|_| limit.check(&head(), A).is_ok()).count(),
            5
        );
        let wait = limit.check(&head(), A).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_millis(100),
            "one token at 10 per second"
        );
        assert!(
            limit.check(&head(), B).is_ok(),
            "another key has its own bucket"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            (0..20).filter(|_| limit.check(&head(), A).is_ok()).count(),
            5,
            "refilled up to the burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_bounded() {
        let limit = limiter(1.0, 1, LimitKey::ClientIp, SHARDS);
        for n in 0..=255u8 {
            let _ = limit.check(&head(), IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, n)));
        }
        let kept: usize = limit.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= SHARDS, "{kept} buckets kept");
    }
}
