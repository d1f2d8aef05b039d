//! The `rate-limit` import: header filters take tokens from the config's
//! `[limits.NAME]` buckets for keys they compute themselves.

use super::bindings::rate_limit::{self, TakeResult};
use super::state::PluginState;

impl rate_limit::Host for PluginState {
    fn take(&mut self, limit: String, key: String) -> TakeResult {
        let Some(limiter) = self.rate_limits.get(&limit) else {
            return TakeResult::UnknownLimit;
        };
        match limiter.check_plugin_key(&key) {
            Ok(()) => TakeResult::Allowed,
            Err(wait) => {
                TakeResult::Limited(u32::try_from(wait.as_millis().max(1)).unwrap_or(u32::MAX))
            }
        }
    }
}
