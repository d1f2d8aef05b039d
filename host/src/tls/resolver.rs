//! Which certificate a handshake gets: the one naming the client's SNI
//! exactly, else the one naming its wildcard (`*.example.com` for
//! `a.example.com`), else the default (the first certificate) or none
//! (`unknown-sni = "refuse"`: the handshake fails).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by server name.
#[derive(Debug, Default)]
pub(super) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

// === impl SniResolver ===

impl SniResolver {
    /// Serves `key` for `names` (exact or `*.` wildcards); an earlier
    /// certificate keeps a name a later one lists again.
    pub(super) fn add(&mut self, names: &[String], key: &Arc<CertifiedKey>) {
        for name in names {
            let (table, name) = match name.strip_prefix("*.") {
                Some(parent) => (&mut self.wildcard, parent),
                None => (&mut self.exact, name.as_str()),
            };
            table
                .entry(name.to_owned())
                .or_insert_with(|| Arc::clone(key));
        }
    }

    /// What clients without a known name get.
    pub(super) fn set_default(&mut self, key: Option<Arc<CertifiedKey>>) {
        self.default = key;
    }

    fn lookup(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(&name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.lookup(name))
            .or(self.default.as_ref())
            .cloned()
    }
}
