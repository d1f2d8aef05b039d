//! The request or connection being balanced, and everything a plugin may
//! see or ask for while it chooses: request fields, live backend stats,
//! client affinity.
//!
//! Inside a plugin (`wasm32`), every accessor is one call into the host, so
//! read only what the algorithm needs: round robin reads nothing, an IP
//! hash reads one field. Compiled natively, a [`Request`] is a plain value
//! built with [`Request::fixture`], so an algorithm can be unit-tested and
//! benchmarked without a host.

#[cfg(not(target_arch = "wasm32"))]
use std::cell::RefCell;

#[cfg(target_arch = "wasm32")]
use crate::bindings::bascule::plugin::{affinity, backend_stats, request_context as host, types};
use crate::{AffinityCookie, BackendStats};

/// Whether the plugin is balancing an HTTP request or a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// An HTTP request on an L7 listener.
    #[default]
    Http,
    /// A TCP connection on an L4 listener: HTTP accessors return nothing.
    Tcp,
}

/// The request or connection the current `select` call is about.
///
/// In a plugin it is a handle with no data of its own, valid only inside
/// [`Balancer::select`](crate::Balancer::select).
#[derive(Debug)]
pub struct Request {
    #[cfg(not(target_arch = "wasm32"))]
    fixture: RequestFixture,
    #[cfg(not(target_arch = "wasm32"))]
    pinned: RefCell<Option<AffinityCookie>>,
    #[cfg(target_arch = "wasm32")]
    _handle: (),
}

/// What a natively compiled [`Request`] answers: the request fields and the
/// backends' stats, as the host would report them.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Default)]
pub struct RequestFixture {
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// Listener name.
    pub listener: String,
    /// Client IP address, as text.
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

// === impl Request ===

impl Request {
    /// The handle for the request of the current `select` call.
    #[doc(hidden)]
    #[cfg(target_arch = "wasm32")]
    pub fn current() -> Self {
        Request { _handle: () }
    }

    /// A request that answers from `fixture` (native builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fixture(fixture: RequestFixture) -> Self {
        Request {
            fixture,
            pinned: RefCell::new(None),
        }
    }

    /// The cookie the balancer asked for with [`Request::pin_with_cookie`]
    /// (native builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn pinned_cookie(&self) -> Option<AffinityCookie> {
        self.pinned.borrow().clone()
    }

    /// HTTP or TCP.
    pub fn protocol(&self) -> Protocol {
        #[cfg(target_arch = "wasm32")]
        return match host::request_protocol() {
            types::Protocol::Http => Protocol::Http,
            types::Protocol::Tcp => Protocol::Tcp,
        };
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.protocol
    }

    /// Name of the listener that accepted the request.
    pub fn listener(&self) -> String {
        #[cfg(target_arch = "wasm32")]
        return host::listener();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.listener.clone()
    }

    /// The client's IP address, as text.
    pub fn client_ip(&self) -> String {
        #[cfg(target_arch = "wasm32")]
        return host::client_ip();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.client_ip.clone()
    }

    /// The client's source port.
    pub fn client_port(&self) -> u16 {
        #[cfg(target_arch = "wasm32")]
        return host::client_port();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.client_port
    }

    /// The TLS server name, when the listener saw one.
    pub fn sni(&self) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::sni();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.sni.clone()
    }

    /// The HTTP method; empty for TCP.
    pub fn method(&self) -> String {
        #[cfg(target_arch = "wasm32")]
        return host::method();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.method.clone()
    }

    /// The request host without port.
    pub fn host(&self) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::host();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.host.clone()
    }

    /// The path without the query string.
    pub fn path(&self) -> String {
        #[cfg(target_arch = "wasm32")]
        return host::path();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.path.clone()
    }

    /// The query string without `?`.
    pub fn query(&self) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::query();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.query.clone()
    }

    /// First value of a header (name is case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::header(name);
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }

    /// Value of a cookie.
    pub fn cookie(&self, name: &str) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::cookie(name);
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture
            .cookies
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    /// Live stats of backend `index` (one host call).
    pub fn backend_stats(&self, index: u32) -> Option<BackendStats> {
        #[cfg(target_arch = "wasm32")]
        return backend_stats::stats(index).map(BackendStats::from_wit);
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture
            .stats
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// Live stats of every backend, by index (one host call).
    pub fn all_backend_stats(&self) -> Vec<BackendStats> {
        #[cfg(target_arch = "wasm32")]
        return backend_stats::all_stats()
            .into_iter()
            .map(BackendStats::from_wit)
            .collect();
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture.stats.clone()
    }

    /// Asks the host to set `cookie` on the response, valued with the token
    /// of the backend that ends up serving the request. See
    /// [`Backend::token`](crate::Backend::token).
    pub fn pin_with_cookie(&self, cookie: &AffinityCookie) {
        #[cfg(target_arch = "wasm32")]
        affinity::pin_with_cookie(&affinity::AffinityCookie {
            name: cookie.name.clone(),
            max_age_seconds: cookie.max_age_seconds,
            path: cookie.path.clone(),
            secure: cookie.secure,
            http_only: cookie.http_only,
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.pinned.replace(Some(cookie.clone()));
    }
}
