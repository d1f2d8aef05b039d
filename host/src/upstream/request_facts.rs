//! What a plugin declared it reads of a request ([`RequestNeeds`]), and
//! those values taken from one request ([`RequestFacts`]): the one
//! argument a balancer's `select` or a filter's call receives, and what a
//! filter's response phase keeps instead of the request head.

use std::net::SocketAddr;

use http::HeaderName;

use super::{Protocol, RequestView};

/// A request value a plugin may declare, in the contract's order (the bit
/// of each is `1 << index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestField {
    /// The HTTP method.
    Method,
    /// The routed host, without port.
    Host,
    /// The path, without query.
    Path,
    /// The raw query string.
    Query,
    /// The TLS server name.
    Sni,
    /// The accepting listener's name.
    Listener,
    /// The negotiated TLS version.
    TlsVersion,
    /// The negotiated ALPN protocol.
    Alpn,
}

/// What a plugin reads of each request, as it declared at configure time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestNeeds {
    fields: u8,
    headers: Vec<HeaderName>,
    cookies: Vec<String>,
}

/// The declared values of one request (see the WIT `request-facts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// HTTP, TCP or UDP.
    pub protocol: Protocol,
    /// The client's address.
    pub client: SocketAddr,
    /// One entry per declared field in contract order, then one per
    /// declared cookie; `None` when nothing of the kind was declared.
    pub values: Option<Vec<Option<String>>>,
    /// Every (name, value) of the declared headers; `None` when no header
    /// was declared.
    pub headers: Option<Vec<(String, String)>>,
}

/// A declared header name that is not a valid HTTP field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid header name")]
pub struct InvalidHeaderName(pub String);

// === impl RequestField ===

impl RequestField {
    /// Every field, in contract order.
    pub const ALL: [RequestField; 8] = [
        RequestField::Method,
        RequestField::Host,
        RequestField::Path,
        RequestField::Query,
        RequestField::Sni,
        RequestField::Listener,
        RequestField::TlsVersion,
        RequestField::Alpn,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// This field's value in `view`.
    pub fn read(self, view: &RequestView) -> Option<String> {
        let head = view.http.as_deref();
        match self {
            RequestField::Method => head.map(|h| h.method.as_str().to_owned()),
            RequestField::Host => view.host(),
            RequestField::Path => head.map(|h| h.uri.path().to_owned()),
            RequestField::Query => head.and_then(|h| h.uri.query()).map(str::to_owned),
            RequestField::Sni => view.sni.as_deref().map(str::to_owned),
            RequestField::Listener => Some(view.listener.to_string()),
            RequestField::TlsVersion => view.tls.as_ref().map(|tls| tls.version.to_owned()),
            RequestField::Alpn => view.tls.as_ref().and_then(|tls| tls.alpn.clone()),
        }
    }
}

// === impl RequestNeeds ===

impl RequestNeeds {
    /// Needs from the contract's parts: the field bits and the names.
    pub fn new(
        fields: u8,
        headers: &[String],
        cookies: Vec<String>,
    ) -> Result<Self, InvalidHeaderName> {
        let mut needs = RequestNeeds {
            fields,
            headers: Vec::with_capacity(headers.len()),
            cookies: Vec::new(),
        };
        for name in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| InvalidHeaderName(name.clone()))?;
            if !needs.headers.contains(&name) {
                needs.headers.push(name);
            }
        }
        for cookie in cookies {
            if !needs.cookies.contains(&cookie) {
                needs.cookies.push(cookie);
            }
        }
        Ok(needs)
    }

    /// Also reads `field`.
    #[must_use]
    pub fn with(mut self, field: RequestField) -> Self {
        self.fields |= field.bit();
        self
    }

    /// Whether `field` is declared.
    pub fn reads(&self, field: RequestField) -> bool {
        self.fields & field.bit() != 0
    }

    /// The declared request header names.
    pub fn headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// The declared values of `view`: only what was declared is copied.
    pub fn extract(&self, view: &RequestView) -> RequestFacts {
        let wants_values = self.fields != 0 || !self.cookies.is_empty();
        let values = wants_values.then(|| {
            let fields = RequestField::ALL
                .into_iter()
                .filter(|field| self.reads(*field))
                .map(|field| field.read(view));
            let cookies = self.cookies.iter().map(|name| view.cookie(name));
            fields.chain(cookies).collect()
        });
        let headers = (!self.headers.is_empty()).then(|| match view.http.as_deref() {
            Some(head) => header_pairs(&head.headers, &self.headers),
            None => Vec::new(),
        });
        RequestFacts {
            protocol: view.protocol,
            client: view.client,
            values,
            headers,
        }
    }
}

/// Every (name, value) of `headers` whose name is in `names`, in message
/// order; values that are not UTF-8 left out.
pub fn header_pairs(headers: &http::HeaderMap, names: &[HeaderName]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| names.contains(name))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

// === impl RequestFacts ===

impl RequestFacts {
    /// The value of `field`, when `needs` (what these facts were taken
    /// for) declared it and the request had one.
    pub fn field(&self, needs: &RequestNeeds, field: RequestField) -> Option<&str> {
        if !needs.reads(field) {
            return None;
        }
        let below = needs.fields & (field.bit() - 1);
        let index = below.count_ones() as usize;
        self.values.as_ref()?.get(index)?.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn view() -> RequestView {
        let (head, ()) = http::Request::builder()
            .method("POST")
            .uri("/cart?x=1")
            .header("host", "Shop.Test")
            .header("x-user", "ann")
            .header("x-other", "no")
            .header("x-user", "bob")
            .header("cookie", "a=1; sid=s1")
            .body(())
            .unwrap()
            .into_parts();
        RequestView {
            protocol: Protocol::Http,
            listener: "web".into(),
            client: "192.0.2.7:4000".parse().unwrap(),
            sni: None,
            tls: None,
            http: Some(Arc::new(head)),
        }
    }

    #[test]
    fn nothing_declared_copies_nothing() {
        let facts = RequestNeeds::default().extract(&view());
        assert_eq!(facts.values, None);
        assert_eq!(facts.headers, None);
        assert_eq!(facts.client.port(), 4000);
    }

    #[test]
    fn declared_values_in_contract_order_then_cookies() {
        let needs = RequestNeeds::new(0, &["X-User".to_owned()], vec!["sid".into(), "gone".into()])
            .unwrap()
            .with(RequestField::Query)
            .with(RequestField::Method)
            .with(RequestField::Host);
        let facts = needs.extract(&view());
        assert_eq!(
            facts.values.as_deref().unwrap(),
            [
                Some("POST".to_owned()),
                Some("shop.test".to_owned()),
                Some("x=1".to_owned()),
                Some("s1".to_owned()),
                None
            ]
        );
        assert_eq!(
            facts.headers.as_deref().unwrap(),
            [
                ("x-user".to_owned(), "ann".to_owned()),
                ("x-user".to_owned(), "bob".to_owned())
            ]
        );
        assert_eq!(facts.field(&needs, RequestField::Query), Some("x=1"));
        assert_eq!(facts.field(&needs, RequestField::Host), Some("shop.test"));
        assert_eq!(facts.field(&needs, RequestField::Path), None);
    }

    #[test]
    fn invalid_declared_header_names_are_refused() {
        let error = RequestNeeds::new(0, &["bad name".to_owned()], Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "`bad name` is not a valid header name");
    }
}
