//! The one authority of a request, decided once before routing.
//!
//! It comes from the request target when that carries one (absolute-form,
//! HTTP/2 `:authority`), else from `Host`; it is checked (RFC 3986 host
//! syntax, a numeric port, exactly one `Host`, target and `Host` agreeing)
//! and normalised (lowercase, no trailing dot). Routing, filters, balancers
//! and the backend then all see this one value: the proxy writes it as the
//! only `Host` it forwards. Anything ambiguous is refused with 400, as
//! HAProxy does, so no route can be bypassed by disagreeing fields.

use std::net::Ipv6Addr;

use http::header::{self, HeaderValue};
use http::{Version, request::Parts};

/// A request's authority, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The host, lowercase, without a trailing dot; an IPv6 literal keeps
    /// its brackets.
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

/// Why a request's authority was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// HTTP/1.1 and HTTP/2 requests must name their host.
    #[error("the request has no Host")]
    Missing,
    /// Two `Host` headers: which one a backend reads is anyone's guess.
    #[error("the request has more than one Host header")]
    Duplicate,
    /// Not a host (and port) by RFC 3986.
    #[error("invalid host `{0}`")]
    Invalid(String),
    /// The request target names one host and `Host` another.
    #[error("the request target names `{target}` but Host says `{host}`")]
    Mismatch {
        /// The target's authority.
        target: String,
        /// The `Host` header's.
        host: String,
    },
}

// === impl Authority ===

impl Authority {
    /// Parses and normalises `text` (`host`, `host:port`, `[v6]:port`).
    pub fn parse(text: &str) -> Result<Authority, AuthorityError> {
        let invalid = || AuthorityError::Invalid(text.to_owned());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (literal, after) = rest.split_once(']').ok_or_else(invalid)?;
            literal.parse::<Ipv6Addr>().map_err(|_| invalid())?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(invalid)?),
            };
            let host = text.get(..literal.len() + 2).ok_or_else(invalid)?;
            (host, port)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None | Some("") => None,
            Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse::<u16>().map_err(|_| invalid())?)
            }
            Some(_) => return Err(invalid()),
        };
        let host = if host.starts_with('[') {
            host.to_ascii_lowercase()
        } else {
            normal_name(host).ok_or_else(invalid)?
        };
        Ok(Authority { host, port })
    }

    /// The value to forward as `Host`.
    pub fn header_value(&self) -> HeaderValue {
        let text = match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        };
        // Only checked characters are in `text`.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// A registered name or IPv4 address, lowercase, one trailing dot
/// dropped; `None` unless it is letters, digits, `-`, `_` and `.`, in
/// non-empty labels. (RFC 3986 also allows sub-delimiters and
/// percent-encoding in a reg-name; no DNS name has them, and backends
/// disagree on what they mean.)
fn normal_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| name.to_ascii_lowercase())
}

/// Decides `head`'s authority. `Ok(None)`: the request names no host and
/// may do so (HTTP/1.0, or an empty `Host` as RFC 9112 §3.2 allows when
/// the target has no authority).
pub fn decide(head: &Parts) -> Result<Option<Authority>, AuthorityError> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::Duplicate);
    }
    let host = match host {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                AuthorityError::Invalid(String::from_utf8_lossy(value.as_bytes()).into_owned())
            })?;
            (!text.is_empty()).then_some(text)
        }
        None => None,
    };
    let target = head.uri.authority().map(|a| a.as_str());
    match (target, host) {
        (Some(target), Some(host)) => {
            let from_target = Authority::parse(target)?;
            if Authority::parse(host)? != from_target {
                return Err(AuthorityError::Mismatch {
                    target: target.to_owned(),
                    host: host.to_owned(),
                });
            }
            Ok(Some(from_target))
        }
        (Some(only), None) | (None, Some(only)) => Authority::parse(only).map(Some),
        (None, None) => {
            let empty_host_sent = head.headers.contains_key(header::HOST);
            if head.version == Version::HTTP_10 || empty_host_sent {
                Ok(None)
            } else {
                Err(AuthorityError::Missing)
            }
        }
    }
}

#[cfg(test)]
mod tests;
