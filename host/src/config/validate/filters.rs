//! `[filters.NAME]`: a header filter plugin and its options.

use toml::Spanned;

use super::Validator;
use super::fields::plugin_options;
use super::raw::RawFilter;
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn filter(
        &mut self,
        name: &Spanned<String>,
        raw: &RawFilter,
    ) -> Option<FilterConfig> {
        let field = |key: &str| format!("filters.{}.{key}", name.get_ref());
        let filter_name = self.name(format!("filters.{}", name.get_ref()), name);
        let plugin = self.plugin_ref(field("plugin"), &raw.plugin);
        let (options, options_location) =
            plugin_options(field("options"), raw.options.as_ref(), name);
        Some(FilterConfig {
            name: filter_name?,
            plugin_location: FieldLocation::new(field("plugin"), raw.plugin.span()),
            plugin: plugin?,
            options,
            options_location,
        })
    }
}
