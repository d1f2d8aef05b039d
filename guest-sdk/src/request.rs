//! The request or connection being balanced or filtered, and everything a
//! plugin may see or ask for while it decides: request fields, live backend
//! stats, client affinity.
//!
//! A plugin declares once, at configure time, which request values it
//! reads ([`RequestNeeds`]); the host then passes exactly those with every
//! call, in one argument, and the accessors of [`Request`] answer from
//! them with no host call. A value that was not declared is still
//! answered, by a call into the host (~70 ns plus a copy): the escape hatch
//! for rare reads. Compiled natively, a [`Request`] is a plain value built
//! with [`Request::fixture`] that answers everything, so an algorithm can
//! be unit-tested and benchmarked without a host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

#[cfg(not(target_arch = "wasm32"))]
use std::cell::RefCell;

#[cfg(target_arch = "wasm32")]
use crate::bindings::bascule::plugin::{affinity, backend_stats, request_context as host};
use crate::{AffinityCookie, BackendStats};

/// Whether the plugin is balancing an HTTP request, a TCP connection or a
/// UDP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// An HTTP request on an L7 listener.
    #[default]
    Http,
    /// A TCP connection on an L4 listener: HTTP accessors return nothing.
    Tcp,
    /// A UDP flow on an L4 listener: HTTP accessors and SNI return nothing.
    Udp,
}

/// A request value a plugin may declare it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The HTTP method.
    Method,
    /// The host the request was routed on, without port.
    Host,
    /// The path, without query.
    Path,
    /// The raw query string.
    Query,
    /// The TLS server name.
    Sni,
    /// The accepting listener's name.
    Listener,
    /// The negotiated TLS version, on listeners that terminate TLS.
    TlsVersion,
    /// The negotiated ALPN protocol, on listeners that terminate TLS.
    Alpn,
}

/// What a plugin reads of each request, declared once: see the module
/// docs. The client address is always passed and needs no declaring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestNeeds {
    fields: u8,
    headers: Vec<String>,
    cookies: Vec<String>,
}

/// The request or connection the current call is about.
#[derive(Debug)]
pub struct Request {
    protocol: Protocol,
    client_ip: IpAddr,
    client_port: u16,
    /// Values by field; `None` when absent or undeclared.
    fields: Fields,
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    /// What `fields`, `headers` and `cookies` hold; `None` when they hold
    /// everything (a native fixture). Shared with the plugin's state, so
    /// that a call copies nothing.
    declared: Option<Rc<RequestNeeds>>,
    #[cfg(not(target_arch = "wasm32"))]
    stats: Vec<BackendStats>,
    #[cfg(not(target_arch = "wasm32"))]
    pinned: RefCell<Option<AffinityCookie>>,
}

/// One value slot per [`Field`].
#[derive(Debug, Default)]
struct Fields([Option<String>; Field::COUNT]);

/// What a natively compiled [`Request`] answers: the request fields and the
/// backends' stats, as the host would report them.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Default)]
pub struct RequestFixture {
    /// HTTP, TCP or UDP.
    pub protocol: Protocol,
    /// Listener name.
    pub listener: String,
    /// Client IP address, as text (unparsable text reads as `0.0.0.0`).
    pub client_ip: String,
    /// Client source port.
    pub client_port: u16,
    /// TLS server name.
    pub sni: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Host without port.
    pub host: Option<String>,
    /// Path without query.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Request headers; names are matched case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Cookies the client sent.
    pub cookies: Vec<(String, String)>,
    /// Stats of every backend, by index.
    pub stats: Vec<BackendStats>,
}

// === impl Field ===

impl Field {
    const COUNT: usize = 8;

    /// Every field, in the order the contract passes their values.
    pub const ALL: [Field; Field::COUNT] = [
        Field::Method,
        Field::Host,
        Field::Path,
        Field::Query,
        Field::Sni,
        Field::Listener,
        Field::TlsVersion,
        Field::Alpn,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn bit(self) -> u8 {
        1 << self.index()
    }
}

// === impl Fields ===

impl Fields {
    fn set(&mut self, field: Field, value: Option<String>) {
        if let Some(slot) = self.0.get_mut(field.index()) {
            *slot = value;
        }
    }

    fn get(&self, field: Field) -> Option<&String> {
        self.0.get(field.index())?.as_ref()
    }
}

// === impl RequestNeeds ===

impl RequestNeeds {
    /// Reads nothing but the client address (always passed).
    pub fn nothing() -> Self {
        RequestNeeds::default()
    }

    /// The declared fields as the contract's flag bits.
    #[doc(hidden)]
    pub fn bits(&self) -> u8 {
        self.fields
    }

    /// Also reads `field`.
    #[must_use]
    pub fn field(mut self, field: Field) -> Self {
        self.fields |= field.bit();
        self
    }

    /// Also reads every value of request header `name`.
    #[must_use]
    pub fn header(mut self, name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        if !self.headers.contains(&name) {
            self.headers.push(name);
        }
        self
    }

    /// Also reads cookie `name`.
    #[must_use]
    pub fn cookie(mut self, name: &str) -> Self {
        if !self.cookies.iter().any(|c| c == name) {
            self.cookies.push(name.to_owned());
        }
        self
    }

    /// Everything `self` or `other` reads.
    #[must_use]
    pub fn and(mut self, other: &RequestNeeds) -> Self {
        self.fields |= other.fields;
        for name in &other.headers {
            self = self.header(name);
        }
        for name in &other.cookies {
            self = self.cookie(name);
        }
        self
    }

    /// Whether `field` is declared.
    pub fn reads(&self, field: Field) -> bool {
        self.fields & field.bit() != 0
    }

    /// The declared fields, in contract order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.into_iter().filter(|field| self.reads(*field))
    }

    /// The declared header names, lowercase.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The declared cookie names.
    pub fn cookies(&self) -> &[String] {
        &self.cookies
    }

    fn reads_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    fn reads_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|c| c == name)
    }
}

// === impl Request ===

impl Request {
    /// The request of the current call, from the values the host passed
    /// for `needs`: `values` holds one entry per declared field, in
    /// [`Field::ALL`] order, then one per declared cookie.
    #[doc(hidden)]
    pub fn from_declared(
        protocol: Protocol,
        client: (IpAddr, u16),
        needs: &Rc<RequestNeeds>,
        values: Vec<Option<String>>,
        headers: Vec<(String, String)>,
    ) -> Self {
        let mut values = values.into_iter();
        let mut fields = Fields::default();
        for field in needs.fields() {
            fields.set(field, values.next().flatten());
        }
        let cookies = needs
            .cookies
            .iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name.clone(), value?)))
            .collect();
        Request {
            protocol,
            client_ip: client.0,
            client_port: client.1,
            fields,
            headers,
            cookies,
            declared: Some(Rc::clone(needs)),
            #[cfg(not(target_arch = "wasm32"))]
            stats: Vec::new(),
            #[cfg(not(target_arch = "wasm32"))]
            pinned: RefCell::new(None),
        }
    }

    /// A request that answers everything from `fixture` (native builds
    /// only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fixture(fixture: RequestFixture) -> Self {
        let mut fields = Fields::default();
        let http = fixture.protocol == Protocol::Http;
        fields.set(Field::Method, Some(fixture.method).filter(|_| http));
        fields.set(Field::Host, fixture.host);
        fields.set(Field::Path, Some(fixture.path).filter(|_| http));
        fields.set(Field::Query, fixture.query);
        fields.set(Field::Sni, fixture.sni);
        fields.set(Field::Listener, Some(fixture.listener));
        Request {
            protocol: fixture.protocol,
            client_ip: fixture
                .client_ip
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            client_port: fixture.client_port,
            fields,
            headers: fixture.headers,
            cookies: fixture.cookies,
            declared: None,
            stats: fixture.stats,
            pinned: RefCell::new(None),
        }
    }

    /// The cookie the balancer asked for with [`Request::pin_with_cookie`]
    /// (native builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn pinned_cookie(&self) -> Option<AffinityCookie> {
        self.pinned.borrow().clone()
    }

    /// HTTP, TCP or UDP.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The client's IP address.
    pub fn client_addr(&self) -> IpAddr {
        self.client_ip
    }

    /// The client's IP address, as text (`192.0.2.7`, `2001:db8::1`).
    pub fn client_ip(&self) -> String {
        self.client_ip.to_string()
    }

    /// The client's source port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Name of the listener that accepted the request.
    pub fn listener(&self) -> String {
        self.field(Field::Listener).unwrap_or_default()
    }

    /// The TLS server name, when the listener saw one.
    pub fn sni(&self) -> Option<String> {
        self.field(Field::Sni)
    }

    /// The HTTP method; empty for TCP and UDP.
    pub fn method(&self) -> String {
        self.field(Field::Method).unwrap_or_default()
    }

    /// The request host without port.
    pub fn host(&self) -> Option<String> {
        self.field(Field::Host)
    }

    /// The path without the query string; empty for TCP and UDP.
    pub fn path(&self) -> String {
        self.field(Field::Path).unwrap_or_default()
    }

    /// The query string without `?`.
    pub fn query(&self) -> Option<String> {
        self.field(Field::Query)
    }

    /// The negotiated TLS version, when the listener terminated TLS.
    pub fn tls_version(&self) -> Option<String> {
        self.field(Field::TlsVersion)
    }

    /// The negotiated ALPN protocol, when the listener terminated TLS.
    pub fn alpn(&self) -> Option<String> {
        self.field(Field::Alpn)
    }

    /// First value of a header (name is case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        if self.declared.as_ref().is_none_or(|d| d.reads_header(name)) {
            return self
                .headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone());
        }
        #[cfg(target_arch = "wasm32")]
        return host::header(name);
        #[cfg(not(target_arch = "wasm32"))]
        None
    }

    /// Every value of a declared header, in order (an undeclared header
    /// gives its first value only).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        if self.declared.as_ref().is_none_or(|d| d.reads_header(name)) {
            return self
                .headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
                .collect();
        }
        self.header(name).into_iter().collect()
    }

    /// Value of a cookie.
    pub fn cookie(&self, name: &str) -> Option<String> {
        if self.declared.as_ref().is_none_or(|d| d.reads_cookie(name)) {
            return self
                .cookies
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone());
        }
        #[cfg(target_arch = "wasm32")]
        return host::cookie(name);
        #[cfg(not(target_arch = "wasm32"))]
        None
    }

    fn field(&self, field: Field) -> Option<String> {
        if self.declared.as_ref().is_none_or(|d| d.reads(field)) {
            return self.fields.get(field).cloned();
        }
        #[cfg(target_arch = "wasm32")]
        return lazy_field(field);
        #[cfg(not(target_arch = "wasm32"))]
        None
    }

    /// Live stats of backend `index` (one host call).
    pub fn backend_stats(&self, index: u32) -> Option<BackendStats> {
        #[cfg(target_arch = "wasm32")]
        return backend_stats::stats(index).map(BackendStats::from_wit);
        #[cfg(not(target_arch = "wasm32"))]
        self.stats.get(usize::try_from(index).ok()?).copied()
    }

    /// Live stats of every backend, by index (one host call).
    pub fn all_backend_stats(&self) -> Vec<BackendStats> {
        #[cfg(target_arch = "wasm32")]
        return backend_stats::all_stats()
            .into_iter()
            .map(BackendStats::from_wit)
            .collect();
        #[cfg(not(target_arch = "wasm32"))]
        self.stats.clone()
    }

    /// Asks the host to set `cookie` on the response, valued with the token
    /// of the backend that ends up serving the request. See
    /// [`Backend::token`](crate::Backend::token).
    pub fn pin_with_cookie(&self, cookie: &AffinityCookie) {
        #[cfg(target_arch = "wasm32")]
        {
            let wit = affinity::AffinityCookie {
                name: cookie.name.clone(),
                max_age_seconds: cookie.max_age_seconds,
                path: cookie.path.clone(),
                secure: cookie.secure,
                http_only: cookie.http_only,
            };
            match cookie.same_site {
                None => affinity::pin_with_cookie(&wit),
                Some(same_site) => affinity::pin_with_cookie_same_site(
                    &wit,
                    match same_site {
                        crate::SameSite::Strict => affinity::SameSite::Strict,
                        crate::SameSite::Lax => affinity::SameSite::Lax,
                        crate::SameSite::None => affinity::SameSite::None,
                    },
                ),
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.pinned.replace(Some(cookie.clone()));
    }
}

/// An undeclared field, read through the `request-context` import.
#[cfg(target_arch = "wasm32")]
fn lazy_field(field: Field) -> Option<String> {
    let nonempty = |text: String| Some(text).filter(|t| !t.is_empty());
    match field {
        Field::Method => nonempty(host::method()),
        Field::Host => host::host(),
        Field::Path => nonempty(host::path()),
        Field::Query => host::query(),
        Field::Sni => host::sni(),
        Field::Listener => nonempty(host::listener()),
        // Not in the lazy interface: a plugin that needs them declares them.
        Field::TlsVersion | Field::Alpn => None,
    }
}

/// An IP address from the contract's numbers.
#[doc(hidden)]
pub fn ip_from_parts(v4: Option<u32>, v6: Option<(u64, u64)>) -> IpAddr {
    match (v4, v6) {
        (Some(v4), _) => IpAddr::V4(Ipv4Addr::from(v4)),
        (None, Some((high, low))) => {
            IpAddr::V6(Ipv6Addr::from((u128::from(high) << 64) | u128::from(low)))
        }
        (None, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_values_land_on_their_fields_and_cookies() {
        let needs = Rc::new(
            RequestNeeds::nothing()
                .field(Field::Path)
                .field(Field::Method)
                .cookie("sid")
                .cookie("other")
                .header("X-User"),
        );
        assert_eq!(
            needs.fields().collect::<Vec<_>>(),
            [Field::Method, Field::Path]
        );
        let request = Request::from_declared(
            Protocol::Http,
            (ip_from_parts(Some(0xc000_0207), None), 4321),
            &needs,
            vec![
                Some("GET".into()),
                Some("/cart".into()),
                Some("s1".into()),
                None,
            ],
            vec![("x-user".into(), "ann".into())],
        );
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/cart");
        assert_eq!(request.cookie("sid").as_deref(), Some("s1"));
        assert_eq!(request.cookie("other"), None);
        assert_eq!(request.header("x-USER").as_deref(), Some("ann"));
        assert_eq!(request.client_ip(), "192.0.2.7");
        assert_eq!(request.client_port(), 4321);
        // Undeclared values are not in the view (in a plugin the host
        // would be asked).
        assert_eq!(request.host(), None);
        assert_eq!(request.header("x-other"), None);
    }

    #[test]
    fn ipv6_numbers_round_trip() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let bits = u128::from(ip);
        let parts = ((bits >> 64) as u64, bits as u64);
        assert_eq!(ip_from_parts(None, Some(parts)).to_string(), "2001:db8::1");
    }

    #[test]
    fn needs_deduplicate_and_combine() {
        let a = RequestNeeds::nothing().header("X-A").cookie("c");
        let b = RequestNeeds::nothing().header("x-a").field(Field::Host);
        let both = a.and(&b);
        assert_eq!(both.headers(), ["x-a"]);
        assert_eq!(both.cookies(), ["c"]);
        assert!(both.reads(Field::Host));
        assert!(!both.reads(Field::Path));
    }
}
