//! `[limits.NAME]`: rate, burst, key and the bound on keys kept.

use toml::Spanned;

use super::Validator;
use super::raw::RawLimit;
use crate::config::*;

/// Buckets a limit keeps unless told: ~10 MB at most.
const DEFAULT_MAX_KEYS: usize = 100_000;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn limit(&mut self, name: &Spanned<String>, raw: &RawLimit) -> Option<LimitConfig> {
        let field = |key: &str| format!("limits.{}.{key}", name.get_ref());
        let limit_name = self.name(format!("limits.{}", name.get_ref()), name);
        let rate = *raw.rate.get_ref();
        let rate = if rate > 0.0 && rate <= 10_000_000.0 {
            Some(rate)
        } else {
            self.fail(
                field("rate"),
                raw.rate.span(),
                "requests per second, above 0",
            )
        };
        let burst = match &raw.burst {
            // A second's worth, at least one request.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            None => rate.map(|rate| (rate.ceil() as u32).max(1)),
            Some(burst) => self.bounded(field("burst"), burst, 1, 10_000_000),
        };
        let key = match &raw.key {
            None => Some(LimitKey::ClientIp),
            Some(key) => {
                let text = key.get_ref();
                let header = text
                    .strip_prefix("header:")
                    .map(str::to_ascii_lowercase)
                    .filter(|name| http::HeaderName::from_bytes(name.as_bytes()).is_ok());
                match (text.as_str(), header) {
                    ("client-ip", _) => Some(LimitKey::ClientIp),
                    ("route", _) => Some(LimitKey::Route),
                    (_, Some(name)) => Some(LimitKey::Header(name)),
                    _ => self.fail(
                        field("key"),
                        key.span(),
                        format!("unknown limit key `{text}`, expected `client-ip`, `header:NAME` or `route`"),
                    ),
                }
            }
        };
        let max_keys = match &raw.max_keys {
            None => Some(DEFAULT_MAX_KEYS),
            Some(n) => self
                .bounded(field("max-keys"), n, 1, 10_000_000)
                .map(|n| n as usize),
        };
        Some(LimitConfig {
            name: limit_name?,
            rate: rate?,
            burst: burst?,
            key: key?,
            max_keys: max_keys?,
        })
    }
}
