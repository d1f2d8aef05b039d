//! Raw TOML → validated [`Config`], collecting every error in one pass.
//!
//! This file drives the pass and owns the [`Validator`] that collects the
//! errors. Each section of the file format has its own child module, and
//! every leaf value (a name, an address, a duration, a plugin reference)
//! is parsed by one function in [`fields`].

mod admin;
mod fields;
mod filters;
mod health;
mod limits;
mod listeners;
mod logging;
mod pools;
mod reload;
mod resolver;
mod routes;
mod sandbox;
mod tls;

use std::collections::HashSet;

use super::raw::{RawConfig, RawTableNames};
use super::*;

/// Parses and validates `source`.
pub(super) fn validate(source: ConfigSource) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = deserialize(&source)?;
    // The first pass succeeded, so this one cannot fail on shape.
    let names: RawTableNames = deserialize(&source)?;
    let mut validator = Validator {
        source: &source,
        errors: Vec::new(),
    };
    let pools: Vec<PoolConfig> = raw
        .pools
        .iter()
        .filter_map(|(name, pool)| {
            let spanned = names.pools.keys().find(|k| k.get_ref() == name)?;
            validator.pool(spanned, pool)
        })
        .collect();
    let filters: Vec<FilterConfig> = raw
        .filters
        .iter()
        .filter_map(|(name, filter)| {
            let spanned = names.filters.keys().find(|k| k.get_ref() == name)?;
            validator.filter(spanned, filter)
        })
        .collect();
    let limits: Vec<LimitConfig> = raw
        .limits
        .iter()
        .filter_map(|(name, limit)| {
            let spanned = names.limits.keys().find(|k| k.get_ref() == name)?;
            validator.limit(spanned, limit)
        })
        .collect();
    let known = Known {
        pools: raw.pools.keys().map(String::as_str).collect(),
        filters: raw.filters.keys().map(String::as_str).collect(),
        limits: raw.limits.keys().map(String::as_str).collect(),
    };
    let listeners = validator.listeners(&raw.listeners, &known);
    validator.proxy_protocol_only_for_tcp(&raw, &pools, &listeners);
    let sandbox = validator.sandbox(raw.sandbox.as_ref());
    let resolver = validator.resolver(raw.resolver.as_ref());
    let shutdown_grace = validator.duration_or(
        "shutdown.grace".to_owned(),
        raw.shutdown
            .as_ref()
            .and_then(|shutdown| shutdown.grace.as_ref()),
        DEFAULT_SHUTDOWN_GRACE,
        Duration::ZERO..=Duration::from_secs(3600),
    );
    let admin = raw.admin.as_ref().and_then(|admin| validator.admin(admin));
    let reload = validator.reload(raw.reload.as_ref());
    let log = validator.log(raw.log.as_ref());
    let access_log = raw
        .access_log
        .as_ref()
        .and_then(|access_log| validator.access_log(access_log));
    if let (true, Some(shutdown_grace)) = (validator.errors.is_empty(), shutdown_grace) {
        Ok(Config {
            source,
            listeners,
            pools,
            filters,
            limits,
            sandbox,
            admin,
            resolver,
            shutdown_grace,
            reload,
            log,
            access_log,
        })
    } else {
        Err(ConfigErrors(validator.errors))
    }
}

/// The names routes may refer to.
struct Known<'a> {
    pools: HashSet<&'a str>,
    filters: HashSet<&'a str>,
    limits: HashSet<&'a str>,
}

/// TOML syntax and shape (types, unknown or missing keys). Serde stops at
/// the first such error, so this reports one.
fn deserialize<T: serde::de::DeserializeOwned>(source: &ConfigSource) -> Result<T, ConfigErrors> {
    let to_error = |field: String, error: toml::de::Error| {
        let location = FieldLocation {
            span: error.span(),
            field,
        };
        ConfigErrors::one(source.error(&location, error.message().trim_end()))
    };
    let deserializer = toml::de::Deserializer::parse(source.text())
        .map_err(|e| to_error("(syntax)".to_owned(), e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "(file)".to_owned(),
            path => path,
        };
        to_error(field, e.into_inner())
    })
}

/// Collects every error of one pass, each naming file, line and field.
struct Validator<'a> {
    source: &'a ConfigSource,
    errors: Vec<ConfigError>,
}

// === impl Validator ===

impl Validator<'_> {
    /// Records an error at `field` and returns `None`, so that parsers
    /// can `return self.fail(..)`.
    fn fail<T>(
        &mut self,
        field: String,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Option<T> {
        let error = self.source.error(&FieldLocation::new(field, span), message);
        self.errors.push(error);
        None
    }
}
