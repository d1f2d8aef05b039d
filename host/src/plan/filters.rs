//! Header filters: each declared filter's plugin compiled and configured.

use std::sync::Arc;

use super::PlanError;
use crate::config::{Config, FilterConfig};
use crate::l7::RateLimits;
use crate::plugin::{self, PluginRuntime, WasmFilter};

pub(super) fn build_filter(
    config: &Config,
    filter: &FilterConfig,
    plugins: &PluginRuntime,
    rate_limits: &Arc<RateLimits>,
) -> Result<WasmFilter, PlanError> {
    let compiled = plugins
        .compile_filter(&filter.plugin)
        .map_err(|e| PlanError::at(&filter.plugin_location, e))?;
    WasmFilter::new(
        &filter.name,
        compiled,
        filter.options.clone(),
        config.sandbox,
        Arc::clone(rate_limits),
    )
    .map_err(|e| match e {
        plugin::Error::Rejected { .. } => PlanError::at(&filter.options_location, e),
        other => PlanError::at(&filter.plugin_location, other),
    })
}
