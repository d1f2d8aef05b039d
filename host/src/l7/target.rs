//! The target step, before routing: what the request is for, decided once.
//!
//! The request-target form must suit the method (CONNECT is not tunnelled,
//! `OPTIONS *` is answered here, an authority-form or foreign-scheme target
//! is refused), the [authority](super::authority) is decided and the
//! [path](super::path) normalised. The head is then rewritten to exactly
//! what the routing decision is made on: an origin-form target with the
//! normalised path, and the one normalised `Host`.

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, StatusCode, request::Parts};

use super::authority::{self, Authority};
use super::path::PathPolicy;

/// What a request was refused with, and why (the response body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 405, ...
    pub status: StatusCode,
    /// A one-line reason.
    pub reason: String,
    /// For 405: what is allowed.
    pub allow: Option<&'static str>,
}

/// What the proxy answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The request is refused.
    Refuse(Refusal),
    /// `OPTIONS *`: what the proxy's server supports.
    ServerOptions,
}

/// The methods `OPTIONS *` announces and a refused CONNECT points to.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/// Decides `head`'s target and rewrites it for routing and forwarding;
/// returns the authority (`None`: a request that may name no host).
pub fn decide(head: &mut Parts, paths: &PathPolicy) -> Result<Option<Authority>, Answer> {
    if head.method == Method::CONNECT {
        return Err(Answer::Refuse(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "CONNECT tunnels are not enabled on this listener".to_owned(),
            allow: Some(ALLOWED_METHODS),
        }));
    }
    if head.uri == "*" {
        return match head.method {
            Method::OPTIONS => Err(Answer::ServerOptions),
            _ => Err(bad_request("only OPTIONS may target `*`")),
        };
    }
    match (head.uri.scheme_str(), head.uri.authority()) {
        (None, Some(_)) => return Err(bad_request("authority-form targets are only for CONNECT")),
        (Some(scheme), _)
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") =>
        {
            return Err(bad_request(&format!("unsupported scheme `{scheme}`")));
        }
        _ => {}
    }
    let authority = authority::decide(head).map_err(|e| bad_request(&e.to_string()))?;
    let path = paths
        .normalize(head.uri.path())
        .map_err(|e| bad_request(&e.to_string()))?;
    // Most requests are already origin-form with a normal path: their
    // target is kept as it is, without building a new one.
    let origin = head.uri.scheme().is_none() && head.uri.authority().is_none();
    let rebuilt = match path {
        Cow::Borrowed(_) if origin => None,
        path => Some(
            origin_form(&path, head.uri.query())
                .ok_or_else(|| bad_request("invalid request target"))?,
        ),
    };
    if let Some(uri) = rebuilt {
        head.uri = uri;
    }
    let host = match &authority {
        Some(authority) => authority.header_value(),
        None => HeaderValue::from_static(""),
    };
    head.headers.insert(header::HOST, host);
    Ok(authority)
}

fn bad_request(reason: &str) -> Answer {
    Answer::Refuse(Refusal {
        status: StatusCode::BAD_REQUEST,
        reason: reason.to_owned(),
        allow: None,
    })
}

/// `/path?query` as a URI.
fn origin_form(path: &str, query: Option<&str>) -> Option<Uri> {
    let target = match query {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")).ok()?,
        None => PathAndQuery::try_from(path).ok()?,
    };
    Some(Uri::from(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, uri: &str, host: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn status(answer: Result<Option<Authority>, Answer>) -> Option<StatusCode> {
        match answer {
            Err(Answer::Refuse(refusal)) => Some(refusal.status),
            _ => None,
        }
    }

    #[test]
    fn the_head_is_rewritten_to_what_routing_sees() {
        let mut request = head(
            "GET",
            "http://A.Example./%61dmin/../x//y?q=%61",
            Some("a.example"),
        );
        let authority = decide(&mut request, &PathPolicy::default()).unwrap();
        assert_eq!(authority.map(|a| a.host).as_deref(), Some("a.example"));
        assert_eq!(request.uri, "/x/y?q=%61");
        assert_eq!(request.headers.get_all(header::HOST).iter().count(), 1);
        assert_eq!(request.headers[header::HOST], "a.example");
    }

    #[test]
    fn methods_and_target_forms_that_cannot_be_routed_are_answered_here() {
        let paths = PathPolicy::default();
        assert_eq!(
            status(decide(
                &mut head("CONNECT", "a.example:443", Some("a.example:443")),
                &paths
            )),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            decide(&mut head("OPTIONS", "*", Some("a.example")), &paths),
            Err(Answer::ServerOptions)
        );
        assert_eq!(
            status(decide(&mut head("GET", "*", Some("a.example")), &paths)),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(decide(
                &mut head("GET", "a.example:80", Some("a.example")),
                &paths
            )),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(decide(
                &mut head("GET", "ftp://a.example/", Some("a.example")),
                &paths
            )),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(decide(&mut head("GET", "/a\\b", Some("a.example")), &paths)),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
