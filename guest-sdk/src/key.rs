//! Hash keys: which part of a request a hashing balancer hashes, and the
//! hash function every built-in uses.
//!
//! Operators write the key source as a string option:
//!
//! | option            | key                                   | TCP pools |
//! |-------------------|---------------------------------------|-----------|
//! | `client-ip`       | the client's IP address               | yes       |
//! | `header:<name>`   | first value of a request header       | no        |
//! | `cookie:<name>`   | a cookie the client sent              | no        |
//! | `path`            | the request path, without query       | no        |
//! | `query:<name>`    | one query-string parameter            | no        |
//!
//! When the chosen field is absent from a request, the client IP is used,
//! so a request is never left without a key.

use serde::Deserialize;

use crate::{Error, Field, Options, Request, RequestNeeds};

/// Which part of the request to hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum KeySource {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// A request header (case-insensitive name).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The path without query.
    Path,
    /// A query-string parameter.
    Query(String),
}

// === impl KeySource ===

impl KeySource {
    /// Parses `client-ip`, `header:<name>`, `cookie:<name>`, `path` or
    /// `query:<name>`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let named = |kind: &str, name: &str| {
            if name.is_empty() {
                Err(Error::new(format!("key source `{kind}:` needs a name")))
            } else {
                Ok(name.to_owned())
            }
        };
        match text.split_once(':') {
            None if text == "client-ip" => Ok(KeySource::ClientIp),
            None if text == "path" => Ok(KeySource::Path),
            Some(("header", name)) => named("header", name).map(KeySource::Header),
            Some(("cookie", name)) => named("cookie", name).map(KeySource::Cookie),
            Some(("query", name)) => named("query", name).map(KeySource::Query),
            _ => Err(Error::new(format!(
                "unknown key source `{text}` (expected client-ip, path, header:<name>, \
                 cookie:<name> or query:<name>)"
            ))),
        }
    }

    /// Whether the key exists only in HTTP requests.
    pub fn needs_http(&self) -> bool {
        !matches!(self, KeySource::ClientIp)
    }

    /// Rejects a key a TCP or UDP pool cannot supply.
    pub fn check_supported(&self, options: &Options) -> Result<(), Error> {
        if self.needs_http() && options.serves_l4() {
            return Err(Error::new(format!(
                "key source `{self}` needs HTTP, but a TCP or UDP listener sends to this \
                 pool; use `client-ip`"
            )));
        }
        Ok(())
    }

    /// What [`KeySource::read`] reads of a request, to declare in
    /// [`Balancer::needs`](crate::Balancer::needs).
    pub fn needs(&self) -> RequestNeeds {
        let needs = RequestNeeds::nothing();
        match self {
            KeySource::ClientIp => needs,
            KeySource::Header(name) => needs.header(name),
            KeySource::Cookie(name) => needs.cookie(name),
            KeySource::Path => needs.field(Field::Path),
            KeySource::Query(_) => needs.field(Field::Query),
        }
    }

    /// The key of `request`: the chosen field, or the client IP when the
    /// request lacks it.
    pub fn read(&self, request: &Request) -> String {
        let field = match self {
            KeySource::ClientIp => None,
            KeySource::Header(name) => request.header(name),
            KeySource::Cookie(name) => request.cookie(name),
            KeySource::Path => Some(request.path()).filter(|path| !path.is_empty()),
            KeySource::Query(name) => request
                .query()
                .and_then(|query| query_parameter(&query, name).map(str::to_owned)),
        };
        field.unwrap_or_else(|| request.client_ip())
    }
}

impl TryFrom<String> for KeySource {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        KeySource::parse(&text)
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::ClientIp => f.write_str("client-ip"),
            KeySource::Path => f.write_str("path"),
            KeySource::Header(name) => write!(f, "header:{name}"),
            KeySource::Cookie(name) => write!(f, "cookie:{name}"),
            KeySource::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// The value of parameter `name` in a raw query string (not decoded).
fn query_parameter<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// The 64-bit hash every built-in uses for keys and backend ids: XXH3,
/// fast on short strings and well mixed, stable across builds and hosts.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// [`hash_key`] with a seed, for algorithms that need independent hashes
/// of the same bytes (Maglev's offset and skip).
pub fn hash_key_seeded(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Protocol, RequestFixture};

    #[test]
    fn parses_every_source_and_prints_it_back() {
        for text in [
            "client-ip",
            "path",
            "header:x-user",
            "cookie:sid",
            "query:id",
        ] {
            assert_eq!(KeySource::parse(text).unwrap().to_string(), text);
        }
        assert!(KeySource::parse("header:").is_err());
        assert!(KeySource::parse("body").is_err());
    }

    #[test]
    fn tcp_pools_accept_only_the_client_address() {
        let tcp = Options::for_protocols("{}", vec![Protocol::Http, Protocol::Tcp]);
        assert!(KeySource::ClientIp.check_supported(&tcp).is_ok());
        let err = KeySource::Header("x".into())
            .check_supported(&tcp)
            .unwrap_err();
        assert!(err.message().contains("TCP or UDP listener"), "{err}");
        assert!(
            KeySource::Path
                .check_supported(&Options::from_json("{}"))
                .is_ok()
        );
    }

    #[test]
    fn reads_the_field_or_falls_back_to_the_client() {
        let request = Request::fixture(RequestFixture {
            client_ip: "192.0.2.1".into(),
            path: "/cart".into(),
            query: Some("a=1&id=42&flag".into()),
            headers: vec![("X-User".into(), "ann".into())],
            cookies: vec![("sid".into(), "s1".into())],
            ..RequestFixture::default()
        });
        let read = |text: &str| KeySource::parse(text).unwrap().read(&request);
        assert_eq!(read("path"), "/cart");
        assert_eq!(read("query:id"), "42");
        assert_eq!(read("query:flag"), "");
        assert_eq!(read("header:x-user"), "ann");
        assert_eq!(read("cookie:sid"), "s1");
        assert_eq!(read("cookie:other"), "192.0.2.1");
        assert_eq!(read("query:missing"), "192.0.2.1");
    }
}
