//! `[sandbox]`: the limits every plugin call runs under.

use std::time::Duration;

use super::Validator;
use super::raw::RawSandbox;
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn sandbox(&mut self, raw: Option<&RawSandbox>) -> SandboxConfig {
        let mut sandbox = SandboxConfig::default();
        let Some(raw) = raw else { return sandbox };
        if let Some(text) = &raw.call_timeout
            && let Some(timeout) = self.duration(
                "sandbox.call-timeout".to_owned(),
                text,
                Duration::from_millis(1)..=Duration::from_secs(1),
            )
        {
            sandbox.call_timeout = timeout;
        }
        if let Some(text) = &raw.wall_clock_limit
            && let Some(limit) = self.duration(
                "sandbox.wall-clock-limit".to_owned(),
                text,
                Duration::from_millis(1)..=Duration::from_secs(10),
            )
        {
            sandbox.wall_clock_limit = limit;
        }
        if let Some(mib) = &raw.memory_limit_mib
            && let Some(mib) = self.bounded("sandbox.memory-limit-mib".to_owned(), mib, 1, 4096)
        {
            sandbox.memory_limit_bytes = (mib as usize) << 20;
        }
        if let Some(series) = &raw.max_metric_series
            && let Some(series) =
                self.bounded("sandbox.max-metric-series".to_owned(), series, 1, 100_000)
        {
            sandbox.max_metric_series = series as usize;
        }
        sandbox
    }
}
