//! `builtin:headers`: sets, appends and removes request and response
//! headers, the work of NGINX's `proxy_set_header` / `add_header` and
//! HAProxy's `http-request set-header` / `http-response del-header`.
//!
//! ```toml
//! [filters.edge]
//! plugin = "builtin:headers"
//! options.request = { set = { "x-real-ip" = "{client-ip}" }, remove = ["x-debug"] }
//! options.response = { set = { "strict-transport-security" = "max-age=63072000" } }
//! ```
//!
//! Each side applies `remove`, then `set` (replacing every value), then
//! `append` (adding a value). Values may name the request's fields in
//! braces: `{client-ip}`, `{client-port}`, `{method}`, `{host}`, `{path}`,
//! `{query}`, `{listener}`, `{sni}`, and on responses `{status}`; `{{` and
//! `}}` are literal braces.
//!
//! Every rule is a static edit of the contract: the plugin declares them
//! once at configure time and the host applies them (rendering the
//! templates itself) on every message, so the filter is never called per
//! request. The host checks the templates when the config loads.

use std::collections::BTreeMap;

use bascule_guest_sdk::{Edit, Error, FilterNeeds, HeaderFilter, Options};
use serde::Deserialize;

/// The plugin: one rule set for requests, one for responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    request: Edits,
    #[serde(default)]
    response: Edits,
}

/// Changes to one message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    append: BTreeMap<String, String>,
}

impl HeaderFilter for HeaderRules {
    fn configure(options: &Options) -> Result<Self, Error> {
        let rules: HeaderRules = options.parse()?;
        for edits in [&rules.request, &rules.response] {
            let names = edits
                .remove
                .iter()
                .chain(edits.set.keys())
                .chain(edits.append.keys());
            for name in names {
                check_name(name)?;
            }
        }
        Ok(rules)
    }

    fn declare(&self) -> FilterNeeds {
        FilterNeeds {
            on_request: None,
            on_response: None,
            request_edits: self.request.in_order(),
            response_edits: self.response.in_order(),
        }
    }
}

bascule_guest_sdk::export_header_filter!(HeaderRules);

// === impl Edits ===

impl Edits {
    /// The rules as the edits the host applies: removals, then sets, then
    /// appends.
    fn in_order(&self) -> Vec<Edit> {
        let removes = self.remove.iter().map(|name| Edit::remove(name));
        let sets = self.set.iter().map(|(name, value)| Edit::set(name, value));
        let appends = self
            .append
            .iter()
            .map(|(name, value)| Edit::append(name, value));
        removes.chain(sets).chain(appends).collect()
    }
}

/// Header names are HTTP tokens; catching a typo here fails the config load
/// instead of every request.
fn check_name(name: &str) -> Result<(), Error> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Error::new(format!("`{name}` is not a valid header name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Result<HeaderRules, Error> {
        HeaderRules::configure(&Options::from_json(json))
    }

    #[test]
    fn declares_removals_then_sets_then_appends_and_no_calls() {
        let filter = rules(
            r#"{"request": {"remove": ["x-debug"], "set": {"x-env": "prod", "x-ip": "{client-ip}"}, "append": {"via": "bascule"}},
                "response": {"set": {"x-status": "{status}"}}}"#,
        )
        .unwrap();
        let needs = filter.declare();
        assert_eq!(needs.on_request, None);
        assert_eq!(needs.on_response, None);
        assert_eq!(
            needs.request_edits,
            [
                Edit::remove("x-debug"),
                Edit::set("x-env", "prod"),
                Edit::set("x-ip", "{client-ip}"),
                Edit::append("via", "bascule"),
            ]
        );
        assert_eq!(needs.response_edits, [Edit::set("x-status", "{status}")]);
    }

    #[test]
    fn bad_options_are_config_errors() {
        let cases = [
            (r#"{"request": {"sett": {}}}"#, "sett"),
            (r#"{"response": {"set": {"bad name": "x"}}}"#, "bad name"),
            (
                r#"{"request": {"remove": [""]}}"#,
                "not a valid header name",
            ),
            (r#"{"request": {"set": {"x": 1}}}"#, "invalid type"),
        ];
        for (options, expected) in cases {
            let error = rules(options).unwrap_err();
            assert!(
                error.message().contains(expected),
                "{options}: {}",
                error.message()
            );
        }
        assert_eq!(rules("{}").unwrap(), HeaderRules::default());
    }
}
