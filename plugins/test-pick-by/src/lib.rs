//! Test plugin: picks the backend whose name equals one field of the
//! request, so that host tests can check every request value end to end:
//! declared at configure time and passed with `select` (the default), or,
//! with option `lazy = true`, undeclared and read through the host's
//! `request-context` imports.
//!
//! Option `field`: `method`, `host`, `path`, `query`, `client-ip`,
//! `client-port`, `sni`, `listener`, `tls-version`, `alpn`, `protocol`, `header:<name>` or `cookie:<name>`. Characters a
//! backend name cannot hold (anything but letters, digits, `-`, `_`, `.`)
//! are read as `_`, so path `/a/b` picks backend `_a_b`. No backend of that
//! name: no candidate (the host answers 503).

use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, Options, Protocol, Request, RequestNeeds,
};
use serde::Deserialize;

/// The request field to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// HTTP method.
    Method,
    /// Host without port.
    Host,
    /// Path without query.
    Path,
    /// Raw query string.
    Query,
    /// Client IP address.
    ClientIp,
    /// Client port.
    ClientPort,
    /// TLS server name.
    Sni,
    /// Listener name.
    Listener,
    /// Negotiated TLS version (`1.2`, `1.3`).
    TlsVersion,
    /// Negotiated ALPN protocol.
    Alpn,
    /// `http` or `tcp`.
    Protocol,
    /// A request header.
    Header(String),
    /// A cookie.
    Cookie(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
    #[serde(default)]
    lazy: bool,
}

/// Picks by name.
#[derive(Debug)]
pub struct PickBy {
    field: Field,
    lazy: bool,
    names: Vec<String>,
}

// === impl Field ===

impl Field {
    /// Parses the `field` option.
    pub fn parse(text: &str) -> Result<Field, Error> {
        Ok(match text {
            "method" => Field::Method,
            "host" => Field::Host,
            "path" => Field::Path,
            "query" => Field::Query,
            "client-ip" => Field::ClientIp,
            "client-port" => Field::ClientPort,
            "sni" => Field::Sni,
            "listener" => Field::Listener,
            "tls-version" => Field::TlsVersion,
            "alpn" => Field::Alpn,
            "protocol" => Field::Protocol,
            other => match other.split_once(':') {
                Some(("header", name)) => Field::Header(name.to_owned()),
                Some(("cookie", name)) => Field::Cookie(name.to_owned()),
                _ => return Err(Error::new(format!("unknown field `{other}`"))),
            },
        })
    }

    /// What reading it needs declared.
    fn needs(&self) -> RequestNeeds {
        use bascule_guest_sdk::Field as Declared;
        let needs = RequestNeeds::nothing();
        match self {
            Field::Method => needs.field(Declared::Method),
            Field::Host => needs.field(Declared::Host),
            Field::Path => needs.field(Declared::Path),
            Field::Query => needs.field(Declared::Query),
            Field::Sni => needs.field(Declared::Sni),
            Field::Listener => needs.field(Declared::Listener),
            Field::TlsVersion => needs.field(Declared::TlsVersion),
            Field::Alpn => needs.field(Declared::Alpn),
            Field::ClientIp | Field::ClientPort | Field::Protocol => needs,
            Field::Header(name) => needs.header(name),
            Field::Cookie(name) => needs.cookie(name),
        }
    }

    fn read(&self, request: &Request) -> Option<String> {
        match self {
            Field::Method => Some(request.method()),
            Field::Host => request.host(),
            Field::Path => Some(request.path()),
            Field::Query => request.query(),
            Field::ClientIp => Some(request.client_ip()),
            Field::ClientPort => Some(request.client_port().to_string()),
            Field::Sni => request.sni(),
            Field::Listener => Some(request.listener()),
            Field::TlsVersion => request.tls_version(),
            Field::Alpn => request.alpn(),
            Field::Protocol => Some(match request.protocol() {
                Protocol::Http => "http".to_owned(),
                Protocol::Tcp => "tcp".to_owned(),
                Protocol::Udp => "udp".to_owned(),
            }),
            Field::Header(name) => request.header(name),
            Field::Cookie(name) => request.cookie(name),
        }
    }
}

// === impl PickBy ===

impl PickBy {
    /// The index of the backend named `value` (see the crate docs for how
    /// characters are mapped).
    pub fn index_of(&self, value: &str) -> Option<u32> {
        let wanted: String = value
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let index = self.names.iter().position(|name| *name == wanted)?;
        u32::try_from(index).ok()
    }
}

impl Balancer for PickBy {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        Ok(PickBy {
            field: Field::parse(&settings.field)?,
            lazy: settings.lazy,
            names: Vec::new(),
        })
    }

    fn needs(&self) -> RequestNeeds {
        if self.lazy {
            RequestNeeds::nothing()
        } else {
            self.field.needs()
        }
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.names = backends.into_iter().map(|b| b.id).collect();
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let value = self.field.read(request);
        bascule_guest_sdk::debug(&format!("{:?} = {value:?}", self.field));
        Ok(value.and_then(|v| self.index_of(&v)).into_iter().collect())
    }
}

bascule_guest_sdk::export_balancer!(PickBy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        assert_eq!(Field::parse("client-ip").unwrap(), Field::ClientIp);
        assert_eq!(
            Field::parse("header:x-pick").unwrap(),
            Field::Header("x-pick".into())
        );
        assert_eq!(
            Field::parse("cookie:pick").unwrap(),
            Field::Cookie("pick".into())
        );
        assert!(Field::parse("body").is_err());
    }

    #[test]
    fn maps_unnameable_characters() {
        let pick = PickBy {
            field: Field::Path,
            lazy: false,
            names: vec!["decoy".into(), "_a_b".into(), "a_1".into()],
        };
        assert_eq!(pick.index_of("/a/b"), Some(1));
        assert_eq!(pick.index_of("a=1"), Some(2));
        assert_eq!(pick.index_of("nothing"), None);
    }
}
