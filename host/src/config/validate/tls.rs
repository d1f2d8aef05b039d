//! `[listeners.tls]`: certificates, ALPN, the oldest version, what an
//! unknown SNI gets, session tickets. Only the shape is checked here; the
//! files are read when the plan is built.

use std::path::PathBuf;

use toml::Spanned;

use super::Validator;
use super::raw::{RawTls, RawUpstreamTlsTable};
use crate::config::*;

/// ALPN protocols the proxy can serve behind TLS.
const KNOWN_ALPN: [&str; 2] = ["h2", "http/1.1"];

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn tls(&mut self, i: usize, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
        let field = |key: &str| format!("listeners[{i}].tls.{key}");
        let table = raw.get_ref();
        let mut ok = true;
        if table.certificates.get_ref().is_empty() {
            self.fail::<()>(
                field("certificates"),
                table.certificates.span(),
                "at least one certificate is required",
            );
            ok = false;
        }
        let mut certificates = Vec::new();
        for (j, certificate) in table.certificates.get_ref().iter().enumerate() {
            let entry = |key: &str| format!("listeners[{i}].tls.certificates[{j}].{key}");
            let mut names = Vec::new();
            for name in certificate.sni.iter().flatten() {
                match self.host_pattern(entry("sni"), name) {
                    Some(_) => names.push(name.get_ref().to_ascii_lowercase()),
                    None => ok = false,
                }
            }
            certificates.push(CertificateConfig {
                cert: self.file(&certificate.cert),
                key: self.file(&certificate.key),
                sni: names,
                location: FieldLocation::new(entry("cert"), certificate.cert.span()),
            });
        }
        let alpn = match &table.alpn {
            None => KNOWN_ALPN.map(str::to_owned).to_vec(),
            Some(list) => {
                let mut alpn = Vec::new();
                for protocol in list.get_ref() {
                    if KNOWN_ALPN.contains(&protocol.get_ref().as_str()) {
                        alpn.push(protocol.get_ref().clone());
                    } else {
                        ok = false;
                        self.fail::<()>(
                            field("alpn"),
                            protocol.span(),
                            format!(
                                "unknown ALPN protocol `{}`, expected `h2` or `http/1.1`",
                                protocol.get_ref()
                            ),
                        );
                    }
                }
                alpn
            }
        };
        let min_version = match &table.min_version {
            None => Some(TlsVersion::Tls12),
            Some(version) => self.keyword(
                field("min-version"),
                version,
                "TLS version",
                &[("1.2", TlsVersion::Tls12), ("1.3", TlsVersion::Tls13)],
            ),
        };
        let unknown_sni = match &table.unknown_sni {
            None => Some(UnknownSni::Default),
            Some(policy) => self.keyword(
                field("unknown-sni"),
                policy,
                "policy",
                &[
                    ("default", UnknownSni::Default),
                    ("refuse", UnknownSni::Refuse),
                ],
            ),
        };
        if !ok {
            return None;
        }
        Some(TlsConfig {
            certificates,
            alpn,
            min_version: min_version?,
            unknown_sni: unknown_sni?,
            session_tickets: table
                .session_tickets
                .as_ref()
                .is_none_or(|on| *on.get_ref()),
        })
    }

    /// A file named in the config, relative to the config file's directory.
    fn file(&self, raw: &Spanned<String>) -> PathBuf {
        self.path(raw.get_ref())
    }

    /// `text` as a path, relative to the config file's directory.
    fn path(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        if path.is_relative() {
            self.source.dir().join(path)
        } else {
            path
        }
    }
}

// === impl Validator: upstream TLS ===

impl Validator<'_> {
    /// `tls` of pool `pool`, whose backends are `backends`: `true`,
    /// `false` or a table.
    pub(super) fn upstream_tls(
        &mut self,
        pool: &str,
        raw: &Spanned<toml::Value>,
        backends: &[BackendConfig],
    ) -> Option<Option<UpstreamTlsConfig>> {
        let field = format!("pools.{pool}.tls");
        let span = raw.span();
        let table: RawUpstreamTlsTable = match raw.get_ref() {
            toml::Value::Boolean(false) => return Some(None),
            toml::Value::Boolean(true) => RawUpstreamTlsTable::default(),
            table @ toml::Value::Table(_) => match table.clone().try_into() {
                Ok(table) => table,
                Err(error) => return self.fail(field, span, error.message().to_owned()),
            },
            _ => return self.fail(field, span, "expected `true`, `false` or a table"),
        };
        let verify = table.verify.unwrap_or(true);
        if let Some(name) = &table.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return self.fail(
                field,
                span,
                format!("`server-name`: `{name}` is not a DNS name or IP address"),
            );
        }
        if verify && table.server_name.is_none() {
            let by_address: Vec<&str> = backends
                .iter()
                .filter(|backend| !backend.address.is_name())
                .map(|backend| backend.id.as_str())
                .collect();
            if !by_address.is_empty() {
                return self.fail(
                    field,
                    span,
                    format!(
                        "backends given by IP address ({}) have no host name to verify: set `server-name`, or `verify = false`",
                        by_address.join(", ")
                    ),
                );
            }
        }
        let client_certificate = match (&table.cert, &table.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((self.path(cert), self.path(key))),
            _ => {
                return self.fail(
                    field,
                    span,
                    "a client certificate needs both `cert` and `key`",
                );
            }
        };
        Some(Some(UpstreamTlsConfig {
            ca: table.ca.as_deref().map(|ca| self.path(ca)),
            server_name: table.server_name,
            verify,
            client_certificate,
            location: FieldLocation::new(field, span),
        }))
    }
}
