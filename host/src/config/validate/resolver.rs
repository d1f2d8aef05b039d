//! `[resolver]`: the DNS servers backend names are resolved with, and how
//! often they are resolved again.

use std::time::Duration;

use super::Validator;
use super::raw::RawResolver;
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn resolver(&mut self, raw: Option<&RawResolver>) -> ResolverConfig {
        let mut resolver = ResolverConfig::default();
        let Some(raw) = raw else { return resolver };
        for (i, server) in raw.nameservers.iter().flatten().enumerate() {
            let field = format!("resolver.nameservers[{i}]");
            if let Some(address) = self.socket_addr(field, server) {
                resolver.nameservers.push(address);
            }
        }
        if let Some(refresh) = self.duration_or(
            "resolver.refresh".to_owned(),
            raw.refresh.as_ref(),
            DEFAULT_RESOLVER_REFRESH,
            Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        ) {
            resolver.refresh = refresh;
        }
        resolver
    }
}
