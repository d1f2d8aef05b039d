//! `[reload]`: reloading when the config or a plugin changes on disk.

use std::time::Duration;

use super::Validator;
use super::raw::RawReload;
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn reload(&mut self, raw: Option<&RawReload>) -> ReloadConfig {
        let mut reload = ReloadConfig::default();
        let Some(raw) = raw else { return reload };
        reload.watch = raw.watch.unwrap_or(false);
        if let Some(debounce) = self.duration_or(
            "reload.debounce".to_owned(),
            raw.debounce.as_ref(),
            DEFAULT_WATCH_DEBOUNCE,
            Duration::from_millis(10)..=Duration::from_secs(60),
        ) {
            reload.debounce = debounce;
        }
        reload
    }
}
